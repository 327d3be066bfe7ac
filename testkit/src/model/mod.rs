//! The event-sourcing guarantees as a model-based test (proptest state
//! machines), run on every backend like the conformance suite.
//!
//! The model is the fold of the log: random sequences of creates, renames and
//! deletes (by owners, strangers and admins, with and without `If-Match` and
//! `Idempotency-Key`), changes racing for one version, retries of keyed
//! requests, projections of the log in shuffled and duplicated order with
//! stale base reads and transient read-model failures, event-store failures
//! before and after a write (the ambiguous 503), records no projector can
//! apply (poison), and rebuilds (in place over a row edited by hand, and into
//! a new table with a change after the scan and a catch-up) go through the
//! real services, and after every step:
//!
//! - **nothing acknowledged is lost or doubled**: each item's stream holds
//!   exactly the events whose appends were answered, in dense versions, and
//!   folds to the state each answer gave;
//! - **one winner per version**: of two changes racing at one version with
//!   `If-Match`, exactly one is appended;
//! - **retries repeat**: a keyed request sent again gets its first answer;
//! - **every answer is documented**: a result or a rejection the API maps to
//!   a 4xx, never a store failure;
//! - at every quiescent point (after a projection or a rebuild) **the read
//!   model equals the fold of the log** (`replay::verify` is clean), and an
//!   item whose stream holds a poison record has no row made up for it;
//! - **a poison record is never skipped**: the projection sets it aside
//!   (only a poisoned stream's records may fail so) and a rebuild stops at it.
//!
//! A failure prints the minimal sequence of steps; `PROPTEST_RNG_SEED=<n>`
//! replays a run, and the backends' test files fix the seed and case count.
//!
//! One file: the model, its steps and its invariants are one state machine,
//! read together.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use items_domain::command::Actor;
use items_domain::command::{CreateItem, UpdateItem};
use items_domain::decide::Rejection;
use items_domain::idempotency::{IdempotencyKey, IdempotencyRecord};
use items_domain::memory::InMemoryReadModel;
use items_domain::ports::EventLogScan;
use items_domain::ports::{AppendError, Clock, EventStore, IdGenerator, Page, PageKey, ReadModel, StoreError, Upsert};
use items_domain::projection::fold_stream;
use items_domain::replay::{NoCheckpoints, ReadModelTarget, ReplayService, fold_states, verify};
use items_domain::service::{
    ChangeError, ChangeItemService, Changed, CreateError, CreateItemService, ProjectorService,
};
use items_domain::{Event, Item, ItemId};
use proptest::prelude::*;
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest};

/// What a model run needs of a backend.
pub struct ModelBackend {
    pub events: Arc<dyn EventStore>,
    pub scan: Arc<dyn EventLogScan>,
    pub read_model: Arc<dyn ReadModel>,
    pub ids: Arc<dyn IdGenerator>,
}

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

/// One step of a run. Slots name items in the order they were created.
#[derive(Debug, Clone)]
pub enum Step {
    Create {
        name: u8,
        key: Option<u8>,
    },
    Rename {
        slot: usize,
        name: u8,
        who: Who,
        if_match: bool,
        key: Option<u8>,
    },
    Delete {
        slot: usize,
        who: Who,
        if_match: bool,
        key: Option<u8>,
    },
    /// Two changes at the item's current version, sent at once with `If-Match`.
    Race {
        slot: usize,
        names: (u8, u8),
        second_deletes: bool,
    },
    /// An earlier keyed request, sent again as it was.
    Retry {
        request: usize,
    },
    /// The projector applies what is not projected yet.
    Project {
        order: u64,
        duplicates: bool,
        stale_reads: bool,
        fail_at: Option<u8>,
    },
    /// A rebuild of the read model: in place, or into a new table with a
    /// change after the scan, the switch, then the catch-up. `tamper` first
    /// makes an item's row wrong at its own version (a hand edit, a
    /// projection bug fixed since): the rebuild must repair it.
    Rebuild {
        into_new: bool,
        change_after_scan: Option<(usize, u8)>,
        tamper: Option<usize>,
    },
    /// A rename while the event store fails: before the write (nothing
    /// stored), or after it (stored, but the answer is lost: the 503 of an
    /// ambiguous write, which a keyed retry must then answer as stored).
    Faulty {
        slot: usize,
        name: u8,
        after_write: bool,
        key: Option<u8>,
    },
    /// A record no projector can apply lands in the log (another build's
    /// event: here, an update of an item that was never created).
    Poison,
}

