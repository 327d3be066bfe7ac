use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::event::ItemId;

/// An item as the read model and the API show it.
///
/// Field names are the API's (`createdBy`, `createdAt`); the classic tutorial's
/// `id`, `name` and `timestamp` keep their meaning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Item {
    pub id: ItemId,
    pub name: String,
    /// Client-supplied string, stored as given (the classic API's `timestamp`).
    pub timestamp: String,
    /// Plain text, at most [`DESCRIPTION_MAX_CHARS`](crate::command::DESCRIPTION_MAX_CHARS)
    /// characters; absent when the item has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Cognito `sub` of the caller who created the item.
    pub created_by: String,
    /// Server clock when the item was created, RFC 3339 UTC.
    #[serde(with = "crate::event::rfc3339")]
    pub created_at: DateTime<Utc>,
    /// Version of the last event applied to this item.
    pub version: u64,
    /// A tombstone: the item was deleted at `version`. Kept in the read model so
    /// a late event cannot bring the item back; never shown by the API.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}
