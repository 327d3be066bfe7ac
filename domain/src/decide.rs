//! Command -> events: the rules of an item's life, pure (the cqrs-es way).
//! [`decide`] takes the item's state as its stream folds to (see
//! [`crate::projection::fold`]) and a command, and answers the events to append
//! or why the command is refused. Appending them at the state's version is the
//! services' job; a concurrent change then fails the append, never overwrites.

use crate::command::{Actor, Command, Precondition};
use crate::event::{EventPayload, ItemCreated, ItemUpdated};
use crate::item::Item;

/// Why a command is refused. Nothing is appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// No such item, or it was deleted.
    #[error("item not found")]
    NotFound,
    /// Only the item's creator or an admin may change it.
    #[error("not the item's owner")]
    NotOwner,
    /// The client's `If-Match` version is not the item's.
    #[error("item is at version {current}, not one the client expects")]
    VersionMismatch { current: u64 },
    /// Creating an item whose stream exists.
    #[error("item already exists")]
    AlreadyExists,
}

/// The events `command` causes on `state` (empty: nothing to change), checked
/// against the actor's rights and the client's expected version.
pub fn decide(
    state: Option<&Item>,
    command: &Command,
    actor: &Actor,
    precondition: &Precondition,
) -> Result<Vec<EventPayload>, Rejection> {
    let current = match (state, command) {
        (None, Command::Create(create)) => {
            return Ok(vec![EventPayload::ItemCreated(ItemCreated {
                name: create.name.clone(),
                timestamp: create.timestamp.clone(),
                description: create.description.clone(),
            })]);
        }
        (Some(_), Command::Create(_)) => return Err(Rejection::AlreadyExists),
        (None, _) => return Err(Rejection::NotFound),
        (Some(current), _) if current.deleted => return Err(Rejection::NotFound),
        (Some(current), _) => current,
    };
    if current.created_by != actor.subject && !actor.is_admin {
        return Err(Rejection::NotOwner);
    }
    if !precondition.holds(current.version) {
        return Err(Rejection::VersionMismatch { current: current.version });
    }
    match command {
        Command::Update(update) => {
            let changed = |new: &Option<String>, old: &str| new.clone().filter(|new| new != old);
            let changes = ItemUpdated {
                name: changed(&update.name, &current.name),
                timestamp: changed(&update.timestamp, &current.timestamp),
                description: update.description.clone().filter(|new| *new != current.description),
            };
            if changes == ItemUpdated::default() {
                return Ok(Vec::new());
            }
            Ok(vec![EventPayload::ItemUpdated(changes)])
        }
        Command::Delete => Ok(vec![EventPayload::ItemDeleted]),
        Command::Create(_) => Err(Rejection::AlreadyExists),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{CreateItem, UpdateItem};
    use crate::event::{Event, ItemId};
    use crate::projection::fold;
    use crate::testing::at;
    use uuid::Uuid;

    const OWNER: &str = "owner-sub";

    fn owner() -> Actor {
        Actor { subject: OWNER.into(), is_admin: false }
    }

    fn other() -> Actor {
        Actor { subject: "other-sub".into(), is_admin: false }
    }

    fn admin() -> Actor {
        Actor { subject: "admin-sub".into(), is_admin: true }
    }

    /// The state after `payloads` were appended in order by the owner.
    fn given(payloads: &[EventPayload]) -> Option<Item> {
        let events: Vec<Event> = payloads
            .iter()
            .enumerate()
            .map(|(index, payload)| Event {
                event_id: Uuid::from_u128(index as u128 + 1),
                item_id: ItemId(Uuid::from_u128(42)),
                version: index as u64 + 1,
                occurred_at: at("2026-01-02T03:04:05.678Z"),
                subject: OWNER.into(),
                payload: payload.clone(),
            })
            .collect();
        fold(&events)
    }

    fn created(name: &str) -> EventPayload {
        EventPayload::ItemCreated(ItemCreated { name: name.into(), timestamp: "t".into(), description: None })
    }

    fn update(name: Option<&str>, timestamp: Option<&str>) -> Command {
        Command::Update(UpdateItem {
            name: name.map(Into::into),
            timestamp: timestamp.map(Into::into),
            description: None,
        })
    }

    fn renamed(name: &str) -> EventPayload {
        EventPayload::ItemUpdated(ItemUpdated { name: Some(name.into()), timestamp: None, description: None })
    }

    #[test]
    fn given_nothing_when_created_then_item_created() {
        let command = Command::Create(CreateItem { name: "Pen".into(), timestamp: "t".into(), description: None });
        assert_eq!(decide(None, &command, &owner(), &Precondition::Any), Ok(vec![created("Pen")]));
        assert_eq!(
            decide(given(&[created("Pen")]).as_ref(), &command, &owner(), &Precondition::Any),
            Err(Rejection::AlreadyExists)
        );
    }

    #[test]
    fn given_an_item_when_its_owner_renames_it_then_only_the_change_is_recorded() {
        let state = given(&[created("Pen")]);
        assert_eq!(
            decide(state.as_ref(), &update(Some("Ink"), Some("t")), &owner(), &Precondition::Any),
            Ok(vec![renamed("Ink")])
        );
        let both = update(Some("Ink"), Some("later"));
        assert_eq!(
            decide(state.as_ref(), &both, &owner(), &Precondition::Any),
            Ok(vec![EventPayload::ItemUpdated(ItemUpdated {
                name: Some("Ink".into()),
                timestamp: Some("later".into()),
                description: None
            })])
        );
    }

    fn describe(description: Option<&str>) -> Command {
        Command::Update(UpdateItem { description: Some(description.map(Into::into)), ..Default::default() })
    }

    fn described(description: Option<&str>) -> EventPayload {
        EventPayload::ItemUpdated(ItemUpdated { description: Some(description.map(Into::into)), ..Default::default() })
    }

    #[test]
    fn given_an_item_when_described_then_set_changed_and_cleared_but_never_repeated() {
        let any = &Precondition::Any;
        let plain = given(&[created("Pen")]);
        assert_eq!(decide(plain.as_ref(), &describe(Some("Blue")), &owner(), any), Ok(vec![described(Some("Blue"))]));
        assert_eq!(decide(plain.as_ref(), &describe(None), &owner(), any), Ok(vec![]), "nothing to clear");
        let blue = given(&[created("Pen"), described(Some("Blue"))]);
        assert_eq!(decide(blue.as_ref(), &describe(Some("Blue")), &owner(), any), Ok(vec![]));
        assert_eq!(decide(blue.as_ref(), &describe(Some("Red")), &owner(), any), Ok(vec![described(Some("Red"))]));
        assert_eq!(decide(blue.as_ref(), &describe(None), &owner(), any), Ok(vec![described(None)]));
        assert_eq!(decide(blue.as_ref(), &describe(None), &other(), any), Err(Rejection::NotOwner));
        let create = CreateItem { name: "Pen".into(), timestamp: "t".into(), description: Some("Blue".into()) };
        assert_eq!(
            decide(None, &Command::Create(create), &owner(), any),
            Ok(vec![EventPayload::ItemCreated(ItemCreated {
                name: "Pen".into(),
                timestamp: "t".into(),
                description: Some("Blue".into())
            })])
        );
    }

    #[test]
    fn given_an_item_when_updated_to_the_same_values_then_nothing_is_recorded() {
        let state = given(&[created("Pen"), renamed("Ink")]);
        assert_eq!(decide(state.as_ref(), &update(Some("Ink"), Some("t")), &owner(), &Precondition::Any), Ok(vec![]));
    }

    #[test]
    fn given_an_item_when_someone_else_changes_it_then_not_owner_unless_admin() {
        let state = given(&[created("Pen")]);
        for command in [update(Some("Mine"), None), Command::Delete] {
            assert_eq!(decide(state.as_ref(), &command, &other(), &Precondition::Any), Err(Rejection::NotOwner));
            assert!(
                decide(state.as_ref(), &command, &admin(), &Precondition::Any).is_ok_and(|events| events.len() == 1)
            );
        }
    }

    #[test]
    fn given_an_item_when_deleted_then_item_deleted_and_after_that_not_found() {
        let state = given(&[created("Pen")]);
        assert_eq!(
            decide(state.as_ref(), &Command::Delete, &owner(), &Precondition::Any),
            Ok(vec![EventPayload::ItemDeleted])
        );
        let gone = given(&[created("Pen"), EventPayload::ItemDeleted]);
        for command in [update(Some("Back"), None), Command::Delete] {
            assert_eq!(decide(gone.as_ref(), &command, &owner(), &Precondition::Any), Err(Rejection::NotFound));
            assert_eq!(decide(gone.as_ref(), &command, &admin(), &Precondition::Any), Err(Rejection::NotFound));
        }
    }

    #[test]
    fn given_nothing_when_changed_then_not_found() {
        assert_eq!(decide(None, &update(Some("Ink"), None), &admin(), &Precondition::Any), Err(Rejection::NotFound));
        assert_eq!(decide(None, &Command::Delete, &owner(), &Precondition::Any), Err(Rejection::NotFound));
    }

    #[test]
    fn given_version_two_when_the_client_expects_another_then_version_mismatch() {
        let state = given(&[created("Pen"), renamed("Ink")]);
        assert_eq!(
            decide(state.as_ref(), &Command::Delete, &owner(), &Precondition::from(Some(1))),
            Err(Rejection::VersionMismatch { current: 2 })
        );
        assert_eq!(
            decide(state.as_ref(), &Command::Delete, &owner(), &Precondition::from(Some(2))),
            Ok(vec![EventPayload::ItemDeleted])
        );
    }

    #[test]
    fn given_version_two_when_the_client_expects_one_of_several_then_any_match_will_do() {
        let state = given(&[created("Pen"), renamed("Ink")]);
        let either = Precondition::OneOf(vec![1, 2]);
        assert_eq!(decide(state.as_ref(), &Command::Delete, &owner(), &either), Ok(vec![EventPayload::ItemDeleted]));
        let none = Precondition::OneOf(vec![]);
        assert_eq!(
            decide(state.as_ref(), &Command::Delete, &owner(), &none),
            Err(Rejection::VersionMismatch { current: 2 }),
            "an empty list never holds"
        );
    }

    #[test]
    fn ownership_is_checked_before_the_version() {
        let state = given(&[created("Pen")]);
        assert_eq!(
            decide(state.as_ref(), &Command::Delete, &other(), &Precondition::from(Some(9))),
            Err(Rejection::NotOwner)
        );
    }
}
