//! The projection as AWS runs it: each event of the log as the DynamoDB
//! stream record the events table would emit, handed to the
//! `project-events` handler (`items_aws::projector::project_records`) by a
//! stand-in for Lambda's event source mapping with its rules: a batch is
//! retried from the record the handler reports (ReportBatchItemFailures);
//! a record this code cannot apply (poison) is set aside after its attempt
//! (the quarantine, or in AWS the on-failure destination); lanes of one
//! shard run at once (ParallelizationFactor 2) with each item in one lane.

use std::collections::HashSet;

use aws_lambda_events::event::dynamodb::EventRecord;
use items_aws::dynamodb::codec::event_to_item;
use items_aws::projector::{Failure, project_records};
use items_domain::ports::ReadModel;
use items_domain::service::ProjectorService;
use items_domain::{Event, ItemId};

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

/// One lane's records, and the item of each.
pub struct Lane {
    pub records: Vec<EventRecord>,
    pub items: Vec<ItemId>,
    /// The lane's first record as the newer build wrote it, and the real one:
    /// delivered until the handler reports it, then "upgraded" (the code that
    /// reads it deployed) and redriven.
    pub newer: Option<EventRecord>,
}

/// Delivers a lane until every record is applied or set aside. `rows` is
/// the read model itself (not the projector's faulty view); `poisoned`, the
/// items whose streams hold a record no projector can fold.
pub async fn deliver(
    projector: &ProjectorService,
    mut lane: Lane,
    poisoned: &HashSet<ItemId>,
    rows: &dyn ReadModel,
) -> Result<(), String> {
    let mut upgraded = None;
    if let Some(newer) = lane.newer.take() {
        upgraded = Some(std::mem::replace(&mut lane.records[0], newer));
    }
    let before = match &upgraded {
        Some(_) => rows.get(lane.items[0]).await.map_err(|e| e.to_string())?,
        None => None,
    };
    let mut start = 0;
    let mut attempts = 0;
    while start < lane.records.len() {
        attempts += 1;
        if attempts > 30 + 2 * lane.records.len() {
            return Err(format!("the lane never got through: {} records, from {start}", lane.records.len()));
        }
        let projected = project_records(projector, &lane.records[start..]).await;
        match projected.failed {
            None => return Ok(()),
            Some((failed, Failure::Transient(_))) => start += failed,
            Some((failed, Failure::Poison(reason))) => {
                let index = start + failed;
                match upgraded.take() {
                    Some(real) if index == 0 => {
                        let row = rows.get(lane.items[0]).await.map_err(|e| e.to_string())?;
                        if row != before {
                            return Err(format!(
                                "item {} moved past a record it could not read: {before:?} became {row:?}",
                                lane.items[0]
                            ));
                        }
                        lane.records[0] = real;
                        start = 0;
                    }
                    still => {
                        upgraded = still;
                        if !poisoned.contains(&lane.items[index]) {
                            return Err(format!("a valid record of {} was poison: {reason}", lane.items[index]));
                        }
                        start = index + 1;
                    }
                }
            }
        }
    }
    Ok(())
}
