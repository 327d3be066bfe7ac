//! The stream records a local log's entries become: what DynamoDB Streams
//! would deliver for an inserted event, or for a row this code cannot read.

use aws_lambda_events::event::dynamodb::{EventRecord, StreamViewType};
use items_aws::dynamodb::codec::{EVENTS_PARTITION_KEY, EVENTS_SORT_KEY, event_to_item};
use items_domain::Event;

/// One entry of a local log as the change feed reads it: decoded per
/// row, so one bad row is one poison record, not a page nobody can read.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeRecord {
    pub sequence: u64,
    pub stream_id: String,
    pub event: Result<Event, Undecodable>,
}

/// A row of the log this code cannot decode.
#[derive(Debug, Clone, PartialEq)]
pub struct Undecodable {
    pub reason: String,
    /// The stored form, when it is JSON at all: the stream record carries it
    /// as DynamoDB would, and the handler's own decoding says what is wrong.
    pub stored: Option<serde_json::Value>,
}

impl ChangeRecord {
    /// The stream record DynamoDB would deliver for it.
    pub(super) fn to_stream_record(&self) -> EventRecord {
        let encoded = match &self.event {
            Ok(event) => insert_record(event, self.sequence.to_string()).map_err(|error| error.to_string()),
            Err(undecodable) => Err(undecodable.reason.clone()),
        };
        encoded.unwrap_or_else(|reason| {
            tracing::error!(sequence = self.sequence, %reason, "event cannot be read from the log");
            let mut record = EventRecord::default();
            record.event_name = "INSERT".into();
            record.change.sequence_number = Some(self.sequence.to_string());
            // The key names the item, as DynamoDB's always does: only its
            // records wait behind this one.
            let key = serde_dynamo::AttributeValue::S(self.stream_id.clone());
            record.change.keys.insert(EVENTS_PARTITION_KEY.to_owned(), key);
            let stored = self.event.as_ref().err().and_then(|undecodable| undecodable.stored.as_ref());
            match stored.and_then(|stored| serde_dynamo::to_item(stored).ok()) {
                Some(image) => record.change.new_image = image,
                None => {
                    let stream_id = serde_dynamo::AttributeValue::S(self.stream_id.clone());
                    record.change.new_image.insert(EVENTS_PARTITION_KEY.to_owned(), stream_id);
                }
            }
            record
        })
    }
}

/// The stream record DynamoDB would deliver for an inserted event.
pub fn insert_record(event: &Event, sequence_number: String) -> Result<EventRecord, serde_dynamo::Error> {
    let image: serde_dynamo::Item = event_to_item(event)?;
    let mut keys = serde_dynamo::Item::from(std::collections::HashMap::<String, serde_dynamo::AttributeValue>::new());
    for key in [EVENTS_PARTITION_KEY, EVENTS_SORT_KEY] {
        if let Some(value) = image.get(key) {
            keys.insert(key.to_owned(), value.clone());
        }
    }
    let mut record = EventRecord::default();
    record.event_id = event.event_id.to_string();
    record.event_name = "INSERT".into();
    record.event_source = Some("aws:dynamodb".into());
    record.event_version = Some("1.1".into());
    record.aws_region = "local".into();
    record.change.approximate_creation_date_time = event.occurred_at;
    record.change.keys = keys;
    record.change.new_image = image;
    record.change.sequence_number = Some(sequence_number);
    record.change.stream_view_type = Some(StreamViewType::NewImage);
    Ok(record)
}
