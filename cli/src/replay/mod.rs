//! `items replay`: rebuilds the read model from the event log, on the embedded
//! store (the data dir's database, as `items serve` uses by default) or on
//! DynamoDB (`--dynamodb`, or a `--dynamodb-endpoint`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use items_aws::dynamodb::codec::ITEMS_BY_CREATOR_INDEX;
use items_aws::dynamodb::{
    BatchWriter, DynamoEventStore, DynamoReadModel, TOMBSTONE_LIFETIME, TableNames, ensure_items_table,
};
use items_domain::ports::ReadModel;
use items_domain::ports::{EventLogScan, ReplayTarget};
use items_domain::replay::{self, NoCheckpoints, ReadModelTarget, ReplayService, recheck};
use items_local::checkpoints::FileCheckpoints;
use items_local::sqlite::{Database, DiskFold, Rebuild, SqliteEventStore, SqliteReadModel};

pub(crate) mod progress;
mod report;

use progress::Progress;
use report::{print_summary, print_verify};

use crate::aws::{approximate_events, clients, dynamodb_endpoint};
use crate::settings::LogArgs;

/// Exit codes, for scripts.
pub const EXIT_DIFFERENT: u8 = 1;
pub const EXIT_STORE: u8 = 3;
pub const EXIT_INTERRUPTED: u8 = 130;

#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub log: LogArgs,
    /// The live read table: replayed into (version-guarded) unless `--into` is given.
    #[arg(long, env = "ITEMS_TABLE", default_value_t = TableNames::default().items)]
    pub items_table: String,
    /// DynamoDB: build into this table instead with BatchWriteItem (in AWS the
    /// table Pulumi made for the rebuild; created if missing only on DynamoDB
    /// Local); the live table is untouched until you switch `ITEMS_TABLE` to
    /// it. Refuses the live table, and a table that is not empty unless
    /// `--force`. Prints the catch-up (`--since`) to run after the switch.
    #[arg(long, value_name = "TABLE", conflicts_with = "since")]
    pub into: Option<String>,
    /// With `--into`: write into a table that already holds items, with
    /// version-guarded writes (never older than a row), not BatchWriteItem.
    #[arg(long, requires = "into")]
    pub force: bool,
    /// DynamoDB catch-up after a rebuild into a new table and the switch to it:
    /// every item with an event at or after this RFC 3339 time is folded from
    /// its whole stream and written (version-guarded) into `--items-table`.
    #[arg(long, value_name = "TIME", value_parser = parse_time, conflicts_with_all = ["dry_run", "verify"])]
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Segments read in parallel: on DynamoDB a parallel Scan sized to the table and this machine by default; on the embedded store ranges of item ids, one per core (at most 4).
    #[arg(long)]
    pub segments: Option<u32>,
    /// Read and validate every event, write nothing.
    #[arg(long, conflicts_with = "verify")]
    pub dry_run: bool,
    /// Compare the read table (or `--into`) with the event log; exit 1 if they differ.
    #[arg(long)]
    pub verify: bool,
    /// DynamoDB: continue an interrupted replay from its checkpoints.
    #[arg(long, conflicts_with_all = ["dry_run", "verify"])]
    pub resume: bool,
    /// Where checkpoints are kept (default: in the data dir, named after the tables).
    #[arg(long)]
    pub checkpoint_file: Option<PathBuf>,
    /// Concurrent version-guarded writes per segment page (live-table replays).
    #[arg(long, default_value_t = 32)]
    pub write_concurrency: usize,
}

fn parse_time(text: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    items_domain::event::rfc3339::parse(text).map_err(|e| format!("an RFC 3339 time such as 2026-11-30T12:00:00Z: {e}"))
}

/// How far before a rebuild's start its catch-up begins: events carry their
/// writer's clock, which may be behind the operator's, and a write may be in
/// flight while the rebuild starts.
const CATCH_UP_MARGIN: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

pub(crate) fn default_segments(approximate_items: u64) -> u32 {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get()) as u64;
    (approximate_items / 2_000 + 1).clamp(1, (cores * 4).max(4)) as u32
}

pub async fn run(args: ReplayArgs) -> ExitCode {
    match replay(args).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("replay failed: {error:#}");
            ExitCode::from(EXIT_STORE)
        }
    }
}

