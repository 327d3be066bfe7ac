//! Event -> state. Pure and version-guarded: applying an event that is not newer
//! than the state changes nothing, so duplicates and out-of-order deliveries are
//! harmless. An update or a deletion applies only to the state right before
//! it (an update carries only what changed; a tombstone keeps the last
//! fields); further behind, the item's history is needed. A deletion leaves a
//! tombstone, so nothing older can bring the item back.

use crate::event::{Event, EventPayload};
use crate::item::Item;

/// The projection code's revision: bump it when [`evolve`] changes what it
/// makes of events, so that snapshots folded by older code are not trusted.
///
/// 2: items carry a `description` (event schema set 2).
pub const REVISION: u32 = 2;

/// What applying one event to an item's state does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The event is newer: this is the new state.
    Apply(Item),
    /// Already newer: the state reflects this event (a duplicate) or a later one,
    /// or the item is deleted.
    AlreadyNewer,
    /// The event needs the state right before it, and `state` is older than
    /// that (or absent): fold the item's stream instead.
    NeedsHistory,
}

/// Applies `event` to `state` (the item as the read model has it, if any).
pub fn evolve(state: Option<&Item>, event: &Event) -> Outcome {
    if state.is_some_and(|current| current.version >= event.version) {
        return Outcome::AlreadyNewer;
    }
    if state.is_some_and(|current| current.deleted) {
        return Outcome::AlreadyNewer;
    }
    match &event.payload {
        // ItemCreated carries the whole state, so it needs nothing from `state`.
        EventPayload::ItemCreated(created) => Outcome::Apply(Item {
            id: event.item_id,
            name: created.name.clone(),
            timestamp: created.timestamp.clone(),
            description: created.description.clone(),
            created_by: event.subject.clone(),
            created_at: event.occurred_at,
            version: event.version,
            deleted: false,
        }),
        EventPayload::ItemUpdated(updated) => match state {
            Some(current) if current.version + 1 == event.version => Outcome::Apply(Item {
                name: updated.name.clone().unwrap_or_else(|| current.name.clone()),
                timestamp: updated.timestamp.clone().unwrap_or_else(|| current.timestamp.clone()),
                description: updated.description.clone().unwrap_or_else(|| current.description.clone()),
                version: event.version,
                ..current.clone()
            }),
            _ => Outcome::NeedsHistory,
        },
        // The tombstone keeps the fields of the state right before it: over an
        // older state (a stale read, a skipped update) it would keep stale ones.
        EventPayload::ItemDeleted => match state {
            Some(current) if current.version + 1 == event.version => {
                Outcome::Apply(Item { version: event.version, deleted: true, ..current.clone() })
            }
            _ => Outcome::NeedsHistory,
        },
    }
}

/// Folds a stream in version order into the item's state (a tombstone once
/// deleted). Events that do not follow on are skipped.
pub fn fold<'a>(events: impl IntoIterator<Item = &'a Event>) -> Option<Item> {
    events.into_iter().fold(None, |state, event| match evolve(state.as_ref(), event) {
        Outcome::Apply(item) => Some(item),
        Outcome::AlreadyNewer | Outcome::NeedsHistory => state,
    })
}

/// Why an item's stream, as read from the log, cannot be folded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the stream of item {item_id} is broken at version {version}: {reason}")]
pub struct BrokenStream {
    pub item_id: crate::event::ItemId,
    pub version: u64,
    pub reason: &'static str,
}

/// A stream the log cannot be trusted with is corrupt data, as the ports say it.
impl From<BrokenStream> for crate::ports::StoreError {
    fn from(broken: BrokenStream) -> Self {
        crate::ports::StoreError::Corrupt(broken.to_string())
    }
}

/// Folds an item's whole stream as the log holds it: versions 1, 2, ... in
/// order, each applying to the state right before it. The write side decides
/// on this state, so anything else (a gap, a repeat, an event after the
/// deletion) is refused, never skipped.
pub fn fold_stream(events: &[Event]) -> Result<Option<Item>, BrokenStream> {
    fold_stream_onto(None, events)
}

