//! The ports' conformance suite on the embedded backend.

mod support;

use std::sync::Arc;

use items_adapters::embedded::{EmbeddedEventStore, EmbeddedReadModel};
use support::conformance::Backend;

fn embedded() -> Backend {
    Backend { events: Arc::new(EmbeddedEventStore::default()), read_model: Arc::new(EmbeddedReadModel::default()) }
}

conformance_suite!(embedded(), 3000, 1);
