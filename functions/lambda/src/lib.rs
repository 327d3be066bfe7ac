//! What the API functions share: the runtime loop around a handler.

use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use items_aws::lambda_env;
use items_aws::response_headers::{decorate, origin};
use lambda_runtime::{LambdaEvent, service_fn};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Runs an API function named `function`: each event through `handler`
/// (with the invocation's deadline), its response given the CORS and
/// security headers, and what it counted written as one EMF line on stdout
/// (CloudWatch makes metrics of it, no API call).
pub async fn run_api(
    function: &'static str,
    handler: impl AsyncFn(ApiGatewayProxyRequest, Instant) -> ApiGatewayProxyResponse,
) -> Result<(), lambda_runtime::Error> {
    let cors = lambda_env::cors_policy();
    let (handler, cors) = (&handler, &cors);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<ApiGatewayProxyRequest>| async move {
        let request_origin = origin(&event.payload.headers).map(str::to_owned);
        let deadline = deadline(event.context.deadline, SystemTime::now());
        let mut response = handler(event.payload, deadline).await;
        decorate(&mut response.headers, request_origin.as_deref(), cors);
        items_aws::metrics::flush_emf(function);
        Ok::<_, std::convert::Infallible>(response)
    }))
    .await
}

/// The invocation's deadline (Lambda gives it in milliseconds since the
/// epoch, `Lambda-Runtime-Deadline-Ms`) on this process's monotonic clock.
fn deadline(deadline_ms: u64, now: SystemTime) -> Instant {
    let now_ms = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis();
    let remaining = u64::try_from(u128::from(deadline_ms).saturating_sub(now_ms)).unwrap_or(u64::MAX);
    Instant::now() + Duration::from_millis(remaining)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deadline_is_the_time_left_from_now() {
        let now = UNIX_EPOCH + Duration::from_millis(1_000_000);
        let before = Instant::now();
        let deadline = deadline(1_002_500, now);
        assert!(deadline >= before + Duration::from_millis(2_500));
        assert!(deadline <= Instant::now() + Duration::from_millis(2_500));
        assert!(super::deadline(999_000, now) <= Instant::now(), "a deadline past is now");
    }
}
