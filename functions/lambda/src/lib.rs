//! What the API functions share: the runtime loop around a handler.

use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use items_aws::lambda_env;
use items_aws::response_headers::{decorate, origin};
use lambda_runtime::{LambdaEvent, service_fn};

/// Runs an API function named `function`: each event through `handler`, its
/// response given the CORS and security headers, and what it counted written
/// as one EMF line on stdout (CloudWatch makes metrics of it, no API call).
pub async fn run_api(
    function: &'static str,
    handler: impl AsyncFn(ApiGatewayProxyRequest) -> ApiGatewayProxyResponse,
) -> Result<(), lambda_runtime::Error> {
    let cors = lambda_env::cors_policy();
    let (handler, cors) = (&handler, &cors);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<ApiGatewayProxyRequest>| async move {
        let request_origin = origin(&event.payload.headers).map(str::to_owned);
        let mut response = handler(event.payload).await;
        decorate(&mut response.headers, request_origin.as_deref(), cors);
        items_aws::metrics::flush_emf(function);
        Ok::<_, std::convert::Infallible>(response)
    }))
    .await
}
