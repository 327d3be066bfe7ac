//! What stands between `POST /login` and a password guesser: a bound on the
//! Argon2id checks running at once (each takes a blocking thread and 19 MiB),
//! a backoff per client address, and a lockout per username as Cognito's:
//! after five failures a username is locked for 1 s, doubling with each
//! further failure up to about 15 minutes; attempts during a lockout are
//! refused without a password check and do not count.
//! (<https://docs.aws.amazon.com/cognito/latest/developerguide/authentication.html#authentication-flow-lockout-behavior>)

use super::lock;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Failures allowed before a key is held back, and for how long then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The failure that starts the first hold (Cognito: the fifth).
    pub failures_before_hold: u32,
    /// The first hold; each further failure doubles it.
    pub first_hold: Duration,
    pub max_hold: Duration,
    /// A key with no failure for this long starts again from zero.
    pub forget_after: Duration,
}

impl Backoff {
    /// Cognito's username lockout.
    pub const COGNITO_USERNAME: Self = Self {
        failures_before_hold: 5,
        first_hold: Duration::from_secs(1),
        max_hold: Duration::from_secs(15 * 60),
        forget_after: Duration::from_secs(30 * 60),
    };
    /// Per client address: room for a team behind one address, then the same doubling.
    pub const CLIENT_ADDRESS: Self = Self {
        failures_before_hold: 20,
        first_hold: Duration::from_secs(1),
        max_hold: Duration::from_secs(15 * 60),
        forget_after: Duration::from_secs(30 * 60),
    };

    /// The hold after `failures` consecutive failures, if any.
    fn hold(&self, failures: u32) -> Option<Duration> {
        let over = failures.checked_sub(self.failures_before_hold)?;
        let factor = 1u32.checked_shl(over.min(31)).unwrap_or(u32::MAX);
        Some(self.first_hold.saturating_mul(factor).min(self.max_hold))
    }
}

#[derive(Debug, Clone)]
pub struct SignInLimits {
    /// Password checks running at once.
    pub concurrent_checks: usize,
    /// Sign-ins waiting for a check; more are answered 429 at once.
    pub waiting_checks: usize,
    pub per_address: Backoff,
    pub per_username: Backoff,
    /// Addresses and usernames remembered at most (each), so a spray of
    /// names cannot grow memory without bound.
    pub max_tracked: usize,
}

impl Default for SignInLimits {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        Self {
            concurrent_checks: cores,
            waiting_checks: 8 * cores,
            per_address: Backoff::CLIENT_ADDRESS,
            per_username: Backoff::COGNITO_USERNAME,
            max_tracked: 10_000,
        }
    }
}

/// Why a sign-in is not even checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Throttled {
    /// The username is locked after repeated failures.
    Username { retry_after: Duration },
    /// Too many failures from this client address.
    Address { retry_after: Duration },
    /// Too many password checks at once.
    Busy,
}

impl Throttled {
    /// Whole seconds for `Retry-After`, at least 1.
    pub fn retry_after_secs(self) -> u64 {
        match self {
            Self::Username { retry_after } | Self::Address { retry_after } => {
                retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0)
            }
            Self::Busy => 1,
        }
        .max(1)
    }
}

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    last_failure: Instant,
    held_until: Option<Instant>,
}

/// Consecutive failures per key.
#[derive(Debug)]
struct Failures<K> {
    backoff: Backoff,
    max_tracked: usize,
    records: HashMap<K, Record>,
}

impl<K: Hash + Eq> Failures<K> {
    fn new(backoff: Backoff, max_tracked: usize) -> Self {
        Self { backoff, max_tracked, records: HashMap::new() }
    }

    /// How long `key` is still held back.
    fn held(&self, key: &K, now: Instant) -> Option<Duration> {
        let until = self.records.get(key)?.held_until?;
        until.checked_duration_since(now).filter(|left| !left.is_zero())
    }

    fn failed(&mut self, key: K, now: Instant) {
        let forget_after = self.backoff.forget_after;
        let record = self.records.entry(key).or_insert(Record { failures: 0, last_failure: now, held_until: None });
        if now.saturating_duration_since(record.last_failure) >= forget_after {
            record.failures = 0;
        }
        record.failures = record.failures.saturating_add(1);
        record.last_failure = now;
        record.held_until = self.backoff.hold(record.failures).map(|hold| now + hold);
        if self.records.len() > self.max_tracked {
            self.prune(now);
        }
    }

