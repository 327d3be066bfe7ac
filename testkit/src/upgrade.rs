//! A mixed-version deploy, on a backend's own projection pipeline (the
//! `project-events` handler, the SQLite change feed, the DynamoDB stream
//! poller): a writer of this release appends an event of a schema the
//! projector of the release before does not know, between old events of one
//! item and in one delivery with other items' events, and so does a writer
//! of a release to come (a type no code knows yet).
//!
//! The invariant, from the rules (docs/architecture.md, "Event schemas"):
//! a record a projector cannot read holds back its own item only, at the
//! version before it (never skipped, never guessed), while every other item
//! is projected; it waits in the quarantine; once code that reads it runs,
//! the redrive applies it and the item is what its events say, and a record
//! no code reads yet stays set aside. Expected rows are written out here
//! from the events, not folded by the code under test.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use items_aws::quarantine::{Quarantine, redrive};
use items_domain::event::{EventSchemas, ItemCreated, ItemUpdated, StoredEvent};
use items_domain::ports::{EventStore, ReadModel};
use items_domain::service::ProjectorService;
use items_domain::{Event, EventPayload, Item, ItemId};

/// Runs the backend's pipeline with `projector` over what was written
/// (`written`, in log order) until `settled` says so (or a minute passes).
pub type Deliver =
    Arc<dyn Fn(Arc<ProjectorService>, Vec<StoredEvent>, Settled) -> BoxFuture<'static, ()> + Send + Sync>;

/// Whether what the scenario waits for has happened.
pub type Settled = Arc<dyn Fn() -> BoxFuture<'static, bool> + Send + Sync>;

/// Stores an event as it is, as code of another release wrote it.
pub type AppendRaw = Arc<dyn Fn(StoredEvent) -> BoxFuture<'static, ()> + Send + Sync>;

pub struct UpgradeBackend {
    pub events: Arc<dyn EventStore>,
    pub read_model: Arc<dyn ReadModel>,
    pub quarantine: Arc<dyn Quarantine>,
    pub append_raw: AppendRaw,
    pub deliver: Deliver,
}

/// How long a pipeline that runs on its own (the poller) gets to settle.
pub const SETTLE: Duration = Duration::from_secs(60);

