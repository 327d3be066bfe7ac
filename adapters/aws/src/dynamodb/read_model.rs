use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use items_domain::ports::{CreatorKey, Page, PageKey, ReadModel, StoreError, Upsert};
use items_domain::{Item, ItemId};

use super::store_error;
use serde_dynamo::{from_item, to_item};

use crate::dynamodb::codec::{
    CREATOR_SHARDS, ITEMS_BY_CREATOR_INDEX, ITEMS_CREATED_AT_KEY, ITEMS_CREATOR_SHARD_KEY, ITEMS_KEY, creator_shard,
    creator_shard_number,
};

/// The items read table, keyed by `id`.
#[derive(Clone)]
pub struct DynamoReadModel {
    client: Client,
    table: String,
}

impl DynamoReadModel {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    fn decode(item: std::collections::HashMap<String, AttributeValue>) -> Result<Item, StoreError> {
        from_item(item).map_err(|e| StoreError::Corrupt(format!("item: {e}")))
    }
}

/// How long a tombstone stays in the read table: past it, DynamoDB's TTL
/// removes it. A tombstone keeps a late stream record (a retried batch, a
/// redelivered `ItemCreated`) from bringing the item back, and DynamoDB
/// Streams keeps a record 24 hours
/// (docs.aws.amazon.com/amazondynamodb/latest/developerguide/Streams.html),
/// so no record of the item can arrive once this has passed since the
/// tombstone was written. Twice that, for clock skew and slow sweeps. A
/// replay folds whole streams and writes the tombstone again; a record that
/// finds no row folds the item's stream (see `projection::evolve`).
pub const TOMBSTONE_LIFETIME: std::time::Duration = std::time::Duration::from_secs(48 * 3600);

/// The read table's TTL attribute (`pulumi/tables.ts`: `ITEMS_TTL_ATTRIBUTE`),
/// in epoch seconds as DynamoDB TTL reads it.
pub const TTL_ATTRIBUTE: &str = "expires_at";

/// The attributes stored for `item`: its index shard, and a tombstone's
/// expiry.
pub(crate) fn record(item: &Item) -> Result<std::collections::HashMap<String, AttributeValue>, StoreError> {
    let mut record: std::collections::HashMap<String, AttributeValue> =
        to_item(item).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    record.insert(ITEMS_CREATOR_SHARD_KEY.into(), AttributeValue::S(creator_shard(&item.created_by, item.id)));
    if item.deleted {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let expires_at = (now + TOMBSTONE_LIFETIME).as_secs();
        record.insert(TTL_ATTRIBUTE.into(), AttributeValue::N(expires_at.to_string()));
    }
    Ok(record)
}

/// A key of the table or of an index, as DynamoDB gives and takes it.
type Key = std::collections::HashMap<String, AttributeValue>;

impl DynamoReadModel {
    /// Pages of one Scan or Query from `start`, read by `page` (given the
    /// start and how many items are still wanted): without a limit one page
    /// (up to 1 MB); with one, pages until it is filled, since a page can
    /// hold fewer items. The items and the key to go on from, if any.
    async fn follow<F, Fut>(
        &self,
        limit: Option<u32>,
        mut start: Option<Key>,
        page: F,
    ) -> Result<(Vec<Item>, Option<Key>), StoreError>
    where
        F: Fn(Option<Key>, Option<i32>) -> Fut,
        Fut: std::future::Future<Output = Result<(Vec<Key>, Option<Key>), StoreError>>,
    {
        let mut items = Vec::new();
        loop {
            let wanted = limit.map(|l| i32::try_from(l as usize - items.len()).unwrap_or(i32::MAX));
            let (records, last) = page(start, wanted).await?;
            for record in records {
                items.push(Self::decode(record)?);
            }
            start = last;
            if limit.is_none_or(|l| items.len() >= l as usize) || start.is_none() {
                return Ok((items, start));
            }
        }
    }

    /// A conditional PutItem of `item`: `AlreadyNewer` when the condition fails.
    async fn put_unless(
        &self,
        item: &Item,
        condition: &str,
        names: &[(&str, &str)],
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<Upsert, StoreError> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(record(item)?))
            .condition_expression(condition);
        for (name, attribute) in names {
            put = put.expression_attribute_names(*name, *attribute);
        }
        for (name, value) in values {
            put = put.expression_attribute_values(name, value);
        }
        match put.send().await {
            Ok(_) => Ok(Upsert::Applied),
            Err(error) => match error.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(_)) => Ok(Upsert::AlreadyNewer),
                _ => Err(store_error("PutItem", error)),
            },
        }
    }
}

#[async_trait]
impl ReadModel for DynamoReadModel {
    async fn upsert_if_newer(&self, item: &Item) -> Result<Upsert, StoreError> {
        let version = AttributeValue::N(item.version.to_string());
        self.put_unless(item, "attribute_not_exists(id) OR version < :version", &[], vec![(":version", version)]).await
    }

