//! The laptop stack: gateway, Hosted UI, limits, and the local stores' conformance: one test binary for the crate (one link, not one per file).

mod support;

mod aws_limits;
mod gateway_auth;
mod hosted_ui;
mod schemas;
mod server_limits;
mod sqlite_conformance;
mod volatile_conformance;

use std::sync::Arc;

use items_local::event_source_mapping::{ChangeLog, drain_change_feed, redrive};

/// A local store's change feed for the model-based test: the event source
/// mapping stand-in (`run_change_feed`, with its quarantine) run into the
/// given read model until it has projected everything committed, then its
/// quarantine redriven; answers the item streams still set aside.
fn change_feed<S>(store: Arc<S>) -> items_testkit::model::DrainFeed
where
    S: ChangeLog + items_domain::ports::EventStore + 'static,
{
    Arc::new(move |rows| {
        let store = store.clone();
        Box::pin(async move {
            let projector =
                Arc::new(items_domain::service::ProjectorService::new(rows.clone(), store.clone() as Arc<_>));
            let feed = drain_change_feed(store.clone(), projector, 100);
            tokio::time::timeout(std::time::Duration::from_secs(60), feed)
                .await
                .expect("the feed catches up")
                .expect("the feed reads its log");
            let redriven = redrive(store.as_ref(), store.as_ref(), rows.as_ref()).await.expect("the redrive runs");
            redriven.kept.into_iter().map(|(record, _)| record.stream_id).collect()
        })
    })
}