async fn replay(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    if args.log.on_dynamodb() { replay_dynamodb(args).await } else { replay_embedded(args).await }
}

/// Runs `work` to its end, or until Ctrl-C: then `None`, the progress bar
/// closed and `what_now` said.
async fn interruptible<T>(work: impl Future<Output = T>, progress: &Progress, what_now: &str) -> Option<T> {
    tokio::select! {
        done = work => Some(done),
        _ = tokio::signal::ctrl_c() => {
            progress.finish();
            eprintln!("interrupted; {what_now}");
            None
        }
    }
}

/// Rebuilds the embedded store's read model: into a staging table that
/// replaces it at the end, so it is never half rebuilt. Takes the data dir's
/// lock, so it refuses to run beside `items serve`.
async fn replay_embedded(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    if args.into.is_some() || args.resume || args.checkpoint_file.is_some() || args.since.is_some() {
        anyhow::bail!(
            "--into, --since, --resume and --checkpoint-file are for DynamoDB (add --dynamodb or --dynamodb-endpoint); \
             the embedded rebuild swaps its table in one transaction and needs no catch-up"
        );
    }
    let database = Database::open(&args.log.data_dir)?;
    let events = Arc::new(SqliteEventStore::new(database.clone()));
    // Segments read disjoint ranges of the log's index, on their own reader
    // connections; the one writer takes their pages in turn.
    let segments =
        args.segments.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()).min(4) as u32);
    let progress = Arc::new(Progress::new(database.head()));
    let started = Instant::now();
    let label = format!("the read model of {}", database.path().display());
    if args.verify {
        let read_model = SqliteReadModel::new(database);
        return verify_read_model(events, &read_model, &args.log.data_dir, segments, progress, &label, started).await;
    }
    let rebuild = if args.dry_run { None } else { Some(Arc::new(Rebuild::start(database.clone()).await?)) };
    let service = ReplayService::new(
        events,
        rebuild.clone().map(|r| r as Arc<dyn ReplayTarget>),
        Arc::new(NoCheckpoints),
        progress.clone(),
    );
    eprintln!("replaying the event log into {label}{}", if args.dry_run { " (dry run)" } else { "" });
    let Some(summary) = interruptible(service.run(segments), &progress, "the read model is unchanged").await else {
        return Ok(ExitCode::from(EXIT_INTERRUPTED));
    };
    let summary = summary?;
    if let Some(rebuild) = rebuild {
        rebuild.finish().await?;
    }
    progress.finish();
    print_summary(&summary, started.elapsed(), args.dry_run);
    Ok(ExitCode::SUCCESS)
}

/// How long `--verify` waits before each new look at the differences it
/// found: the first at once, then for the projector to catch up (its
/// iterator age is seconds at most in normal operation).
const RECHECK_PAUSES: [Duration; 3] = [Duration::ZERO, Duration::from_secs(1), Duration::from_secs(3)];

/// `--verify`: folds the log with the projector's code into a scratch file in
/// `scratch_dir` (memory stays flat however large the log) and compares the
/// result with the read model, then checks each listed difference again
/// against the item's stream and row as they are now; exit 1 when some still
/// differ.
async fn verify_read_model(
    scan: Arc<dyn EventLogScan>,
    read_model: &dyn ReadModel,
    scratch_dir: &std::path::Path,
    segments: u32,
    progress: Arc<Progress>,
    label: &str,
    started: Instant,
) -> anyhow::Result<ExitCode> {
    items_local::data_dir::create_private_dir(scratch_dir)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", scratch_dir.display()))?;
    let fold = Arc::new(DiskFold::create(scratch_dir)?);
    let (summary, mut report) =
        replay::verify_read_model(scan.clone(), read_model, fold.clone(), segments, progress.clone()).await?;
    drop(fold);
    progress.finish();
    // Under live traffic the log and the table were read at different
    // moments: check the differences again, giving the projector a moment.
    for pause in RECHECK_PAUSES {
        if report.is_clean() {
            break;
        }
        tokio::time::sleep(pause).await;
        report = recheck(scan.as_ref(), read_model, report).await?;
    }
    print_verify(label, &summary, &report, started.elapsed());
    Ok(if report.is_clean() { ExitCode::SUCCESS } else { ExitCode::from(EXIT_DIFFERENT) })
}

