//! The golden logs (`fixtures/golden`, see its README): what every release
//! wrote stays readable, folds as it did, and no stored shape changes
//! without a new schema and a new golden log.

use std::collections::{BTreeMap, BTreeSet};

use crate::event::{DecodeError, EventSchemas, StoredEvent};
use crate::projection::REVISION;
use crate::testing::golden;

fn decoded(log: &[StoredEvent]) -> Vec<crate::Event> {
    log.iter().map(|stored| stored.clone().decode().unwrap_or_else(|e| panic!("{e}: {stored:?}"))).collect()
}

/// A log exported before event schemas could change imports and folds to
/// what that release's own projector made of it (its read model, recorded
/// then, never by this code).
#[test]
fn what_main_wrote_folds_to_what_its_projector_made() {
    let logs = golden::logs();
    let export = &logs[&format!("{}/export.jsonl", golden::MAIN_2026_12_08)];
    assert_eq!(golden::fold(decoded(export)), golden::read_model(golden::MAIN_2026_12_08));
}

/// Review L4, by construction: snapshots are trusted by `REVISION`, so the
/// fold of every golden log is recorded with the revision that made it. A
/// change to `evolve` or to decoding (an upcaster) that changes any fold
/// without a new `REVISION` fails here.
#[test]
fn the_golden_folds_change_only_with_the_revision() {
    let folds: BTreeMap<String, Vec<crate::Item>> = golden::logs()
        .iter()
        .map(|(name, log)| (name.clone(), golden::fold(decoded(log)).into_values().collect()))
        .collect();
    let folded = serde_json::json!({ "revision": REVISION, "folds": folds });
    let path = golden::dir().join("folds.json");
    if std::env::var_os("ITEMS_RECORD_GOLDEN").is_some() {
        std::fs::write(&path, serde_json::to_string_pretty(&folded).unwrap() + "\n").unwrap();
    }
    let recorded: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("the recorded folds")).unwrap();
    assert_eq!(
        recorded["revision"], REVISION,
        "REVISION is {REVISION}, the recorded folds are of {}: record them (ITEMS_RECORD_GOLDEN=1)",
        recorded["revision"]
    );
    assert_eq!(
        folded, recorded,
        "the golden logs fold differently but projection::REVISION is still {REVISION}: bump it, so snapshots \
         folded by the old code are not trusted, then record the folds (ITEMS_RECORD_GOLDEN=1)"
    );
}

/// Every stored event, read and written again, is what was written: a
/// change to a stored shape (a renamed field, a new one in an old schema)
/// fails here, and needs a new schema with its own golden log instead.
#[test]
fn every_golden_event_is_written_again_as_it_was() {
    for (name, log) in golden::logs() {
        for stored in log {
            let written = serde_json::to_value(&stored).unwrap();
            let again = serde_json::to_value(stored.decode().unwrap().to_stored()).unwrap();
            assert_eq!(again, written, "{name}");
        }
    }
}

/// Each schema set has its golden log, and every shape this code can write
/// (each type at each schema up to the newest) is in one.
#[test]
fn every_schema_ever_written_has_a_golden_log() {
    let logs = golden::logs();
    for schemas in EventSchemas::ALL {
        assert!(logs.contains_key(&format!("v{}.jsonl", schemas.set)), "no golden log of schema set {}", schemas.set);
    }
    let kept: BTreeSet<(String, u32)> =
        logs.values().flatten().map(|stored| (stored.event_type.clone(), stored.schema)).collect();
    for (event_type, newest) in EventSchemas::CURRENT.types() {
        for schema in 1..=newest {
            assert!(kept.contains(&(event_type.to_owned(), schema)), "no golden {event_type} at schema {schema}");
        }
    }
}

/// Code of an older set (the projector of a release before this one) reads
/// what it knows and refuses the rest by name, never guessing.
#[test]
fn an_older_set_refuses_exactly_the_newer_schemas() {
    for (name, log) in golden::logs() {
        for stored in log {
            let newer = stored.schema > 1;
            match stored.clone().decode_with(&EventSchemas::SET_1) {
                Ok(event) => {
                    assert!(!newer, "{name}: set 1 read a schema {} event", stored.schema);
                    assert_eq!(event, stored.decode().unwrap(), "{name}: set 1 reads it as this code does");
                }
                Err(error) => {
                    assert!(newer, "{name}: {error}");
                    assert_eq!(
                        error,
                        DecodeError::UnsupportedSchema { event_type: stored.event_type.clone(), schema: stored.schema }
                    );
                }
            }
        }
    }
}