/// Waits until `settled` holds, or panics after [`SETTLE`].
pub async fn until(settled: &Settled, what: &str) {
    let started = std::time::Instant::now();
    while !settled().await {
        assert!(started.elapsed() < SETTLE, "not settled after {SETTLE:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

struct Writer {
    at: DateTime<Utc>,
    n: u128,
}

impl Writer {
    fn event(&mut self, item: ItemId, version: u64, payload: EventPayload) -> Event {
        self.n += 1;
        Event {
            event_id: uuid::Uuid::new_v4(),
            item_id: item,
            version,
            occurred_at: self.at + chrono::TimeDelta::milliseconds(self.n as i64),
            subject: "sub-owner".into(),
            payload,
        }
    }
}

fn created(name: &str) -> EventPayload {
    EventPayload::ItemCreated(ItemCreated { name: name.into(), timestamp: "t".into(), description: None })
}

/// The row the rules give an item created as `created(name)` at `first`,
/// then changed up to `version`.
fn row(id: ItemId, name: &str, description: Option<&str>, version: u64, first: &Event) -> Item {
    Item {
        id,
        name: name.into(),
        timestamp: "t".into(),
        description: description.map(Into::into),
        created_by: "sub-owner".into(),
        created_at: first.occurred_at,
        version,
        deleted: false,
    }
}

pub async fn an_upgrade_applies_what_the_old_projector_held_back(backend: UpgradeBackend) {
    let UpgradeBackend { events, read_model, quarantine, append_raw, deliver } = backend;
    let [x, y, z, w] = std::array::from_fn(|_| ItemId(uuid::Uuid::new_v4()));
    // Stored times have milliseconds.
    let at = chrono::SubsecRound::trunc_subsecs(Utc::now(), 3) - chrono::TimeDelta::seconds(10);
    let mut writer = Writer { at, n: 0 };
    let x1 = writer.event(x, 1, created("Pen"));
    let y1 = writer.event(y, 1, created("Cup"));
    // This release's writer: a description needs schema 2.
    let described = ItemUpdated { description: Some(Some("Blue ink".into())), ..Default::default() };
    let x2 = writer.event(x, 2, EventPayload::ItemUpdated(described));
    let z1 = writer.event(z, 1, created("Lamp"));
    let renamed = ItemUpdated { name: Some("Nib".into()), ..Default::default() };
    let x3 = writer.event(x, 3, EventPayload::ItemUpdated(renamed));
    assert_eq!(x2.to_stored().schema, 2, "the description is written at schema 2");
    assert_eq!((x1.to_stored().schema, x3.to_stored().schema), (1, 1), "the rest at schema 1");
    // A release to come: a type no code knows yet.
    let mut archived = writer.event(z, 2, created("Lamp")).to_stored();
    archived.event_type = "ItemArchived".into();
    archived.data = serde_json::json!({"reason": "sold"});
    let w1 = writer.event(w, 1, created("Mug"));

    let mut written = Vec::new();
    for event in [&x1, &y1, &x2, &z1, &x3] {
        events.append(event.version - 1, std::slice::from_ref(event)).await.expect("appended");
        written.push(event.to_stored());
    }
    append_raw(archived.clone()).await;
    written.push(archived.clone());
    events.append(0, std::slice::from_ref(&w1)).await.expect("appended");
    written.push(w1.to_stored());

    let row_of = {
        let read_model = read_model.clone();
        move |id: ItemId| {
            let read_model = read_model.clone();
            async move { read_model.get(id).await.expect("the read model answers") }
        }
    };
    let held_streams = {
        let quarantine = quarantine.clone();
        move || {
            let quarantine = quarantine.clone();
            async move {
                let held = quarantine.quarantined().await.expect("the quarantine answers");
                held.into_iter().map(|record| record.stream_id).collect::<std::collections::BTreeSet<_>>()
            }
        }
    };

    // The projector of the release before: it reads schema set 1 only.
    let old = Arc::new(ProjectorService::new(read_model.clone(), events.clone()).reading(EventSchemas::SET_1));
    let settled: Settled = {
        let (row_of, held_streams) = (row_of.clone(), held_streams.clone());
        Arc::new(move || {
            let (row_of, held_streams) = (row_of.clone(), held_streams.clone());
            Box::pin(async move { row_of(w).await.is_some() && held_streams().await.len() == 2 })
        })
    };
    deliver(old, written.clone(), settled).await;
    assert_eq!(row_of(x).await, Some(row(x, "Pen", None, 1, &x1)), "held back at the version before");
    assert_eq!(row_of(y).await, Some(row(y, "Cup", None, 1, &y1)), "another item of the batch");
    assert_eq!(row_of(z).await, Some(row(z, "Lamp", None, 1, &z1)), "held back at the version before");
    assert_eq!(row_of(w).await, Some(row(w, "Mug", None, 1, &w1)), "an item after the unreadable ones");
    let expected: std::collections::BTreeSet<String> = [x.stream_id(), z.stream_id()].into();
    assert_eq!(held_streams().await, expected, "each unreadable record waits in the quarantine");
    let set_aside = quarantine.quarantined().await.expect("the quarantine answers");
    assert_eq!(set_aside.len(), 2, "one record per item: its later ones wait behind it, unattempted: {set_aside:?}");

    // The upgrade: code that reads schema set 2 redrives what it can read.
    let redriven = redrive(quarantine.as_ref(), events.as_ref(), read_model.as_ref()).await.expect("redriven");
    assert_eq!(redriven.items, 1, "{redriven:?}");
    assert_eq!(row_of(x).await, Some(row(x, "Nib", Some("Blue ink"), 3, &x1)), "the whole stream applied");
    assert_eq!(row_of(z).await, Some(row(z, "Lamp", None, 1, &z1)), "no code reads ItemArchived yet");
    assert_eq!(held_streams().await, [z.stream_id()].into(), "what no code reads stays set aside");
    assert!(redriven.kept.iter().all(|(_, reason)| reason.contains("ItemArchived")), "{redriven:?}");

    // And the upgraded pipeline goes on: a cleared description, at schema 2.
    let cleared = ItemUpdated { description: Some(None), ..Default::default() };
    let x4 = writer.event(x, 4, EventPayload::ItemUpdated(cleared));
    events.append(3, std::slice::from_ref(&x4)).await.expect("appended");
    written.push(x4.to_stored());
    let current = Arc::new(ProjectorService::new(read_model.clone(), events.clone()));
    let settled: Settled = {
        let row_of = row_of.clone();
        Arc::new(move || {
            let row_of = row_of.clone();
            Box::pin(async move { row_of(x).await.is_some_and(|item| item.version == 4) })
        })
    };
    deliver(current, written, settled).await;
    assert_eq!(row_of(x).await, Some(row(x, "Nib", None, 4, &x1)));
    assert_eq!(row_of(y).await, Some(row(y, "Cup", None, 1, &y1)));
    assert_eq!(held_streams().await, [z.stream_id()].into());
}
