//! Changing an item (`PATCH`, `DELETE`) through the one write path.

use std::sync::Arc;

use crate::command::{Actor, Command};
use crate::command::{Precondition, UpdateItem};
use crate::decide::Rejection;
use crate::event::ItemId;
use crate::idempotency::IdempotencyKey;
use crate::item::Item;
use crate::ports::{Clock, EventStore, IdGenerator, StoreError};

use super::write::{Target, WritePath};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    #[error(transparent)]
    Rejected(#[from] Rejection),
    /// Another change was appended between our read and our append (only
    /// without `If-Match`; with it, the mismatch is [`Rejection::VersionMismatch`]).
    #[error("item changed concurrently; it is now at version {current}")]
    Conflict { current: u64 },
    #[error("idempotency key reused with a different request")]
    KeyReused,
    /// The change needs an event schema newer than this deployment writes
    /// yet (`WRITE_EVENT_SCHEMAS`): nothing is stored.
    #[error(
        "`{field}` cannot be stored yet: this deployment writes event schema set {set} until every reader is upgraded"
    )]
    NotWritableYet { field: &'static str, set: u32 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a change did: the item after it (a tombstone after a delete), and
/// whether this was a retry answered from its idempotency record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    pub item: Item,
    pub repeated: bool,
}

/// `PATCH` and `DELETE /items/{id}`: the one write path
/// ([`super::write::WritePath`]) on an existing item.
pub struct ChangeItemService {
    path: WritePath,
}

impl ChangeItemService {
    pub fn new(events: Arc<dyn EventStore>, clock: Arc<dyn Clock>, ids: Arc<dyn IdGenerator>) -> Self {
        Self { path: WritePath::new(events, clock, ids) }
    }

    pub fn with_idempotency_ttl(mut self, ttl: chrono::TimeDelta) -> Self {
        self.path.idempotency_ttl = ttl;
        self
    }

    /// Keeps a snapshot each time an item's version passes a multiple of
    /// `every` (default [`SNAPSHOT_EVERY`](super::write::SNAPSHOT_EVERY); tests
    /// take small ones to reach them).
    /// Writes only the event schemas of `schemas` (docs/deploy.md).
    pub fn with_writes(mut self, schemas: crate::event::EventSchemas) -> Self {
        self.path.writes = schemas;
        self
    }

    pub fn with_snapshot_every(mut self, every: u64) -> Self {
        self.path.snapshot_every = every.max(1);
        self
    }

    pub async fn update(
        &self,
        actor: &Actor,
        id: ItemId,
        update: UpdateItem,
        precondition: impl Into<Precondition>,
        key: Option<&IdempotencyKey>,
    ) -> Result<Changed, ChangeError> {
        self.execute(actor, id, Command::Update(update), precondition.into(), key).await
    }

    pub async fn delete(
        &self,
        actor: &Actor,
        id: ItemId,
        precondition: impl Into<Precondition>,
        key: Option<&IdempotencyKey>,
    ) -> Result<Changed, ChangeError> {
        self.execute(actor, id, Command::Delete, precondition.into(), key).await
    }

    async fn execute(
        &self,
        actor: &Actor,
        id: ItemId,
        command: Command,
        precondition: Precondition,
        key: Option<&IdempotencyKey>,
    ) -> Result<Changed, ChangeError> {
        let written = self.path.write(actor, Target::Existing(id), command, &precondition, key).await?;
        Ok(Changed { item: written.item, repeated: written.repeated })
    }
}
