//! A log to replay, for the scale benchmark: items come in rounds of `ROUND`
//! so their events interleave in the log as live traffic's do: each is
//! created, updated, half of them updated again, a tenth deleted.

use std::sync::Arc;

use futures::StreamExt;
use items_domain::event::{Event, EventPayload, ItemCreated, ItemId, ItemUpdated};
use items_domain::ports::EventStore;
use items_local::sqlite::{Database, SqliteEventStore};
use uuid::Uuid;

/// Items per round: their events are interleaved with each other.
const ROUND: usize = 1_000;

/// Exactly `count` events, in rounds.
pub fn log(count: usize) -> Vec<Event> {
    let mut events = Vec::with_capacity(count);
    let mut round = 0;
    while events.len() < count {
        let ids: Vec<ItemId> = (0..ROUND).map(|_| ItemId(Uuid::new_v4())).collect();
        let passes: [&dyn Fn(usize) -> Option<(u64, EventPayload)>; 4] = [
            &|n| {
                Some((
                    1,
                    EventPayload::ItemCreated(ItemCreated {
                        name: format!("item {round}-{n}"),
                        timestamp: "N/A".into(),
                        description: None,
                    }),
                ))
            },
            &|n| {
                Some((
                    2,
                    EventPayload::ItemUpdated(ItemUpdated {
                        name: Some(format!("renamed {round}-{n}")),
                        timestamp: None,
                        description: None,
                    }),
                ))
            },
            &|n| {
                (n % 2 == 0).then(|| {
                    (
                        3,
                        EventPayload::ItemUpdated(ItemUpdated {
                            name: None,
                            timestamp: Some("2026-11-30".into()),
                            description: None,
                        }),
                    )
                })
            },
            &|n| (n % 10 == 0).then_some((4, EventPayload::ItemDeleted)),
        ];
        for pass in passes {
            for (n, id) in ids.iter().enumerate() {
                if events.len() == count {
                    return events;
                }
                if let Some((version, payload)) = pass(n) {
                    events.push(Event {
                        event_id: Uuid::new_v4(),
                        item_id: *id,
                        version,
                        occurred_at: chrono::Utc::now(),
                        subject: "4f1e8a52-7c3b-4d59-9a41-0c6b2f2e9d11".into(),
                        payload,
                    });
                }
            }
        }
        round += 1;
    }
    events
}

pub async fn to_embedded(dir: &std::path::Path, events: Vec<Event>) -> anyhow::Result<()> {
    let database = Database::open(dir)?;
    anyhow::ensure!(database.head() == 0, "{} already holds a log", dir.display());
    let store = Arc::new(SqliteEventStore::new(database.clone()));
    // Many appends in flight, so the writer's group commit takes many per sync;
    // an item's events in order (each append expects the one before).
    let mut rounds = events.chunks(ROUND * 4);
    for chunk in &mut rounds {
        let mut by_version: std::collections::BTreeMap<u64, Vec<&Event>> = Default::default();
        for event in chunk {
            by_version.entry(event.version).or_default().push(event);
        }
        for wave in by_version.into_values() {
            futures::stream::iter(wave)
                .map(|event| {
                    let store = store.clone();
                    async move { store.append(event.version - 1, std::slice::from_ref(event)).await }
                })
                .buffer_unordered(256)
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .collect::<Result<Vec<_>, _>>()?;
        }
    }
    eprintln!("seeded {} events into {}", database.head(), database.path().display());
    Ok(())
}

pub async fn to_dynamodb(client: &aws_sdk_dynamodb::Client, table: &str, events: &[Event]) -> anyhow::Result<()> {
    items_aws::dynamodb::ensure_events_table(client, table).await?;
    crate::projection::write_backlog_to(client, table, events).await?;
    eprintln!("seeded {} events into {table}", events.len());
    Ok(())
}
