//! What `items replay` prints at the end: the summary, or `--verify`'s report.

use std::time::Duration;

use items_domain::replay::{ReplaySummary, VerifyReport};

pub(super) fn print_summary(summary: &ReplaySummary, elapsed: Duration, dry_run: bool) {
    let seconds = elapsed.as_secs_f64();
    println!("events read:    {}", summary.events);
    println!("records skipped: {}", summary.skipped);
    if !dry_run {
        println!("items written:  {}", summary.writes.written);
        println!("already newer:  {}", summary.writes.already_newer);
        println!("retries:        {}", summary.writes.retries);
        if summary.expired_tombstones > 0 {
            println!("expired tombstones left out: {}", summary.expired_tombstones);
        }
    }
    println!("duration:       {seconds:.2} s ({:.0} events/s)", summary.events as f64 / seconds.max(0.001));
}

/// Ids shown of each kind of difference (the smallest).
const SHOWN: usize = 10;

pub(super) fn print_verify(label: &str, summary: &ReplaySummary, report: &VerifyReport, elapsed: Duration) {
    println!("events read:    {}", summary.events);
    println!("expected items: {}", report.expected);
    println!("items in {label}: {}", report.actual);
    for (label, differences) in [("missing", &report.missing), ("stale", &report.stale), ("extra", &report.extra)] {
        let shown: Vec<String> = differences.ids.iter().take(SHOWN).map(ToString::to_string).collect();
        let more = differences.count.saturating_sub(shown.len());
        let more = if more > 0 { format!(" (+{more} more)") } else { String::new() };
        println!(
            "{label}: {}{}{more}",
            differences.count,
            if shown.is_empty() { String::new() } else { format!(" {}", shown.join(" ")) }
        );
    }
    println!("duration:       {:.2} s", elapsed.as_secs_f64());
    println!(
        "{}",
        if report.is_clean() {
            "the read table matches the event log"
        } else {
            "the read table DIFFERS from the event log"
        }
    );
}
