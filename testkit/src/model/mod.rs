//! The event-sourcing guarantees as a model-based test (proptest state
//! machines), run on every backend like the conformance suite.
//!
//! Random sequences of steps go through the real services and adapters:
//! creates, renames and deletes (by owners, strangers and admins, with a
//! current, stale or future `If-Match` or none, with and without
//! `Idempotency-Key`), two changes racing for one version, retries of keyed
//! requests, event-store failures before and after a write (the ambiguous
//! 503), records no projector can fold (poison), projections and rebuilds.
//!
//! The oracle is [`reference::Reference`]: the expected items, histories and
//! key records, derived from the commands and the documented rules alone (it
//! calls no `decide`, `evolve` or `fold`). Checked against it:
//!
//! - **every answer, exactly**: the item it shows, or the refusal (`403`,
//!   `404`, `412` with the current version, `422`); a keyed retry repeats
//!   its first answer;
//! - **one winner per version**: two changes racing at one `If-Match` give
//!   the answers of one order of the two (the loser `412`, or `409` when it
//!   lost at the append), and the stream grows by that order's events only;
//! - **nothing acknowledged is lost or doubled** (after every step): each
//!   item's stream in the log is exactly its expected history (type,
//!   version, subject, changes), a write whose answer was lost included;
//! - at every quiescent point (after a projection or a rebuild) **the read
//!   model is the reference**: every item's row exactly (a tombstone for a
//!   deleted one), no row for a poisoned stream, the listing of all and each
//!   creator's listing (newest first) paged by 2, each item's history
//!   (`/events`) paged, and the item at its first, middle and last version
//!   (`?version=N`).
//!
//! A projection goes as AWS runs it ([`delivery`]): the log's events as
//! DynamoDB stream records, shuffled and duplicated, into the
//! `project-events` handler, in one lane or two at once (ParallelizationFactor
//! 2), retried from the reported record, through a read model that answers
//! from any depth of staleness and fails reads, single writes and the
//! backend's batched write, and a log that fails history reads; optionally
//! an item's first record arrives as a newer build wrote it (a type this
//! code cannot read): that item, and only it, must not move until the
//! record is redriven after the "upgrade". A rebuild goes in place (over a
//! row edited by hand) or into a new table with, after its scan, a change or
//! an import of an old item (an `occurred_at` a year back), the switch, and
//! the catch-up; or with a change in the middle of its scan, which the live
//! projector applies before the rebuild writes the page it read. An overlap
//! runs a projection at the same moment as a change or an in-place replay.
//!
//! A failure prints the minimal sequence of steps and the seed;
//! `PROPTEST_RNG_SEED=<n>` replays it. The backends' test files fix the
//! seed and the case count for CI; `scripts/explore` runs random seeds for
//! longer.

mod delivery;
mod faults;
pub mod reference;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::Utc;
use items_domain::command::{Actor, CreateItem, UpdateItem};
use items_domain::decide::Rejection;
use items_domain::idempotency::IdempotencyKey;
use items_domain::memory::InMemoryReadModel;
use items_domain::ports::{Clock, EventLogScan, EventStore, IdGenerator, ReadModel, ReplayTarget, StoreError};
use items_domain::replay::{NoCheckpoints, ReadModelTarget, ReplayService};
use items_domain::service::{
    ChangeError, ChangeItemService, Changed, CreateError, CreateItemService, Created, HistoryService, PointInTime,
    ProjectorService, QueryService, Selection,
};
use items_domain::{Event, EventPayload, Item, ItemId};
use proptest::prelude::*;
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest};

use delivery::{Lane, deliver, from_a_newer_build, stream_record};
use faults::{Fault, FaultyLog, Flaky, HookedScan, Ticking};
use items_aws::quarantine::{InMemoryQuarantine, Quarantine, redrive};
use reference::{Caller, Expected, Reference, Refusal, Request};

/// The `timestamp` every create sends (the classic API's client string).
pub const TIMESTAMP: &str = "t";

/// What a model run needs of a backend.
pub struct ModelBackend {
    pub events: Arc<dyn EventStore>,
    pub scan: Arc<dyn EventLogScan>,
    pub read_model: Arc<dyn ReadModel>,
    pub ids: Arc<dyn IdGenerator>,
    /// A new, empty read table and how `items replay --into` fills it (on
    /// DynamoDB: `BatchWriter`); an in-memory table through its repair when
    /// `None`.
    pub new_table: Option<NewTable>,
    /// The backend's own change feed (the local event source mapping, with
    /// its quarantine), run into the given read model until it has projected
    /// everything committed, then its quarantine redriven: the item streams
    /// still set aside. `None` where the backend has none to run here.
    pub feed: Option<DrainFeed>,
}

/// See [`ModelBackend::feed`].
pub type DrainFeed = Arc<dyn Fn(Arc<dyn ReadModel>) -> futures::future::BoxFuture<'static, Vec<String>> + Send + Sync>;

/// Makes a new read table: the table, and the rebuild's writer into it.
pub type NewTable = Arc<dyn Fn() -> (Arc<dyn ReadModel>, Arc<dyn ReplayTarget>) + Send + Sync>;

/// Makes a fresh backend for each case.
pub trait MakeBackend: 'static {
    fn make(runtime: &tokio::runtime::Runtime) -> ModelBackend;
}

/// Who sends a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    Owner,
    Stranger,
    Admin,
}

/// What happens after a rebuild's scan, before the switch and the catch-up.
#[derive(Debug, Clone)]
pub enum AfterScan {
    /// The owner renames an item.
    Rename { slot: usize, name: u8 },
    /// `items import` appends an item written a year ago elsewhere.
    Import { name: u8 },
    /// The owner renames an item while the scan runs: between a page's read
    /// and its write.
    MidScan { slot: usize, name: u8 },
}