    fn succeeded(&mut self, key: &K) {
        self.records.remove(key);
    }

    /// Forgets quiet keys; if that is not enough, the least recent half.
    fn prune(&mut self, now: Instant) {
        let forget_after = self.backoff.forget_after;
        self.records.retain(|_, r| now.saturating_duration_since(r.last_failure) < forget_after);
        if self.records.len() > self.max_tracked {
            let mut times: Vec<Instant> = self.records.values().map(|r| r.last_failure).collect();
            times.sort_unstable();
            let cutoff = times[times.len() / 2];
            self.records.retain(|_, r| r.last_failure > cutoff);
        }
    }
}

/// The guard one Hosted UI shares between its sign-in requests.
pub struct SignInGuard {
    checks: Arc<Semaphore>,
    /// Permits for waiting plus running checks: past it, `Busy`.
    admitted: Arc<Semaphore>,
    addresses: Mutex<Failures<IpAddr>>,
    usernames: Mutex<Failures<String>>,
}

/// A password check may run while this is held.
pub struct CheckSlot {
    _running: OwnedSemaphorePermit,
    _admitted: OwnedSemaphorePermit,
}

impl SignInGuard {
    pub fn new(limits: &SignInLimits) -> Self {
        let concurrent = limits.concurrent_checks.max(1);
        Self {
            checks: Arc::new(Semaphore::new(concurrent)),
            admitted: Arc::new(Semaphore::new(concurrent + limits.waiting_checks)),
            addresses: Mutex::new(Failures::new(limits.per_address, limits.max_tracked)),
            usernames: Mutex::new(Failures::new(limits.per_username, limits.max_tracked)),
        }
    }

    /// Whether a sign-in from `address` for `username` may be checked now.
    pub fn admit(&self, address: IpAddr, username: &str, now: Instant) -> Result<(), Throttled> {
        if let Some(retry_after) = lock(&self.usernames).held(&username.to_owned(), now) {
            return Err(Throttled::Username { retry_after });
        }
        if let Some(retry_after) = lock(&self.addresses).held(&address, now) {
            return Err(Throttled::Address { retry_after });
        }
        Ok(())
    }

    /// A slot to run a password check in, waiting for one if all are busy;
    /// `Busy` when too many are waiting already.
    pub async fn check_slot(&self) -> Result<CheckSlot, Throttled> {
        let admitted = self.admitted.clone().try_acquire_owned().map_err(|_| Throttled::Busy)?;
        let running = self.checks.clone().acquire_owned().await.map_err(|_| Throttled::Busy)?;
        Ok(CheckSlot { _running: running, _admitted: admitted })
    }

    /// Records a wrong username or password.
    pub fn failed(&self, address: IpAddr, username: &str, now: Instant) {
        lock(&self.usernames).failed(username.to_owned(), now);
        lock(&self.addresses).failed(address, now);
    }

