//! The quarantine: where a projector sets aside a record it cannot apply
//! (poison), on every backend, and the redrive that re-projects those items
//! once the code can read them. In AWS it is a partition of the events table
//! per record (`quarantine#<sequence number>`, which the event source
//! mapping's filter keeps from the projector); locally, a table of the
//! embedded store. One policy everywhere: the projector's handler sets poison
//! aside at once and goes on (`crate::projector::project_and_set_aside`);
//! only a dependency failure is retried.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use items_domain::ItemId;
use items_domain::event::rfc3339;
use items_domain::ports::{EventStore, ReadModel, StoreError};

use crate::dynamodb::codec::{EVENTS_PARTITION_KEY, EVENTS_SORT_KEY};
use crate::dynamodb::store_error;

/// A record set aside as poison.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Quarantined {
    /// Where it is in its feed: the stream record's sequence number, or the
    /// local log's.
    pub sequence: String,
    /// The item stream it belongs to (`item#<id>`), when known.
    pub stream_id: String,
    pub reason: String,
    #[serde(with = "items_domain::event::rfc3339")]
    pub at: chrono::DateTime<chrono::Utc>,
}

/// Where poison records are kept until a redrive.
#[async_trait]
pub trait Quarantine: Send + Sync {
    /// Sets a record aside, durably where the store is durable. Setting the
    /// same record aside again keeps one.
    async fn quarantine(&self, record: &Quarantined) -> Result<(), StoreError>;
    /// The records set aside, oldest first.
    async fn quarantined(&self) -> Result<Vec<Quarantined>, StoreError>;
    /// Takes a record out of the quarantine (after a redrive).
    async fn release(&self, sequence: &str) -> Result<(), StoreError>;
}

/// What a redrive did with the quarantine.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Redrive {
    /// Items re-projected from their whole stream (their records released).
    pub items: usize,
    /// Records released.
    pub released: usize,
    /// Records that still cannot be applied, and why: they stay.
    pub kept: Vec<(Quarantined, String)>,
}

/// Re-projects the items of the quarantined records from their whole
/// streams (with the read model's repair, so never back in time) and
/// releases their records; a record whose item still cannot be folded (its
/// event still unreadable by this code) stays, with the reason.
pub async fn redrive(
    quarantine: &dyn Quarantine,
    events: &dyn EventStore,
    read_model: &dyn ReadModel,
) -> Result<Redrive, StoreError> {
    let mut outcome = Redrive::default();
    let mut by_stream: BTreeMap<String, Vec<Quarantined>> = BTreeMap::new();
    for record in quarantine.quarantined().await? {
        by_stream.entry(record.stream_id.clone()).or_default().push(record);
    }
    for (stream_id, records) in by_stream {
        let Some(item_id) = ItemId::from_stream_id(&stream_id) else {
            let reason = format!("`{stream_id}` is not an item stream");
            outcome.kept.extend(records.into_iter().map(|record| (record, reason.clone())));
            continue;
        };
        let folded =
            events.stream(item_id).await.and_then(|stream| Ok(items_domain::projection::fold_stream(&stream)?));
        let item = match folded {
            Ok(item) => item,
            Err(error @ StoreError::Unavailable(_)) => return Err(error),
            Err(error) => {
                let reason = error.to_string();
                outcome.kept.extend(records.into_iter().map(|record| (record, reason.clone())));
                continue;
            }
        };
        if let Some(item) = item {
            read_model.repair(&item).await?;
        }
        outcome.items += 1;
        for record in records {
            quarantine.release(&record.sequence).await?;
            outcome.released += 1;
        }
    }
    Ok(outcome)
}

/// The partition prefix of quarantined records in the events table.
pub const QUARANTINE_PREFIX: &str = "quarantine#";

/// The quarantine in the events table: one item per record, keyed
/// (`quarantine#<sequence number>`, 0). The projector may only write keys
/// with this prefix there (`pulumi/functions.ts`: `dynamodb:LeadingKeys`).
#[derive(Clone)]
pub struct DynamoQuarantine {
    client: Client,
    table: String,
}

impl DynamoQuarantine {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    fn key(sequence: &str) -> HashMap<String, AttributeValue> {
        HashMap::from([
            (EVENTS_PARTITION_KEY.to_owned(), AttributeValue::S(format!("{QUARANTINE_PREFIX}{sequence}"))),
            (EVENTS_SORT_KEY.to_owned(), AttributeValue::N("0".into())),
        ])
    }
}

fn text(item: &HashMap<String, AttributeValue>, name: &str) -> Result<String, StoreError> {
    match item.get(name) {
        Some(AttributeValue::S(value)) => Ok(value.clone()),
        _ => Err(StoreError::Corrupt(format!("a quarantined record without `{name}`"))),
    }
}

#[async_trait]
impl Quarantine for DynamoQuarantine {
    async fn quarantine(&self, record: &Quarantined) -> Result<(), StoreError> {
        let mut item = Self::key(&record.sequence);
        item.insert("sequence".into(), AttributeValue::S(record.sequence.clone()));
        item.insert("item_stream".into(), AttributeValue::S(record.stream_id.clone()));
        item.insert("reason".into(), AttributeValue::S(record.reason.clone()));
        item.insert("at".into(), AttributeValue::S(rfc3339::format(&record.at)));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| store_error("PutItem (quarantine)", e))?;
        Ok(())
    }

    /// A Scan of the events table for the prefix: an operator's command,
    /// paid per read capacity of the whole table.
    async fn quarantined(&self) -> Result<Vec<Quarantined>, StoreError> {
        let mut records = Vec::new();
        let mut start = None;
        loop {
            let output = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("begins_with(#key, :prefix)")
                .expression_attribute_names("#key", EVENTS_PARTITION_KEY)
                .expression_attribute_values(":prefix", AttributeValue::S(QUARANTINE_PREFIX.into()))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| store_error("Scan (quarantine)", e))?;
            for item in output.items.unwrap_or_default() {
                let at = rfc3339::parse(&text(&item, "at")?).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                records.push(Quarantined {
                    sequence: text(&item, "sequence")?,
                    stream_id: text(&item, "item_stream")?,
                    reason: text(&item, "reason")?,
                    at,
                });
            }
            match output.last_evaluated_key {
                Some(key) => start = Some(key),
                None => break,
            }
        }
        records.sort_by(|a, b| (a.at, &a.sequence).cmp(&(b.at, &b.sequence)));
        Ok(records)
    }

    async fn release(&self, sequence: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(sequence)))
            .send()
            .await
            .map_err(|e| store_error("DeleteItem (quarantine)", e))?;
        Ok(())
    }
}

/// A quarantine in memory: for the volatile store and tests.
#[derive(Debug, Default)]
pub struct InMemoryQuarantine(std::sync::Mutex<Vec<Quarantined>>);

impl InMemoryQuarantine {
    fn records(&self) -> std::sync::MutexGuard<'_, Vec<Quarantined>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl Quarantine for InMemoryQuarantine {
    async fn quarantine(&self, record: &Quarantined) -> Result<(), StoreError> {
        let mut records = self.records();
        records.retain(|kept| kept.sequence != record.sequence);
        records.push(record.clone());
        Ok(())
    }

    async fn quarantined(&self) -> Result<Vec<Quarantined>, StoreError> {
        Ok(self.records().clone())
    }

    async fn release(&self, sequence: &str) -> Result<(), StoreError> {
        self.records().retain(|kept| kept.sequence != sequence);
        Ok(())
    }
}