/// One step of a run. Slots name items in the order they were created.
#[derive(Debug, Clone)]
pub enum Step {
    Create {
        name: u8,
        key: Option<u8>,
    },
    /// `if_match`: how far behind the current version (0: current, 1: the
    /// one before, 2: one ahead). `describe`: the description asked too
    /// (see [`description`]).
    Rename {
        slot: usize,
        name: u8,
        describe: u8,
        who: Who,
        if_match: Option<u8>,
        key: Option<u8>,
    },
    Delete {
        slot: usize,
        who: Who,
        if_match: Option<u8>,
        key: Option<u8>,
    },
    /// Two changes by the owner at the item's current version, at once.
    Race {
        slot: usize,
        names: (u8, u8),
        second_deletes: bool,
    },
    /// An earlier keyed request, sent again as it was.
    Retry {
        request: usize,
    },
    /// The projector applies what is not projected yet (see [`delivery`]).
    Project {
        order: u64,
        duplicates: bool,
        /// How many writes behind the projector's reads may be.
        stale: u8,
        /// The read model's calls (reads and writes, counted from 0) that fail.
        failing: Vec<u8>,
        /// The history reads that fail.
        failing_history: Vec<u8>,
        lanes: bool,
        newer_build: bool,
    },
    /// A rebuild of the read model: in place, or into a new table then the
    /// switch and the catch-up. `tamper` first makes an item's row wrong at
    /// its own version (a hand edit, a projection bug fixed since).
    Rebuild {
        into_new: bool,
        after_scan: Option<AfterScan>,
        tamper: Option<usize>,
    },
    /// A rename while the event store fails: before the write (nothing
    /// stored), or after it (stored, but the answer is lost: a keyed retry
    /// must then answer as stored).
    Faulty {
        slot: usize,
        name: u8,
        after_write: bool,
        key: Option<u8>,
    },
    /// A record no projector can fold lands in the log (another build's
    /// event: an update of an item that was never created).
    Poison,
    /// The backend's own change feed projects what is committed (where it
    /// has one; else a quiet projection).
    Feed,
    /// A projection with, at the same time, the owner's rename of an item
    /// (writes while projecting) or an in-place replay (a rebuild beside
    /// live projection).
    Overlap {
        order: u64,
        lanes: bool,
        slot: usize,
        name: u8,
        replay: bool,
    },
}

/// What the generator needs: how many slots and keyed requests exist.
#[derive(Debug, Clone, Default)]
pub struct Counts {
    items: usize,
    keyed: usize,
}

pub struct Model;

fn who() -> impl Strategy<Value = Who> {
    prop_oneof![4 => Just(Who::Owner), 1 => Just(Who::Stranger), 1 => Just(Who::Admin)]
}

fn if_match() -> impl Strategy<Value = Option<u8>> {
    prop_oneof![2 => Just(None), 3 => Just(Some(0)), 1 => (1u8..3).prop_map(Some)]
}

impl ReferenceStateMachine for Model {
    type State = Counts;
    type Transition = Step;

    fn init_state() -> BoxedStrategy<Counts> {
        Just(Counts::default()).boxed()
    }

    fn transitions(state: &Counts) -> BoxedStrategy<Step> {
        let key = proptest::option::of(0u8..4);
        let create = (0u8..4, key.clone()).prop_map(|(name, key)| Step::Create { name, key });
        if state.items == 0 {
            return create.boxed();
        }
        let slot = 0..state.items;
        let rename = (slot.clone(), 0u8..4, 0u8..4, who(), if_match(), key.clone()).prop_map(
            |(slot, name, describe, who, if_match, key)| Step::Rename { slot, name, describe, who, if_match, key },
        );
        let delete = (slot.clone(), who(), if_match(), key.clone())
            .prop_map(|(slot, who, if_match, key)| Step::Delete { slot, who, if_match, key });
        let race = (slot.clone(), (0u8..4, 0u8..4), any::<bool>())
            .prop_map(|(slot, names, second_deletes)| Step::Race { slot, names, second_deletes });
        let failing = proptest::collection::vec(0u8..12, 0..3);
        let project = (
            any::<u64>(),
            any::<bool>(),
            0u8..3,
            failing.clone(),
            proptest::collection::vec(0u8..6, 0..2),
            any::<bool>(),
            proptest::bool::weighted(0.3),
        )
            .prop_map(|(order, duplicates, stale, failing, failing_history, lanes, newer_build)| {
                Step::Project { order, duplicates, stale, failing, failing_history, lanes, newer_build }
            });
        let after_scan = proptest::option::of(prop_oneof![
            (slot.clone(), 0u8..4).prop_map(|(slot, name)| AfterScan::Rename { slot, name }),
            (0u8..4).prop_map(|name| AfterScan::Import { name }),
            (slot.clone(), 0u8..4).prop_map(|(slot, name)| AfterScan::MidScan { slot, name }),
        ]);
        let overlap = (any::<u64>(), any::<bool>(), slot.clone(), 0u8..4, any::<bool>())
            .prop_map(|(order, lanes, slot, name, replay)| Step::Overlap { order, lanes, slot, name, replay });
        let rebuild = (any::<bool>(), after_scan, proptest::option::of(slot.clone()))
            .prop_map(|(into_new, after_scan, tamper)| Step::Rebuild { into_new, after_scan, tamper });
        let faulty = (slot, 0u8..4, any::<bool>(), key).prop_map(|(slot, name, after_write, key)| Step::Faulty {
            slot,
            name,
            after_write,
            key,
        });
        let retry = (0..state.keyed.max(1)).prop_map(|request| Step::Retry { request });
        let feed = Just(Step::Feed);
        let poison = Just(Step::Poison);
        if state.keyed == 0 {
            prop_oneof![
                3 => create, 4 => rename, 2 => delete, 2 => race, 3 => project, 2 => rebuild, 1 => faulty,
                1 => poison, 2 => overlap, 2 => feed
            ]
            .boxed()
        } else {
            prop_oneof![
                3 => create, 4 => rename, 2 => delete, 2 => race, 2 => retry, 3 => project, 2 => rebuild, 1 => faulty,
                1 => poison, 2 => overlap, 2 => feed
            ]
            .boxed()
        }
    }

