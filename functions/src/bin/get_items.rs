//! The `get-items` Lambda: `GET /items` and `GET /items/{id}`.

use std::sync::Arc;

use aws_lambda_events::apigw::ApiGatewayProxyRequest;
use items_adapters::apigw::{allow_origin, get_items, request_origin};
use items_adapters::cursor::HmacCursorCodec;
use items_adapters::dynamodb::DynamoReadModel;
use items_domain::service::QueryService;
use items_functions::settings::{cors_origins_from_env, required_env};
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let read_model = DynamoReadModel::new(aws_sdk_dynamodb::Client::new(&config), required_env("ITEMS_TABLE")?);
    let cursors = HmacCursorCodec::new(required_env("CURSOR_SIGNING_KEY")?.as_bytes());
    let service = QueryService::new(Arc::new(read_model), Arc::new(cursors));
    let cors_origins = cors_origins_from_env();
    let (service, cors_origins) = (&service, &cors_origins);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<ApiGatewayProxyRequest>| async move {
        let origin = request_origin(&event.payload);
        let mut response = get_items(service, event.payload).await;
        allow_origin(&mut response, origin.as_deref(), cors_origins);
        Ok::<_, std::convert::Infallible>(response)
    }))
    .await
}
