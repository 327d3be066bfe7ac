//! The projector: events applied to the read model, version-guarded.

use std::sync::Arc;

use crate::event::{Event, EventPayload};
use crate::ports::{EventStore, ReadModel, StoreError, Upsert};
use crate::projection::{self, Outcome};

/// What a batch did. Events after a failure are not attempted: the stream
/// source retries from the failed one, so order is kept.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BatchOutcome {
    pub applied: usize,
    pub already_newer: usize,
    /// Index of the first event that could not be applied, and why.
    pub failed: Option<(usize, StoreError)>,
}

/// The projector: applies events to the read model.
pub struct ProjectorService {
    read_model: Arc<dyn ReadModel>,
    /// Where an item's stream is read when an event does not follow on from
    /// the read model's state (a delivery out of order, or a lost write).
    history: Arc<dyn EventStore>,
}

impl ProjectorService {
    /// Projects onto `read_model`, folding an item's stream from `history`
    /// when an event needs the state right before it and the read model is
    /// further behind.
    pub fn new(read_model: Arc<dyn ReadModel>, history: Arc<dyn EventStore>) -> Self {
        Self { read_model, history }
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

    /// Applies events in order, stopping at the first failure.
    pub async fn project_batch(&self, events: &[Event]) -> BatchOutcome {
        let mut outcome = BatchOutcome::default();
        for (index, event) in events.iter().enumerate() {
            match self.apply(event).await {
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
