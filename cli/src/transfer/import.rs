//! `items import FILE`: appends an exported log to a store, keeping event
//! ids and versions, idempotent by event id.

use std::io::{BufRead, Read};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use items_domain::event::StoredEvent;
use items_domain::ports::{AppendError, EventStore, ReplayObserver, WriteStats};
use items_domain::projection::fold_stream_onto;
use items_domain::{Event, Item, ItemId};

use super::{Log, open};
use crate::replay::progress::Progress;
use crate::settings::LogArgs;

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// A file `items export` wrote (JSON Lines, one stored event per line).
    /// With `--dynamodb-endpoint` (DynamoDB Local), a missing events table is created.
    pub file: PathBuf,
    #[command(flatten)]
    pub log: LogArgs,
    /// Appends in flight at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
}

/// Events of one stream handed to one task at most (then the next task
/// continues the stream): bounds what one long stream holds in memory.
const CHUNK: usize = 100;
/// Events in flight at most, whatever the streams' lengths: memory stays flat.
const EVENTS_IN_FLIGHT: usize = 8_192;
/// Longest line read: DynamoDB's item limit is 400 KB, an event is smaller.
const MAX_LINE_BYTES: usize = 1 << 20;

/// Why a file is refused, or an import stopped: with the line.
#[derive(Debug, thiserror::Error)]
#[error("{file}, line {line}: {reason}")]
pub struct LineError {
    file: String,
    line: u64,
    reason: String,
}

/// Reads the file's events in order, each with its line number.
struct Events {
    reader: std::io::BufReader<std::fs::File>,
    file: String,
    line: u64,
    buffer: Vec<u8>,
}

