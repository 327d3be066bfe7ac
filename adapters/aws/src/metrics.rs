//! The functions' own metrics: counted in the process by the handlers, then
//! written as CloudWatch Embedded Metric Format (one JSON line on stdout per
//! invocation, which CloudWatch Logs turns into metrics: no API call in the
//! request path) by the Lambdas, and shown in Prometheus text at `GET /metrics`
//! by `items serve`. One set of names for both.
//! (<https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>)

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use serde_json::{Map, Value, json};

/// The CloudWatch namespace (the Pulumi dashboard reads the same).
pub const NAMESPACE: &str = "ItemsApi";
/// The dimension every metric carries: which function counted it.
pub const DIMENSION: &str = "Function";
/// EMF takes at most 100 values per metric and line.
const MAX_SAMPLES: usize = 100;

/// What the handlers count; its value indexes [`Counter::ALL`] and [`NAMES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Counter {
    ItemsCreated,
    IdempotentRepeats,
    ItemsUpdated,
    ItemsDeleted,
    RecordsProjected,
    RecordsAlreadyNewer,
    RecordsFailed,
    /// Poison records the local event source mappings set aside (in AWS the
    /// on-failure destination's queue depth counts them).
    RecordsQuarantined,
    /// Records of an event type or schema this code does not know: a
    /// writer was updated before the projector (docs/deploy.md).
    RecordsOfNewerCode,
    ReplayEventsRead,
    ReplayItemsWritten,
}

/// Each counter's CloudWatch name and Prometheus name (`items_` prefix,
/// snake case, `_total`), in [`Counter`] order.
const NAMES: [(Counter, &str, &str); 11] = [
    (Counter::ItemsCreated, "ItemsCreated", "items_created_total"),
    (Counter::IdempotentRepeats, "IdempotentRepeats", "items_idempotent_repeats_total"),
    (Counter::ItemsUpdated, "ItemsUpdated", "items_updated_total"),
    (Counter::ItemsDeleted, "ItemsDeleted", "items_deleted_total"),
    (Counter::RecordsProjected, "RecordsProjected", "items_records_projected_total"),
    (Counter::RecordsAlreadyNewer, "RecordsAlreadyNewer", "items_records_already_newer_total"),
    (Counter::RecordsFailed, "RecordsFailed", "items_records_failed_total"),
    (Counter::RecordsQuarantined, "RecordsQuarantined", "items_records_quarantined_total"),
    (Counter::RecordsOfNewerCode, "RecordsOfNewerCode", "items_records_of_newer_code_total"),
    (Counter::ReplayEventsRead, "ReplayEventsRead", "items_replay_events_read_total"),
    (Counter::ReplayItemsWritten, "ReplayItemsWritten", "items_replay_items_written_total"),
];

// The table is in enum order: checked when compiling.
const _: () = {
    let mut i = 0;
    while i < NAMES.len() {
        assert!(NAMES[i].0 as usize == i);
        i += 1;
    }
};

impl Counter {
    pub const ALL: [Counter; NAMES.len()] = {
        let mut all = [Counter::ItemsCreated; NAMES.len()];
        let mut i = 0;
        while i < NAMES.len() {
            all[i] = NAMES[i].0;
            i += 1;
        }
        all
    };

    /// The CloudWatch metric name.
    pub fn name(self) -> &'static str {
        NAMES[self.index()].1
    }

    /// The Prometheus name.
    pub fn prometheus_name(self) -> &'static str {
        NAMES[self.index()].2
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Counts since the process started, and since the last EMF line.
struct Registry {
    totals: [AtomicU64; Counter::ALL.len()],
    pending: [AtomicU64; Counter::ALL.len()],
    /// Projection lag samples (ms) since the last EMF line, and all-time sum, count and max.
    lag: Mutex<Lag>,
}

#[derive(Default)]
struct Lag {
    pending: Vec<f64>,
    sum: f64,
    count: u64,
    max: f64,
    /// The newest sample: what the lag is now, while it grows or shrinks.
    last: f64,
}

static REGISTRY: Registry = Registry {
    totals: [const { AtomicU64::new(0) }; Counter::ALL.len()],
    pending: [const { AtomicU64::new(0) }; Counter::ALL.len()],
    lag: Mutex::new(Lag { pending: Vec::new(), sum: 0.0, count: 0, max: 0.0, last: 0.0 }),
};

pub fn count(counter: Counter, n: u64) {
    if n == 0 {
        return;
    }
    REGISTRY.totals[counter.index()].fetch_add(n, Ordering::Relaxed);
    REGISTRY.pending[counter.index()].fetch_add(n, Ordering::Relaxed);
}