    fn preconditions(state: &Counts, step: &Step) -> bool {
        match step {
            Step::Create { .. } | Step::Project { .. } | Step::Poison | Step::Feed => true,
            Step::Rename { slot, .. }
            | Step::Delete { slot, .. }
            | Step::Race { slot, .. }
            | Step::Faulty { slot, .. }
            | Step::Overlap { slot, .. } => *slot < state.items,
            Step::Rebuild { after_scan, tamper, .. } => {
                let renamed = match after_scan {
                    Some(AfterScan::Rename { slot, .. } | AfterScan::MidScan { slot, .. }) => *slot < state.items,
                    _ => true,
                };
                renamed && tamper.is_none_or(|slot| slot < state.items)
            }
            Step::Retry { request } => *request < state.keyed,
        }
    }

    fn apply(mut state: Counts, step: &Step) -> Counts {
        let keyed = match step {
            Step::Create { key, .. }
            | Step::Rename { key, .. }
            | Step::Delete { key, .. }
            | Step::Faulty { key, .. } => key.is_some(),
            _ => false,
        };
        if matches!(step, Step::Create { .. } | Step::Rebuild { after_scan: Some(AfterScan::Import { .. }), .. }) {
            state.items += 1;
        }
        state.keyed += usize::from(keyed);
        state
    }
}

/// An answer as the API gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    Item {
        item: Item,
        repeated: bool,
    },
    Refused(Refusal),
    /// 409: another change was appended first.
    Conflict {
        current: u64,
    },
    /// 503
    Unavailable,
}

impl From<Result<Changed, ChangeError>> for Answer {
    fn from(result: Result<Changed, ChangeError>) -> Self {
        match result {
            Ok(changed) => Answer::Item { item: changed.item, repeated: changed.repeated },
            Err(ChangeError::Rejected(Rejection::NotFound)) => Answer::Refused(Refusal::NotFound),
            Err(ChangeError::Rejected(Rejection::NotOwner)) => Answer::Refused(Refusal::NotOwner),
            Err(ChangeError::Rejected(Rejection::VersionMismatch { current })) => {
                Answer::Refused(Refusal::Mismatch { current })
            }
            Err(ChangeError::KeyReused) => Answer::Refused(Refusal::KeyReused),
            Err(ChangeError::Conflict { current }) => Answer::Conflict { current },
            Err(ChangeError::Store(StoreError::Unavailable(_))) => Answer::Unavailable,
            Err(other) => panic!("an undocumented answer to a change: {other:?}"),
        }
    }
}

impl From<Result<Created, CreateError>> for Answer {
    fn from(result: Result<Created, CreateError>) -> Self {
        match result {
            Ok(Created::New(item)) => Answer::Item { item, repeated: false },
            Ok(Created::Repeated(item)) => Answer::Item { item, repeated: true },
            Err(CreateError::KeyReused) => Answer::Refused(Refusal::KeyReused),
            Err(CreateError::Store(StoreError::Unavailable(_))) => Answer::Unavailable,
            Err(other) => panic!("an undocumented answer to a create: {other:?}"),
        }
    }
}

/// Whether `answer` is what the rules expect.
fn agrees(expected: &Expected, answer: &Answer) -> bool {
    match (expected, answer) {
        (Expected::Created { name, owner, description }, Answer::Item { item, repeated: false }) => {
            item.name == *name
                && item.created_by == *owner
                && item.description == *description
                && item.timestamp == TIMESTAMP
                && item.version == 1
                && !item.deleted
        }
        (Expected::Appended(want) | Expected::Unchanged(want), Answer::Item { item, repeated: false })
        | (Expected::Repeated(want), Answer::Item { item, repeated: true }) => item == want,
        (Expected::Refused(want), Answer::Refused(got)) => want == got,
        _ => false,
    }
}

/// What a rename during a rebuild's scan was answered, and the version the
/// live projector applied at once, if it did.
type MidScanAnswer = (Answer, Option<u64>);

/// A keyed request, to send again.
#[derive(Debug, Clone)]
struct Sent {
    caller: Caller,
    request: Request,
    key: String,
}

pub struct System {
    runtime: tokio::runtime::Runtime,
    backend: ModelBackend,
    clock: Arc<Ticking>,
    create: CreateItemService,
    changes: Arc<ChangeItemService>,
    log: Arc<FaultyLog>,
    /// Each slot's item and its owner.
    slots: Vec<(ItemId, String)>,
    reference: Reference,
    /// How far each item's stream was handed to the projector.
    projected: HashMap<ItemId, u64>,
    keyed: Vec<Sent>,
    /// Items whose stream holds a record no projector can fold.
    poisoned: HashSet<ItemId>,
    /// The version each row had at the last quiescent point: rows only go forward.
    seen: HashMap<ItemId, u64>,
}

fn caller(owner: &str, who: Who) -> Caller {
    match who {
        Who::Owner => Caller { subject: owner.to_owned(), admin: false },
        Who::Stranger => Caller { subject: "stranger".into(), admin: false },
        Who::Admin => Caller { subject: "admin".into(), admin: true },
    }
}

fn key(n: Option<u8>) -> Option<String> {
    n.map(|n| format!("key-{n}"))
}

fn name(n: u8) -> String {
    format!("name {n}")
}

/// What a change asks of the description: 0 nothing, 1 and 2 a text (the
/// second over two lines), 3 none (cleared).
fn description(describe: u8) -> Option<Option<String>> {
    match describe {
        0 => None,
        3 => Some(None),
        n => Some(Some(format!("about {n}").repeat(usize::from(n)).replace("2about", "2\nabout"))),
    }
}

/// A create gives a description with odd names.
fn created_description(n: u8) -> Option<String> {
    (n % 2 == 1).then(|| format!("made as {n}"))
}

const OWNERS: [&str; 3] = ["owner-0", "owner-1", "owner-2"];

impl System {
    fn stream(&self, id: ItemId) -> Vec<Event> {
        self.runtime.block_on(self.backend.events.stream(id)).expect("the log is readable")
    }

    /// The `If-Match` a step sends: `lag` 0 the current version, 1 the one
    /// before, 2 one ahead.
    fn if_match(&self, id: ItemId, lag: u8) -> u64 {
        let current = self.reference.current(id).map_or(0, |item| item.version);
        match lag {
            0 => current,
            1 if current > 1 => current - 1,
            _ => current + 1,
        }
    }

