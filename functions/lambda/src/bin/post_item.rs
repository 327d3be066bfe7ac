//! The `post-item` Lambda: `POST /items`.

use std::sync::Arc;

use aws_lambda_events::apigw::ApiGatewayProxyRequest;
use items_aws::apigw::post_item;
use items_aws::dynamodb::DynamoEventStore;
use items_aws::lambda_env;
use items_aws::response_headers::{decorate, origin};
use items_aws::system::{RandomIds, SystemClock};
use items_domain::service::CreateItemService;
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let events = DynamoEventStore::new(lambda_env::dynamodb_client().await, lambda_env::required("EVENTS_TABLE")?);
    let service = CreateItemService::new(Arc::new(events), Arc::new(SystemClock), Arc::new(RandomIds))
        .with_idempotency_ttl(lambda_env::idempotency_ttl()?);
    let cors = lambda_env::cors_policy();
    let (service, cors) = (&service, &cors);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<ApiGatewayProxyRequest>| async move {
        let request_origin = origin(&event.payload.headers).map(str::to_owned);
        let mut response = post_item(service, event.payload).await;
        decorate(&mut response.headers, request_origin.as_deref(), cors);
        // EMF on stdout: CloudWatch makes metrics of it, no API call.
        items_aws::metrics::flush_emf("post-item");
        Ok::<_, std::convert::Infallible>(response)
    }))
    .await
}