/// The reference: only what the generator needs (how many items and keyed
/// requests exist); the expected state itself is the fold of the log.
#[derive(Debug, Clone, Default)]
pub struct Reference {
    items: usize,
    keyed: usize,
}

pub struct Model;

fn who() -> impl Strategy<Value = Who> {
    prop_oneof![4 => Just(Who::Owner), 1 => Just(Who::Stranger), 1 => Just(Who::Admin)]
}

impl ReferenceStateMachine for Model {
    type State = Reference;
    type Transition = Step;

    fn init_state() -> BoxedStrategy<Reference> {
        Just(Reference::default()).boxed()
    }

    fn transitions(state: &Reference) -> BoxedStrategy<Step> {
        let key = proptest::option::of(0u8..4);
        let create = (0u8..4, key.clone()).prop_map(|(name, key)| Step::Create { name, key });
        if state.items == 0 {
            return create.boxed();
        }
        let slot = 0..state.items;
        let rename = (slot.clone(), 0u8..4, who(), any::<bool>(), key.clone())
            .prop_map(|(slot, name, who, if_match, key)| Step::Rename { slot, name, who, if_match, key });
        let delete = (slot.clone(), who(), any::<bool>(), key).prop_map(|(slot, who, if_match, key)| Step::Delete {
            slot,
            who,
            if_match,
            key,
        });
        let race = (slot.clone(), (0u8..4, 0u8..4), any::<bool>())
            .prop_map(|(slot, names, second_deletes)| Step::Race { slot, names, second_deletes });
        let project = (any::<u64>(), any::<bool>(), any::<bool>(), proptest::option::of(0u8..6)).prop_map(
            |(order, duplicates, stale_reads, fail_at)| Step::Project { order, duplicates, stale_reads, fail_at },
        );
        let rebuild = (any::<bool>(), proptest::option::of((slot.clone(), 0u8..4)), proptest::option::of(slot.clone()))
            .prop_map(|(into_new, change_after_scan, tamper)| Step::Rebuild { into_new, change_after_scan, tamper });
        let faulty = (slot, 0u8..4, any::<bool>(), proptest::option::of(0u8..4))
            .prop_map(|(slot, name, after_write, key)| Step::Faulty { slot, name, after_write, key });
        let retry = (0..state.keyed.max(1)).prop_map(|request| Step::Retry { request });
        let poison = Just(Step::Poison);
        if state.keyed == 0 {
            prop_oneof![3 => create, 4 => rename, 2 => delete, 2 => race, 3 => project, 2 => rebuild, 1 => faulty, 1 => poison]
                .boxed()
        } else {
            prop_oneof![
                3 => create, 4 => rename, 2 => delete, 2 => race, 2 => retry, 3 => project, 2 => rebuild, 1 => faulty,
                1 => poison
            ]
            .boxed()
        }
    }

    fn preconditions(state: &Reference, step: &Step) -> bool {
        match step {
            Step::Create { .. } | Step::Project { .. } | Step::Poison => true,
            Step::Rename { slot, .. }
            | Step::Delete { slot, .. }
            | Step::Race { slot, .. }
            | Step::Faulty { slot, .. } => *slot < state.items,
            Step::Rebuild { change_after_scan, tamper, .. } => {
                change_after_scan.is_none_or(|(slot, _)| slot < state.items)
                    && tamper.is_none_or(|slot| slot < state.items)
            }
            Step::Retry { request } => *request < state.keyed,
        }
    }