    /// The request a create or change step sends, and from whom.
    fn request(&self, step: &Step) -> (Caller, Request, Option<String>) {
        match step {
            Step::Create { name: n, key: k } => {
                let owner = OWNERS[self.slots.len() % OWNERS.len()];
                (
                    caller(owner, Who::Owner),
                    Request::Create { name: name(*n), description: created_description(*n) },
                    key(*k),
                )
            }
            Step::Rename { slot, name: n, describe, who, if_match, key: k } => {
                let (id, owner) = &self.slots[*slot];
                let if_match = if_match.map(|lag| self.if_match(*id, lag));
                let request =
                    Request::Rename { id: *id, name: name(*n), description: description(*describe), if_match };
                (caller(owner, *who), request, key(*k))
            }
            Step::Delete { slot, who, if_match, key: k } => {
                let (id, owner) = &self.slots[*slot];
                let if_match = if_match.map(|lag| self.if_match(*id, lag));
                (caller(owner, *who), Request::Delete { id: *id, if_match }, key(*k))
            }
            _ => unreachable!("only creates and changes are requests"),
        }
    }

    async fn send(&self, caller: &Caller, request: &Request, key: Option<&str>) -> Answer {
        let key = key.map(|key| IdempotencyKey::parse(key).expect("a valid key"));
        let actor = Actor { subject: caller.subject.clone(), is_admin: caller.admin };
        match request {
            Request::Create { name, description } => {
                let command =
                    CreateItem { name: name.clone(), timestamp: TIMESTAMP.into(), description: description.clone() };
                match &key {
                    Some(key) => self.create.create_idempotent(&caller.subject, command, key).await.into(),
                    None => self.create.create(&caller.subject, command).await.map(Created::New).into(),
                }
            }
            Request::Rename { id, name, description, if_match } => {
                let update = UpdateItem { name: Some(name.clone()), timestamp: None, description: description.clone() };
                self.changes.update(&actor, *id, update, *if_match, key.as_ref()).await.into()
            }
            Request::Delete { id, if_match } => self.changes.delete(&actor, *id, *if_match, key.as_ref()).await.into(),
        }
    }

    /// Sends a request, checks its answer against the rules, and records what
    /// it did; a keyed one is kept for retries.
    fn exchange(&mut self, caller: Caller, request: Request, key: Option<String>) -> Answer {
        let expected = self.reference.expect(&caller, &request, key.as_deref());
        let answer = self.runtime.block_on(self.send(&caller, &request, key.as_deref()));
        assert!(
            agrees(&expected, &answer),
            "{caller:?} sent {request:?} (key {key:?}): the rules say {expected:?}, the service answered {answer:?}"
        );
        let item = match &answer {
            Answer::Item { item, .. } => Some(item),
            _ => None,
        };
        self.reference.commit(&caller, &request, key.as_deref(), &expected, item);
        if let Some(key) = key {
            self.keyed.push(Sent { caller, request, key });
        }
        answer
    }

    /// Two changes at once: their answers must be those of one order of the
    /// two, and the reference takes that order.
    fn race(&mut self, slot: usize, names: (u8, u8), second_deletes: bool) {
        let (id, owner) = self.slots[slot].clone();
        let caller = caller(&owner, Who::Owner);
        let if_match = Some(self.if_match(id, 0));
        let first = Request::Rename { id, name: name(names.0), description: None, if_match };
        let second = match second_deletes {
            true => Request::Delete { id, if_match },
            false => Request::Rename { id, name: name(names.1), description: None, if_match },
        };
        // Both decide on the same version before either appends, when both
        // would write: a real race on every backend, the in-memory one too.
        let writes = [&first, &second]
            .iter()
            .filter(|request| matches!(self.reference.expect(&caller, request, None), Expected::Appended(_)))
            .count();
        self.log.gate(writes);
        let (a, b) = self
            .runtime
            .block_on(async { tokio::join!(self.send(&caller, &first, None), self.send(&caller, &second, None)) });
        // The answers of one order of the two: the first as the rules say on
        // the state before; the second as the rules say on the state after
        // the first, or, if it would have written on the state before, lost
        // at the append: `412` (it sent `If-Match`) with the winner's version.
        let in_order = |[(winner, won), (loser, lost)]: [(&Request, &Answer); 2]| {
            let mut reference = self.reference.clone();
            let expected = reference.expect(&caller, winner, None);
            let would_write = matches!(reference.expect(&caller, loser, None), Expected::Appended(_));
            if !agrees(&expected, won) {
                return None;
            }
            reference.commit(&caller, winner, None, &expected, None);
            let now = reference.current(id).map_or(0, |item| item.version);
            let expected = reference.expect(&caller, loser, None);
            let lost_at_append = would_write && *lost == Answer::Refused(Refusal::Mismatch { current: now });
            if !agrees(&expected, lost) && !lost_at_append {
                return None;
            }
            if !lost_at_append {
                reference.commit(&caller, loser, None, &expected, None);
            }
            Some(reference)
        };
        let Some(reference) =
            in_order([(&first, &a), (&second, &b)]).or_else(|| in_order([(&second, &b), (&first, &a)]))
        else {
            panic!("racing {first:?} and {second:?} gave {a:?} and {b:?}: the answers of no order of the two");
        };
        self.reference = reference;
    }

