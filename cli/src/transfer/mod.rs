//! `items export` and `items import`: the event log as JSON Lines, one
//! stored event per line (its documented stored form,
//! `items_domain::event::StoredEvent`), item streams by id, each in version
//! order. Moves a laptop's data into a deployed stack, backs the log up,
//! brings a production case to a laptop.

mod export;
mod import;

use std::path::PathBuf;
use std::sync::Arc;

use items_aws::dynamodb::{DynamoEventStore, TableNames, ensure_events_table};
use items_local::sqlite::{Database, SqliteEventStore};

pub use export::{ExportArgs, run as export};
pub use import::{ImportArgs, run as import};

use crate::aws::{clients, dynamodb_endpoint};
use crate::settings::default_data_dir;

/// Which event log: the embedded store in the data dir, or a DynamoDB table.
#[derive(Debug, clap::Args)]
pub struct LogArgs {
    /// The log on DynamoDB instead of the embedded store in the data dir.
    #[arg(long)]
    pub dynamodb: bool,
    /// DynamoDB endpoint (implies `--dynamodb`); defaults to `AWS_ENDPOINT_URL_DYNAMODB` / `AWS_ENDPOINT_URL`.
    /// With an endpoint (DynamoDB Local), a missing events table is created, as `items serve --dynamodb` does.
    #[arg(long)]
    pub dynamodb_endpoint: Option<String>,
    #[arg(long, env = "EVENTS_TABLE", default_value_t = TableNames::default().events)]
    pub events_table: String,
    /// The embedded store's data dir (and where a DynamoDB export sorts on disk).
    #[arg(long, env = "ITEMS_DATA_DIR", default_value_os_t = default_data_dir())]
    pub data_dir: PathBuf,
}

/// An opened log.
enum Log {
    Embedded(Arc<Database>, Arc<SqliteEventStore>),
    Dynamo { store: Arc<DynamoEventStore>, approximate_events: u64 },
}

impl LogArgs {
    fn on_dynamodb(&self) -> bool {
        self.dynamodb || self.dynamodb_endpoint.is_some()
    }

    /// Opens the log. The embedded store takes the data dir's lock, so this
    /// refuses to run beside `items serve` on the same data dir.
    async fn open(&self) -> anyhow::Result<Log> {
        if !self.on_dynamodb() {
            let database = Database::open(&self.data_dir)?;
            return Ok(Log::Embedded(database.clone(), Arc::new(SqliteEventStore::new(database))));
        }
        let endpoint = dynamodb_endpoint(self.dynamodb_endpoint.as_deref());
        let local = endpoint.is_some();
        let client = clients(endpoint).await.dynamodb;
        if local {
            // DynamoDB Local: the table `items serve --dynamodb` would create.
            ensure_events_table(&client, &self.events_table).await?;
        }
        let described = client.describe_table().table_name(&self.events_table).send().await.map_err(|e| {
            anyhow::anyhow!("events table {}: {}", self.events_table, aws_sdk_dynamodb::error::DisplayErrorContext(e))
        })?;
        let approximate_events = described.table.and_then(|t| t.item_count).unwrap_or(0).max(0) as u64;
        Ok(Log::Dynamo { store: Arc::new(DynamoEventStore::new(client, &self.events_table)), approximate_events })
    }
}