    fn apply(mut state: Reference, step: &Step) -> Reference {
        let keyed = match step {
            Step::Create { key, .. }
            | Step::Rename { key, .. }
            | Step::Delete { key, .. }
            | Step::Faulty { key, .. } => key.is_some(),
            _ => false,
        };
        if let Step::Create { .. } = step {
            state.items += 1;
        }
        state.keyed += usize::from(keyed);
        state
    }
}

/// A clock that moves 1 ms per reading, so a catch-up's `since` separates
/// events written before and after it.
#[derive(Debug, Default)]
struct Ticking(AtomicU64);

impl Clock for Ticking {
    fn now(&self) -> DateTime<Utc> {
        let start = items_domain::testing::at("2026-01-02T03:04:05.000Z");
        start + chrono::TimeDelta::milliseconds(self.0.fetch_add(1, Ordering::SeqCst) as i64)
    }

    fn instant(&self) -> std::time::Instant {
        std::time::Instant::now()
    }
}

/// The read model the projector writes through: it can answer `get` with
/// the value before the last write (a lagging replica) and fail the n-th
/// write (a transient outage).
struct Flaky {
    inner: Arc<dyn ReadModel>,
    stale: bool,
    previous: Mutex<HashMap<ItemId, Option<Item>>>,
    fail_at: Option<usize>,
    writes: AtomicUsize,
}

#[async_trait]
impl ReadModel for Flaky {
    async fn upsert_if_newer(&self, item: &Item) -> Result<Upsert, StoreError> {
        if self.fail_at == Some(self.writes.fetch_add(1, Ordering::SeqCst)) {
            return Err(StoreError::Unavailable("injected read-model outage".into()));
        }
        let before = self.inner.get(item.id).await?;
        let upsert = self.inner.upsert_if_newer(item).await?;
        if upsert == Upsert::Applied {
            self.previous.lock().unwrap_or_else(PoisonError::into_inner).insert(item.id, before);
        }
        Ok(upsert)
    }

    async fn repair(&self, item: &Item) -> Result<Upsert, StoreError> {
        self.inner.repair(item).await
    }

    async fn get(&self, id: ItemId) -> Result<Option<Item>, StoreError> {
        if self.stale
            && let Some(previous) = self.previous.lock().unwrap_or_else(PoisonError::into_inner).get(&id)
        {
            return Ok(previous.clone());
        }
        self.inner.get(id).await
    }

    async fn list_page(&self, limit: Option<u32>, after: Option<&PageKey>) -> Result<Page, StoreError> {
        self.inner.list_page(limit, after).await
    }

    async fn list_by_creator(
        &self,
        creator: &str,
        limit: Option<u32>,
        after: Option<&PageKey>,
    ) -> Result<Page, StoreError> {
        self.inner.list_by_creator(creator, limit, after).await
    }
}

/// Where the next write to the event log fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Before it reaches the store: nothing is written.
    BeforeWrite,
    /// After the store wrote it: the answer is lost.
    AfterWrite,
}

/// The event log the services write through, failing one write when told.
struct FaultyLog {
    inner: Arc<dyn EventStore>,
    next: Mutex<Option<Fault>>,
}

impl FaultyLog {
    fn fail_next(&self, fault: Fault) {
        *self.next.lock().unwrap_or_else(PoisonError::into_inner) = Some(fault);
    }

    async fn write(
        &self,
        write: impl std::future::Future<Output = Result<(), AppendError>>,
    ) -> Result<(), AppendError> {
        let fault = self.next.lock().unwrap_or_else(PoisonError::into_inner).take();
        let outage = || AppendError::Store(StoreError::Unavailable("injected event-store outage".into()));
        match fault {
            Some(Fault::BeforeWrite) => Err(outage()),
            Some(Fault::AfterWrite) => write.await.and_then(|()| Err(outage())),
            None => write.await,
        }
    }
}