    /// A correct password clears the username's and the address's failures.
    pub fn succeeded(&self, address: IpAddr, username: &str) {
        lock(&self.usernames).succeeded(&username.to_owned());
        lock(&self.addresses).succeeded(&address);
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    const ALICE: &str = "alice";
    const HOME: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    const ELSEWHERE: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));

    fn guard() -> SignInGuard {
        SignInGuard::new(&SignInLimits {
            concurrent_checks: 1,
            waiting_checks: 1,
            per_address: Backoff { failures_before_hold: 8, ..Backoff::CLIENT_ADDRESS },
            per_username: Backoff::COGNITO_USERNAME,
            max_tracked: 100,
        })
    }

    #[test]
    fn the_username_lockout_starts_at_the_fifth_failure_and_doubles_as_cognitos() {
        let backoff = Backoff::COGNITO_USERNAME;
        assert_eq!(backoff.hold(4), None);
        assert_eq!(backoff.hold(5), Some(Duration::from_secs(1)));
        assert_eq!(backoff.hold(6), Some(Duration::from_secs(2)));
        assert_eq!(backoff.hold(14), Some(Duration::from_secs(512)));
        assert_eq!(backoff.hold(15), Some(Duration::from_secs(900)));
        assert_eq!(backoff.hold(u32::MAX), Some(Duration::from_secs(900)));
    }

    #[test]
    fn given_four_failures_when_the_fifth_fails_then_the_username_is_locked_from_every_address() {
        let guard = guard();
        let now = Instant::now();
        for _ in 0..4 {
            guard.failed(HOME, ALICE, now);
        }
        assert_eq!(guard.admit(HOME, ALICE, now), Ok(()));

        guard.failed(HOME, ALICE, now);

        let locked = Throttled::Username { retry_after: Duration::from_secs(1) };
        assert_eq!(guard.admit(HOME, ALICE, now), Err(locked));
        assert_eq!(guard.admit(ELSEWHERE, ALICE, now), Err(locked));
        assert_eq!(guard.admit(HOME, "bob", now), Ok(()), "other usernames are not locked");
        assert_eq!(guard.admit(HOME, ALICE, now + Duration::from_secs(1)), Ok(()), "the lock ends");
    }

    #[test]
    fn given_a_lockout_when_the_next_attempt_fails_then_the_lock_doubles() {
        let guard = guard();
        let start = Instant::now();
        for _ in 0..5 {
            guard.failed(HOME, ALICE, start);
        }
        let after = start + Duration::from_secs(1);
        guard.failed(HOME, ALICE, after);
        assert_eq!(guard.admit(HOME, ALICE, after), Err(Throttled::Username { retry_after: Duration::from_secs(2) }));
    }

    #[test]
    fn given_failures_when_the_password_is_right_then_the_count_starts_again() {
        let guard = guard();
        let now = Instant::now();
        for _ in 0..4 {
            guard.failed(HOME, ALICE, now);
        }
        guard.succeeded(HOME, ALICE);
        guard.failed(HOME, ALICE, now);
        assert_eq!(guard.admit(HOME, ALICE, now), Ok(()));
    }

    #[test]
    fn given_old_failures_when_one_more_fails_then_the_old_ones_are_forgotten() {
        let guard = guard();
        let start = Instant::now();
        for _ in 0..4 {
            guard.failed(HOME, ALICE, start);
        }
        let later = start + Backoff::COGNITO_USERNAME.forget_after;
        guard.failed(HOME, ALICE, later);
        assert_eq!(guard.admit(HOME, ALICE, later), Ok(()));
    }

    #[test]
    fn given_failures_over_many_usernames_from_one_address_then_the_address_is_held_back() {
        let guard = guard();
        let now = Instant::now();
        for attempt in 0..8 {
            guard.failed(HOME, &format!("user{attempt}"), now);
        }
        assert_eq!(guard.admit(HOME, "someone", now), Err(Throttled::Address { retry_after: Duration::from_secs(1) }));
        assert_eq!(guard.admit(ELSEWHERE, "someone", now), Ok(()));
    }

    #[test]
    fn a_spray_of_usernames_stays_within_the_tracking_bound() {
        let guard = guard();
        let now = Instant::now();
        for attempt in 0..1_000 {
            guard.failed(HOME, &format!("user{attempt}"), now + Duration::from_millis(attempt));
        }
        assert!(lock(&guard.usernames).records.len() <= 100);
        // The most recent ones are the ones kept.
        assert!(lock(&guard.usernames).records.contains_key("user999"));
    }

    #[tokio::test]
    async fn checks_past_the_running_and_waiting_bound_are_refused_at_once() {
        let guard = Arc::new(guard());
        let running = guard.check_slot().await.expect("the one running check");
        let waiting = tokio::spawn({
            let guard = guard.clone();
            async move { guard.check_slot().await.is_ok() }
        });
        while guard.admitted.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        assert!(matches!(guard.check_slot().await, Err(Throttled::Busy)));
        drop(running);
        assert!(waiting.await.expect("the waiting check ran"), "the waiting check got its slot");
        assert!(guard.check_slot().await.is_ok(), "room again once the checks finished");
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(Throttled::Username { retry_after: Duration::from_millis(1_200) }.retry_after_secs(), 2);
        assert_eq!(Throttled::Address { retry_after: Duration::from_secs(3) }.retry_after_secs(), 3);
        assert_eq!(Throttled::Busy.retry_after_secs(), 1);
    }
}