impl Events {
    fn open(path: &std::path::Path) -> anyhow::Result<Self> {
        let file = std::fs::File::open(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(Self {
            reader: std::io::BufReader::with_capacity(1 << 16, file),
            file: path.display().to_string(),
            line: 0,
            buffer: Vec::new(),
        })
    }

    fn error(&self, line: u64, reason: impl Into<String>) -> LineError {
        LineError { file: self.file.clone(), line, reason: reason.into() }
    }

    /// The next event and its line; `None` at the end. Blank lines are refused:
    /// an export has none, so one means the file is not one.
    fn next(&mut self) -> anyhow::Result<Option<(u64, Event)>> {
        self.buffer.clear();
        let read = (&mut self.reader).take(MAX_LINE_BYTES as u64 + 1).read_until(b'\n', &mut self.buffer)?;
        if read == 0 {
            return Ok(None);
        }
        self.line += 1;
        if self.buffer.len() > MAX_LINE_BYTES {
            return Err(self.error(self.line, format!("longer than {MAX_LINE_BYTES} bytes")).into());
        }
        let text = self.buffer.strip_suffix(b"\n").unwrap_or(&self.buffer);
        let stored: StoredEvent = serde_json::from_slice(text)
            .map_err(|e| self.error(self.line, format!("not a stored event (the lines of `items export`): {e}")))?;
        let event = stored.decode().map_err(|e| self.error(self.line, e.to_string()))?;
        Ok(Some((self.line, event)))
    }
}

/// The file's rule, checked line by line with one item's state in memory:
/// items in stream id order, each once, as `items export` writes them; an
/// item's events together, from version 1, each following on from the one
/// before (as its stream folds), each with a subject. So a gap, a repeat, a
/// stream split in two (or given twice) is refused at its line.
#[derive(Default)]
struct Streams {
    item: Option<ItemId>,
    state: Option<Item>,
    items: u64,
    events: u64,
}

impl Streams {
    fn check(&mut self, event: &Event) -> Result<(), String> {
        if self.item != Some(event.item_id) {
            if let Some(before) = self.item.filter(|before| *before > event.item_id) {
                return Err(format!(
                    "item {} comes after item {before}: a file holds each item once, in stream id order, as \
                     `items export` writes it",
                    event.item_id
                ));
            }
            if event.version != 1 {
                return Err(format!(
                    "item {} starts at version {}: an item's events must be together, from version 1",
                    event.item_id, event.version
                ));
            }
            self.item = Some(event.item_id);
            self.state = None;
            self.items += 1;
        }
        // What the API could not have stored is refused: the fields' rules,
        // and a subject (the creator's keys the read table's index, where
        // DynamoDB refuses an empty string).
        if event.subject.trim().is_empty() {
            return Err(format!("version {} of item {} has no subject", event.version, event.item_id));
        }
        items_domain::command::check_event_fields(&event.payload, &event.subject)
            .map_err(|e| format!("version {} of item {}: {e}", event.version, event.item_id))?;
        self.state = fold_stream_onto(self.state.take(), std::slice::from_ref(event)).map_err(|e| e.to_string())?;
        self.events += 1;
        Ok(())
    }
}

/// Consecutive events of one item, appended by one task in version order.
struct Chunk {
    first_line: u64,
    events: Vec<Event>,
}

impl Chunk {
    /// Whether it goes on from a chunk before it (a stream longer than [`CHUNK`]).
    fn continues(&self) -> bool {
        self.events[0].version > 1
    }
}

pub async fn run(args: ImportArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    // First the whole file, so a file that is not a log writes nothing.
    let mut events = Events::open(&args.file)?;
    let mut streams = Streams::default();
    while let Some((line, event)) = events.next()? {
        streams.check(&event).map_err(|reason| events.error(line, reason))?;
    }
    let (total_events, total_items) = (streams.events, streams.items);
    let log = open(&args.log, true).await?;
    let (store, target, next_step): (Arc<dyn EventStore>, String, String) = match &log {
        Log::Embedded(database, store) => (
            store.clone(),
            database.path().display().to_string(),
            "`items serve` projects them into the read model as it starts (its change feed), or rebuild it now \
             with `items replay`"
                .to_owned(),
        ),
        Log::Dynamo { store, .. } => (
            store.clone(),
            format!("table {}", args.log.events_table),
            format!(
                "the read model follows from the table's stream where a projector reads it (AWS, `items serve \
                 --dynamodb`); otherwise rebuild it with `items replay --dynamodb --events-table {}`",
                args.log.events_table
            ),
        ),
    };
    let progress = Progress::labelled("import", total_events);
    let imported = append_all(&args, store, &progress).await;
    progress.finish();
    imported?;
    eprintln!(
        "imported {total_events} events of {total_items} items from {} into {target} in {:.1} s (events already stored \
         were left as they are)",
        args.file.display(),
        started.elapsed().as_secs_f64()
    );
    eprintln!("next: {next_step}");
    Ok(())
}

/// Second pass: the events in chunks, up to `concurrency` appends (and
/// [`EVENTS_IN_FLIGHT`] events) at once. A chunk that continues a stream
/// waits for everything in flight, so a stream's chunks land in order.
async fn append_all(args: &ImportArgs, store: Arc<dyn EventStore>, progress: &Progress) -> anyhow::Result<()> {
    let mut events = Events::open(&args.file)?;
    let file = events.file.clone();
    // Checked again as it is read: the file could have changed since.
    let mut streams = Streams::default();
    let mut in_flight = FuturesUnordered::new();
    let mut events_in_flight = 0;
    let mut open: Option<Chunk> = None;
    loop {
        let next = events.next()?;
        if let Some((line, event)) = &next {
            streams.check(event).map_err(|reason| events.error(*line, reason))?;
        }
        let done = next.is_none();
        let ready = match (&mut open, next) {
            (Some(chunk), Some((_, event)))
                if chunk.events[0].item_id == event.item_id && chunk.events.len() < CHUNK =>
            {
                chunk.events.push(event);
                None
            }
            (chunk, Some((line, event))) => chunk.replace(Chunk { first_line: line, events: vec![event] }),
            (chunk, None) => chunk.take(),
        };
        if let Some(chunk) = ready {
            let full =
                |in_flight: usize, events: usize| in_flight >= args.concurrency.max(1) || events >= EVENTS_IN_FLIGHT;
            while !in_flight.is_empty() && (chunk.continues() || full(in_flight.len(), events_in_flight)) {
                if let Some(count) = in_flight.next().await {
                    events_in_flight -= landed(count?, progress);
                }
            }
            events_in_flight += chunk.events.len();
            let (store, file) = (store.clone(), file.clone());
            in_flight.push(async move {
                append(store.as_ref(), &chunk).await.map_err(|(offset, reason)| LineError {
                    file,
                    line: chunk.first_line + offset as u64,
                    reason,
                })?;
                Ok::<_, LineError>(chunk.events.len())
            });
        }
        if done {
            while let Some(count) = in_flight.next().await {
                landed(count?, progress);
            }
            return Ok(());
        }
    }
}

/// Counts `count` events appended (or found stored).
fn landed(count: usize, progress: &Progress) -> usize {
    progress.page_done(0, count, WriteStats { written: count, ..WriteStats::default() });
    count
}

/// Appends one chunk, an event at a time in version order: one conditional
/// put each on DynamoDB (a transaction per stream costs twice the writes, and
/// DynamoDB Local runs transactions one at a time), and every prefix of a
/// stream is a stream, so an interrupted import leaves nothing half made. An
/// event already stored (same id, same version) is a success that writes
/// nothing; any other event at its version is a conflict, never overwritten.
/// An error says at which of the chunk's events.
async fn append(store: &dyn EventStore, chunk: &Chunk) -> Result<(), (usize, String)> {
    for (offset, event) in chunk.events.iter().enumerate() {
        let error = match store.append(event.version - 1, std::slice::from_ref(event)).await {
            Ok(()) => continue,
            Err(error) => error,
        };
        let reason = match error {
            AppendError::Conflict { actual, .. } if actual >= event.version => {
                let stored = store.stream_after(event.item_id, event.version - 1, 1).await;
                let other = stored.ok().and_then(|events| events.first().map(|e| e.event_id.to_string()));
                format!(
                    "item {} has another event at version {} in the store ({}) than this file ({}): a different log",
                    event.item_id,
                    event.version,
                    other.as_deref().unwrap_or("unread"),
                    event.event_id
                )
            }
            AppendError::Conflict { actual, .. } => format!(
                "item {} is at version {actual} in the store, and this file's version {} does not follow on from it",
                event.item_id, event.version
            ),
            other => format!("the store refused the append: {other}"),
        };
        return Err((offset, reason));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use items_domain::event::{EventPayload, ItemCreated, ItemUpdated};

    fn event(item: u128, version: u64, payload: EventPayload) -> Event {
        Event {
            event_id: uuid::Uuid::from_u128(item * 1000 + u128::from(version)),
            item_id: ItemId(uuid::Uuid::from_u128(item)),
            version,
            occurred_at: items_domain::testing::at("2026-01-02T03:04:05.678Z"),
            subject: "sub-1".into(),
            payload,
        }
    }

    fn created(item: u128) -> Event {
        event(
            item,
            1,
            EventPayload::ItemCreated(ItemCreated { name: "Pen".into(), timestamp: "t".into(), description: None }),
        )
    }

    fn renamed(item: u128, version: u64) -> Event {
        event(
            item,
            version,
            EventPayload::ItemUpdated(ItemUpdated {
                name: Some(format!("v{version}")),
                timestamp: None,
                description: None,
            }),
        )
    }

    fn check(events: &[Event]) -> Result<(u64, u64), (usize, String)> {
        let mut streams = Streams::default();
        for (index, event) in events.iter().enumerate() {
            streams.check(event).map_err(|reason| (index + 1, reason))?;
        }
        Ok((streams.events, streams.items))
    }

    #[test]
    fn an_export_passes_and_is_counted() {
        let log = [created(1), renamed(1, 2), renamed(1, 3), created(2), event(2, 2, EventPayload::ItemDeleted)];
        assert_eq!(check(&log), Ok((5, 2)));
    }

    #[test]
    fn gaps_repeats_split_streams_and_events_after_a_deletion_are_refused_at_their_line() {
        let anonymous = Event { subject: String::new(), ..renamed(1, 2) };
        let cases: [(Vec<Event>, usize, &str); 7] = [
            (vec![created(1), renamed(1, 3)], 2, "versions do not follow on"),
            (vec![created(1), renamed(1, 2), renamed(1, 2)], 3, "versions do not follow on"),
            (vec![renamed(1, 2)], 1, "starts at version 2"),
            (vec![created(1), created(2), renamed(1, 2)], 3, "comes after item"),
            (vec![created(1), renamed(1, 2), created(2), created(1)], 4, "comes after item"),
            (vec![created(1), event(1, 2, EventPayload::ItemDeleted), renamed(1, 3)], 3, "after the item's deletion"),
            (vec![created(1), anonymous], 2, "has no subject"),
        ];
        for (log, line, reason) in cases {
            let (at, text) = check(&log).unwrap_err();
            assert_eq!(at, line, "{text}");
            assert!(text.contains(reason), "{text}");
        }
    }
}