#[async_trait]
impl EventStore for FaultyLog {
    async fn append(&self, expected_version: u64, events: &[Event]) -> Result<(), AppendError> {
        self.write(self.inner.append(expected_version, events)).await
    }

    async fn stream_after(&self, item_id: ItemId, after: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
        self.inner.stream_after(item_id, after, limit).await
    }

    async fn snapshot(&self, item_id: ItemId) -> Result<Option<items_domain::ports::Snapshot>, StoreError> {
        self.inner.snapshot(item_id).await
    }

    async fn save_snapshot(&self, snapshot: &items_domain::ports::Snapshot) -> Result<(), StoreError> {
        self.inner.save_snapshot(snapshot).await
    }

    async fn append_idempotent(
        &self,
        record: &IdempotencyRecord,
        expected_version: u64,
        events: &[Event],
        now: DateTime<Utc>,
    ) -> Result<(), AppendError> {
        self.write(self.inner.append_idempotent(record, expected_version, events, now)).await
    }

    async fn idempotency_record(
        &self,
        subject: &str,
        key: &IdempotencyKey,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.inner.idempotency_record(subject, key).await
    }
}

/// A keyed request and its first answer.
#[derive(Clone)]
struct Sent {
    step: Step,
    subject: String,
    /// The `If-Match` it sent.
    expected: Option<u64>,
    answer: Option<Item>,
}

pub struct System {
    runtime: tokio::runtime::Runtime,
    backend: ModelBackend,
    clock: Arc<Ticking>,
    create: CreateItemService,
    changes: ChangeItemService,
    items: Vec<(ItemId, String)>,
    /// Acknowledged appends per item: the item each one answered with.
    acknowledged: HashMap<ItemId, Vec<Item>>,
    /// How far each item's stream was handed to the projector.
    projected: HashMap<ItemId, u64>,
    keyed: Vec<Sent>,
    log: Arc<FaultyLog>,
    /// Items whose stream holds a record no projector can apply.
    poisoned: Vec<ItemId>,
}

fn subject(slot_owner: &str, who: Who) -> Actor {
    match who {
        Who::Owner => Actor { subject: slot_owner.to_owned(), is_admin: false },
        Who::Stranger => Actor { subject: "stranger".into(), is_admin: false },
        Who::Admin => Actor { subject: "admin".into(), is_admin: true },
    }
}

fn key(n: Option<u8>) -> Option<IdempotencyKey> {
    n.map(|n| IdempotencyKey::parse(&format!("key-{n}")).expect("valid key"))
}

fn name(n: u8) -> String {
    format!("name {n}")
}

/// Every outcome a change may have without a failing store: each is an
/// answer the API documents (200/204, 403, 404, 409, 412, 422).
fn documented(result: &Result<Changed, ChangeError>) {
    match result {
        Ok(_)
        | Err(ChangeError::Rejected(Rejection::NotFound | Rejection::NotOwner | Rejection::VersionMismatch { .. }))
        | Err(ChangeError::Conflict { .. } | ChangeError::KeyReused) => {}
        Err(other) => panic!("an undocumented answer: {other:?}"),
    }
}

impl System {
    fn stream(&self, id: ItemId) -> Vec<Event> {
        self.runtime.block_on(self.backend.events.stream(id)).expect("the log is readable")
    }

    /// Records an acknowledged change: a new version, unless it was a repeat
    /// or changed nothing.
    fn acknowledge(&mut self, id: ItemId, changed: &Changed) {
        let acknowledged = self.acknowledged.entry(id).or_default();
        let newest = acknowledged.last().map_or(0, |item| item.version);
        if !changed.repeated && changed.item.version > newest {
            assert_eq!(changed.item.version, newest + 1, "a change moves one version");
            acknowledged.push(changed.item.clone());
        }
    }