async fn replay_dynamodb(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let endpoint = dynamodb_endpoint(args.log.dynamodb_endpoint.as_deref());
    // Tables are created only behind an endpoint (DynamoDB Local), as
    // `items import` does: in AWS they are Pulumi's, with their TTL and tags.
    let local = endpoint.is_some();
    let clients = clients(endpoint).await;
    let approximate_events = approximate_events(&clients.dynamodb, &args.log.events_table).await?;
    let events = Arc::new(DynamoEventStore::new(clients.dynamodb.clone(), &args.log.events_table));
    let target_table = args.into.clone().unwrap_or_else(|| args.items_table.clone());
    let checkpoint_file = args
        .checkpoint_file
        .clone()
        .unwrap_or_else(|| args.log.data_dir.join(format!("replay-{}-{}.json", args.log.events_table, target_table)));
    let segments = args
        .segments
        .or_else(|| args.resume.then(|| FileCheckpoints::previous_segments(&checkpoint_file)).flatten())
        .unwrap_or_else(|| default_segments(approximate_events));
    let progress = Arc::new(Progress::new(approximate_events));
    let started = Instant::now();

    if args.verify {
        let read_model = DynamoReadModel::new(clients.dynamodb.clone(), &target_table);
        return verify_read_model(events, &read_model, &args.log.data_dir, segments, progress, &target_table, started)
            .await;
    }

    let (target, checkpoints): (Option<Arc<dyn ReplayTarget>>, Option<Arc<FileCheckpoints>>) = if args.dry_run {
        (None, None)
    } else {
        // The kind of run is part of it: a catch-up never resumes a full
        // replay's checkpoints, nor an in-place replay a rebuild's.
        let kind = match (&args.into, args.since) {
            (Some(_), _) => " (new table)".to_owned(),
            (None, Some(since)) => format!(" since {}", items_domain::event::rfc3339::format(&since)),
            (None, None) => String::new(),
        };
        let run = format!("{}->{}{kind}", args.log.events_table, target_table);
        let checkpoints = Arc::new(FileCheckpoints::open(&checkpoint_file, &run, segments, args.resume)?);
        if args.into.is_some() && checkpoints.started_at().is_none() {
            anyhow::bail!(
                "{} keeps no start time, so the catch-up after this rebuild cannot be known: start the rebuild \
                 again without --resume",
                checkpoint_file.display()
            );
        }
        let target: Arc<dyn ReplayTarget> = match &args.into {
            Some(into) => {
                // BatchWriteItem carries no condition: it may only fill a
                // table nobody else writes (review finding 1).
                if *into == args.items_table {
                    anyhow::bail!(
                        "refusing to rebuild into the live read table {into} (ITEMS_TABLE): --into writes without \
                         version guards; replay in place (without --into), or name a new table"
                    );
                }
                if !local {
                    let described = clients.dynamodb.describe_table().table_name(into).send().await;
                    let described = match described {
                        Ok(described) => described,
                        Err(error) => {
                            let error = aws_sdk_dynamodb::error::DisplayErrorContext(error);
                            anyhow::bail!(
                                "no such table {into} ({error}): rebuild into the table Pulumi made for the rebuild \
                                 (itemsRebuildGeneration, docs/deploy.md section 10); tables are created only on \
                                 DynamoDB Local (--dynamodb-endpoint)"
                            );
                        }
                    };
                    // Switched to, a table without the index this code
                    // queries would answer every `?createdBy=` with an error.
                    if !has_creator_index(described.table()) {
                        anyhow::bail!(
                            "table {into} has no {ITEMS_BY_CREATOR_INDEX} index, which this release's listings \
                             query: declare the rebuild table with this release's Pulumi program first"
                        );
                    }
                } else if ensure_items_table(&clients.dynamodb, into).await? {
                    eprintln!("created table {into}");
                }
                if !args.force && !args.resume {
                    let scan = clients.dynamodb.scan().table_name(into).limit(1).send().await;
                    let held = scan.map_err(|e| {
                        anyhow::anyhow!("table {into}: {}", aws_sdk_dynamodb::error::DisplayErrorContext(e))
                    })?;
                    if held.count > 0 {
                        anyhow::bail!("table {into} is not empty: rebuild into a new, empty table, or add --force");
                    }
                }
                if args.force {
                    // A table that holds items may be one something else
                    // writes (the live table, under another name than
                    // ITEMS_TABLE says): version-guarded writes only.
                    Arc::new(ReadModelTarget::new(
                        Arc::new(DynamoReadModel::new(clients.dynamodb.clone(), into)),
                        args.write_concurrency,
                    ))
                } else {
                    Arc::new(BatchWriter::new(clients.dynamodb.clone(), into))
                }
            }
            None => Arc::new(ReadModelTarget::new(
                Arc::new(DynamoReadModel::new(clients.dynamodb.clone(), &args.items_table)),
                args.write_concurrency,
            )),
        };
        (Some(target), Some(checkpoints))
    };
    // A resumed rebuild started when its first run did: the catch-up must
    // cover every change since then.
    let rebuild_started = checkpoints.as_ref().and_then(|c| c.started_at()).unwrap_or_else(chrono::Utc::now);
    if args.into.is_some() && !args.dry_run {
        eprintln!("rebuild started: {}", items_domain::event::rfc3339::format(&rebuild_started));
    }
    // The read table's TTL removes tombstones a lifetime after their write:
    // one whose deletion is older than that is not written again (review M4).
    let lifetime = chrono::TimeDelta::from_std(TOMBSTONE_LIFETIME).unwrap_or(chrono::TimeDelta::MAX);
    let mut service = ReplayService::new(
        events,
        target,
        checkpoints.clone().map_or_else(|| Arc::new(NoCheckpoints) as Arc<_>, |c| c as Arc<_>),
        progress.clone(),
    )
    .tombstones_expired_before(chrono::Utc::now() - lifetime);
    if let Some(since) = args.since {
        eprintln!("catching up: items with events since {}", items_domain::event::rfc3339::format(&since));
        service = service.since(since);
    }
    eprintln!(
        "replaying {} into {}{} with {segments} segments",
        args.log.events_table,
        target_table,
        if args.dry_run { " (dry run)" } else { "" }
    );
    let resume = format!("run again with --resume to continue from the checkpoints in {}", checkpoint_file.display());
    let Some(summary) = interruptible(service.run(segments), &progress, &resume).await else {
        return Ok(ExitCode::from(EXIT_INTERRUPTED));
    };
    let summary = summary?;
    progress.finish();
    if let Some(checkpoints) = checkpoints {
        checkpoints.finish();
    }
    print_summary(&summary, started.elapsed(), args.dry_run);
    if let (Some(into), false) = (&args.into, args.dry_run) {
        let since = items_domain::event::rfc3339::format(&(rebuild_started - CATCH_UP_MARGIN));
        println!("rebuild started: {}", items_domain::event::rfc3339::format(&rebuild_started));
        println!("next: switch the functions to {into} (docs/deploy.md, section 10), then catch up with");
        println!(
            "  items replay --dynamodb --events-table {} --items-table {into} --since {since}",
            args.log.events_table
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether a read table has the creator index this release's listings query.
fn has_creator_index(table: Option<&aws_sdk_dynamodb::types::TableDescription>) -> bool {
    let indexes = table.map(|table| table.global_secondary_indexes()).unwrap_or_default();
    indexes.iter().any(|index| index.index_name() == Some(ITEMS_BY_CREATOR_INDEX))
}

#[cfg(test)]
mod index_tests {
    use super::*;
    use aws_sdk_dynamodb::types::{GlobalSecondaryIndexDescription, TableDescription};

    /// A rebuild table declared by an older program (the unsharded index)
    /// is refused before anything is written to it.
    #[test]
    fn a_rebuild_table_needs_this_releases_creator_index() {
        let with = |name: &str| {
            TableDescription::builder()
                .global_secondary_indexes(GlobalSecondaryIndexDescription::builder().index_name(name).build())
                .build()
        };
        assert!(has_creator_index(Some(&with(ITEMS_BY_CREATOR_INDEX))));
        assert!(!has_creator_index(Some(&with("by-creator"))));
        assert!(!has_creator_index(Some(&TableDescription::builder().build())));
        assert!(!has_creator_index(None));
    }
}
