//! The `project-events` Lambda: the events table's stream -> the items table.

use std::sync::Arc;

use items_adapters::dynamodb::DynamoReadModel;
use items_adapters::stream::project_events;
use items_domain::service::ProjectorService;
use items_functions::settings::required_env;
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let read_model = DynamoReadModel::new(aws_sdk_dynamodb::Client::new(&config), required_env("ITEMS_TABLE")?);
    let projector = ProjectorService::new(Arc::new(read_model));
    let projector = &projector;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| async move {
        Ok::<_, std::convert::Infallible>(project_events(projector, event.payload).await)
    }))
    .await
}
