//! Event -> state. Pure and version-guarded: applying an event that is not newer
//! than the state changes nothing, so duplicates and out-of-order deliveries are
//! harmless.

use crate::event::{Event, EventPayload};
use crate::item::Item;

/// What applying one event to an item's state does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The event is newer: this is the new state.
    Apply(Item),
    /// Already newer: the state reflects this event (a duplicate) or a later one.
    AlreadyNewer,
}

/// Applies `event` to `state` (the item as the read model has it, if any).
pub fn evolve(state: Option<&Item>, event: &Event) -> Outcome {
    if state.is_some_and(|current| current.version >= event.version) {
        return Outcome::AlreadyNewer;
    }
    match &event.payload {
        // ItemCreated carries the whole state, so it needs nothing from `state`.
        EventPayload::ItemCreated(created) => Outcome::Apply(Item {
            id: event.item_id,
            name: created.name.clone(),
            timestamp: created.timestamp.clone(),
            created_by: event.subject.clone(),
            created_at: event.occurred_at,
            version: event.version,
        }),
    }
}

/// Folds a stream in order into the item's state.
pub fn fold<'a>(events: impl IntoIterator<Item = &'a Event>) -> Option<Item> {
    events.into_iter().fold(None, |state, event| match evolve(state.as_ref(), event) {
        Outcome::Apply(item) => Some(item),
        Outcome::AlreadyNewer => state,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{ItemCreated, ItemId};
    use crate::testing::at;
    use uuid::Uuid;

    fn created(version: u64, name: &str) -> Event {
        Event {
            event_id: Uuid::from_u128(100 + u128::from(version)),
            item_id: ItemId(Uuid::from_u128(7)),
            version,
            occurred_at: at("2026-01-02T03:04:05.678Z"),
            subject: "sub-1".into(),
            payload: EventPayload::ItemCreated(ItemCreated { name: name.into(), timestamp: "t".into() }),
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

    #[test]
    fn fold_in_any_order_ends_at_the_newest_version() {
        let (one, two) = (created(1, "First"), created(2, "Second"));
        assert_eq!(fold([&one, &two]), fold([&two, &one, &two]));
        assert_eq!(fold([&two, &one]).unwrap().name, "Second");
        assert_eq!(fold([]), None);
    }
}
