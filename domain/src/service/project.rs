//! The projector: events applied to the read model, version-guarded.

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt;

use crate::event::{Event, EventPayload, ItemId};
use crate::item::Item;
use crate::ports::{EventStore, ReadModel, StoreError, Upsert};
use crate::projection::{self, Outcome};

/// Items of a batch folded at once (their rows read at once), by default.
pub const DEFAULT_CONCURRENCY: usize = 100;

/// One item's events of a batch, folded onto its row.
#[derive(Default)]
struct Fold {
    /// The row, then each state the events folded it to: written when an
    /// event changed it (`first_change`).
    state: Option<Item>,
    /// Events that changed the state, and the first of them.
    applied: usize,
    first_change: Option<usize>,
    already_newer: usize,
    /// The event that could not be folded, and why; the item's later events
    /// were not.
    failed: Option<(usize, StoreError)>,
}

/// What a batch did. An item's events after its failure are not attempted;
/// other items' events may have been applied, before or after the failure
/// in the batch: the stream source retries from the failed one, and the
/// version guard makes their second application change nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BatchOutcome {
    pub applied: usize,
    pub already_newer: usize,
    /// Index of the first event in batch order that could not be applied,
    /// and why.
    pub failed: Option<(usize, StoreError)>,
    /// Every item's first event that could not be applied, in batch order
    /// (`failed` is the first of them): a handler sets aside the poison ones.
    pub failures: Vec<(usize, StoreError)>,
}

/// The projector: applies events to the read model.
pub struct ProjectorService {
    read_model: Arc<dyn ReadModel>,
    /// Where an item's stream is read when an event does not follow on from
    /// the read model's state (a delivery out of order, or a lost write).
    history: Arc<dyn EventStore>,
    concurrency: usize,
    reads: crate::event::EventSchemas,
}

impl ProjectorService {
    /// Projects onto `read_model`, folding an item's stream from `history`
    /// when an event needs the state right before it and the read model is
    /// further behind.
    pub fn new(read_model: Arc<dyn ReadModel>, history: Arc<dyn EventStore>) -> Self {
        Self { read_model, history, concurrency: DEFAULT_CONCURRENCY, reads: crate::event::EventSchemas::CURRENT }
    }

    /// Reads delivered records and item histories as code of the schema set
    /// `reads` does: the projector of an older release, for the tests of a
    /// mixed-version deploy (production code always reads
    /// [`EventSchemas::CURRENT`](crate::event::EventSchemas::CURRENT)).
    pub fn reading(mut self, reads: crate::event::EventSchemas) -> Self {
        self.reads = reads;
        self
    }

    /// The event schemas delivered records are read with.
    pub fn reads(&self) -> &crate::event::EventSchemas {
        &self.reads
    }

    /// How many items of a batch are applied at once (1: one event after
    /// another in batch order, as before items were applied concurrently).
    pub fn with_concurrency(mut self, items: usize) -> Self {
        self.concurrency = items.max(1);
        self
    }

    /// Applies one event. Idempotent: the read model's write is version-guarded.
    pub async fn apply(&self, event: &Event) -> Result<Upsert, StoreError> {
        // ItemCreated holds the whole state, so no read is needed first.
        let current = match event.payload {
            EventPayload::ItemCreated(_) => None,
            _ => self.read_model.get(event.item_id).await?,
        };
        match projection::evolve(current.as_ref(), event) {
            Outcome::Apply(item) => self.read_model.upsert_if_newer(&item).await,
            Outcome::AlreadyNewer => Ok(Upsert::AlreadyNewer),
            Outcome::NeedsHistory => self.read_model.upsert_if_newer(&self.state_from_history(event).await?).await,
        }
    }