    async fn repair(&self, item: &Item) -> Result<Upsert, StoreError> {
        // Same version: written when any field the API shows differs (the
        // expiry is not compared: a tombstone written again gets a new one).
        let deleted = if item.deleted {
            "(attribute_not_exists(deleted) OR deleted <> :deleted)"
        } else {
            "attribute_exists(deleted)"
        };
        let description = if item.description.is_some() {
            "(attribute_not_exists(description) OR description <> :description)"
        } else {
            "attribute_exists(description)"
        };
        // A row without its index shard (written before the index was
        // sharded) is written again too: a replay backfills the index.
        let condition = format!(
            "attribute_not_exists(id) OR version < :version OR (version = :version AND (#name <> :name OR #timestamp <> :timestamp \
             OR createdBy <> :createdBy OR createdAt <> :createdAt OR {deleted} OR {description} \
             OR attribute_not_exists({ITEMS_CREATOR_SHARD_KEY})))"
        );
        let mut values = vec![
            (":version", AttributeValue::N(item.version.to_string())),
            (":name", AttributeValue::S(item.name.clone())),
            (":timestamp", AttributeValue::S(item.timestamp.clone())),
            (":createdBy", AttributeValue::S(item.created_by.clone())),
            (":createdAt", AttributeValue::S(items_domain::event::rfc3339::format(&item.created_at))),
        ];
        if item.deleted {
            values.push((":deleted", AttributeValue::Bool(true)));
        }
        if let Some(description) = &item.description {
            values.push((":description", AttributeValue::S(description.clone())));
        }
        self.put_unless(item, &condition, &[("#name", "name"), ("#timestamp", "timestamp")], values).await
    }

    async fn get(&self, id: ItemId) -> Result<Option<Item>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(ITEMS_KEY, AttributeValue::S(id.to_string()))
            .send()
            .await
            .map_err(|e| store_error("GetItem", e))?;
        output.item.map(Self::decode).transpose()
    }

    async fn list_page(&self, limit: Option<u32>, after: Option<&PageKey>) -> Result<Page, StoreError> {
        let start = after.map(|key| Key::from([(ITEMS_KEY.to_owned(), AttributeValue::S(key.0.clone()))]));
        let (items, last) = self
            .follow(limit, start, |start, limit| async move {
                let scan = self.client.scan().table_name(&self.table).set_exclusive_start_key(start).set_limit(limit);
                let output = scan.send().await.map_err(|e| store_error("Scan", e))?;
                Ok((output.items.unwrap_or_default(), output.last_evaluated_key))
            })
            .await?;
        let next = last.and_then(|key| key.get(ITEMS_KEY).and_then(|id| id.as_s().ok()).cloned());
        Ok(Page { items, next: next.map(PageKey) })
    }

    async fn list_by_creator(
        &self,
        creator: &str,
        limit: Option<u32>,
        after: Option<&PageKey>,
    ) -> Result<Page, StoreError> {
        let after = after.map(CreatorKey::from_page_key).transpose()?;
        let wanted = limit.unwrap_or(CREATOR_PAGE).max(1) as usize;
        // Every shard's first `wanted` entries after the position, at once,
        // merged: newest first, then by id (descending), so the order and
        // the next position are the same on every read.
        let shards = futures::future::try_join_all(
            (0..CREATOR_SHARDS).map(|n| self.creator_shard_page(creator, n, after.as_ref(), wanted)),
        )
        .await?;
        let more = shards.iter().any(|(_, exhausted)| !exhausted);
        let mut items: Vec<Item> = shards.into_iter().flat_map(|(items, _)| items).collect();
        items.sort_by(|a, b| newest_first(&CreatorKey::of(a), &CreatorKey::of(b)));
        let more = more || items.len() > wanted;
        items.truncate(wanted);
        let next = items.last().filter(|_| more).map(|item| CreatorKey::of(item).to_page_key());
        Ok(Page { items, next })
    }
}

/// Entries of one creator's listing per read when no limit is given.
const CREATOR_PAGE: u32 = 1000;

/// The listing's order: newer first, then the larger id.
fn newest_first(a: &CreatorKey, b: &CreatorKey) -> std::cmp::Ordering {
    b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id))
}

impl DynamoReadModel {
    /// Shard `n`'s first `wanted` entries of `creator` after `after` in the
    /// listing's order, and whether the shard has no more. Entries of one
    /// millisecond come in DynamoDB's order, so a read that stops on such
    /// a time reads on until the time changes: none of them is left out.
    async fn creator_shard_page(
        &self,
        creator: &str,
        n: u32,
        after: Option<&CreatorKey>,
        wanted: usize,
    ) -> Result<(Vec<Item>, bool), StoreError> {
        let shard = creator_shard_number(creator, n);
        let mut kept: Vec<Item> = Vec::new();
        let mut start: Option<Key> = None;
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(ITEMS_BY_CREATOR_INDEX)
                .expression_attribute_names("#shard", ITEMS_CREATOR_SHARD_KEY)
                .expression_attribute_values(":shard", AttributeValue::S(shard.clone()))
                .scan_index_forward(false)
                .set_exclusive_start_key(start)
                .limit(i32::try_from(wanted.saturating_sub(kept.len()).clamp(1, 1000)).unwrap_or(1000));
            query = match after {
                Some(after) => query
                    .key_condition_expression("#shard = :shard AND #at <= :at")
                    .expression_attribute_names("#at", ITEMS_CREATED_AT_KEY)
                    .expression_attribute_values(":at", AttributeValue::S(after.created_at.clone())),
                None => query.key_condition_expression("#shard = :shard"),
            };
            let output = query.send().await.map_err(|e| store_error("Query", e))?;
            for record in output.items.unwrap_or_default() {
                let item = Self::decode(record)?;
                if after.is_none_or(|after| newest_first(after, &CreatorKey::of(&item)).is_lt()) {
                    kept.push(item);
                }
            }
            start = output.last_evaluated_key;
            let Some(last) = start.as_ref() else { return Ok((kept, true)) };
            kept.sort_by(|a, b| newest_first(&CreatorKey::of(a), &CreatorKey::of(b)));
            let last_at = last.get(ITEMS_CREATED_AT_KEY).and_then(|at| at.as_s().ok());
            let resolved = kept.get(wanted - 1).is_some_and(|boundary| {
                last_at.is_some_and(|last_at| *last_at < items_domain::event::rfc3339::format(&boundary.created_at))
            });
            if resolved {
                return Ok((kept, false));
            }
        }
    }
}