/// One event's time from being recorded to being projected.
pub fn projection_lag(milliseconds: f64) {
    let milliseconds = milliseconds.max(0.0);
    let mut lag = REGISTRY.lag.lock().unwrap_or_else(PoisonError::into_inner);
    lag.sum += milliseconds;
    lag.count += 1;
    lag.max = lag.max.max(milliseconds);
    lag.last = milliseconds;
    if lag.pending.len() < MAX_SAMPLES {
        lag.pending.push(milliseconds);
    } else if let Some(smallest) = lag.pending.iter_mut().min_by(|a, b| a.total_cmp(b)) {
        // Full: keep the largest lags, what an alarm on the maximum needs.
        if *smallest < milliseconds {
            *smallest = milliseconds;
        }
    }
}

pub fn total(counter: Counter) -> u64 {
    REGISTRY.totals[counter.index()].load(Ordering::Relaxed)
}

/// Lambda's log levels, lowest first (`AWS_LAMBDA_LOG_LEVEL`).
const LOG_LEVELS: [&str; 6] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];

/// The `level` an EMF line carries so that it is never filtered out: with
/// JSON logs, Lambda drops a line whose `level` is below the function's
/// application log level (a line without one counts as INFO), and a dropped
/// line is a lost metric. So: the configured level (Lambda sets
/// `AWS_LAMBDA_LOG_LEVEL` to it) when above INFO, else INFO.
/// (<https://docs.aws.amazon.com/lambda/latest/dg/monitoring-cloudwatchlogs-log-level.html>)
pub fn emf_level(configured: Option<&str>) -> &'static str {
    let rank = |level: &str| LOG_LEVELS.iter().position(|known| known.eq_ignore_ascii_case(level));
    match configured.and_then(rank) {
        Some(at) if at > 2 => LOG_LEVELS[at],
        _ => "INFO",
    }
}

/// The EMF line for what was counted since the last one (`None` when nothing
/// was), and starts counting anew. `function` is the dimension's value,
/// `level` the line's log level (see [`emf_level`]).
pub fn take_emf(function: &str, timestamp_ms: i64, level: &str) -> Option<String> {
    let mut fields = Map::new();
    let mut definitions = Vec::new();
    for counter in Counter::ALL {
        let n = REGISTRY.pending[counter.index()].swap(0, Ordering::Relaxed);
        if n > 0 {
            fields.insert(counter.name().to_owned(), json!(n));
            definitions.push(json!({ "Name": counter.name(), "Unit": "Count" }));
        }
    }
    let samples = std::mem::take(&mut REGISTRY.lag.lock().unwrap_or_else(PoisonError::into_inner).pending);
    if !samples.is_empty() {
        fields.insert("ProjectionLag".to_owned(), json!(samples));
        definitions.push(json!({ "Name": "ProjectionLag", "Unit": "Milliseconds" }));
    }
    if definitions.is_empty() {
        return None;
    }
    fields.insert(DIMENSION.to_owned(), Value::String(function.to_owned()));
    // EMF ignores keys it was not told about; Lambda's log filter reads this one.
    fields.insert("level".to_owned(), Value::String(level.to_owned()));
    fields.insert(
        "_aws".to_owned(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [[DIMENSION]],
                "Metrics": definitions,
            }],
        }),
    );
    Some(Value::Object(fields).to_string())
}

/// Writes [`take_emf`]'s line to stdout, where Lambda sends it to CloudWatch Logs.
pub fn flush_emf(function: &str) {
    let level = emf_level(std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().as_deref());
    if let Some(line) = take_emf(function, chrono::Utc::now().timestamp_millis(), level) {
        println!("{line}");
    }
}

/// Records in the local quarantine now (a gauge: it falls after a redrive).
static QUARANTINE_SIZE: AtomicU64 = AtomicU64::new(0);
/// Events in a local log the projector has not applied yet (a gauge).
static BACKLOG: AtomicU64 = AtomicU64::new(0);

/// Sets the local quarantine's size, as `GET /metrics` shows it.
pub fn quarantine_size(records: u64) {
    QUARANTINE_SIZE.store(records, Ordering::Relaxed);
}

/// Sets how many events of a local log wait for the projector, as `GET
/// /metrics` shows it (in AWS, the event source mapping's iterator age says it).
pub fn projection_backlog(events: u64) {
    BACKLOG.store(events, Ordering::Relaxed);
}