    /// A rename while the event store fails before or after the write.
    fn faulty(&mut self, slot: usize, n: u8, after_write: bool, k: Option<u8>) {
        let (id, owner) = self.slots[slot].clone();
        let (caller, request, key) = (
            caller(&owner, Who::Owner),
            Request::Rename { id, name: name(n), description: None, if_match: None },
            key(k),
        );
        let expected = self.reference.expect(&caller, &request, key.as_deref());
        let fault = if after_write { Fault::AfterWrite } else { Fault::BeforeWrite };
        self.log.fail_next(fault);
        let answer = self.runtime.block_on(self.send(&caller, &request, key.as_deref()));
        let attempted = !self.log.unused();
        // A write is made for an event, or for the key record of a keyed change of nothing.
        let writes =
            matches!(expected, Expected::Appended(_)) || (matches!(expected, Expected::Unchanged(_)) && key.is_some());
        assert_eq!(attempted, writes, "{request:?}: a write was attempted iff the rules make one ({expected:?})");
        if attempted {
            assert_eq!(answer, Answer::Unavailable, "a failing event store answers 503");
            if fault == Fault::AfterWrite {
                // It landed: the log holds it, and a keyed retry answers it.
                self.reference.commit(&caller, &request, key.as_deref(), &expected, None);
            }
        } else {
            assert!(agrees(&expected, &answer), "{request:?}: the rules say {expected:?}, got {answer:?}");
            self.reference.commit(&caller, &request, key.as_deref(), &expected, None);
        }
        if let Some(key) = key {
            self.keyed.push(Sent { caller, request, key });
        }
    }

    /// Everything not yet handed to the projector, as stream records in
    /// lanes, shuffled by `order`, some repeated; with `newer_build`, one
    /// item's next event as a newer build wrote it (its event id, item and
    /// version).
    fn pending(
        &mut self,
        order: u64,
        duplicates: bool,
        lanes: bool,
        newer_build: bool,
    ) -> (Vec<Lane>, Option<(uuid::Uuid, ItemId, u64)>) {
        let mut pending: Vec<Event> = Vec::new();
        let ids: Vec<ItemId> = self.reference.ids().chain(self.poisoned.iter().copied()).collect();
        for id in ids {
            let from = self.projected.get(&id).copied().unwrap_or(0);
            let stream = self.stream(id);
            self.projected.insert(id, stream.len() as u64);
            pending.extend(stream.into_iter().filter(|e| e.version > from));
        }
        pending.sort_by_key(|event| (event.item_id, event.version));
        // A deterministic shuffle from `order`, and repeats of some events.
        let mut state = order | 1;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for i in (1..pending.len()).rev() {
            pending.swap(i, (next() % (i as u64 + 1)) as usize);
        }
        if duplicates {
            let copies: Vec<Event> = pending.iter().filter(|_| next() % 3 == 0).cloned().collect();
            pending.extend(copies);
        }
        // A newer build's record: an item with more to project, its first.
        // A newer build's record: the next event an item's row has to take,
        // of an item with more after it; moved to the front, and every copy
        // of it, arrive as the newer build wrote them.
        let mut unreadable = None;
        if newer_build {
            let mut items: Vec<ItemId> = pending.iter().map(|e| e.item_id).collect();
            items.dedup();
            for id in items.into_iter().filter(|id| !self.poisoned.contains(id)) {
                let row = self.runtime.block_on(self.backend.read_model.get(id)).expect("readable");
                let at = row.map_or(0, |row| row.version);
                let mut ahead: Vec<&Event> = pending.iter().filter(|e| e.item_id == id && e.version > at).collect();
                ahead.sort_by_key(|e| e.version);
                ahead.dedup_by_key(|e| e.version);
                if ahead.len() > 1 {
                    unreadable = Some((ahead[0].event_id, id, ahead[0].version));
                    break;
                }
            }
        }
        if let Some((event_id, _, _)) = unreadable {
            let first = pending.iter().position(|e| e.event_id == event_id).expect("pending");
            let event = pending.remove(first);
            pending.insert(0, event);
        }
        let lane_of = |id: &ItemId| if lanes { (id.0.as_u128() % 2) as usize } else { 0 };
        let mut split = vec![Lane { records: Vec::new() }, Lane { records: Vec::new() }];
        for (sequence, event) in pending.iter().enumerate() {
            let lane = &mut split[lane_of(&event.item_id)];
            let record = stream_record(event, sequence);
            let newer_build = unreadable.is_some_and(|(event_id, _, _)| event_id == event.event_id);
            lane.records.push(if newer_build { from_a_newer_build(&record) } else { record });
        }
        (split.into_iter().filter(|lane| !lane.records.is_empty()).collect(), unreadable)
    }

    /// Everything not yet projected, as stream records, through the handler.
    #[allow(clippy::too_many_arguments)]
    fn project(
        &mut self,
        order: u64,
        duplicates: bool,
        stale: u8,
        failing: &[u8],
        failing_history: &[u8],
        lanes: bool,
        newer_build: bool,
    ) {
        let (split, unreadable) = self.pending(order, duplicates, lanes, newer_build);
        let newer = unreadable.map(|(_, id, _)| id);
        let flaky =
            Arc::new(Flaky::new(self.backend.read_model.clone(), stale.into(), failing.iter().map(|&n| n.into())));
        self.log.fail_reads(failing_history.iter().map(|&n| usize::from(n)));
        // Until the upgrade, this build cannot read the newer build's event
        // in the log either (a fold of its item's stream fails there).
        let held = unreadable.map(|(_, id, version)| (id, version));
        self.log.unreadable(held);
        let before = held.map(|(id, _)| self.runtime.block_on(self.backend.read_model.get(id)).expect("readable"));
        let projector = ProjectorService::new(flaky, self.log.clone());
        let quarantine = InMemoryQuarantine::default();
        let results = self
            .runtime
            .block_on(futures::future::join_all(split.into_iter().map(|lane| deliver(&projector, &quarantine, lane))));
        self.log.fail_reads([]);
        for result in results {
            if let Err(error) = result {
                panic!("projection: {error}");
            }
        }
        let set_aside = self.runtime.block_on(quarantine.quarantined()).expect("readable");
        for record in &set_aside {
            let item = ItemId::from_stream_id(&record.stream_id);
            assert!(
                item.is_some_and(|item| self.poisoned.contains(&item) || Some(item) == newer),
                "a valid record was set aside: {record:?}"
            );
        }
        if let (Some((id, version)), Some(before)) = (held, before) {
            let row = self.runtime.block_on(self.backend.read_model.get(id)).expect("readable");
            assert_eq!(row, before, "item {id} moved past its version {version}, which this build cannot read");
            assert!(set_aside.iter().any(|r| r.stream_id == id.stream_id()), "the newer build's record is set aside");
            // The upgrade: the event reads now, and the redrive projects the item.
            self.log.unreadable(None);
            let redriven =
                self.runtime.block_on(redrive(&quarantine, self.log.as_ref(), self.backend.read_model.as_ref()));
            assert!(redriven.expect("the redrive runs").items >= 1);
        }
    }

