//! Items API domain: pure Rust, no AWS and no I/O.
//!
//! - [`item`]: the read-model state of an item.
//! - [`event`]: the events stored in the log, with a stable, versioned encoding.
//! - [`command`]: who asks for what (`Actor`, `Command`), and the validation of the `POST` and `PATCH` bodies.
//! - [`decide`]: command -> events, the rules (ownership, `If-Match`, deleted items).
//! - [`projection`]: event -> state, pure and version-guarded, with tombstones.
//! - [`ports`]: the traits adapters implement (event store, read model, clock, ids, cursors).
//! - [`service`]: the application services the handlers call.
//! - [`idempotency`]: `Idempotency-Key` records: a retried request is a repeat, not a new item.
//! - [`replay`]: rebuilding a read model from the event log, and `--verify`'s comparison.
//! - [`memory`]: in-memory event store and read model (tests, volatile local runs).

pub mod command;
pub mod decide;
pub mod event;
pub mod idempotency;
pub mod item;
pub mod memory;
pub mod ports;
pub mod projection;
pub mod replay;
pub mod service;

/// Deterministic clock and ids for tests; other crates' tests enable the `testing` feature.
#[cfg(any(test, feature = "testing"))]
pub mod testing;

#[cfg(test)]
mod golden_tests;

pub use command::{CreateItem, ValidationError};
pub use event::{Event, EventPayload, ItemId};
pub use item::Item;
