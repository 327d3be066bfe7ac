//! The `get-items` Lambda: `GET /items` and `GET /items/{id}` (also as it was).

use std::sync::Arc;

use items_aws::apigw::get_items;
use items_aws::compose::{self, Settings};
use items_aws::cursor::HmacCursorCodec;
use items_aws::dynamodb::{DynamoEventStore, DynamoReadModel};
use items_aws::lambda_env;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let client = lambda_env::dynamodb_client().await;
    let read_model = DynamoReadModel::new(client.clone(), lambda_env::required("ITEMS_TABLE")?);
    let events = DynamoEventStore::new(client, lambda_env::required("EVENTS_TABLE")?);
    let cursors = HmacCursorCodec::new(lambda_env::required("CURSOR_SIGNING_KEY")?.as_bytes());
    let settings = Settings::from_env()?;
    let service = compose::get_items(Arc::new(read_model), Arc::new(events), Arc::new(cursors), &settings);
    let service = &service;
    items_lambda::run_api("get-items", async |request, deadline| get_items(service, request, deadline).await).await
}