    /// A projection and, at the same time, a rename or an in-place replay;
    /// then what the rename appended is projected too.
    fn overlap(&mut self, order: u64, lanes: bool, slot: usize, n: u8, replay: bool) {
        let (split, _) = self.pending(order, true, lanes, false);
        // Through a read model that yields at every call: the two interleave.
        let rows: Arc<dyn ReadModel> = Arc::new(Flaky::new(self.backend.read_model.clone(), 0, []));
        let projector = ProjectorService::new(rows.clone(), self.log.clone());
        let quarantine = InMemoryQuarantine::default();
        let (id, owner) = self.slots[slot].clone();
        let (caller, request) =
            (caller(&owner, Who::Owner), Request::Rename { id, name: name(n), description: None, if_match: None });
        let expected = self.reference.expect(&caller, &request, None);
        let in_place = ReplayService::new(
            self.backend.scan.clone(),
            Some(Arc::new(ReadModelTarget::new(rows, 4))),
            Arc::new(NoCheckpoints),
            Arc::new(()),
        );
        let (delivered, beside) = self.runtime.block_on(async {
            let deliveries =
                futures::future::join_all(split.into_iter().map(|lane| deliver(&projector, &quarantine, lane)));
            let beside = async {
                match replay {
                    true => Err(in_place.run(2).await.map(|_| ())),
                    false => Ok(self.send(&caller, &request, None).await),
                }
            };
            tokio::join!(deliveries, beside)
        });
        for result in delivered {
            if let Err(error) = result {
                panic!("projection: {error}");
            }
        }
        match beside {
            Ok(answer) => {
                assert!(
                    agrees(&expected, &answer),
                    "{request:?} while projecting: the rules say {expected:?}, got {answer:?}"
                );
                self.reference.commit(&caller, &request, None, &expected, None);
            }
            Err(replayed) => {
                assert_eq!(replayed.is_err(), !self.poisoned.is_empty(), "a replay beside projection: {replayed:?}")
            }
        }
        for record in self.runtime.block_on(quarantine.quarantined()).expect("readable") {
            let item = ItemId::from_stream_id(&record.stream_id);
            assert!(item.is_some_and(|item| self.poisoned.contains(&item)), "a valid record was set aside: {record:?}");
        }
        self.project(0, false, 0, &[], &[], false, false);
    }

