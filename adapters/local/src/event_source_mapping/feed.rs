//! The feed loop: every committed event to the projector handler, in
//! order, as stream records, by the poison policy of the module above.

use std::sync::Arc;
use std::time::Duration;

use items_aws::projector::project_and_set_aside;
use items_domain::ports::StoreError;
use items_domain::service::ProjectorService;

use aws_lambda_events::event::dynamodb::EventRecord;

use super::{Attempts, ChangeLog, ChangeRecord};

/// Pause after the log itself failed, before reading it again.
const LOG_RETRY: Duration = Duration::from_millis(500);

/// Feeds every committed event to the projector handler, in order, as stream
/// records in batches of up to `batch_size`, from the projector's saved
/// position (so a restart neither replays what is projected nor misses
/// anything), by the poison policy above. Runs until dropped.
pub async fn run_change_feed(log: Arc<dyn ChangeLog>, projector: Arc<ProjectorService>, batch_size: usize) {
    let mut head = log.subscribe();
    let mut checkpoint = loop {
        match log.projected_position().await {
            Ok(position) => break position,
            Err(error) => {
                tracing::error!(%error, "cannot read the projector's position; retrying");
                tokio::time::sleep(LOG_RETRY).await;
            }
        }
    };
    if let Ok(quarantined) = log.quarantined().await {
        items_aws::metrics::quarantine_size(quarantined.len() as u64);
    }
    let mut attempts = Attempts::default();
    let mut saved = (checkpoint, std::time::Instant::now());
    loop {
        let batch = match log.read_after(checkpoint, batch_size).await {
            Ok(batch) => batch,
            Err(error) => {
                tracing::error!(%error, "cannot read the event log; retrying");
                tokio::time::sleep(LOG_RETRY).await;
                continue;
            }
        };
        if batch.is_empty() {
            items_aws::metrics::projection_backlog(0);
            save_position(log.as_ref(), &mut saved, checkpoint, Duration::ZERO).await;
            if head.changed().await.is_err() {
                return;
            }
            continue;
        }
        let records: Vec<EventRecord> = batch.iter().map(ChangeRecord::to_stream_record).collect();
        let previous = checkpoint;
        let delivered = project_and_set_aside(&projector, log.as_ref(), &records).await;
        if delivered.set_aside > 0
            && let Ok(all) = log.quarantined().await
        {
            items_aws::metrics::quarantine_size(all.len() as u64);
        }
        match delivered.retry {
            None => {
                checkpoint = batch.last().map_or(checkpoint, |record| record.sequence);
                attempts = Attempts::default();
            }
            Some((failed, reason)) => {
                checkpoint = batch[failed].sequence - 1;
                tokio::time::sleep(attempts.next(failed, &reason)).await;
            }
        }
        items_aws::metrics::projection_backlog(head.borrow().saturating_sub(checkpoint));
        if checkpoint != previous {
            save_position(log.as_ref(), &mut saved, checkpoint, SAVE_EVERY).await;
        }
    }
}

/// Runs the change feed until it has projected (or set aside) everything
/// committed when it was called, then stops: a one-shot catch-up, and what
/// the model-based test drives the local feed with.
pub async fn drain_change_feed(
    log: Arc<dyn ChangeLog>,
    projector: Arc<ProjectorService>,
    batch_size: usize,
) -> Result<(), StoreError> {
    let head = *log.subscribe().borrow();
    let feed = tokio::spawn(run_change_feed(log.clone(), projector, batch_size));
    let caught_up = loop {
        match log.projected_position().await {
            Ok(position) if position >= head => break Ok(()),
            Ok(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            Err(error) => break Err(error),
        }
    };
    feed.abort();
    let _ = feed.await;
    caught_up
}

/// While the projector is busy, its position is saved at most this often
/// (once idle, at once): one write fewer per batch under load. A restart
/// re-applies what came after the saved position, version-guarded.
const SAVE_EVERY: Duration = Duration::from_millis(250);

/// Saves `position` unless the last save, `saved`, is younger than `every`.
async fn save_position(log: &dyn ChangeLog, saved: &mut (u64, std::time::Instant), position: u64, every: Duration) {
    if saved.0 == position || saved.1.elapsed() < every {
        return;
    }
    match log.save_projected_position(position).await {
        Ok(()) => *saved = (position, std::time::Instant::now()),
        // Not fatal: after a restart the projector re-applies from the
        // last saved position, and its writes are version-guarded.
        Err(error) => tracing::warn!(%error, "cannot save the projector's position"),
    }
}
