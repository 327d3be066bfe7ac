//! The model's oracle: what every answer, stream, row, listing and history
//! must be, derived from the commands and the documented rules alone
//! (README "Items", docs/architecture.md "Idempotency"). It calls no code of
//! the service: not `decide`, not `evolve`, not `fold`, so a bug in any of
//! them shows as a difference, never as an agreement with itself.
//!
//! The rules, in the order the API applies them:
//! 1. a key the caller used before: the same request gets its first answer
//!    again (nothing appended); another request under it gets `422`;
//! 2. a missing or deleted item is `404`;
//! 3. only its creator or an `items-admins` member may change it, else `403`;
//! 4. `If-Match` other than the current version is `412` with it;
//! 5. a change to the name and description it has (a description given as
//!    none when it has none) records nothing (`200`, the item as it is);
//! 6. otherwise one event at the next version, with what changed only: a
//!    change sets the name and the description as asked (none: cleared;
//!    not asked: kept), a deletion leaves a tombstone with the fields it had.
//!
//! A create may give a description; the history shows it only then.
//!
//! A keyed request that succeeded keeps its answer for its key (a keyed
//! rename of nothing too); a refused one keeps nothing.

use std::collections::HashMap;

use items_domain::{Item, ItemId};

/// What a caller asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Create {
        name: String,
        description: Option<String>,
    },
    /// A `PATCH` of the name, and of the description when asked
    /// (`Some(None)`: cleared).
    Rename {
        id: ItemId,
        name: String,
        description: Option<Option<String>>,
        if_match: Option<u64>,
    },
    Delete {
        id: ItemId,
        if_match: Option<u64>,
    },
}

/// Who asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub subject: String,
    pub admin: bool,
}

/// A refusal, as the API answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 404
    NotFound,
    /// 403
    NotOwner,
    /// 412, with the current version
    Mismatch { current: u64 },
    /// 422
    KeyReused,
}

/// What the rules say a request gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    /// A new item at version 1 (its id and creation time are the service's to pick).
    Created {
        name: String,
        owner: String,
        description: Option<String>,
    },
    /// One event appended: the item after it.
    Appended(Item),
    /// Nothing to change: the item as it is.
    Unchanged(Item),
    /// The first answer under this key, again.
    Repeated(Item),
    Refused(Refusal),
}

/// One event of an item's history, as `GET /items/{id}/events` shows it
/// (the time is the writer's, so it is not predicted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: &'static str,
    pub version: u64,
    pub subject: String,
    pub changes: serde_json::Value,
    /// The item right after this event (`?version=N`).
    pub state: Item,
}

/// The whole expected world.
#[derive(Debug, Clone, Default)]
pub struct Reference {
    histories: HashMap<ItemId, Vec<Entry>>,
    /// (subject, key) → the request and its first answer.
    keys: HashMap<(String, String), (Request, Item)>,
}

impl Reference {
    /// The answer the rules give `request` from `caller` now.
    pub fn expect(&self, caller: &Caller, request: &Request, key: Option<&str>) -> Expected {
        if let Some(key) = key
            && let Some((first, answer)) = self.keys.get(&(caller.subject.clone(), key.to_owned()))
        {
            return if first == request {
                Expected::Repeated(answer.clone())
            } else {
                Expected::Refused(Refusal::KeyReused)
            };
        }
        let (id, if_match) = match request {
            Request::Create { name, description } => {
                let (name, owner, description) = (name.clone(), caller.subject.clone(), description.clone());
                return Expected::Created { name, owner, description };
            }
            Request::Rename { id, if_match, .. } | Request::Delete { id, if_match } => (*id, *if_match),
        };
        let Some(item) = self.current(id).filter(|item| !item.deleted) else {
            return Expected::Refused(Refusal::NotFound);
        };
        if item.created_by != caller.subject && !caller.admin {
            return Expected::Refused(Refusal::NotOwner);
        }
        if if_match.is_some_and(|version| version != item.version) {
            return Expected::Refused(Refusal::Mismatch { current: item.version });
        }
        match request {
            Request::Rename { name, description, .. } => {
                let description = description.clone().unwrap_or_else(|| item.description.clone());
                if *name == item.name && description == item.description {
                    Expected::Unchanged(item.clone())
                } else {
                    let version = item.version + 1;
                    Expected::Appended(Item { name: name.clone(), description, version, ..item.clone() })
                }
            }
            Request::Delete { .. } => {
                Expected::Appended(Item { deleted: true, version: item.version + 1, ..item.clone() })
            }
            Request::Create { .. } => unreachable!("answered above"),
        }
    }

