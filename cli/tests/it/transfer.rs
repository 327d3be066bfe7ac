//! `items export` and `items import`: the log as JSON Lines, moved between
//! the embedded store and a real DynamoDB Local, and back, byte for byte.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;

use crate::support::{new_data_dir, printed, run_items};
use items_aws::system::{RandomIds, SystemClock};
use items_domain::command::{Actor, CreateItem, UpdateItem};
use items_domain::event::StoredEvent;
use items_domain::ports::EventStore;
use items_domain::service::{ChangeItemService, CreateItemService};
use items_local::sqlite::{Database, SqliteEventStore};
use items_testkit::{DynamoDbLocal, unique_table};

/// A log with every kind of event: items created, renamed, deleted, and one
/// long stream (longer than an append's 99 events).
async fn seed(data_dir: &Path) -> Vec<items_domain::ItemId> {
    let database = Database::open(data_dir).unwrap();
    let events: Arc<dyn EventStore> = Arc::new(SqliteEventStore::new(database.clone()));
    let create = CreateItemService::new(events.clone(), Arc::new(SystemClock), Arc::new(RandomIds));
    let change = ChangeItemService::new(events, Arc::new(SystemClock), Arc::new(RandomIds));
    let owner = Actor { subject: "sub-owner".into(), is_admin: false };
    let mut live = Vec::new();
    for n in 0..40 {
        // Some with a description (schema 2 events), set, changed or cleared.
        let description = (n % 4 == 1).then(|| format!("about {n}\nline two"));
        let command = CreateItem { name: format!("item {n} ✓"), timestamp: format!("t{n}"), description };
        let id = create.create("sub-owner", command).await.unwrap().id;
        let renames = if n == 0 { 250 } else { n % 3 };
        for r in 0..renames {
            let description = match (n % 4, r) {
                (1, 0) => Some(None),
                (2, 0) => Some(Some(format!("later {n}"))),
                _ => None,
            };
            let rename = UpdateItem { name: Some(format!("item {n} r{r}")), timestamp: None, description };
            change.update(&owner, id, rename, None, None).await.unwrap();
        }
        if n % 5 == 4 {
            change.delete(&owner, id, None, None).await.unwrap();
        } else {
            live.push(id);
        }
    }
    live
}

/// Renames each of `ids` once more.
async fn rename(data_dir: &Path, ids: &[items_domain::ItemId]) {
    let database = Database::open(data_dir).unwrap();
    let change =
        ChangeItemService::new(Arc::new(SqliteEventStore::new(database)), Arc::new(SystemClock), Arc::new(RandomIds));
    let owner = Actor { subject: "sub-owner".into(), is_admin: false };
    for id in ids {
        let rename = UpdateItem { name: Some("later".into()), timestamp: None, description: None };
        change.update(&owner, *id, rename, None, None).await.unwrap();
    }
}

fn ok(output: &Output) -> String {
    assert!(output.status.success(), "{}", printed(output));
    printed(output)
}

/// `items` with the DynamoDB Local endpoint and `events` as the events table.
fn on_dynamodb(args: &[&str], events: &str, data_dir: &Path) -> Output {
    let endpoint = DynamoDbLocal::shared().endpoint();
    let mut all = args.to_vec();
    all.extend(["--dynamodb-endpoint", &endpoint, "--events-table", events]);
    run_items(&all, data_dir)
}

