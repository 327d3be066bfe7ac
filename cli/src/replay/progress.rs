//! `items replay`'s progress: a bar on a terminal, a line every few seconds
//! otherwise, and optionally EMF lines for CloudWatch.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use items_domain::ports::{ReplayObserver, WriteStats};

/// Progress: a bar on a terminal, a line every few seconds otherwise.
pub(crate) struct Progress {
    /// The command, at the start of each line.
    label: &'static str,
    bar: Option<ProgressBar>,
    events: AtomicUsize,
    written: AtomicUsize,
    started: Instant,
    last_line: Mutex<Instant>,
    /// Print an EMF line (ReplayEventsRead, ReplayItemsWritten) per page.
    emf: bool,
}

/// `ITEMS_METRICS_EMF=1`: replay progress as CloudWatch EMF lines on stdout.
const EMF_SETTING: &str = "ITEMS_METRICS_EMF";

impl Progress {
    pub(crate) fn new(expected_events: u64) -> Self {
        Self::labelled("replay", expected_events)
    }

    /// Progress of `label` (`export`, `import`) over about `expected_events`.
    pub(crate) fn labelled(label: &'static str, expected_events: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(expected_events);
            bar.set_style(
                ProgressStyle::with_template("{bar:40} {pos}/{len} events  {per_sec}  ETA {eta}  {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        });
        let now = Instant::now();
        Self {
            label,
            bar,
            events: AtomicUsize::new(0),
            written: AtomicUsize::new(0),
            started: now,
            last_line: Mutex::new(now),
            emf: std::env::var(EMF_SETTING).is_ok_and(|v| v == "1"),
        }
    }

    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl ReplayObserver for Progress {
    fn page_done(&self, _segment: u32, events: usize, stats: WriteStats) {
        let total = self.events.fetch_add(events, Ordering::Relaxed) + events;
        let written = self.written.fetch_add(stats.written, Ordering::Relaxed) + stats.written;
        items_aws::metrics::count(items_aws::metrics::Counter::ReplayEventsRead, events as u64);
        items_aws::metrics::count(items_aws::metrics::Counter::ReplayItemsWritten, stats.written as u64);
        if self.emf {
            // Replay progress as CloudWatch metrics, for a replay run where
            // stdout goes to CloudWatch Logs (a task, a build job).
            items_aws::metrics::flush_emf("replay");
        }
        if let Some(bar) = &self.bar {
            bar.set_position(total as u64);
            bar.set_message(format!("{written} written"));
            return;
        }
        let mut last = self.last_line.lock().unwrap_or_else(|e| e.into_inner());
        if last.elapsed() >= Duration::from_secs(2) {
            *last = Instant::now();
            let rate = total as f64 / self.started.elapsed().as_secs_f64().max(0.001);
            eprintln!("{}: {total} events read, {written} written, {rate:.0} events/s", self.label);
        }
    }
}
