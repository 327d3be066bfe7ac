use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use items_domain::ports::{CreatorKey, Page, PageKey, ReadModel, StoreError, Upsert};
use items_domain::{Item, ItemId};

use super::store_error;
use serde_dynamo::{from_item, to_item};

use crate::dynamodb::codec::{ITEMS_BY_CREATOR_INDEX, ITEMS_CREATED_AT_KEY, ITEMS_CREATOR_KEY, ITEMS_KEY};

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

/// The attributes stored for `item`: a tombstone also gets its expiry.
pub(crate) fn record(item: &Item) -> Result<std::collections::HashMap<String, AttributeValue>, StoreError> {
    let mut record: std::collections::HashMap<String, AttributeValue> =
        to_item(item).map_err(|e| StoreError::Corrupt(e.to_string()))?;
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
        let condition = format!(
            "attribute_not_exists(id) OR version < :version OR (version = :version AND (#name <> :name OR #timestamp <> :timestamp \
             OR createdBy <> :createdBy OR createdAt <> :createdAt OR {deleted}))"
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
        let start = match after {
            Some(key) => {
                let key = CreatorKey::from_page_key(key)?;
                Some(Key::from([
                    (ITEMS_CREATOR_KEY.to_owned(), AttributeValue::S(creator.to_owned())),
                    (ITEMS_CREATED_AT_KEY.to_owned(), AttributeValue::S(key.created_at)),
                    (ITEMS_KEY.to_owned(), AttributeValue::S(key.id.to_string())),
                ]))
            }
            None => None,
        };
        let (items, last) = self
            .follow(limit, start, |start, limit| async move {
                // A Query of the creator's partition of the index, newest
                // first: what it reads does not grow with the table.
                let query = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .index_name(ITEMS_BY_CREATOR_INDEX)
                    .key_condition_expression("#creator = :creator")
                    .expression_attribute_names("#creator", ITEMS_CREATOR_KEY)
                    .expression_attribute_values(":creator", AttributeValue::S(creator.to_owned()))
                    .scan_index_forward(false)
                    .set_exclusive_start_key(start)
                    .set_limit(limit);
                let output = query.send().await.map_err(|e| store_error("Query", e))?;
                Ok((output.items.unwrap_or_default(), output.last_evaluated_key))
            })
            .await?;
        // The next position from the key DynamoDB gave (its order of items of
        // the same time is its own).
        let next = last.as_ref().map(creator_position).transpose()?;
        Ok(Page { items, next })
    }
}

/// A `by-creator` LastEvaluatedKey as a page key.
fn creator_position(key: &Key) -> Result<PageKey, StoreError> {
    let text = |name: &str| {
        key.get(name)
            .and_then(|value| value.as_s().ok())
            .cloned()
            .ok_or_else(|| StoreError::Corrupt(format!("index key without {name}")))
    };
    let id = ItemId::parse(&text(ITEMS_KEY)?).ok_or_else(|| StoreError::Corrupt("index key's id".into()))?;
    Ok(CreatorKey { created_at: text(ITEMS_CREATED_AT_KEY)?, id }.to_page_key())
}
