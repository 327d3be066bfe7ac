//! The projection as AWS runs it: each event of the log as the DynamoDB
//! stream record the events table would emit, handed to the
//! `project-events` handler's code (`items_aws::projector::project_and_set_aside`:
//! poison set aside in the quarantine, dependency failures handed back) by a
//! stand-in for Lambda's event source mapping with its rules: a batch is
//! retried from the record the handler hands back (ReportBatchItemFailures,
//! with retries until the record is too old, which a model run never
//! reaches); lanes of one shard run at once (ParallelizationFactor 2), each
//! item in one lane.

use aws_lambda_events::event::dynamodb::EventRecord;
use items_aws::dynamodb::codec::event_to_item;
use items_aws::projector::project_and_set_aside;
use items_aws::quarantine::Quarantine;
use items_domain::Event;
use items_domain::service::ProjectorService;

/// `event` as the events table's stream record at `sequence`.
pub fn stream_record(event: &Event, sequence: usize) -> EventRecord {
    let image: serde_dynamo::Item = event_to_item(event).expect("an event maps to an item");
    let image = serde_json::to_value(image).expect("an item is JSON");
    let record = serde_json::json!({
        "eventID": event.event_id.to_string(),
        "eventName": "INSERT",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "Keys": { "stream_id": image["stream_id"], "version": image["version"] },
            "NewImage": image,
            "SequenceNumber": format!("{sequence:024}"),
            "SizeBytes": 1,
            "StreamViewType": "NEW_IMAGE",
        },
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/events/stream/label",
    });
    serde_json::from_value(record).expect("a stream record")
}

/// The same record as a newer build wrote it: a type this code does not know.
pub fn from_a_newer_build(record: &EventRecord) -> EventRecord {
    let mut newer = record.clone();
    newer.change.new_image.insert("type".into(), serde_dynamo::AttributeValue::S("ItemArchived".into()));
    newer
}

/// One lane's records.
pub struct Lane {
    pub records: Vec<EventRecord>,
}

/// Delivers a lane until every record is applied or set aside.
pub async fn deliver(projector: &ProjectorService, quarantine: &dyn Quarantine, lane: Lane) -> Result<(), String> {
    let mut start = 0;
    let mut attempts = 0;
    while start < lane.records.len() {
        attempts += 1;
        if attempts > 30 + 2 * lane.records.len() {
            return Err(format!("the lane never got through: {} records, from {start}", lane.records.len()));
        }
        match project_and_set_aside(projector, quarantine, &lane.records[start..]).await.retry {
            None => return Ok(()),
            Some((failed, _)) => start += failed,
        }
    }
    Ok(())
}
