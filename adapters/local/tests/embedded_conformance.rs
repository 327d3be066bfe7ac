//! The ports' conformance suite on the volatile embedded backend (in memory).

use std::sync::Arc;

use items_local::embedded::{EmbeddedEventStore, EmbeddedReadModel};
use items_testkit::conformance::Backend;
use items_testkit::conformance_suite;

fn embedded() -> Backend {
    Backend { events: Arc::new(EmbeddedEventStore::default()), read_model: Arc::new(EmbeddedReadModel::default()) }
}

conformance_suite!(embedded(), 3000, 1);
