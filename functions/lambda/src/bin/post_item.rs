//! The `post-item` Lambda: `POST /items`.

use std::sync::Arc;

use items_aws::apigw::post_item;
use items_aws::dynamodb::DynamoEventStore;
use items_aws::lambda_env;
use items_aws::system::{RandomIds, SystemClock};
use items_domain::service::CreateItemService;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let events = DynamoEventStore::new(lambda_env::dynamodb_client().await, lambda_env::required("EVENTS_TABLE")?);
    let service = CreateItemService::new(Arc::new(events), Arc::new(SystemClock), Arc::new(RandomIds))
        .with_idempotency_ttl(lambda_env::idempotency_ttl()?);
    let service = &service;
    items_lambda::run_api("post-item", async |request, _deadline| post_item(service, request).await).await
}
