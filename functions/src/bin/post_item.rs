//! The `post-item` Lambda: `POST /items`.

use std::sync::Arc;

use aws_lambda_events::apigw::ApiGatewayProxyRequest;
use items_adapters::apigw::{allow_origin, post_item, request_origin};
use items_adapters::dynamodb::DynamoEventStore;
use items_adapters::system::{RandomIds, SystemClock};
use items_domain::service::CreateItemService;
use items_functions::settings::{cors_origins_from_env, idempotency_ttl_from_env, required_env};
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let events = DynamoEventStore::new(aws_sdk_dynamodb::Client::new(&config), required_env("EVENTS_TABLE")?);
    let service = CreateItemService::new(Arc::new(events), Arc::new(SystemClock), Arc::new(RandomIds))
        .with_idempotency_ttl(idempotency_ttl_from_env()?);
    let cors_origins = cors_origins_from_env();
    let (service, cors_origins) = (&service, &cors_origins);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<ApiGatewayProxyRequest>| async move {
        let origin = request_origin(&event.payload);
        let mut response = post_item(service, event.payload).await;
        allow_origin(&mut response, origin.as_deref(), cors_origins);
        Ok::<_, std::convert::Infallible>(response)
    }))
    .await
}
