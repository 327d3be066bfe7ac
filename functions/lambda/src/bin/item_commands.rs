//! The `item-commands` Lambda: `PATCH` and `DELETE /items/{id}`, and
//! `GET /items/{id}/events`. Reads and appends the events table only.

use std::sync::Arc;

use items_aws::apigw::item_commands;
use items_aws::compose::{self, Settings};
use items_aws::dynamodb::DynamoEventStore;
use items_aws::lambda_env;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let events = DynamoEventStore::new(lambda_env::dynamodb_client().await, lambda_env::required("EVENTS_TABLE")?);
    let functions = compose::item_commands(Arc::new(events), &Settings::from_env()?);
    let functions = &functions;
    items_lambda::run_api("item-commands", async |request, _deadline| item_commands(functions, request).await).await
}
