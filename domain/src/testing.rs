use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::event::rfc3339;
use crate::ports::{Clock, IdGenerator};

/// Parses an RFC 3339 literal; for tests only.
pub fn at(text: &str) -> DateTime<Utc> {
    rfc3339::parse(text).unwrap_or_else(|e| panic!("bad test timestamp {text}: {e}"))
}

/// A clock that always says the same time.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub DateTime<Utc>);

impl Default for FixedClock {
    fn default() -> Self {
        Self(at("2026-01-02T03:04:05.678Z"))
    }
}

/// The wall clock stands still; monotonic time runs, so deadlines pass.
impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }

    fn instant(&self) -> std::time::Instant {
        std::time::Instant::now()
    }
}

/// Ids 1, 2, 3, ... as UUIDs, so tests can name them.
#[derive(Debug, Default)]
pub struct SequentialIds(AtomicU64);

impl IdGenerator for SequentialIds {
    fn new_id(&self) -> Uuid {
        Uuid::from_u128(u128::from(self.0.fetch_add(1, Ordering::Relaxed)) + 1)
    }
}
