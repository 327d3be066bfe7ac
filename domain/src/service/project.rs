//! The projector: events applied to the read model, version-guarded.

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt;

use crate::event::{Event, EventPayload, ItemId};
use crate::ports::{EventStore, ReadModel, StoreError, Upsert};
use crate::projection::{self, Outcome};

/// Items a batch applies at once, by default: a batch of 100 creates costs
/// about 4 write round trips instead of 100, and a read model sees at most
/// this many writes in flight from one batch.
pub const DEFAULT_CONCURRENCY: usize = 32;

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
}

/// The projector: applies events to the read model.
pub struct ProjectorService {
    read_model: Arc<dyn ReadModel>,
    /// Where an item's stream is read when an event does not follow on from
    /// the read model's state (a delivery out of order, or a lost write).
    history: Arc<dyn EventStore>,
    concurrency: usize,
}

impl ProjectorService {
    /// Projects onto `read_model`, folding an item's stream from `history`
    /// when an event needs the state right before it and the read model is
    /// further behind.
    pub fn new(read_model: Arc<dyn ReadModel>, history: Arc<dyn EventStore>) -> Self {
        Self { read_model, history, concurrency: DEFAULT_CONCURRENCY }
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
            Outcome::NeedsHistory => {
                let stream = self.history.stream(event.item_id).await?;
                match projection::fold_stream(&stream)? {
                    Some(item) if item.version >= event.version => self.read_model.upsert_if_newer(&item).await,
                    _ => Err(StoreError::Corrupt(format!(
                        "event {} of item {} is not in the item's stream",
                        event.version, event.item_id
                    ))),
                }
            }
        }
    }

    /// Applies a batch: concurrently across items, each item's events in
    /// batch order (a stream orders records per key; so does this), an item
    /// stopping at its first failure. Reports the first failure in batch
    /// order, from which the stream source retries.
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
        let outcomes: Vec<BatchOutcome> = futures::stream::iter(streams)
            .map(|indices| self.project_stream(events, indices))
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        let mut outcome = BatchOutcome::default();
        for one in outcomes {
            outcome.applied += one.applied;
            outcome.already_newer += one.already_newer;
            if let Some((index, error)) = one.failed
                && outcome.failed.as_ref().is_none_or(|(first, _)| index < *first)
            {
                outcome.failed = Some((index, error));
            }
        }
        outcome
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
                    outcome.failed = Some((index, error));
                    break;
                }
            }
        }
        outcome
    }
}