    /// Rebuilds; `false` when it stopped at a record it cannot read (as it
    /// must while the log holds one).
    fn rebuild(&mut self, into_new: bool, after_scan: Option<AfterScan>, tamper: Option<usize>) -> bool {
        // With a record it cannot read in the log a rebuild stops, and would leave the edit.
        if let Some(slot) = tamper.filter(|_| self.poisoned.is_empty()) {
            let id = self.slots[slot].0;
            let row = self.runtime.block_on(self.backend.read_model.get(id)).expect("readable");
            if let Some(row) = row {
                let wrong = Item { name: format!("{} (edited by hand)", row.name), ..row };
                self.runtime.block_on(self.backend.read_model.repair(&wrong)).expect("writable");
            }
        }
        // The operator's clock, as the printed catch-up takes it.
        let started = Utc::now();
        let (target, writer): (Arc<dyn ReadModel>, Arc<dyn ReplayTarget>) = match (into_new, &self.backend.new_table) {
            (true, Some(new_table)) => new_table(),
            (true, None) => {
                let table: Arc<dyn ReadModel> = Arc::new(InMemoryReadModel::default());
                (table.clone(), Arc::new(ReadModelTarget::new(table, 4)))
            }
            (false, _) => {
                let table = self.backend.read_model.clone();
                (table.clone(), Arc::new(ReadModelTarget::new(table, 4)))
            }
        };
        // A rename between a page's read and its write, when the step says.
        let mid_scan = match &after_scan {
            Some(AfterScan::MidScan { slot, name: n }) => {
                let (id, owner) = self.slots[*slot].clone();
                Some((
                    caller(&owner, Who::Owner),
                    Request::Rename { id, name: name(*n), description: None, if_match: None },
                ))
            }
            _ => None,
        };
        let answered: Arc<std::sync::Mutex<Option<MidScanAnswer>>> = Arc::default();
        // The live projector applies the rename at once, before the rebuild
        // writes the page it read: into the table it writes (the old one).
        let live = ProjectorService::new(self.backend.read_model.clone(), self.backend.events.clone());
        let hook = mid_scan.as_ref().map(|(caller, request)| {
            let (changes, answered, events) = (self.changes.clone(), answered.clone(), self.backend.events.clone());
            let actor = Actor { subject: caller.subject.clone(), is_admin: false };
            let Request::Rename { id, name, .. } = request.clone() else { unreachable!("a rename") };
            let rename: futures::future::BoxFuture<'static, ()> = Box::pin(async move {
                let update = UpdateItem { name: Some(name), timestamp: None, description: None };
                let result = changes.update(&actor, id, update, None, None).await;
                let projected = match &result {
                    Ok(changed) if !changed.repeated => {
                        let stream = events.stream(id).await.expect("readable");
                        let new: Vec<Event> =
                            stream.into_iter().filter(|e| e.version == changed.item.version).collect();
                        live.project_batch(&new).await.failed.is_none().then_some(changed.item.version)
                    }
                    _ => None,
                };
                *answered.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some((result.into(), projected));
            });
            rename
        });
        let scan = Arc::new(HookedScan { inner: self.backend.scan.clone(), hook: std::sync::Mutex::new(hook) });
        let replay = ReplayService::new(scan, Some(writer), Arc::new(NoCheckpoints), Arc::new(()));
        let expected = mid_scan.as_ref().map(|(caller, request)| self.reference.expect(caller, request, None));
        let rebuilt = self.runtime.block_on(replay.run(3));
        let answer = answered.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let (Some((caller, request)), Some(expected), Some((answer, projected))) = (&mid_scan, &expected, &answer) {
            // Handed to the live projector already, if nothing was pending before it.
            if let (Request::Rename { id, .. }, Some(version)) = (request, projected)
                && self.projected.get(id).copied().unwrap_or(0) + 1 == *version
            {
                self.projected.insert(*id, *version);
            }
            assert!(
                agrees(expected, answer),
                "{request:?} during the scan: the rules say {expected:?}, got {answer:?}"
            );
            self.reference.commit(caller, request, None, expected, None);
        }
        match after_scan {
            Some(AfterScan::Rename { slot, name: n }) => {
                let (id, owner) = self.slots[slot].clone();
                self.exchange(
                    caller(&owner, Who::Owner),
                    Request::Rename { id, name: name(n), description: None, if_match: None },
                    None,
                );
            }
            Some(AfterScan::Import { name: n }) => self.import(n),
            Some(AfterScan::MidScan { .. }) | None => {}
        }
        if !self.poisoned.is_empty() {
            assert!(rebuilt.is_err(), "a rebuild went past a record it cannot read");
            return false;
        }
        rebuilt.expect("the rebuild runs");
        // Projected into the old table meanwhile.
        self.project(0, false, 0, &[], &[], false, false);
        if into_new {
            // The switch, then the catch-up into the now live table.
            self.backend.read_model = target.clone();
            let catch_up = ReplayService::new(
                self.backend.scan.clone(),
                Some(Arc::new(ReadModelTarget::new(target, 4))),
                Arc::new(NoCheckpoints),
                Arc::new(()),
            )
            .since(started);
            self.runtime.block_on(catch_up.run(2)).expect("the catch-up runs");
        }
        true
    }

    /// `items import`: an item created elsewhere a year ago, appended
    /// through the port as the import does, with its own time.
    fn import(&mut self, n: u8) {
        let owner = OWNERS[0];
        let id = ItemId(self.backend.ids.new_id());
        let created_at = self.clock.now() - chrono::TimeDelta::days(365);
        let event = Event {
            event_id: self.backend.ids.new_id(),
            item_id: id,
            version: 1,
            occurred_at: created_at,
            subject: owner.into(),
            payload: EventPayload::ItemCreated(items_domain::event::ItemCreated {
                name: name(n),
                timestamp: TIMESTAMP.into(),
                description: None,
            }),
        };
        self.runtime.block_on(self.backend.events.append(0, &[event])).expect("imported");
        let caller = caller(owner, Who::Owner);
        let request = Request::Create { name: name(n), description: None };
        let expected = self.reference.expect(&caller, &request, None);
        let given = Item {
            id,
            name: name(n),
            timestamp: TIMESTAMP.into(),
            created_by: owner.into(),
            created_at,
            version: 1,
            deleted: false,
            description: None,
        };
        self.reference.commit(&caller, &request, None, &expected, Some(&given));
        self.slots.push((id, owner.into()));
    }

    /// The read model, its listings and the history are the reference, and
    /// no row went back since the last quiescent point.
    fn converged(&mut self) {
        let mut seen = std::mem::take(&mut self.seen);
        self.runtime.block_on(async {
            let rows = &self.backend.read_model;
            for id in self.reference.ids() {
                let row = rows.get(id).await.expect("readable");
                let version = row.as_ref().map_or(0, |row| row.version);
                let before = seen.insert(id, version).unwrap_or(0);
                assert!(version >= before, "item {id}'s row went back from version {before} to {version}");
                assert_eq!(row.as_ref(), self.reference.current(id), "item {id}'s row is not the reference's");
            }
            for id in &self.poisoned {
                assert_eq!(rows.get(*id).await.expect("readable"), None, "a row made up for poisoned {id}");
            }
            let queries =
                QueryService::new(rows.clone(), Arc::new(crate::conformance::PlainCursors), self.clock.clone());
            let listed = |selection| {
                let queries = &queries;
                async move {
                    let (mut items, mut cursor) = (Vec::new(), None::<String>);
                    loop {
                        let page = queries.list(selection, Some(2), cursor.as_deref(), None).await.expect("listed");
                        items.extend(page.items);
                        match page.next_cursor {
                            Some(next) => cursor = Some(next),
                            None => return items,
                        }
                    }
                }
            };
            let mut all = listed(Selection::All).await;
            all.sort_by_key(|item| item.id);
            assert_eq!(all, self.reference.live(), "GET /items is not the reference's live items");
            for owner in OWNERS {
                let mine = listed(Selection::CreatedBy(owner)).await;
                assert_eq!(mine, self.reference.created_by(owner), "GET /items?createdBy={owner}");
            }
            let history = HistoryService::new(self.backend.events.clone());
            for id in self.reference.ids() {
                let expected = self.reference.history(id);
                let (mut entries, mut after) = (Vec::new(), 0);
                loop {
                    let page = history.history(id, Some(2), after).await.expect("readable").expect("a history");
                    entries.extend(page.entries);
                    match page.next {
                        Some(next) => after = next,
                        None => break,
                    }
                }
                let shown: Vec<_> = entries.iter().map(|e| (e.event_type, e.version, &e.subject, &e.changes)).collect();
                let wanted: Vec<_> = expected.iter().map(|e| (e.kind, e.version, &e.subject, &e.changes)).collect();
                assert_eq!(shown, wanted, "GET /items/{id}/events");
                let last = expected.len();
                for version in [1, last.div_ceil(2), last] {
                    let at = history.item_at(id, PointInTime::Version(version as u64), None).await.expect("readable");
                    assert_eq!(at.as_ref(), Some(&expected[version - 1].state), "GET /items/{id}?version={version}");
                }
            }
        });
        self.seen = seen;
    }
}

pub struct ModelTest<B>(std::marker::PhantomData<B>);

impl<B: MakeBackend> StateMachineTest for ModelTest<B> {
    type SystemUnderTest = System;
    type Reference = Model;

