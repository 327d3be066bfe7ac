//! `items replay`, `export` and `import` at scale: for each size, a log
//! seeded on a fresh embedded store, then the `items` binary run as an
//! operator runs it (`--verify` while the read model is still empty,
//! `replay`, `--verify` again, `export` to a file, `import` of it into a new
//! data dir), each timed with its peak RSS, the second export checked to be
//! the same bytes; then the same on DynamoDB Local at its size.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::json;

use crate::{Series, seed};

#[derive(Debug, clap::Args)]
pub struct ScaleArgs {
    /// The `items` binary to measure.
    #[arg(long)]
    pub items: PathBuf,
    /// Log sizes on the embedded store, comma-separated.
    #[arg(long, default_value = "100000,1000000", value_delimiter = ',')]
    pub embedded: Vec<usize>,
    /// Log size on DynamoDB Local (0: skip).
    #[arg(long, default_value_t = 100_000)]
    pub dynamodb: usize,
    /// More arguments for every `items replay` (such as `--segments 2`).
    #[arg(long, allow_hyphen_values = true, value_delimiter = ' ')]
    pub replay_args: Vec<String>,
    #[arg(long)]
    pub out: PathBuf,
}

/// One run of `items`: its exit code, wall time and peak RSS.
struct Run {
    code: i32,
    seconds: f64,
    rss_mb: f64,
}

/// Runs `program` with `args` to its end under GNU time, whose own small
/// process starts it: a child's peak RSS counted by the kernel (wait4) starts
/// at its parent's RSS when it was forked, which would be the harness's.
fn measure(program: &Path, args: &[&std::ffi::OsStr], envs: &[(&str, &str)]) -> anyhow::Result<Run> {
    let report = std::env::temp_dir().join(format!("items-bench-time-{}", uuid::Uuid::new_v4().simple()));
    let started = Instant::now();
    let status = Command::new("/usr/bin/time")
        .args(["-f", "%M", "-o"])
        .arg(&report)
        .arg(program)
        .args(args)
        .envs(envs.iter().copied())
        .stdout(std::process::Stdio::null())
        .status()
        .map_err(|e| anyhow::anyhow!("/usr/bin/time (Debian package `time`): {e}"))?;
    let seconds = started.elapsed().as_secs_f64();
    let printed = std::fs::read_to_string(&report)?;
    let _ = std::fs::remove_file(&report);
    // The last line is the peak RSS in KiB (a line before it may say how the command exited).
    let kib: f64 = printed.lines().last().unwrap_or_default().trim().parse()?;
    Ok(Run { code: status.code().unwrap_or(-1), seconds, rss_mb: kib / 1024.0 })
}

fn record(series: &mut Series, name: &str, events: usize, run: &Run) {
    eprintln!(
        "scale: {name}: {:.1} s, {:.0} events/s, peak RSS {:.0} MB, exit {}",
        run.seconds,
        events as f64 / run.seconds,
        run.rss_mb,
        run.code
    );
    series.push(&format!("{name}.seconds"), run.seconds);
    series.push(&format!("{name}.events_per_s"), events as f64 / run.seconds);
    series.push(&format!("{name}.rss_mb"), run.rss_mb);
    series.push(&format!("{name}.exit"), f64::from(run.code));
}