    /// Sends a change with `If-Match` as the step says (the item's current
    /// version), and remembers a keyed one for retries.
    fn change(&mut self, step: &Step) -> Result<Changed, ChangeError> {
        let (Step::Rename { slot, if_match, key, .. } | Step::Delete { slot, if_match, key, .. }) = step else {
            unreachable!("only changes")
        };
        let id = self.items[*slot].0;
        let expected = if_match.then(|| self.acknowledged.get(&id).and_then(|a| a.last()).map_or(0, |i| i.version));
        let result = self.send(step, expected);
        if key.is_some() {
            let subject = self.actor(step).subject;
            let answer = result.as_ref().ok().map(|c| c.item.clone());
            self.keyed.push(Sent { step: step.clone(), subject, expected, answer });
        }
        result
    }

    fn actor(&self, step: &Step) -> Actor {
        let (Step::Rename { slot, who, .. } | Step::Delete { slot, who, .. }) = step else {
            unreachable!("only changes")
        };
        subject(&self.items[*slot].1, *who)
    }

    fn send(&mut self, step: &Step, expected: Option<u64>) -> Result<Changed, ChangeError> {
        let actor = self.actor(step);
        let result = self.runtime.block_on(async {
            match step {
                Step::Rename { slot, name: n, key: k, .. } => {
                    let update = UpdateItem { name: Some(name(*n)), timestamp: None };
                    self.changes.update(&actor, self.items[*slot].0, update, expected, key(*k).as_ref()).await
                }
                Step::Delete { slot, key: k, .. } => {
                    self.changes.delete(&actor, self.items[*slot].0, expected, key(*k).as_ref()).await
                }
                _ => unreachable!("only changes"),
            }
        });
        documented(&result);
        if let (Ok(changed), Step::Rename { slot, .. } | Step::Delete { slot, .. }) = (&result, step) {
            let id = self.items[*slot].0;
            self.acknowledge(id, changed);
        }
        result
    }

    fn project(&mut self, order: u64, duplicates: bool, stale: bool, fail_at: Option<u8>) {
        let mut pending: Vec<Event> = Vec::new();
        let poisoned = self.poisoned.iter().map(|id| (*id, String::new()));
        for (id, _) in self.items.clone().into_iter().chain(poisoned) {
            let from = self.projected.get(&id).copied().unwrap_or(0);
            let stream = self.stream(id);
            self.projected.insert(id, stream.len() as u64);
            pending.extend(stream.into_iter().filter(|e| e.version > from));
        }
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
        let flaky = Arc::new(Flaky {
            inner: self.backend.read_model.clone(),
            stale,
            previous: Mutex::default(),
            fail_at: fail_at.map(usize::from),
            writes: AtomicUsize::new(0),
        });
        let projector = ProjectorService::new(flaky, self.backend.events.clone());
        // Delivered as an event source mapping does: from the failed event
        // on; a poison record (after its attempts) set aside, never applied.
        let mut rest = pending.as_slice();
        let mut deliveries = 0;
        while !rest.is_empty() {
            let outcome = self.runtime.block_on(projector.project_batch(rest));
            match outcome.failed {
                None => break,
                Some((index, StoreError::Unavailable(_))) => rest = &rest[index..],
                Some((index, poison)) => {
                    let item_id = rest[index].item_id;
                    assert!(self.poisoned.contains(&item_id), "a valid stream made a poison record: {poison}");
                    rest = &rest[index + 1..];
                }
            }
            deliveries += 1;
            assert!(deliveries < 10 + pending.len(), "the projection never got through");
        }
    }