    /// Records what a request did, given the answer's item where the rules
    /// leave a value to the service (a new item's id and creation time).
    /// `answer` is the item the request was answered with (for a create).
    pub fn commit(
        &mut self,
        caller: &Caller,
        request: &Request,
        key: Option<&str>,
        expected: &Expected,
        answer: Option<&Item>,
    ) {
        let answered = match expected {
            Expected::Created { name, owner, description } => {
                let given = answer.expect("a create's answer names its item");
                let item = Item {
                    id: given.id,
                    name: name.clone(),
                    timestamp: super::TIMESTAMP.into(),
                    created_by: owner.clone(),
                    created_at: given.created_at,
                    version: 1,
                    deleted: false,
                    description: description.clone(),
                };
                let mut changes = serde_json::json!({ "name": name, "timestamp": super::TIMESTAMP });
                if let Some(description) = description {
                    changes["description"] = description.clone().into();
                }
                self.push(&item, "ItemCreated", &caller.subject, changes);
                item
            }
            Expected::Appended(item) => {
                let before = self.current(item.id).expect("a change follows the item's creation");
                let (kind, changes) = match request {
                    Request::Rename { .. } => {
                        // Only what changed, a cleared description as `null`.
                        let mut changes = serde_json::Map::new();
                        if item.name != before.name {
                            changes.insert("name".into(), item.name.clone().into());
                        }
                        if item.description != before.description {
                            changes.insert("description".into(), item.description.clone().into());
                        }
                        ("ItemUpdated", serde_json::Value::Object(changes))
                    }
                    _ => ("ItemDeleted", serde_json::json!({})),
                };
                self.push(item, kind, &caller.subject, changes);
                item.clone()
            }
            Expected::Unchanged(item) => item.clone(),
            Expected::Repeated(_) | Expected::Refused(_) => return,
        };
        if let Some(key) = key {
            self.keys.insert((caller.subject.clone(), key.to_owned()), (request.clone(), answered));
        }
    }

    fn push(&mut self, item: &Item, kind: &'static str, subject: &str, changes: serde_json::Value) {
        let entry = Entry { kind, version: item.version, subject: subject.to_owned(), changes, state: item.clone() };
        self.histories.entry(item.id).or_default().push(entry);
    }

    /// The item now (a tombstone after its deletion), if it was ever created.
    pub fn current(&self, id: ItemId) -> Option<&Item> {
        self.histories.get(&id).and_then(|history| history.last()).map(|entry| &entry.state)
    }

    pub fn history(&self, id: ItemId) -> &[Entry] {
        self.histories.get(&id).map_or(&[], Vec::as_slice)
    }

    /// Every item ever created, by id.
    pub fn ids(&self) -> impl Iterator<Item = ItemId> + '_ {
        self.histories.keys().copied()
    }

    /// The items a listing shows: not deleted.
    pub fn live(&self) -> Vec<Item> {
        let mut live: Vec<Item> = self.histories.values().filter_map(|h| h.last()).map(|e| e.state.clone()).collect();
        live.retain(|item| !item.deleted);
        live.sort_by_key(|item| item.id);
        live
    }

    /// One creator's items, newest first (`?createdBy=`).
    pub fn created_by(&self, owner: &str) -> Vec<Item> {
        let mut mine: Vec<Item> = self.live().into_iter().filter(|item| item.created_by == owner).collect();
        mine.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        mine
    }
}
