//! Items API domain: pure Rust, no AWS and no I/O.
//!
//! - [`item`]: the read-model state of an item.
//! - [`event`]: the events stored in the log, with a stable, versioned encoding.
//! - [`command`]: validation of the `POST /items` body into a [`command::CreateItem`].
//! - [`projection`]: event -> state, pure and version-guarded.
//! - [`ports`]: the traits adapters implement (event store, read model, clock, ids, cursors).
//! - [`service`]: the application services the handlers call.

pub mod command;
pub mod event;
pub mod idempotency;
pub mod item;
pub mod ports;
pub mod projection;
pub mod replay;
pub mod service;

/// Deterministic clock and ids for tests (also used by the adapters' tests).
pub mod testing;

pub use command::{CreateItem, ValidationError};
pub use event::{Event, EventPayload, ItemId};
pub use item::Item;