    /// Rebuilds; `false` when it stopped at a record it cannot read (as it
    /// must while the log holds one).
    fn rebuild(&mut self, into_new: bool, change_after_scan: Option<(usize, u8)>, tamper: Option<usize>) -> bool {
        // With a record it cannot read in the log a rebuild stops, and would leave the edit.
        if let Some(slot) = tamper.filter(|_| self.poisoned.is_empty()) {
            let id = self.items[slot].0;
            let row = self.runtime.block_on(self.backend.read_model.get(id)).expect("readable");
            if let Some(row) = row {
                let wrong = Item { name: format!("{} (edited by hand)", row.name), ..row };
                self.runtime.block_on(self.backend.read_model.repair(&wrong)).expect("writable");
            }
        }
        let started = self.clock.now();
        let target: Arc<dyn ReadModel> =
            if into_new { Arc::new(InMemoryReadModel::default()) } else { self.backend.read_model.clone() };
        let replay = ReplayService::new(
            self.backend.scan.clone(),
            Some(Arc::new(ReadModelTarget::new(target.clone(), 4))),
            Arc::new(NoCheckpoints),
            Arc::new(()),
        );
        let rebuilt = self.runtime.block_on(replay.run(3));
        if !self.poisoned.is_empty() {
            assert!(rebuilt.is_err(), "a rebuild went past a record it cannot read");
            return false;
        }
        rebuilt.expect("the rebuild runs");
        if let Some((slot, n)) = change_after_scan {
            // Written after the scan passed the item, projected into the old table.
            let step = Step::Rename { slot, name: n, who: Who::Owner, if_match: false, key: None };
            let _ = self.change(&step);
            self.project(0, false, false, None);
        }
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

    /// The read model is the fold of the log.
    fn converged(&self) {
        let mut log = Vec::new();
        for (id, _) in &self.items {
            log.extend(self.stream(*id));
        }
        let expected = fold_states(&log);
        let mut rows = Vec::new();
        let mut after = None;
        loop {
            let page =
                self.runtime.block_on(self.backend.read_model.list_page(Some(100), after.as_ref())).expect("readable");
            rows.extend(page.items);
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        let report = verify(&expected, rows);
        assert!(report.is_clean(), "the read model is not the fold of the log: {report:?}");
    }
}

pub struct ModelTest<B>(std::marker::PhantomData<B>);

impl<B: MakeBackend> StateMachineTest for ModelTest<B> {
    type SystemUnderTest = System;
    type Reference = Model;

    fn init_test(_: &Reference) -> System {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let backend = B::make(&runtime);
        let clock = Arc::new(Ticking::default());
        let log = Arc::new(FaultyLog { inner: backend.events.clone(), next: Mutex::default() });
        let create = CreateItemService::new(log.clone(), clock.clone(), backend.ids.clone());
        // Snapshots every 3 versions, so runs fold from them.
        let changes = ChangeItemService::new(log.clone(), clock.clone(), backend.ids.clone()).with_snapshot_every(3);
        System {
            runtime,
            backend,
            clock,
            create,
            changes,
            items: Vec::new(),
            acknowledged: HashMap::new(),
            projected: HashMap::new(),
            keyed: Vec::new(),
            log,
            poisoned: Vec::new(),
        }
    }

    fn apply(mut system: System, _: &Reference, step: Step) -> System {
        match &step {
            Step::Create { name: n, key: key_n } => {
                let owner = format!("owner-{}", system.items.len() % 3);
                let command = CreateItem { name: name(*n), timestamp: "t".into() };
                let key = key(*key_n);
                let result = system.runtime.block_on(async {
                    match &key {
                        Some(key) => {
                            system.create.create_idempotent(&owner, command, key).await.map(|c| c.item().clone())
                        }
                        None => system.create.create(&owner, command).await,
                    }
                });
                let item = match result {
                    Ok(item) => Some(item),
                    Err(CreateError::KeyReused) => None,
                    Err(other) => panic!("an undocumented answer to a create: {other:?}"),
                };
                // Slots follow the reference's count: a repeat names its item
                // again, a refused create the last item (or none).
                let known = |id: ItemId| system.items.iter().find(|(known, _)| *known == id).cloned();
                let slot = match &item {
                    Some(item) => {
                        system.acknowledged.entry(item.id).or_insert_with(|| vec![item.clone()]);
                        known(item.id).unwrap_or((item.id, owner.clone()))
                    }
                    None => system.items.last().cloned().unwrap_or((ItemId(uuid::Uuid::nil()), owner.clone())),
                };
                system.items.push(slot);
                if key.is_some() {
                    system.keyed.push(Sent { step: step.clone(), subject: owner, expected: None, answer: item });
                }
            }
            Step::Rename { .. } | Step::Delete { .. } => {
                let _ = system.change(&step);
            }
            Step::Race { slot, names, second_deletes } => {
                let (id, owner) = system.items[*slot].clone();
                let version = system.acknowledged.get(&id).and_then(|a| a.last()).map(|i| (i.version, i.deleted));
                let actor = Actor { subject: owner, is_admin: false };
                let (first, second) = system.runtime.block_on(async {
                    let rename = |n: u8| UpdateItem { name: Some(name(n)), timestamp: None };
                    let expected = version.map(|(v, _)| v);
                    let a = system.changes.update(&actor, id, rename(names.0), expected, None);
                    if *second_deletes {
                        tokio::join!(a, system.changes.delete(&actor, id, expected, None))
                    } else {
                        tokio::join!(a, system.changes.update(&actor, id, rename(names.1), expected, None))
                    }
                });
                documented(&first);
                documented(&second);
                let appended = [&first, &second]
                    .iter()
                    .filter(|r| r.as_ref().is_ok_and(|c| version.is_some_and(|(v, _)| c.item.version == v + 1)))
                    .count();
                let live = version.is_some_and(|(_, deleted)| !deleted);
                let both_noop = names.0 == names.1
                    && !second_deletes
                    && system.stream(id).len() as u64 == version.map_or(0, |(v, _)| v);
                if live && !both_noop {
                    assert_eq!(appended, 1, "exactly one of two changes at one version wins: {first:?} {second:?}");
                }
                for changed in [first, second].into_iter().flatten() {
                    system.acknowledge(id, &changed);
                }
            }
            Step::Retry { request } => {
                let sent = system.keyed[*request].clone();
                match &sent.step {
                    Step::Create { name: n, key: key_n } => {
                        let command = CreateItem { name: name(*n), timestamp: "t".into() };
                        let key = key(*key_n).expect("keyed");
                        let again =
                            system.runtime.block_on(system.create.create_idempotent(&sent.subject, command, &key));
                        if let Some(first) = &sent.answer {
                            match again {
                                Ok(items_domain::service::Created::Repeated(item)) => assert_eq!(&item, first),
                                other => panic!("a retried create was not repeated: {other:?}"),
                            }
                        }
                    }
                    change @ (Step::Rename { .. } | Step::Delete { .. }) => {
                        let again = system.send(change, sent.expected);
                        if let Some(first) = &sent.answer {
                            match again {
                                Ok(changed) => assert_eq!((&changed.item, changed.repeated), (first, true)),
                                other => panic!("a retried change was not repeated: {other:?}"),
                            }
                        }
                    }
                    _ => unreachable!("only keyed requests are sent again"),
                }
            }
            Step::Project { order, duplicates, stale_reads, fail_at } => {
                system.project(*order, *duplicates, *stale_reads, *fail_at);
                system.converged();
            }
            Step::Rebuild { into_new, change_after_scan, tamper } => {
                if system.rebuild(*into_new, *change_after_scan, *tamper) {
                    // Everything is projected now: the next projection starts after it.
                    for (id, _) in system.items.clone() {
                        let head = system.stream(id).len() as u64;
                        system.projected.insert(id, head);
                    }
                    system.converged();
                }
            }
            Step::Faulty { slot, name: n, after_write, key: k } => {
                let id = system.items[*slot].0;
                let before = system.stream(id);
                let fault = if *after_write { Fault::AfterWrite } else { Fault::BeforeWrite };
                system.log.fail_next(fault);
                let actor = Actor { subject: system.items[*slot].1.clone(), is_admin: false };
                let update = UpdateItem { name: Some(name(*n)), timestamp: None };
                let result = system.runtime.block_on(system.changes.update(&actor, id, update, None, key(*k).as_ref()));
                // The fault fires only if the change got as far as a write.
                let wrote = system.log.next.lock().unwrap_or_else(PoisonError::into_inner).take().is_none();
                let after = system.stream(id);
                let stored = match (&result, wrote) {
                    (Err(ChangeError::Store(StoreError::Unavailable(_))), true) => match fault {
                        Fault::BeforeWrite => {
                            assert_eq!(after.len(), before.len(), "a failed write stored nothing");
                            None
                        }
                        Fault::AfterWrite => {
                            // The write landed (a keyed change of nothing writes its record only).
                            let grew = after.len() - before.len();
                            assert!(grew == 1 || (grew == 0 && k.is_some()), "the write landed, its answer was lost");
                            let item = fold_stream(&after).expect("a dense stream").expect("an item");
                            system.acknowledge(id, &Changed { item: item.clone(), repeated: false });
                            Some(item)
                        }
                    },
                    (other, false) => {
                        // Refused, or nothing to change: answered as usual.
                        documented(other);
                        if let Ok(changed) = other {
                            system.acknowledge(id, changed);
                        }
                        other.as_ref().ok().map(|changed| changed.item.clone())
                    }
                    (other, true) => panic!("a failing event store gave {other:?}, not a 503"),
                };
                if k.is_some() {
                    // A retry must answer as the stored write (when it landed).
                    let step = Step::Rename { slot: *slot, name: *n, who: Who::Owner, if_match: false, key: *k };
                    system.keyed.push(Sent { step, subject: actor.subject, expected: None, answer: stored });
                }
            }
            Step::Poison => {
                let id = system.backend.ids.new_id();
                let event = Event {
                    event_id: system.backend.ids.new_id(),
                    item_id: ItemId(id),
                    version: 1,
                    occurred_at: system.clock.now(),
                    subject: "another build".into(),
                    payload: items_domain::EventPayload::ItemUpdated(items_domain::event::ItemUpdated {
                        name: Some("never created".into()),
                        timestamp: None,
                    }),
                };
                system.runtime.block_on(system.backend.events.append(0, &[event])).expect("appended");
                system.poisoned.push(ItemId(id));
            }
        }
        system
    }

    /// Nothing acknowledged is lost or doubled: each stream is exactly the
    /// acknowledged appends, and folds to what each answer said.
    fn check_invariants(system: &System, _: &Reference) {
        for (id, acknowledged) in &system.acknowledged {
            let stream = system.stream(*id);
            assert_eq!(stream.len(), acknowledged.len(), "item {id}: acknowledged appends vs. its stream");
            for answered in acknowledged {
                let prefix = &stream[..answered.version as usize];
                let folded = fold_stream(prefix).expect("a dense stream").expect("an item");
                assert_eq!(&folded, answered, "item {id} at version {}", answered.version);
            }
        }
    }
}

/// Runs the model on backend `B`: `cases` runs of up to `steps` steps, from
/// `PROPTEST_RNG_SEED` when set, else from `seed`.
pub fn run<B: MakeBackend>(cases: u32, steps: usize, seed: u64) {
    let seed = std::env::var("PROPTEST_RNG_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(seed);
    eprintln!("model-based test: {cases} cases of up to {steps} steps, PROPTEST_RNG_SEED={seed}");
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
        panic!("{error}\nreplay with PROPTEST_RNG_SEED={seed}");
    }
}