fn export_file(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

fn sha256_hex(bytes: &[u8]) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_log_goes_from_sqlite_to_dynamodb_and_back_byte_for_byte() {
    let (laptop, scratch) = (new_data_dir(), new_data_dir());
    std::fs::create_dir_all(&scratch).unwrap();
    seed(&laptop).await;
    let first = export_file(&scratch, "laptop.jsonl");
    let exported = ok(&run_items(&["export", first.to_str().unwrap()], &laptop));
    let bytes = std::fs::read(&first).unwrap();
    let lines: Vec<StoredEvent> =
        bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(|l| serde_json::from_slice(l).unwrap()).collect();
    // 40 creations, 250 + 13 x 1 + 13 x 2 renames, 8 deletions.
    assert_eq!(lines.len(), 40 + 250 + 13 + 26 + 8);
    assert!(exported.contains(&format!("exported {} events of 40 items", lines.len())), "{exported}");
    assert!(exported.contains(&format!("{}  {}", sha256_hex(&bytes), first.display())), "{exported}");
    let keys: Vec<(String, u64)> = lines.iter().map(|e| (e.stream_id.clone(), e.version)).collect();
    assert!(keys.windows(2).all(|pair| pair[0] < pair[1]), "streams by id, each in version order");
    assert!(lines.iter().all(|event| event.clone().decode().is_ok()), "every line is a stored event");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&first).unwrap().permissions().mode() & 0o777, 0o600, "private, as the store");
    }

    // Into DynamoDB Local, twice: the second run changes nothing.
    let events = unique_table("import-events");
    for _ in 0..2 {
        let imported = ok(&on_dynamodb(&["import", first.to_str().unwrap()], &events, &scratch));
        assert!(imported.contains(&format!("imported {} events of 40 items", lines.len())), "{imported}");
    }
    let second = export_file(&scratch, "dynamodb.jsonl");
    let from_dynamodb = ok(&on_dynamodb(&["export", second.to_str().unwrap(), "--segments", "3"], &events, &scratch));
    assert_eq!(std::fs::read(&second).unwrap(), bytes, "the same bytes back from DynamoDB");
    assert!(from_dynamodb.contains(&sha256_hex(&bytes)), "{from_dynamodb}");
    let left: Vec<String> = std::fs::read_dir(&scratch)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".partial-") || name.ends_with(".sqlite3"))
        .collect();
    assert!(left.is_empty(), "no partial file, no scratch sort left: {left:?}");

    // The read model each side rebuilds from it verifies clean.
    let items = unique_table("import-items");
    let client = DynamoDbLocal::shared().client().await;
    items_aws::dynamodb::ensure_items_table(&client, &items).await.unwrap();
    let table = ["--items-table", items.as_str()];
    ok(&on_dynamodb(&[&["replay"][..], &table].concat(), &events, &scratch));
    ok(&on_dynamodb(&[&["replay", "--verify"][..], &table].concat(), &events, &scratch));
    ok(&run_items(&["replay"], &laptop));
    ok(&run_items(&["replay", "--verify"], &laptop));

    // And back into an empty embedded store: the same bytes again, to stdout.
    let elsewhere = new_data_dir();
    ok(&run_items(&["import", second.to_str().unwrap()], &elsewhere));
    // `output()` reads while it waits: the log is larger than a pipe holds.
    let to_stdout = std::process::Command::new(env!("CARGO_BIN_EXE_items"))
        .args(["export", "--data-dir"])
        .arg(&elsewhere)
        .output()
        .unwrap();
    ok(&to_stdout);
    assert_eq!(to_stdout.stdout, bytes, "standard output carries the same bytes");
    let nowhere = new_data_dir();
    let refused = run_items(&["export", "-"], &nowhere);
    assert!(!refused.status.success() && printed(&refused).contains("there is no embedded store"));
    assert!(!nowhere.exists(), "a mistyped data dir is not created");
    for dir in [laptop, scratch, elsewhere] {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Lines of `file` with `edit` applied to the stored event at `index`.
fn edited(lines: &[String], index: usize, edit: impl FnOnce(&mut serde_json::Value)) -> Vec<String> {
    let mut out = lines.to_vec();
    let mut value: serde_json::Value = serde_json::from_str(&out[index]).unwrap();
    edit(&mut value);
    out[index] = value.to_string();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_file_that_is_not_a_whole_log_is_refused_at_its_line_and_writes_nothing() {
    let (laptop, scratch) = (new_data_dir(), new_data_dir());
    std::fs::create_dir_all(&scratch).unwrap();
    seed(&laptop).await;
    let good = export_file(&scratch, "good.jsonl");
    ok(&run_items(&["export", good.to_str().unwrap()], &laptop));
    let lines: Vec<String> = std::fs::read_to_string(&good).unwrap().lines().map(str::to_owned).collect();
    // A stream's version 2, with a version 3 after it.
    let version_of = |line: &str| serde_json::from_str::<serde_json::Value>(line).unwrap()["version"].as_u64().unwrap();
    let second_of_a_stream =
        (0..lines.len() - 1).find(|&i| version_of(&lines[i]) == 2 && version_of(&lines[i + 1]) == 3).unwrap();

    let mut gap = lines.clone();
    gap.remove(second_of_a_stream);
    let mut repeated = lines.clone();
    repeated.insert(second_of_a_stream + 1, lines[second_of_a_stream].clone());
    let cases: Vec<(&str, Vec<String>, usize, &str)> = vec![
        ("gap", gap, second_of_a_stream + 1, "versions do not follow on"),
        ("repeat", repeated, second_of_a_stream + 2, "versions do not follow on"),
        ("garbage", [&lines[..4], &["{not json".to_owned()], &lines[4..]].concat(), 5, "not a stored event"),
        (
            "unknown type",
            edited(&lines, 0, |event| event["type"] = "ItemStolen".into()),
            1,
            "unknown event type \"ItemStolen\"",
        ),
        // Security review N4: printed escaped, never raw terminal codes.
        (
            "escape codes",
            edited(&lines, 0, |event| event["type"] = "\u{1b}[31mX".into()),
            1,
            "unknown event type \"\\u{1b}[31mX\"",
        ),
        // What the API could not have stored.
        (
            "name too long",
            edited(&lines, 0, |event| event["data"]["name"] = "n".repeat(257).into()),
            1,
            "`name` must be 1 to 256",
        ),
        (
            "subject too long",
            edited(&lines, 0, |event| event["subject"] = "s".repeat(129).into()),
            1,
            "`subject` must be 1 to 128",
        ),
    ];
    for (what, content, line, reason) in cases {
        let file = scratch.join(format!("{what}.jsonl"));
        std::fs::write(&file, content.join("\n") + "\n").unwrap();
        let target = new_data_dir();
        let refused = run_items(&["import", file.to_str().unwrap()], &target);
        assert!(!refused.status.success(), "{what}: {}", printed(&refused));
        let said = printed(&refused);
        assert!(said.contains(&format!("{}, line {line}: ", file.display())), "{what}: {said}");
        assert!(said.contains(reason), "{what}: {said}");
        assert!(!refused.stdout.contains(&0x1b) && !refused.stderr.contains(&0x1b), "{what}: a raw escape printed");
        assert!(!target.exists(), "{what}: nothing written, not even a database");
    }

    // A store with another event at a version the file has: a conflict
    // named at its line; the store's own event stays.
    let conflicting =
        edited(&lines, second_of_a_stream, |event| event["event_id"] = uuid::Uuid::new_v4().to_string().into());
    let file = scratch.join("conflicting.jsonl");
    std::fs::write(&file, conflicting.join("\n") + "\n").unwrap();
    let refused = run_items(&["import", file.to_str().unwrap(), "--concurrency", "1"], &laptop);
    assert!(!refused.status.success());
    let said = printed(&refused);
    assert!(said.contains("has another event at version 2 in the store"), "{said}");
    assert!(said.contains(&format!("line {}: ", second_of_a_stream + 1)), "the conflicting event's line: {said}");

    // Review L9: the same event id with other content (another name at v1)
    // is no "already stored": refused at its line too.
    let disagreeing = edited(&lines, 0, |event| event["data"]["name"] = "not what the log says".into());
    let file = scratch.join("disagreeing.jsonl");
    std::fs::write(&file, disagreeing.join("\n") + "\n").unwrap();
    let refused = run_items(&["import", file.to_str().unwrap(), "--concurrency", "1"], &laptop);
    assert!(!refused.status.success(), "{}", printed(&refused));
    assert!(printed(&refused).contains("line 1: "), "{}", printed(&refused));

    let after = export_file(&scratch, "after.jsonl");
    ok(&run_items(&["export", after.to_str().unwrap()], &laptop));
    assert_eq!(std::fs::read(&after).unwrap(), std::fs::read(&good).unwrap(), "the store is as it was");
    for dir in [laptop, scratch] {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// A store that holds the start of a log takes the rest of it: an export
/// taken later (new items, and new versions of the old ones) imports on top
/// of an earlier one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_later_export_imports_on_top_of_an_earlier_one() {
    let (laptop, scratch, copy) = (new_data_dir(), new_data_dir(), new_data_dir());
    std::fs::create_dir_all(&scratch).unwrap();
    let live = seed(&laptop).await;
    let early = export_file(&scratch, "early.jsonl");
    ok(&run_items(&["export", early.to_str().unwrap()], &laptop));
    ok(&run_items(&["import", early.to_str().unwrap()], &copy));
    seed(&laptop).await;
    rename(&laptop, &live).await;
    let late = export_file(&scratch, "late.jsonl");
    ok(&run_items(&["export", late.to_str().unwrap()], &laptop));
    ok(&run_items(&["import", late.to_str().unwrap()], &copy));
    let copied = export_file(&scratch, "copied.jsonl");
    ok(&run_items(&["export", copied.to_str().unwrap()], &copy));
    assert_eq!(std::fs::read(&copied).unwrap(), std::fs::read(&late).unwrap());
    for dir in [laptop, scratch, copy] {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Review H1: the documented redrive after the DLQ (`replay --since` the
/// first record's arrival minus 5 minutes) takes an import made just now,
/// though its events carry the times they had in the file (a year back):
/// the catch-up selects by when events reached the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_redrive_after_an_import_of_old_events_repairs_every_item() {
    let scratch = new_data_dir();
    std::fs::create_dir_all(&scratch).unwrap();
    let a_year_ago = chrono::Utc::now() - chrono::TimeDelta::days(365);
    let mut lines = String::new();
    for n in 0..4u128 {
        let item = items_domain::ItemId(uuid::Uuid::from_u128(0x1000 + n));
        let event = items_domain::Event {
            event_id: uuid::Uuid::from_u128(0x2000 + n),
            item_id: item,
            version: 1,
            occurred_at: a_year_ago,
            subject: "sub-backup".into(),
            payload: items_domain::EventPayload::ItemCreated(items_domain::event::ItemCreated {
                name: format!("from the backup {n}"),
                timestamp: "t".into(),
                description: None,
            }),
        };
        lines.push_str(&serde_json::to_string(&event.to_stored()).unwrap());
        lines.push('\n');
    }
    let file = export_file(&scratch, "backup.jsonl");
    std::fs::write(&file, lines).unwrap();
    let (events, items) = (unique_table("redrive-events"), unique_table("redrive-items"));
    let client = DynamoDbLocal::shared().client().await;
    items_aws::dynamodb::ensure_items_table(&client, &items).await.unwrap();
    // Imported while no projector ran (its batches went to the DLQ).
    let arrival = chrono::Utc::now();
    ok(&on_dynamodb(&["import", file.to_str().unwrap()], &events, &scratch));

    let since = items_domain::event::rfc3339::format(&(arrival - chrono::TimeDelta::minutes(5)));
    let table = ["--items-table", items.as_str()];
    let redriven = ok(&on_dynamodb(&[&["replay", "--since", since.as_str()][..], &table].concat(), &events, &scratch));
    assert!(redriven.contains("items written:  4"), "{redriven}");
    ok(&on_dynamodb(&[&["replay", "--verify"][..], &table].concat(), &events, &scratch));
}

/// A log exported by main before event schemas could change (a golden log,
/// never edited) imports unchanged: exported again byte for byte, and
/// replayed into the read model main's own projector made of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_main_exported_on_2026_12_08_imports_and_folds_unchanged() {
    use items_domain::ports::ReadModel;
    use items_domain::testing::golden;
    let (copy, scratch) = (new_data_dir(), new_data_dir());
    std::fs::create_dir_all(&scratch).unwrap();
    let file = golden::dir().join(golden::MAIN_2026_12_08).join("export.jsonl");
    let imported = ok(&run_items(&["import", file.to_str().unwrap()], &copy));
    assert!(imported.contains("imported 10 events of 4 items"), "{imported}");
    let again = export_file(&scratch, "again.jsonl");
    ok(&run_items(&["export", again.to_str().unwrap()], &copy));
    assert_eq!(std::fs::read(&again).unwrap(), std::fs::read(&file).unwrap());
    ok(&run_items(&["replay"], &copy));
    let database = items_local::sqlite::Database::open(&copy).unwrap();
    let read_model = items_local::sqlite::SqliteReadModel::new(database);
    for (id, row) in golden::read_model(golden::MAIN_2026_12_08) {
        assert_eq!(read_model.get(id).await.unwrap(), Some(row));
    }
    for dir in [copy, scratch] {
        let _ = std::fs::remove_dir_all(dir);
    }
}