pub fn run(args: ScaleArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    let mut series = Series::default();
    for &events in &args.embedded {
        let dir = std::env::temp_dir().join(format!("items-bench-scale-{}", uuid::Uuid::new_v4().simple()));
        let started = Instant::now();
        rt.block_on(seed::to_embedded(&dir, seed::log(events)))?;
        eprintln!("scale: seeded {events} events in {:.0} s", started.elapsed().as_secs_f64());
        for (name, extra, want) in
            [("verify_behind", &["--verify"][..], 1), ("replay", &[][..], 0), ("verify", &["--verify"][..], 0)]
        {
            let mut command: Vec<&std::ffi::OsStr> = vec!["replay".as_ref(), "--data-dir".as_ref(), dir.as_os_str()];
            command.extend(extra.iter().map(std::ffi::OsStr::new));
            command.extend(args.replay_args.iter().map(std::ffi::OsStr::new));
            let run = measure(&args.items, &command, &[])?;
            record(&mut series, &format!("embedded_{events}.{name}"), events, &run);
            anyhow::ensure!(run.code == want, "{name} at {events} events: exit {} (want {want})", run.code);
        }
        let copy = dir.with_extension("copy");
        let (file, again) = (dir.with_extension("jsonl"), copy.with_extension("jsonl"));
        for (name, command) in [
            ("export", ["export".as_ref(), file.as_os_str(), "--data-dir".as_ref(), dir.as_os_str()]),
            ("import", ["import".as_ref(), file.as_os_str(), "--data-dir".as_ref(), copy.as_os_str()]),
            ("export_again", ["export".as_ref(), again.as_os_str(), "--data-dir".as_ref(), copy.as_os_str()]),
        ] {
            let run = measure(&args.items, &command, &[])?;
            record(&mut series, &format!("embedded_{events}.{name}"), events, &run);
            anyhow::ensure!(run.code == 0, "{name} at {events} events: exit {}", run.code);
        }
        let bytes = std::fs::metadata(&file)?.len();
        series.push(&format!("embedded_{events}.export_mb"), bytes as f64 / 1e6);
        anyhow::ensure!(std::fs::read(&file)? == std::fs::read(&again)?, "the round trip changed the export");
        for path in [&dir, &copy] {
            let _ = std::fs::remove_dir_all(path);
        }
        for path in [&file, &again] {
            let _ = std::fs::remove_file(path);
        }
    }
    if args.dynamodb > 0 {
        dynamodb(&rt, &args.items, args.dynamodb, &mut series)?;
    }
    series.write(&args.out, json!({ "embedded": args.embedded, "dynamodb": args.dynamodb }))
}

fn dynamodb(rt: &tokio::runtime::Runtime, items: &Path, events: usize, series: &mut Series) -> anyhow::Result<()> {
    let local = items_testkit::DynamoDbLocal::start()?;
    let client = rt.block_on(local.client());
    rt.block_on(seed::to_dynamodb(&client, "scale-events", &seed::log(events)))?;
    let data_dir = std::env::temp_dir().join(format!("items-bench-scale-{}", uuid::Uuid::new_v4().simple()));
    for (name, extra, want) in [("replay", &[][..], 0), ("verify", &["--verify"][..], 0)] {
        let endpoint = local.endpoint();
        let mut command: Vec<&std::ffi::OsStr> = ["replay", "--dynamodb-endpoint", &endpoint]
            .into_iter()
            .chain(["--events-table", "scale-events", "--items-table", "scale-items", "--data-dir"])
            .map(|a| a.as_ref())
            .collect();
        command.push(data_dir.as_os_str());
        command.extend(extra.iter().map(std::ffi::OsStr::new));
        if name == "replay" {
            rt.block_on(items_aws::dynamodb::ensure_items_table(&client, "scale-items"))?;
        }
        let credentials =
            [("AWS_ACCESS_KEY_ID", "local"), ("AWS_SECRET_ACCESS_KEY", "local"), ("AWS_REGION", "us-east-1")];
        let run = measure(items, &command, &credentials)?;
        record(series, &format!("dynamodb_{events}.{name}"), events, &run);
        anyhow::ensure!(run.code == want, "DynamoDB {name} at {events} events: exit {} (want {want})", run.code);
    }
    let file = data_dir.join("export.jsonl");
    // Without a stream: DynamoDB Local's stream-enabled tables write slower
    // the more stream records it holds (10,000 imported events: 3.3 s into a
    // second table without a stream, 23.5 s into a second one with), which
    // would measure DynamoDB Local, not the import.
    rt.block_on(items_aws::dynamodb::ensure_events_table_without_stream(&client, "scale-events-copy"))?;
    for (name, verb, table) in [("export", "export", "scale-events"), ("import", "import", "scale-events-copy")] {
        let endpoint = local.endpoint();
        let mut command: Vec<&std::ffi::OsStr> = vec![verb.as_ref(), file.as_os_str()];
        command.extend(
            ["--dynamodb-endpoint", &endpoint, "--events-table", table, "--data-dir"].map(std::ffi::OsStr::new),
        );
        command.push(data_dir.as_os_str());
        let credentials =
            [("AWS_ACCESS_KEY_ID", "local"), ("AWS_SECRET_ACCESS_KEY", "local"), ("AWS_REGION", "us-east-1")];
        let run = measure(items, &command, &credentials)?;
        record(series, &format!("dynamodb_{events}.{name}"), events, &run);
        anyhow::ensure!(run.code == 0, "DynamoDB {name} at {events} events: exit {}", run.code);
    }
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok(())
}