    /// Applies a batch: each item's events folded in batch order onto its
    /// row (in batch order: an event that does not follow on from the state
    /// folds the item's stream instead, so any order converges), items at once,
    /// then every changed row written in one call
    /// ([`ReadModel::upsert_all_if_newer`]). Reports the first failure in
    /// batch order, from which the stream source retries: an item's event
    /// that cannot be folded, or the first event of an item whose write
    /// failed.
    pub async fn project_batch(&self, events: &[Event]) -> BatchOutcome {
        if self.concurrency == 1 {
            // One event after another in batch order, stopping at the first failure.
            return self.project_stream(events, (0..events.len()).collect()).await;
        }
        let mut streams: Vec<Vec<usize>> = Vec::new();
        let mut stream_of: HashMap<ItemId, usize> = HashMap::new();
        for (index, event) in events.iter().enumerate() {
            let stream = *stream_of.entry(event.item_id).or_insert_with(|| {
                streams.push(Vec::new());
                streams.len() - 1
            });
            streams[stream].push(index);
        }
        let folds: Vec<Fold> = futures::stream::iter(streams)
            .map(|indices| self.fold(events, indices))
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        let (changed, states): (Vec<&Fold>, Vec<Item>) = folds
            .iter()
            .filter(|fold| fold.first_change.is_some())
            .filter_map(|fold| Some((fold, fold.state.clone()?)))
            .unzip();
        let written = if states.is_empty() { Vec::new() } else { self.read_model.upsert_all_if_newer(&states).await };
        let mut outcome = BatchOutcome::default();
        let mut failures: Vec<(usize, StoreError)> = Vec::new();
        for fold in &folds {
            outcome.already_newer += fold.already_newer;
            failures.extend(fold.failed.clone());
        }
        for (fold, result) in changed.into_iter().zip(written) {
            match result {
                Ok(Upsert::Applied) => outcome.applied += fold.applied,
                Ok(Upsert::AlreadyNewer) => outcome.already_newer += fold.applied,
                Err(error) => failures.extend(fold.first_change.map(|index| (index, error))),
            }
        }
        failures.sort_by_key(|(index, _)| *index);
        outcome.failed = failures.first().cloned();
        outcome.failures = failures;
        outcome
    }

    /// One item's events of a batch (`indices`, in batch order) folded onto
    /// its row, up to the first that cannot be.
    async fn fold(&self, events: &[Event], indices: Vec<usize>) -> Fold {
        let mut fold = Fold::default();
        // ItemCreated holds the whole state, so no read is needed first.
        fold.state = match events[indices[0]].payload {
            EventPayload::ItemCreated(_) => None,
            _ => match self.read_model.get(events[indices[0]].item_id).await {
                Ok(row) => row,
                Err(error) => {
                    fold.failed = Some((indices[0], error));
                    return fold;
                }
            },
        };
        for index in indices {
            let event = &events[index];
            let next = match projection::evolve(fold.state.as_ref(), event) {
                Outcome::Apply(item) => Ok(Some(item)),
                Outcome::AlreadyNewer => Ok(None),
                Outcome::NeedsHistory => self.state_from_history(event).await.map(Some),
            };
            match next {
                Ok(Some(item)) => {
                    fold.state = Some(item);
                    fold.applied += 1;
                    fold.first_change.get_or_insert(index);
                }
                Ok(None) => fold.already_newer += 1,
                Err(error) => {
                    fold.failed = Some((index, error));
                    break;
                }
            }
        }
        fold
    }

    /// The state at `event` or later, from the item's whole stream: for an
    /// event that does not follow on from the state before it.
    async fn state_from_history(&self, event: &Event) -> Result<Item, StoreError> {
        let stream = self.history.stream(event.item_id).await?;
        // The store decodes with this code; a projector of an older set
        // cannot read a newer event in the history either.
        if let Some(newer) = stream.iter().find(|event| !self.reads.holds(&event.payload)) {
            return Err(StoreError::Corrupt(format!(
                "unsupported schema {} for event type `{}` (version {} of item {})",
                newer.payload.schema().0,
                newer.payload.type_name(),
                newer.version,
                newer.item_id
            )));
        }
        match projection::fold_stream(&stream)? {
            Some(item) if item.version >= event.version => Ok(item),
            _ => Err(StoreError::Corrupt(format!(
                "event {} of item {} is not in the item's stream",
                event.version, event.item_id
            ))),
        }
    }

    /// The events at `indices` (one item's, or the whole batch's), in order,
    /// up to the first failure.
    async fn project_stream(&self, events: &[Event], indices: Vec<usize>) -> BatchOutcome {
        let mut outcome = BatchOutcome::default();
        for index in indices {
            match self.apply(&events[index]).await {
                Ok(Upsert::Applied) => outcome.applied += 1,
                Ok(Upsert::AlreadyNewer) => outcome.already_newer += 1,
                Err(error) => {
                    outcome.failed = Some((index, error.clone()));
                    outcome.failures.push((index, error));
                    break;
                }
            }
        }
        outcome
    }
}
