//! The `post-item` Lambda: `POST /items`.

use std::sync::Arc;

use items_aws::apigw::post_item;
use items_aws::compose::{self, Settings};
use items_aws::dynamodb::DynamoEventStore;
use items_aws::lambda_env;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let events = DynamoEventStore::new(lambda_env::dynamodb_client().await, lambda_env::required("EVENTS_TABLE")?);
    let service = compose::post_item(Arc::new(events), &Settings::from_env()?);
    let service = &service;
    items_lambda::run_api("post-item", async |request, _deadline| post_item(service, request).await).await
}
