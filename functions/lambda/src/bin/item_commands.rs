//! The `item-commands` Lambda: `PATCH` and `DELETE /items/{id}`, and
//! `GET /items/{id}/events`. Reads and appends the events table only.

use std::sync::Arc;

use aws_lambda_events::apigw::ApiGatewayProxyRequest;
use items_aws::apigw::{CommandFunctions, item_commands};
use items_aws::dynamodb::DynamoEventStore;
use items_aws::lambda_env;
use items_aws::response_headers::{decorate, origin};
use items_aws::system::{RandomIds, SystemClock};
use items_domain::service::{ChangeItemService, HistoryService};
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let events =
        Arc::new(DynamoEventStore::new(lambda_env::dynamodb_client().await, lambda_env::required("EVENTS_TABLE")?));
    let functions = CommandFunctions {
        changes: ChangeItemService::new(events.clone(), Arc::new(SystemClock), Arc::new(RandomIds))
            .with_idempotency_ttl(lambda_env::idempotency_ttl()?),
        history: HistoryService::new(events),
    };
    let cors = lambda_env::cors_policy();
    let (functions, cors) = (&functions, &cors);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<ApiGatewayProxyRequest>| async move {
        let request_origin = origin(&event.payload.headers).map(str::to_owned);
        let mut response = item_commands(functions, event.payload).await;
        decorate(&mut response.headers, request_origin.as_deref(), cors);
        // EMF on stdout: CloudWatch makes metrics of it, no API call.
        items_aws::metrics::flush_emf("item-commands");
        Ok::<_, std::convert::Infallible>(response)
    }))
    .await
}
