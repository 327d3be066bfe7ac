use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use items_domain::ports::{Page, PageKey, ReadModel, StoreError, Upsert};
use items_domain::{Item, ItemId};

use super::store_error;
use crate::dynamodb_codec::{ITEMS_KEY, from_item, to_item};

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

#[async_trait]
impl ReadModel for DynamoReadModel {
    async fn upsert_if_newer(&self, item: &Item) -> Result<Upsert, StoreError> {
        let record = to_item(item).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(record))
            .condition_expression("attribute_not_exists(id) OR version < :version")
            .expression_attribute_values(":version", AttributeValue::N(item.version.to_string()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(Upsert::Applied),
            Err(error) => match error.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(_)) => Ok(Upsert::AlreadyNewer),
                _ => Err(store_error("PutItem", error)),
            },
        }
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
        let mut items = Vec::new();
        let mut start = after.map(|key| key.0.clone());
        loop {
            let wanted = limit.map(|l| l as usize - items.len());
            let mut scan = self.client.scan().table_name(&self.table);
            if let Some(wanted) = wanted {
                scan = scan.limit(i32::try_from(wanted).unwrap_or(i32::MAX));
            }
            if let Some(id) = &start {
                scan = scan.exclusive_start_key(ITEMS_KEY, AttributeValue::S(id.clone()));
            }
            let output = scan.send().await.map_err(|e| store_error("Scan", e))?;
            for item in output.items.unwrap_or_default() {
                items.push(Self::decode(item)?);
            }
            start = output.last_evaluated_key.and_then(|key| key.get(ITEMS_KEY).and_then(|id| id.as_s().ok()).cloned());
            let filled = limit.is_none_or(|l| items.len() >= l as usize);
            // Without a limit: one Scan page (up to 1 MB). With one: keep
            // scanning until it is filled, since a page can hold fewer items.
            if filled || start.is_none() {
                return Ok(Page { items, next: start.map(PageKey) });
            }
        }
    }
}