/// Every counter since the process started, and the gauges, in Prometheus
/// text format 0.0.4.
pub fn prometheus_text() -> String {
    let mut out = String::new();
    let quarantined = QUARANTINE_SIZE.load(Ordering::Relaxed);
    out.push_str(&format!("# TYPE items_quarantined_records gauge\nitems_quarantined_records {quarantined}\n"));
    let backlog = BACKLOG.load(Ordering::Relaxed);
    out.push_str(&format!("# TYPE items_projection_backlog_events gauge\nitems_projection_backlog_events {backlog}\n"));
    for counter in Counter::ALL {
        let name = counter.prometheus_name();
        out.push_str(&format!("# TYPE {name} counter\n{name} {}\n", total(counter)));
    }
    let lag = REGISTRY.lag.lock().unwrap_or_else(PoisonError::into_inner);
    out.push_str("# TYPE items_projection_lag_milliseconds summary\n");
    out.push_str(&format!("items_projection_lag_milliseconds_sum {}\n", lag.sum));
    out.push_str(&format!("items_projection_lag_milliseconds_count {}\n", lag.count));
    out.push_str("# TYPE items_projection_lag_milliseconds_max gauge\n");
    out.push_str(&format!("items_projection_lag_milliseconds_max {}\n", lag.max));
    out.push_str("# TYPE items_projection_lag_milliseconds_last gauge\n");
    out.push_str(&format!("items_projection_lag_milliseconds_last {}\n", lag.last));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The registry is process-wide: the tests that read it run one at a time.
    static SERIAL: Mutex<()> = Mutex::new(());

    #[test]
    fn an_emf_line_declares_every_value_it_carries_and_then_starts_anew() {
        let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = take_emf("drain", 0, "INFO");
        count(Counter::ItemsCreated, 2);
        count(Counter::IdempotentRepeats, 1);
        projection_lag(12.5);
        projection_lag(-3.0);

        let line = take_emf("post-item", 1_764_072_000_000, "WARN").expect("something was counted");
        let emf: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(emf["ItemsCreated"], 2);
        assert_eq!(emf["IdempotentRepeats"], 1);
        assert_eq!(emf["ProjectionLag"], json!([12.5, 0.0]), "a clock step back is no negative lag");
        assert_eq!(emf["Function"], "post-item");
        assert_eq!(emf["level"], "WARN", "the line passes the log filter it was written for");
        let directive = &emf["_aws"];
        assert_eq!(directive["Timestamp"], 1_764_072_000_000_i64);
        let metrics = &directive["CloudWatchMetrics"][0];
        assert_eq!(metrics["Namespace"], "ItemsApi");
        assert_eq!(metrics["Dimensions"], json!([["Function"]]));
        let declared: Vec<&str> =
            metrics["Metrics"].as_array().unwrap().iter().map(|m| m["Name"].as_str().unwrap()).collect();
        assert_eq!(declared, ["ItemsCreated", "IdempotentRepeats", "ProjectionLag"]);
        for definition in metrics["Metrics"].as_array().unwrap() {
            let name = definition["Name"].as_str().unwrap();
            assert!(emf.get(name).is_some(), "{name} is declared and carried");
            let unit = if name == "ProjectionLag" { "Milliseconds" } else { "Count" };
            assert_eq!(definition["Unit"], unit);
        }
        assert_eq!(take_emf("post-item", 0, "INFO"), None, "nothing new, no line");
    }

    /// Review finding 3 (deploy): at `logLevel` WARN and above, a line without
    /// a `level` (INFO to Lambda) was dropped, and the dashboard emptied.
    #[test]
    fn an_emf_line_is_never_below_the_functions_log_level() {
        for (configured, level) in [
            (None, "INFO"),
            (Some("TRACE"), "INFO"),
            (Some("DEBUG"), "INFO"),
            (Some("INFO"), "INFO"),
            (Some("WARN"), "WARN"),
            (Some("error"), "ERROR"),
            (Some("FATAL"), "FATAL"),
            (Some("LOUD"), "INFO"),
        ] {
            assert_eq!(emf_level(configured), level, "{configured:?}");
        }
    }

    #[test]
    fn lag_samples_stay_within_emfs_hundred_values_keeping_the_largest() {
        let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = take_emf("drain", 0, "INFO");
        for n in 0..250 {
            projection_lag(f64::from(n));
        }
        let emf: Value = serde_json::from_str(&take_emf("project-events", 0, "INFO").unwrap()).unwrap();
        let samples: Vec<f64> = serde_json::from_value(emf["ProjectionLag"].clone()).unwrap();
        assert_eq!(samples.len(), 100);
        assert!(samples.contains(&249.0) && !samples.contains(&0.0));
    }

    #[test]
    fn prometheus_text_carries_every_counter_since_start() {
        let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
        let before = total(Counter::RecordsProjected);
        count(Counter::RecordsProjected, 3);
        let _ = take_emf("drain", 0, "INFO");
        let text = prometheus_text();
        assert!(text.contains(&format!("items_records_projected_total {}\n", before + 3)), "{text}");
        for counter in Counter::ALL {
            assert!(text.contains(&format!("# TYPE {} counter\n", counter.prometheus_name())));
        }
        assert!(text.contains("items_projection_lag_milliseconds_count "));
    }

    #[test]
    fn the_gauges_say_what_the_projection_is_behind_now() {
        let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
        projection_backlog(1234);
        projection_lag(5000.0);
        projection_lag(40.0);
        let text = prometheus_text();
        assert!(text.contains("items_projection_backlog_events 1234\n"), "{text}");
        assert!(text.contains("items_projection_lag_milliseconds_last 40\n"), "{text}");
        projection_backlog(0);
        assert!(prometheus_text().contains("items_projection_backlog_events 0\n"));
    }
}
