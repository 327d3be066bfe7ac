//! Idempotency records in the events table, in their stored form.

use chrono::DateTime;
use items_domain::Item;
use items_domain::idempotency::{IdempotencyKey, IdempotencyRecord};
use items_domain::ports::StoreError;

/// An idempotency record in the events table: its own partition (see
/// [`StoredIdempotency::stream_id`], version 0), which the projector skips.
/// `expires_at` (epoch seconds, rounded up) is the table's TTL attribute;
/// `expires_at_ms` is the exact expiry the condition compares, so the store
/// and [`IdempotencyRecord::is_live`] agree to the millisecond.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct StoredIdempotency {
    stream_id: String,
    version: u64,
    pub(super) subject: String,
    pub(super) key: String,
    name: String,
    timestamp: String,
    /// A create's description; absent without one (and before items had one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    item: Item,
    expires_at: i64,
    /// Absent in records written before it was added: those expire at `expires_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    change: Option<String>,
}

/// A key is free when unused or expired (TTL deletes expired records late).
pub(super) const KEY_IS_FREE: &str = "attribute_not_exists(stream_id) OR expires_at_ms < :now_ms \
    OR (attribute_not_exists(expires_at_ms) AND expires_at < :now)";

impl StoredIdempotency {
    /// The record's partition: `idem#<subject>#<key>` as first written, which
    /// is unambiguous while the subject has no `#` (Cognito's `sub` is a
    /// UUID); a subject with one gets `idemx#<length>#<subject>#<key>`, so
    /// (`a#b`, `c`) and (`a`, `b#c`) never share a record.
    pub(super) fn stream_id(subject: &str, key: &IdempotencyKey) -> String {
        if subject.contains('#') {
            format!("idemx#{}#{subject}#{}", subject.len(), key.as_str())
        } else {
            format!("idem#{subject}#{}", key.as_str())
        }
    }

    pub(super) fn new(record: &IdempotencyRecord) -> Self {
        let expires_at_ms = record.expires_at.timestamp_millis();
        Self {
            stream_id: Self::stream_id(&record.subject, &record.key),
            version: 0,
            subject: record.subject.clone(),
            key: record.key.as_str().to_owned(),
            name: record.name.clone(),
            timestamp: record.timestamp.clone(),
            description: record.description.clone(),
            item: record.item.clone(),
            expires_at: expires_at_ms.div_euclid(1000) + i64::from(expires_at_ms.rem_euclid(1000) > 0),
            expires_at_ms: Some(expires_at_ms),
            change: record.change.clone(),
        }
    }

    pub(super) fn into_record(self) -> Result<IdempotencyRecord, StoreError> {
        let corrupt = || StoreError::Corrupt("idempotency record".into());
        let expires_at = match self.expires_at_ms {
            Some(ms) => DateTime::from_timestamp_millis(ms),
            None => DateTime::from_timestamp(self.expires_at, 0),
        };
        Ok(IdempotencyRecord {
            key: IdempotencyKey::parse(&self.key).map_err(|_| corrupt())?,
            subject: self.subject,
            name: self.name,
            timestamp: self.timestamp,
            item: self.item,
            expires_at: expires_at.ok_or_else(corrupt)?,
            change: self.change,
            description: self.description,
        })
    }
}
