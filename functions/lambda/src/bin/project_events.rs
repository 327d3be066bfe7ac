//! The `project-events` Lambda: the events table's stream -> the items table.
//! It reads an item's stream (Query on the events table) only when an update
//! does not follow on from the items table's state, and sets aside what it
//! cannot apply in the events table's quarantine partition.

use std::sync::Arc;

use items_aws::compose;
use items_aws::dynamodb::{DynamoEventStore, DynamoReadModel};
use items_aws::lambda_env;
use items_aws::projector::project_events;
use items_aws::quarantine::DynamoQuarantine;
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let client = lambda_env::dynamodb_client().await;
    let events_table = lambda_env::required("EVENTS_TABLE")?;
    let read_model = DynamoReadModel::new(client.clone(), lambda_env::required("ITEMS_TABLE")?);
    let history = DynamoEventStore::new(client.clone(), &events_table);
    let quarantine = &DynamoQuarantine::new(client, events_table);
    let projector = compose::project_events(Arc::new(read_model), Arc::new(history));
    let projector = &projector;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| async move {
        let response = project_events(projector, quarantine, event.payload).await;
        // EMF on stdout: CloudWatch makes metrics of it, no API call.
        items_aws::metrics::flush_emf("project-events");
        Ok::<_, std::convert::Infallible>(response)
    }))
    .await
}
