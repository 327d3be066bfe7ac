//! `items quarantine`: the records the embedded store's change feed set aside
//! as poison (the local on-failure destination), and their redrive.

use std::path::PathBuf;
use std::process::ExitCode;

use items_local::event_source_mapping::{ChangeLog, redrive};
use items_local::sqlite::{Database, SqliteEventStore, SqliteReadModel};

use crate::settings::default_data_dir;

/// Exit code when records stay in the quarantine (for scripts).
pub const EXIT_KEPT: u8 = 1;

#[derive(Debug, clap::Args)]
pub struct QuarantineArgs {
    /// Re-project the items of the set-aside records from their whole
    /// streams, and release the records of those that now fold.
    #[arg(long)]
    pub redrive: bool,
    /// The embedded store's data dir (same as `items serve`, which must not be running).
    #[arg(long, env = "ITEMS_DATA_DIR", default_value_os_t = default_data_dir())]
    pub data_dir: PathBuf,
}

pub async fn run(args: QuarantineArgs) -> anyhow::Result<ExitCode> {
    let database = Database::open(&args.data_dir)?;
    let events = SqliteEventStore::new(database.clone());
    if !args.redrive {
        let records = events.quarantined().await?;
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
    let read_model = SqliteReadModel::new(database);
    let outcome = redrive(&events, &events, &read_model).await?;
    println!("items re-projected: {}", outcome.items);
    println!("records released:   {}", outcome.released);
    for (record, reason) in &outcome.kept {
        println!("kept {} ({}): {reason}", record.sequence, record.stream_id);
    }
    println!("records kept:       {}", outcome.kept.len());
    Ok(if outcome.kept.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(EXIT_KEPT) })
}
