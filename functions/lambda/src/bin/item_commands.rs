//! The `item-commands` Lambda: `PATCH` and `DELETE /items/{id}`, and
//! `GET /items/{id}/events`. Reads and appends the events table only.

use std::sync::Arc;

use items_aws::apigw::{CommandFunctions, item_commands};
use items_aws::dynamodb::DynamoEventStore;
use items_aws::lambda_env;
use items_aws::system::{RandomIds, SystemClock};
use items_domain::service::{ChangeItemService, HistoryService};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let events =
        Arc::new(DynamoEventStore::new(lambda_env::dynamodb_client().await, lambda_env::required("EVENTS_TABLE")?));
    let functions = CommandFunctions {
        changes: ChangeItemService::new(events.clone(), Arc::new(SystemClock), Arc::new(RandomIds))
            .with_idempotency_ttl(lambda_env::idempotency_ttl()?),
        history: HistoryService::new(events).with_max_body_bytes(lambda_env::list_budget().max_body_bytes),
    };
    let functions = &functions;
    items_lambda::run_api("item-commands", async |request, _deadline| item_commands(functions, request).await).await
}
