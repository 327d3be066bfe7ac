//! `POST /items`: a new item through the one write path.

use std::sync::Arc;

use crate::command::{Actor, Command};
use crate::command::{CreateItem, Precondition};
use crate::idempotency::IdempotencyKey;
use crate::item::Item;
use crate::ports::{AppendError, Clock, EventStore, IdGenerator, StoreError};

use super::ChangeError;
use super::write::{self, Target, WritePath};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreateError {
    /// The idempotency key was used by this caller for a different request.
    #[error("idempotency key reused with a different request")]
    KeyReused,
    /// See [`ChangeError::NotWritableYet`].
    #[error(
        "`{field}` cannot be stored yet: this deployment writes event schema set {set} until every reader is upgraded"
    )]
    NotWritableYet { field: &'static str, set: u32 },
    /// Another writer took the new item's stream first. With random ids this
    /// points at a broken id generator, not at the client.
    #[error(transparent)]
    Conflict(AppendError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a create did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    New(Item),
    /// A retry with the same idempotency key: the first request's item.
    Repeated(Item),
}

impl Created {
    pub fn item(&self) -> &Item {
        match self {
            Created::New(item) | Created::Repeated(item) => item,
        }
    }
}

/// How long idempotency keys are remembered unless configured.
pub const DEFAULT_IDEMPOTENCY_TTL: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// `POST /items`: the one write path ([`write::WritePath`]) on a new item.
pub struct CreateItemService {
    path: WritePath,
}

impl CreateItemService {
    pub fn new(events: Arc<dyn EventStore>, clock: Arc<dyn Clock>, ids: Arc<dyn IdGenerator>) -> Self {
        Self { path: WritePath::new(events, clock, ids) }
    }

    pub fn with_idempotency_ttl(mut self, ttl: chrono::TimeDelta) -> Self {
        self.path.idempotency_ttl = ttl;
        self
    }

    /// Writes only the event schemas of `schemas` (docs/deploy.md).
    pub fn with_writes(mut self, schemas: crate::event::EventSchemas) -> Self {
        self.path.writes = schemas;
        self
    }

    /// Like [`create`](Self::create), remembering `key` for this subject: a retry
    /// with the same key and request gets the first item back and appends
    /// nothing, also when the retries race; a different request with the key is
    /// refused.
    pub async fn create_idempotent(
        &self,
        subject: &str,
        command: CreateItem,
        key: &IdempotencyKey,
    ) -> Result<Created, CreateError> {
        let written = self.write(subject, command, Some(key)).await?;
        Ok(if written.repeated { Created::Repeated(written.item) } else { Created::New(written.item) })
    }

    /// Records the item's creation by `subject` and returns the item as the read
    /// model will show it once projected.
    pub async fn create(&self, subject: &str, command: CreateItem) -> Result<Item, CreateError> {
        Ok(self.write(subject, command, None).await?.item)
    }

    async fn write(
        &self,
        subject: &str,
        command: CreateItem,
        key: Option<&IdempotencyKey>,
    ) -> Result<write::Written, CreateError> {
        // Who creates needs no rights beyond the scope the handler checked.
        let actor = Actor { subject: subject.to_owned(), is_admin: false };
        let id = self.path.new_id();
        self.path.write(&actor, Target::New(id), Command::Create(command), &Precondition::Any, key).await.map_err(
            |error| match error {
                ChangeError::KeyReused => CreateError::KeyReused,
                ChangeError::NotWritableYet { field, set } => CreateError::NotWritableYet { field, set },
                ChangeError::Store(error) => CreateError::Store(error),
                ChangeError::Conflict { current } => {
                    CreateError::Conflict(AppendError::Conflict { item_id: id, expected: 0, actual: current })
                }
                // decide refuses a create only where the new id's stream exists.
                ChangeError::Rejected(rejection) => {
                    CreateError::Conflict(AppendError::Store(StoreError::Corrupt(rejection.to_string())))
                }
            },
        )
    }
}
