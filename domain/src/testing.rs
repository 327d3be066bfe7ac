use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::event::rfc3339;
use crate::ports::{Clock, IdGenerator};

/// Parses an RFC 3339 literal; for tests only.
pub fn at(text: &str) -> DateTime<Utc> {
    rfc3339::parse(text).unwrap_or_else(|e| panic!("bad test timestamp {text}: {e}"))
}

/// A clock that always says the same time.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub DateTime<Utc>);

impl Default for FixedClock {
    fn default() -> Self {
        Self(at("2026-01-02T03:04:05.678Z"))
    }
}

/// The wall clock stands still; monotonic time runs, so deadlines pass.
impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }

    fn instant(&self) -> std::time::Instant {
        std::time::Instant::now()
    }
}

/// Ids 1, 2, 3, ... as UUIDs, so tests can name them.
#[derive(Debug, Default)]
pub struct SequentialIds(AtomicU64);

impl IdGenerator for SequentialIds {
    fn new_id(&self) -> Uuid {
        Uuid::from_u128(u128::from(self.0.fetch_add(1, Ordering::Relaxed)) + 1)
    }
}

/// The golden logs (`domain/fixtures/golden`): event logs as releases wrote
/// them, kept forever; every codec's tests read them.
pub mod golden {
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use crate::event::{Event, ItemId, StoredEvent};
    use crate::item::Item;

    /// Where they are.
    pub fn dir() -> PathBuf {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/golden"))
    }

    /// What main wrote on 2026-12-08, before event schemas could change.
    pub const MAIN_2026_12_08: &str = "main-2026-12-08";

    /// Every golden log of stored events (JSON Lines), by file name: each
    /// schema set's shapes, and each release's export.
    pub fn logs() -> BTreeMap<String, Vec<StoredEvent>> {
        let mut logs = BTreeMap::new();
        for name in ["v1.jsonl", "v2.jsonl", &format!("{MAIN_2026_12_08}/export.jsonl")] {
            let text = std::fs::read_to_string(dir().join(name)).unwrap_or_else(|e| panic!("golden log {name}: {e}"));
            let events = text
                .lines()
                .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{name}: {e}: {line}")))
                .collect();
            logs.insert(name.to_owned(), events);
        }
        logs
    }

    /// The read model a release's projector made of its log: every row,
    /// tombstones included, by item.
    pub fn read_model(release: &str) -> BTreeMap<ItemId, Item> {
        let path = dir().join(release).join("read-model.jsonl");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        text.lines()
            .map(|line| {
                let row: serde_json::Value = serde_json::from_str(line).expect("a row");
                let item: Item = serde_json::from_value(row["item"].clone()).expect("an item");
                assert_eq!(row["version"], item.version, "{line}");
                (item.id, item)
            })
            .collect()
    }

    /// Folds decoded events, item by item, with the strict fold.
    pub fn fold(events: impl IntoIterator<Item = Event>) -> BTreeMap<ItemId, Item> {
        let mut streams: BTreeMap<ItemId, Vec<Event>> = BTreeMap::new();
        for event in events {
            streams.entry(event.item_id).or_default().push(event);
        }
        streams
            .into_iter()
            .map(|(id, mut stream)| {
                stream.sort_by_key(|event| event.version);
                let item = crate::projection::fold_stream(&stream).expect("a golden stream folds").expect("an item");
                (id, item)
            })
            .collect()
    }
}
