//! Idempotent requests: a client's `Idempotency-Key` makes retries of one
//! `POST /items` create one item, and retries of one `PATCH` or `DELETE`
//! change it once. Keys are scoped to the caller (`sub`) and remembered for a
//! limited time.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::command::CreateItem;
use crate::item::Item;

pub const MAX_KEY_CHARS: usize = 255;

/// A validated `Idempotency-Key` header value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IdempotencyKey(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("Idempotency-Key must be 1 to 255 visible ASCII characters")]
pub struct InvalidIdempotencyKey;

impl IdempotencyKey {
    pub fn parse(text: &str) -> Result<Self, InvalidIdempotencyKey> {
        let valid = (1..=MAX_KEY_CHARS).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_graphic());
        if valid { Ok(Self(text.to_owned())) } else { Err(InvalidIdempotencyKey) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What the first request with a key asked for and what it created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    pub subject: String,
    pub key: IdempotencyKey,
    /// The validated request, to tell a retry from a different request.
    pub name: String,
    pub timestamp: String,
    /// A create's description (absent: none, and in records written before
    /// items had one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The item the first request created or changed (its response, repeated to retries).
    pub item: Item,
    #[serde(with = "crate::event::rfc3339")]
    pub expires_at: DateTime<Utc>,
    /// For a change (`PATCH`, `DELETE`): what was asked, to tell a retry from
    /// another request. Absent for a create (records written before changes existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<String>,
}

impl IdempotencyRecord {
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.expires_at > now
    }

    pub fn same_request(&self, command: &CreateItem) -> bool {
        self.change.is_none()
            && self.name == command.name
            && self.timestamp == command.timestamp
            && self.description == command.description
    }

    /// Whether this record is of the change described by `change`.
    pub fn same_change(&self, change: &str) -> bool {
        self.change.as_deref() == Some(change)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_visible_ascii_of_bounded_length() {
        assert!(IdempotencyKey::parse("order-42_retry.1").is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_ok());
        for bad in ["", " ", "has space", "tab\t", "é", &"k".repeat(256)] {
            assert_eq!(IdempotencyKey::parse(bad), Err(InvalidIdempotencyKey), "{bad:?}");
        }
    }
}
