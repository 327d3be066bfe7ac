use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use items_domain::event::rfc3339;
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
        // A merge of the 16 shards, newest first, then by id (descending),
        // so the order and the next position are the same on every read.
        // Each shard is read a little at first and further only while an
        // entry it has not given yet could still be among the page's.
        let first = wanted.div_ceil(CREATOR_SHARDS as usize).max(4);
        let mut shards: Vec<ShardRead> = (0..CREATOR_SHARDS).map(|n| ShardRead::new(creator, n, first)).collect();
        loop {
            let unread: Vec<usize> = (0..shards.len()).filter(|&n| shards[n].wants_more()).collect();
            let reads = unread.iter().map(|&n| self.read_shard(&shards[n], after.as_ref()));
            for (n, read) in unread.iter().zip(futures::future::try_join_all(reads).await?) {
                shards[*n].took(read);
            }
            let mut keys: Vec<CreatorKey> =
                shards.iter().flat_map(|shard| shard.items.iter().map(CreatorKey::of)).collect();
            keys.sort_by(newest_first);
            // Settled when every shard still holding entries has given all
            // of them as new as the page's last (a shard's next entries are
            // no newer than the last it read): else read on there.
            let boundary = keys.get(wanted - 1).map(|key| key.created_at.clone());
            let mut settled = true;
            for shard in shards.iter_mut().filter(|shard| !shard.exhausted) {
                let covers = match (&boundary, shard.oldest_read()) {
                    (Some(boundary), Some(oldest)) => oldest < boundary.as_str(),
                    _ => false,
                };
                if !covers {
                    shard.more = shard.more.saturating_mul(2).clamp(1, 1000);
                    shard.pending = true;
                    settled = false;
                }
            }
            if settled {
                let more = shards.iter().any(|shard| !shard.exhausted) || keys.len() > wanted;
                let mut items: Vec<Item> = shards.into_iter().flat_map(|shard| shard.items).collect();
                items.sort_by(|a, b| newest_first(&CreatorKey::of(a), &CreatorKey::of(b)));
                items.truncate(wanted);
                let next = items.last().filter(|_| more).map(|item| CreatorKey::of(item).to_page_key());
                return Ok(Page { items, next });
            }
        }
    }
}

/// Entries of one creator's listing per read when no limit is given.
const CREATOR_PAGE: u32 = 1000;

/// The listing's order: newer first, then the larger id.
fn newest_first(a: &CreatorKey, b: &CreatorKey) -> std::cmp::Ordering {
    b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id))
}

/// One index shard's part of a creator listing: what it gave so far.
struct ShardRead {
    shard: String,
    items: Vec<Item>,
    /// Where its next Query starts, and how many entries it asks for.
    start: Option<Key>,
    more: usize,
    pending: bool,
    exhausted: bool,
    /// `createdAt` of the last entry read, kept or not.
    last_read: Option<String>,
}

impl ShardRead {
    fn new(creator: &str, n: u32, first: usize) -> Self {
        let shard = creator_shard_number(creator, n);
        Self { shard, items: Vec::new(), start: None, more: first, pending: true, exhausted: false, last_read: None }
    }

    fn wants_more(&self) -> bool {
        self.pending && !self.exhausted
    }

    fn took(&mut self, (items, last_read, start): (Vec<Item>, Option<String>, Option<Key>)) {
        self.items.extend(items);
        self.last_read = last_read.or(self.last_read.take());
        self.exhausted = start.is_none();
        self.start = start;
        self.pending = false;
    }

    /// The oldest `createdAt` this shard has read: every entry it has not
    /// read is this old or older.
    fn oldest_read(&self) -> Option<&str> {
        self.last_read.as_deref()
    }
}

impl DynamoReadModel {
    /// The next entries of a shard after the listing's position `after`:
    /// those kept, the last `createdAt` read, and where to go on.
    async fn read_shard(
        &self,
        shard: &ShardRead,
        after: Option<&CreatorKey>,
    ) -> Result<(Vec<Item>, Option<String>, Option<Key>), StoreError> {
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(ITEMS_BY_CREATOR_INDEX)
            .expression_attribute_names("#shard", ITEMS_CREATOR_SHARD_KEY)
            .expression_attribute_values(":shard", AttributeValue::S(shard.shard.clone()))
            .scan_index_forward(false)
            .set_exclusive_start_key(shard.start.clone())
            .limit(i32::try_from(shard.more).unwrap_or(1000));
        query = match after {
            Some(after) => query
                .key_condition_expression("#shard = :shard AND #at <= :at")
                .expression_attribute_names("#at", ITEMS_CREATED_AT_KEY)
                .expression_attribute_values(":at", AttributeValue::S(after.created_at.clone())),
            None => query.key_condition_expression("#shard = :shard"),
        };
        let output = query.send().await.map_err(|e| store_error("Query", e))?;
        let mut kept = Vec::new();
        let mut last_read = None;
        for record in output.items.unwrap_or_default() {
            let item = Self::decode(record)?;
            last_read = Some(rfc3339::format(&item.created_at));
            if after.is_none_or(|after| newest_first(after, &CreatorKey::of(&item)).is_lt()) {
                kept.push(item);
            }
        }
        Ok((kept, last_read, output.last_evaluated_key))
    }
}
