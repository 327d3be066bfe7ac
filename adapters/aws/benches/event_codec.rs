//! Event (de)serialization on the hot paths: an event to and from its
//! DynamoDB item (the event store's PutItem, the replay's Scan), to and from
//! its stored JSON form, and a DynamoDB stream record (Lambda event JSON) to
//! an event, as the projector receives it.
//!
//! `cargo bench -p items-adapters --bench event_codec`

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use items_aws::dynamodb::codec::{event_from_item, event_to_item};
use items_aws::projector::{Decoded, decode_record};
use items_domain::event::{Event, EventPayload, ItemCreated, ItemId, StoredEvent};

type SdkItem = HashMap<String, AttributeValue>;

fn sample_event() -> Event {
    Event {
        event_id: uuid::Uuid::new_v4(),
        item_id: ItemId(uuid::Uuid::new_v4()),
        version: 1,
        // Stored with millisecond precision, so the round trip is exact.
        occurred_at: "2026-11-25T12:20:05.123Z".parse().expect("timestamp"),
        subject: "4f1e8a52-7c3b-4d59-9a41-0c6b2f2e9d11".to_owned(),
        payload: EventPayload::ItemCreated(ItemCreated {
            name: "Pen".to_owned(),
            timestamp: "2026-11-25T12:20:00Z".to_owned(),
            description: None,
        }),
    }
}

const STREAM_BATCH: &str = include_str!("../tests/fixtures/dynamodb-stream-insert.json");

fn event_codec(c: &mut Criterion) {
    let event = sample_event();
    let item: SdkItem = event_to_item(&event).expect("to item");
    let json = serde_json::to_vec(&event.to_stored()).expect("to json");
    assert_eq!(event_from_item(item.clone()).expect("from item"), Some(event.clone()));

    let mut group = c.benchmark_group("event");
    group.bench_function("to_dynamodb_item", |b| {
        b.iter(|| event_to_item::<SdkItem>(black_box(&event)).expect("to item"));
    });
    group.bench_function("from_dynamodb_item", |b| {
        b.iter_batched(|| item.clone(), |item| event_from_item(item).expect("from item"), BatchSize::SmallInput);
    });
    group.bench_function("to_stored_json", |b| {
        b.iter(|| serde_json::to_vec(&black_box(&event).to_stored()).expect("to json"));
    });
    group.bench_function("from_stored_json", |b| {
        b.iter(|| serde_json::from_slice::<StoredEvent>(black_box(&json)).expect("json").decode().expect("decode"));
    });
    group.bench_function("from_stream_record_json", |b| {
        b.iter(|| {
            let batch: aws_lambda_events::event::dynamodb::Event =
                serde_json::from_str(black_box(STREAM_BATCH)).expect("stream batch");
            match decode_record(&batch.records[0], &items_domain::event::EventSchemas::CURRENT).expect("record") {
                Decoded::Event(event) => event,
                Decoded::Skip(reason) => panic!("skipped: {reason}"),
            }
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = event_codec
}
criterion_main!(benches);