/// Like [`fold_stream`], continuing from `state` (the fold of the versions
/// before `events`).
pub fn fold_stream_onto(mut state: Option<Item>, events: &[Event]) -> Result<Option<Item>, BrokenStream> {
    for event in events {
        let broken = |reason| BrokenStream { item_id: event.item_id, version: event.version, reason };
        if event.version != state.as_ref().map_or(0, |item| item.version) + 1 {
            return Err(broken("versions do not follow on"));
        }
        match evolve(state.as_ref(), event) {
            Outcome::Apply(item) => state = Some(item),
            Outcome::AlreadyNewer => return Err(broken("an event after the item's deletion")),
            Outcome::NeedsHistory => return Err(broken("an event that does not apply to the state before it")),
        }
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{ItemCreated, ItemId, ItemUpdated};
    use crate::testing::at;
    use uuid::Uuid;

    fn created(version: u64, name: &str) -> Event {
        Event {
            event_id: Uuid::from_u128(100 + u128::from(version)),
            item_id: ItemId(Uuid::from_u128(7)),
            version,
            occurred_at: at("2026-01-02T03:04:05.678Z"),
            subject: "sub-1".into(),
            payload: EventPayload::ItemCreated(ItemCreated {
                name: name.into(),
                timestamp: "t".into(),
                description: None,
            }),
        }
    }

    #[test]
    fn given_nothing_when_item_created_then_the_item_exists() {
        let Outcome::Apply(item) = evolve(None, &created(1, "Pen")) else {
            panic!("expected the event to apply");
        };
        assert_eq!(item.id, ItemId(Uuid::from_u128(7)));
        assert_eq!(item.name, "Pen");
        assert_eq!(item.timestamp, "t");
        assert_eq!(item.created_by, "sub-1");
        assert_eq!(item.created_at, at("2026-01-02T03:04:05.678Z"));
        assert_eq!(item.version, 1);
    }

    #[test]
    fn given_the_item_when_the_same_event_arrives_again_then_nothing_changes() {
        let event = created(1, "Pen");
        let state = fold([&event]).unwrap();
        assert_eq!(evolve(Some(&state), &event), Outcome::AlreadyNewer);
    }

    #[test]
    fn given_a_newer_state_when_an_older_event_arrives_then_nothing_changes() {
        let newer = fold([&created(3, "New")]).unwrap();
        assert_eq!(evolve(Some(&newer), &created(2, "Old")), Outcome::AlreadyNewer);
    }

    fn event(version: u64, payload: EventPayload) -> Event {
        Event { event_id: Uuid::from_u128(100 + u128::from(version)), version, payload, ..created(1, "") }
    }

    fn renamed(version: u64, name: &str) -> Event {
        event(
            version,
            EventPayload::ItemUpdated(ItemUpdated { name: Some(name.into()), timestamp: None, description: None }),
        )
    }

    fn deleted(version: u64) -> Event {
        event(version, EventPayload::ItemDeleted)
    }

    #[test]
    fn given_the_item_when_renamed_then_only_the_name_and_version_change() {
        let state = fold([&created(1, "Pen")]).unwrap();
        let Outcome::Apply(item) = evolve(Some(&state), &renamed(2, "Ink")) else {
            panic!("expected the rename to apply");
        };
        assert_eq!(item, Item { name: "Ink".into(), version: 2, ..state });
    }

    #[test]
    fn given_an_older_state_when_an_update_skips_a_version_then_the_history_is_needed() {
        let state = fold([&created(1, "Pen")]).unwrap();
        assert_eq!(evolve(Some(&state), &renamed(3, "Ink")), Outcome::NeedsHistory);
        assert_eq!(evolve(None, &renamed(2, "Ink")), Outcome::NeedsHistory);
        assert_eq!(evolve(None, &deleted(2)), Outcome::NeedsHistory);
    }

    #[test]
    fn given_the_item_when_deleted_then_a_tombstone_at_that_version_remains() {
        let state = fold([&created(1, "Pen"), &renamed(2, "Ink")]).unwrap();
        let Outcome::Apply(tombstone) = evolve(Some(&state), &deleted(3)) else {
            panic!("a deletion applies to the state right before it");
        };
        assert!(tombstone.deleted);
        assert_eq!((tombstone.version, tombstone.name.as_str()), (3, "Ink"));
    }

    #[test]
    fn given_a_stale_state_when_deleted_then_the_history_is_needed() {
        // Review finding 2: a lagging read of v1 "Pen" must not become a
        // tombstone named "Pen" when v2 renamed it "Ink".
        let stale = fold([&created(1, "Pen")]).unwrap();
        assert_eq!(evolve(Some(&stale), &deleted(3)), Outcome::NeedsHistory);
    }

    #[test]
    fn fold_stream_takes_only_a_whole_stream_in_order() {
        let stream = [created(1, "Pen"), renamed(2, "Ink"), deleted(3)];
        let folded = fold_stream(&stream).unwrap().unwrap();
        assert_eq!((folded.version, folded.name.as_str(), folded.deleted), (3, "Ink", true));
        assert_eq!(fold_stream(&[]), Ok(None));
        let gap = [created(1, "Pen"), deleted(3)];
        assert_eq!(fold_stream(&gap).unwrap_err().version, 3);
        let after_deletion = [created(1, "Pen"), deleted(2), renamed(3, "Back")];
        assert_eq!(fold_stream(&after_deletion).unwrap_err().reason, "an event after the item's deletion");
        let starts_late = [renamed(2, "Ink")];
        assert!(fold_stream(&starts_late).is_err());
    }

    #[test]
    fn given_a_tombstone_when_late_events_arrive_then_nothing_comes_back() {
        let tombstone = fold([&created(1, "Pen"), &renamed(2, "Ink"), &deleted(3)]).unwrap();
        assert!(tombstone.deleted);
        for late in [created(1, "Pen"), renamed(2, "Ink"), deleted(3), renamed(4, "After")] {
            assert_eq!(evolve(Some(&tombstone), &late), Outcome::AlreadyNewer, "{late:?}");
        }
    }

    #[test]
    fn given_a_newer_name_when_an_older_rename_arrives_then_the_name_stays() {
        let newer = fold([&created(1, "Pen"), &renamed(2, "Ink"), &renamed(3, "Nib")]).unwrap();
        assert_eq!(evolve(Some(&newer), &renamed(2, "Ink")), Outcome::AlreadyNewer);
        assert_eq!(newer.name, "Nib");
    }

    #[test]
    fn fold_in_any_order_ends_at_the_newest_version() {
        let (one, two) = (created(1, "First"), created(2, "Second"));
        assert_eq!(fold([&one, &two]), fold([&two, &one, &two]));
        assert_eq!(fold([&two, &one]).unwrap().name, "Second");
        assert_eq!(fold([]), None);
    }
}
