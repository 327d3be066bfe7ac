//! `items quarantine`: the records a projector set aside as poison (the
//! embedded store's quarantine table, or with `--dynamodb` the events
//! table's quarantine partition, where the `project-events` Lambda and the
//! `--dynamodb` stream poller put them), and their redrive.

use std::process::ExitCode;
use std::sync::Arc;

use items_aws::dynamodb::{DynamoEventStore, DynamoReadModel, TableNames};
use items_aws::quarantine::{DynamoQuarantine, Quarantine, Redrive, redrive};
use items_domain::ports::{EventStore, ReadModel};
use items_local::sqlite::{Database, SqliteEventStore, SqliteReadModel};

use crate::aws::{clients, dynamodb_endpoint};
use crate::settings::LogArgs;

/// Exit code when records stay in the quarantine (for scripts).
pub const EXIT_KEPT: u8 = 1;

#[derive(Debug, clap::Args)]
pub struct QuarantineArgs {
    /// Re-project the items of the set-aside records from their whole
    /// streams, and release the records of those that now fold.
    #[arg(long)]
    pub redrive: bool,
    #[command(flatten)]
    pub log: LogArgs,
    /// DynamoDB: the live read table the redrive repairs.
    #[arg(long, env = "ITEMS_TABLE", default_value_t = TableNames::default().items)]
    pub items_table: String,
}

pub async fn run(args: QuarantineArgs) -> anyhow::Result<ExitCode> {
    let (quarantine, events, read_model): (Arc<dyn Quarantine>, Arc<dyn EventStore>, Arc<dyn ReadModel>) =
        if args.log.on_dynamodb() {
            let clients = clients(dynamodb_endpoint(args.log.dynamodb_endpoint.as_deref())).await;
            let client = clients.dynamodb;
            (
                Arc::new(DynamoQuarantine::new(client.clone(), &args.log.events_table)),
                Arc::new(DynamoEventStore::new(client.clone(), &args.log.events_table)),
                Arc::new(DynamoReadModel::new(client, &args.items_table)),
            )
        } else {
            let database = Database::open(&args.log.data_dir)?;
            let events = Arc::new(SqliteEventStore::new(database.clone()));
            (events.clone(), events, Arc::new(SqliteReadModel::new(database)))
        };
    if !args.redrive {
        let records = quarantine.quarantined().await?;
        for record in &records {
            println!(
                "{}  {}  {}  {}",
                items_domain::event::rfc3339::format(&record.at),
                record.sequence,
                record.stream_id,
                record.reason
            );
        }
        println!("{} record(s) set aside", records.len());
        return Ok(ExitCode::SUCCESS);
    }
    let outcome: Redrive = redrive(quarantine.as_ref(), events.as_ref(), read_model.as_ref()).await?;
    println!("items re-projected: {}", outcome.items);
    println!("records released:   {}", outcome.released);
    for (record, reason) in &outcome.kept {
        println!("kept {} ({}): {reason}", record.sequence, record.stream_id);
    }
    println!("records kept:       {}", outcome.kept.len());
    Ok(if outcome.kept.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(EXIT_KEPT) })
}