    fn init_test(_: &Counts) -> System {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let backend = B::make(&runtime);
        let clock = Arc::new(Ticking::default());
        let log = Arc::new(FaultyLog::new(backend.events.clone()));
        let create = CreateItemService::new(log.clone(), clock.clone(), backend.ids.clone());
        // Snapshots every 3 versions, so runs fold from them.
        let changes =
            Arc::new(ChangeItemService::new(log.clone(), clock.clone(), backend.ids.clone()).with_snapshot_every(3));
        System {
            runtime,
            backend,
            clock,
            create,
            changes,
            log,
            slots: Vec::new(),
            reference: Reference::default(),
            projected: HashMap::new(),
            keyed: Vec::new(),
            poisoned: HashSet::new(),
            seen: HashMap::new(),
        }
    }

    fn apply(mut system: System, _: &Counts, step: Step) -> System {
        match &step {
            Step::Create { .. } => {
                let (caller, request, key) = system.request(&step);
                let answer = system.exchange(caller, request, key);
                // Slots follow the generator's count: a repeat names its item
                // again, a refused create the last item.
                let slot = match answer {
                    Answer::Item { item, .. } => (item.id, item.created_by),
                    _ => system.slots.last().cloned().expect("a refused create follows another"),
                };
                system.slots.push(slot);
            }
            Step::Rename { .. } | Step::Delete { .. } => {
                let (caller, request, key) = system.request(&step);
                system.exchange(caller, request, key);
            }
            Step::Race { slot, names, second_deletes } => system.race(*slot, *names, *second_deletes),
            Step::Retry { request } => {
                let Sent { caller, request, key } = system.keyed[*request].clone();
                system.exchange(caller, request, Some(key));
            }
            Step::Project { order, duplicates, stale, failing, failing_history, lanes, newer_build } => {
                system.project(*order, *duplicates, *stale, failing, failing_history, *lanes, *newer_build);
                system.converged();
            }
            Step::Rebuild { into_new, after_scan, tamper } => {
                if system.rebuild(*into_new, after_scan.clone(), *tamper) {
                    system.converged();
                }
            }
            Step::Faulty { slot, name: n, after_write, key: k } => system.faulty(*slot, *n, *after_write, *k),
            Step::Feed => {
                match system.backend.feed.clone() {
                    Some(drain) => {
                        let kept = system.runtime.block_on(drain(system.backend.read_model.clone()));
                        for stream_id in kept {
                            let item = ItemId::from_stream_id(&stream_id);
                            assert!(
                                item.is_some_and(|item| system.poisoned.contains(&item)),
                                "the feed set aside a valid record of {stream_id}"
                            );
                        }
                    }
                    None => system.project(0, false, 0, &[], &[], false, false),
                }
                system.converged();
            }
            Step::Overlap { order, lanes, slot, name: n, replay } => {
                system.overlap(*order, *lanes, *slot, *n, *replay);
                system.converged();
            }
            Step::Poison => {
                let id = ItemId(system.backend.ids.new_id());
                let event = Event {
                    event_id: system.backend.ids.new_id(),
                    item_id: id,
                    version: 1,
                    occurred_at: system.clock.now(),
                    subject: "another build".into(),
                    payload: EventPayload::ItemUpdated(items_domain::event::ItemUpdated {
                        name: Some("never created".into()),
                        timestamp: None,
                        description: None,
                    }),
                };
                system.runtime.block_on(system.backend.events.append(0, &[event])).expect("appended");
                system.poisoned.insert(id);
            }
        }
        system
    }

    /// Nothing acknowledged is lost or doubled: each stream is exactly the
    /// reference's history of its item.
    fn check_invariants(system: &System, _: &Counts) {
        for id in system.reference.ids() {
            let stream = system.stream(id);
            let stored: Vec<_> = stream
                .iter()
                .map(|e| (e.payload.type_name(), e.version, e.subject.as_str(), e.payload.changes()))
                .collect();
            let expected: Vec<_> = system
                .reference
                .history(id)
                .iter()
                .map(|e| (e.kind, e.version, e.subject.as_str(), e.changes.clone()))
                .collect();
            assert_eq!(stored, expected, "item {id}: its stream in the log is not its expected history");
        }
        for id in &system.poisoned {
            assert_eq!(system.stream(*id).len(), 1, "poisoned {id}'s stream");
        }
    }
}

/// Seeds exploration found failing once (`scripts/explore` adds them): each
/// line `<backend> <seed> <cases>`, run before the fixed seed on every run.
const REGRESSIONS: &str = "model-regressions.txt";

/// Runs the model on backend `B`: first every regression seed recorded for
/// it, then `cases` runs of up to `steps` steps from `PROPTEST_RNG_SEED` when
/// set, else from `seed` (`ITEMS_MODEL_CASES` overrides `cases`).
pub fn run<B: MakeBackend>(cases: u32, steps: usize, seed: u64) {
    let backend = std::any::type_name::<B>().rsplit("::").next().unwrap_or_default();
    let recorded = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(REGRESSIONS));
    for line in recorded.unwrap_or_default().lines().filter(|line| !line.starts_with('#')) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if let [name, seed, cases] = fields[..]
            && name == backend
            && let (Ok(seed), Ok(cases)) = (seed.parse(), cases.parse())
        {
            run_seed::<B>(cases, steps, seed);
        }
    }
    let seed = std::env::var("PROPTEST_RNG_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(seed);
    let cases = std::env::var("ITEMS_MODEL_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(cases);
    run_seed::<B>(cases, steps, seed);
}

fn run_seed<B: MakeBackend>(cases: u32, steps: usize, seed: u64) {
    let backend = std::any::type_name::<B>().rsplit("::").next().unwrap_or_default();
    eprintln!("model-based test on {backend}: {cases} cases of up to {steps} steps, PROPTEST_RNG_SEED={seed}");
    let config = ProptestConfig {
        cases,
        rng_seed: proptest::test_runner::RngSeed::Fixed(seed),
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config.clone());
    let strategy = Model::sequential_strategy(1..steps);
    let result = runner.run(&strategy, |(initial, steps, seen)| {
        ModelTest::<B>::test_sequential(config.clone(), initial, steps, seen);
        Ok(())
    });
    if let Err(error) = result {
        panic!("{error}\nreplay with PROPTEST_RNG_SEED={seed} ITEMS_MODEL_CASES={cases}");
    }
}
