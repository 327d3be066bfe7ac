//! One composition per function: the services each Lambda runs, built from
//! its ports and its settings. The Lambda mains and `items serve` both build
//! them here, so a laptop runs what AWS runs, configured the same way.

use std::sync::Arc;

use chrono::TimeDelta;
use items_domain::event::EventSchemas;
use items_domain::ports::{CursorCodec, EventStore, ReadModel};
use items_domain::service::{
    ChangeItemService, CreateItemService, HistoryService, ListBudget, ProjectorService, QueryService,
};

use crate::apigw::{ItemCommands, ItemQueries};
use crate::lambda_env::{self, SettingError};
use crate::system::{RandomIds, SystemClock};

/// What the API functions read from their settings (Lambda's environment,
/// or the same names for `items serve`).
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub idempotency_ttl: TimeDelta,
    pub list_budget: ListBudget,
    /// The event schemas the writers may write (`WRITE_EVENT_SCHEMAS`).
    pub writes: EventSchemas,
}

impl Settings {
    pub fn from_env() -> Result<Self, SettingError> {
        Ok(Self {
            idempotency_ttl: lambda_env::idempotency_ttl()?,
            list_budget: lambda_env::list_budget(),
            writes: lambda_env::write_event_schemas()?,
        })
    }
}

/// `post-item`: appends to the events table only.
pub fn post_item(events: Arc<dyn EventStore>, settings: &Settings) -> CreateItemService {
    CreateItemService::new(events, Arc::new(SystemClock), Arc::new(RandomIds))
        .with_idempotency_ttl(settings.idempotency_ttl)
        .with_writes(settings.writes)
}

/// `get-items`: reads the items table (and its `by-creator` index), and an
/// item's stream for an item as it was; writes nothing.
pub fn get_items(
    read_model: Arc<dyn ReadModel>,
    events: Arc<dyn EventStore>,
    cursors: Arc<dyn CursorCodec>,
    settings: &Settings,
) -> ItemQueries {
    ItemQueries {
        items: QueryService::new(read_model, cursors, Arc::new(SystemClock)).with_list_budget(settings.list_budget),
        history: HistoryService::new(events).with_body_budget(settings.list_budget.body),
    }
}

/// `item-commands`: reads and appends the events table only.
pub fn item_commands(events: Arc<dyn EventStore>, settings: &Settings) -> ItemCommands {
    ItemCommands {
        changes: ChangeItemService::new(events.clone(), Arc::new(SystemClock), Arc::new(RandomIds))
            .with_idempotency_ttl(settings.idempotency_ttl)
            .with_writes(settings.writes),
        history: HistoryService::new(events).with_body_budget(settings.list_budget.body),
    }
}

/// `project-events`: writes the items table, and reads an item's stream when
/// an event does not follow on from the row.
pub fn project_events(read_model: Arc<dyn ReadModel>, events: Arc<dyn EventStore>) -> ProjectorService {
    ProjectorService::new(read_model, events)
}
