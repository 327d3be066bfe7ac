//! `items export` and `items import`: the event log as JSON Lines, one
//! stored event per line (its documented stored form,
//! `items_domain::event::StoredEvent`), item streams by id, each in version
//! order. Moves a laptop's data into a deployed stack, backs the log up,
//! brings a production case to a laptop.

mod export;
mod import;

use std::sync::Arc;

use items_aws::dynamodb::{DynamoEventStore, ensure_events_table};
use items_local::sqlite::{Database, SqliteEventStore};

pub use export::{ExportArgs, run as export};
pub use import::{ImportArgs, run as import};

use crate::aws::{approximate_events, clients, dynamodb_endpoint};
use crate::settings::LogArgs;

/// An opened log.
enum Log {
    Embedded(Arc<Database>, Arc<SqliteEventStore>),
    Dynamo { store: Arc<DynamoEventStore>, approximate_events: u64 },
}

/// Opens the log. The embedded store takes the data dir's lock, so this
/// refuses to run beside `items serve` on the same data dir. With
/// `create_local`, a missing events table behind an endpoint (DynamoDB
/// Local) is created, as `items serve --dynamodb` does; never in AWS.
async fn open(args: &LogArgs, create_local: bool) -> anyhow::Result<Log> {
    if !args.on_dynamodb() {
        let database = Database::open(&args.data_dir)?;
        return Ok(Log::Embedded(database.clone(), Arc::new(SqliteEventStore::new(database))));
    }
    let endpoint = dynamodb_endpoint(args.dynamodb_endpoint.as_deref());
    let local = endpoint.is_some();
    let client = clients(endpoint).await.dynamodb;
    if local && create_local {
        ensure_events_table(&client, &args.events_table).await?;
    }
    let approximate_events = approximate_events(&client, &args.events_table).await?;
    Ok(Log::Dynamo { store: Arc::new(DynamoEventStore::new(client, &args.events_table)), approximate_events })
}
