//! What stands between `POST /login` and a password guesser: a bound on the
//! Argon2id checks running at once (each takes a blocking thread and 19 MiB),
//! a backoff per client address, and a lockout per username as Cognito's:
//! after five failures a username is locked for 1 s, doubling with each
//! further failure up to about 15 minutes; attempts during a lockout are
//! refused without a password check and do not count.
//! (<https://docs.aws.amazon.com/cognito/latest/developerguide/authentication.html#authentication-flow-lockout-behavior>)
//!
//! One password check per username at a time: a burst of parallel guesses
//! gets one checked and the rest refused, so the lockout holds at five
//! guesses however many arrive at once. Usernames are kept as SHA-256
//! digests (a fixed 32 bytes whatever was posted), and a held key is never
//! forgotten to make room: when the tables are full of held keys, new keys
//! are refused (`Busy`) instead.

use super::lock;
use crate::server::client_key;
use std::collections::{HashMap, HashSet};
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
            // About 40 bytes a record: a few MiB at most.
            max_tracked: 100_000,
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
    /// Too many password checks at once, or the tables are full of held keys.
    Busy,
    /// A password check for this username is running: one at a time.
    InProgress,
}

impl Throttled {
    /// Whole seconds for `Retry-After`, at least 1.
    pub fn retry_after_secs(self) -> u64 {
        match self {
            Self::Username { retry_after } | Self::Address { retry_after } => {
                retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0)
            }
            Self::Busy | Self::InProgress => 1,
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

    /// Whether `key` has failures on record.
    fn has_failures(&self, key: &K) -> bool {
        self.records.get(key).is_some_and(|record| record.failures > 0)
    }

    /// Whether a failure of `key` could not be recorded: a new key while the
    /// table is full of keys it must keep.
    fn full_for(&mut self, key: &K, now: Instant) -> bool {
        if self.records.contains_key(key) || self.records.len() < self.max_tracked {
            return false;
        }
        self.prune(now);
        self.records.len() >= self.max_tracked
    }

    fn failed(&mut self, key: K, now: Instant) {
        if self.full_for(&key, now) {
            return;
        }
        let forget_after = self.backoff.forget_after;
        let record = self.records.entry(key).or_insert(Record { failures: 0, last_failure: now, held_until: None });
        if now.saturating_duration_since(record.last_failure) >= forget_after {
            record.failures = 0;
        }
        record.failures = record.failures.saturating_add(1);
        record.last_failure = now;
        record.held_until = self.backoff.hold(record.failures).map(|hold| now + hold);
    }

    fn succeeded(&mut self, key: &K) {
        self.records.remove(key);
    }

    /// Forgets quiet keys; if that is not enough, the least recent half of
    /// those that are not held and could not be held at their next failure
    /// (forgetting one of those would reset a lockout).
    fn prune(&mut self, now: Instant) {
        let forget_after = self.backoff.forget_after;
        self.records.retain(|_, r| now.saturating_duration_since(r.last_failure) < forget_after);
        if self.records.len() >= self.max_tracked {
            let backoff = self.backoff;
            let keep = |r: &Record| {
                r.held_until.is_some_and(|until| until > now) || r.failures + 1 >= backoff.failures_before_hold
            };
            let mut times: Vec<Instant> = self.records.values().filter(|r| !keep(r)).map(|r| r.last_failure).collect();
            if times.is_empty() {
                return;
            }
            times.sort_unstable();
            let cutoff = times[times.len() / 2];
            self.records.retain(|_, r| keep(r) || r.last_failure > cutoff);
        }
    }
}

/// A username as the guard keeps it: its SHA-256 digest.
type UsernameKey = [u8; 32];

fn username_key(username: &str) -> UsernameKey {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, username.as_bytes());
    let mut key = [0; 32];
    key.copy_from_slice(digest.as_ref());
    key
}

/// The guard one Hosted UI shares between its sign-in requests.
pub struct SignInGuard {
    checks: Arc<Semaphore>,
    /// Permits for waiting plus running checks: past it, `Busy`.
    admitted: Arc<Semaphore>,
    addresses: Mutex<Failures<IpAddr>>,
    usernames: Mutex<Failures<UsernameKey>>,
    /// Usernames with a sign-in admitted and not yet answered.
    in_flight: Arc<Mutex<HashSet<UsernameKey>>>,
}

/// A sign-in admitted for one username: while it lives, no other sign-in
/// for that username is admitted.
pub struct Admission {
    username: UsernameKey,
    address: IpAddr,
    in_flight: Arc<Mutex<HashSet<UsernameKey>>>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        lock(&self.in_flight).remove(&self.username);
    }
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
            in_flight: Arc::new(Mutex::new(HashSet::new())),
        }
    }

    /// Whether `address` and `username` are held back now.
    fn held(&self, address: IpAddr, username: &UsernameKey, now: Instant) -> Result<(), Throttled> {
        let mut usernames = lock(&self.usernames);
        if let Some(retry_after) = usernames.held(username, now) {
            return Err(Throttled::Username { retry_after });
        }
        let usernames_full = usernames.full_for(username, now);
        drop(usernames);
        let mut addresses = lock(&self.addresses);
        if let Some(retry_after) = addresses.held(&address, now) {
            return Err(Throttled::Address { retry_after });
        }
        // A table full of names it must keep refuses new names only to an
        // address with failures of its own: a clean client still gets its
        // check (security review N7), and its failure counts for its address.
        if usernames_full && addresses.has_failures(&address) {
            return Err(Throttled::Busy);
        }
        if addresses.full_for(&address, now) {
            return Err(Throttled::Busy);
        }
        Ok(())
    }

    /// Admits a sign-in from `address` for `username`, unless either is held
    /// back, the username has a sign-in in flight, or a failure of it could
    /// not be recorded.
    pub fn admit(&self, address: IpAddr, username: &str, now: Instant) -> Result<Admission, Throttled> {
        let (address, username) = (client_key(address), username_key(username));
        self.held(address, &username, now)?;
        if !lock(&self.in_flight).insert(username) {
            return Err(Throttled::InProgress);
        }
        Ok(Admission { username, address, in_flight: self.in_flight.clone() })
    }

    /// A slot to run `admission`'s password check in, waiting for one if all
    /// are busy; `Busy` when too many are waiting already. Looks at the holds
    /// again once the slot is there: a failure of the same address may have
    /// started one while this sign-in waited.
    pub async fn check_slot(&self, admission: &Admission) -> Result<CheckSlot, Throttled> {
        let admitted = self.admitted.clone().try_acquire_owned().map_err(|_| Throttled::Busy)?;
        let running = self.checks.clone().acquire_owned().await.map_err(|_| Throttled::Busy)?;
        self.held(admission.address, &admission.username, Instant::now())?;
        Ok(CheckSlot { _running: running, _admitted: admitted })
    }

    /// Records a wrong username or password.
    pub fn failed(&self, admission: &Admission, now: Instant) {
        lock(&self.usernames).failed(admission.username, now);
        lock(&self.addresses).failed(admission.address, now);
    }

    /// A correct password clears the username's failures. Not the
    /// address's: one account of one's own would otherwise reset the
    /// address's count between guesses at other usernames.
    pub fn succeeded(&self, admission: &Admission) {
        lock(&self.usernames).succeeded(&admission.username);
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

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

    /// One sign-in of `username` from `address` that fails at `now`.
    fn fail(guard: &SignInGuard, address: IpAddr, username: &str, now: Instant) {
        let admission = guard.admit(address, username, now).expect("admitted");
        guard.failed(&admission, now);
    }

    /// Whether a sign-in would be admitted (the admission is dropped at once).
    fn admitted(guard: &SignInGuard, address: IpAddr, username: &str, now: Instant) -> Result<(), Throttled> {
        guard.admit(address, username, now).map(drop)
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
            fail(&guard, HOME, ALICE, now);
        }
        assert_eq!(admitted(&guard, HOME, ALICE, now), Ok(()));

        fail(&guard, HOME, ALICE, now);

        let locked = Throttled::Username { retry_after: Duration::from_secs(1) };
        assert_eq!(admitted(&guard, HOME, ALICE, now), Err(locked));
        assert_eq!(admitted(&guard, ELSEWHERE, ALICE, now), Err(locked));
        assert_eq!(admitted(&guard, HOME, "bob", now), Ok(()), "other usernames are not locked");
        assert_eq!(admitted(&guard, HOME, ALICE, now + Duration::from_secs(1)), Ok(()), "the lock ends");
    }

    #[test]
    fn given_a_lockout_when_the_next_attempt_fails_then_the_lock_doubles() {
        let guard = guard();
        let start = Instant::now();
        for _ in 0..5 {
            fail(&guard, HOME, ALICE, start);
        }
        let after = start + Duration::from_secs(1);
        fail(&guard, HOME, ALICE, after);
        assert_eq!(
            admitted(&guard, HOME, ALICE, after),
            Err(Throttled::Username { retry_after: Duration::from_secs(2) })
        );
    }

    #[test]
    fn given_failures_when_the_password_is_right_then_the_usernames_count_starts_again_not_the_addresss() {
        let guard = guard();
        let now = Instant::now();
        for n in 0..2 {
            fail(&guard, HOME, ALICE, now);
            fail(&guard, HOME, &format!("other{n}"), now);
        }
        guard.succeeded(&guard.admit(HOME, ALICE, now).unwrap());
        for _ in 0..3 {
            fail(&guard, HOME, ALICE, now);
        }
        fail(&guard, ELSEWHERE, ALICE, now);
        assert_eq!(admitted(&guard, ELSEWHERE, ALICE, now), Ok(()), "four failures since the success: not locked");
        // Security review 3c: the success did not reset HOME's count, now at eight.
        fail(&guard, HOME, "y", now);
        assert_eq!(
            admitted(&guard, HOME, "someone", now),
            Err(Throttled::Address { retry_after: Duration::from_secs(1) })
        );
    }

    #[test]
    fn given_old_failures_when_one_more_fails_then_the_old_ones_are_forgotten() {
        let guard = guard();
        let start = Instant::now();
        for _ in 0..4 {
            fail(&guard, HOME, ALICE, start);
        }
        let later = start + Backoff::COGNITO_USERNAME.forget_after;
        fail(&guard, HOME, ALICE, later);
        assert_eq!(admitted(&guard, HOME, ALICE, later), Ok(()));
    }

    #[test]
    fn given_failures_over_many_usernames_from_one_address_then_the_address_is_held_back() {
        let guard = guard();
        let now = Instant::now();
        for attempt in 0..8 {
            fail(&guard, HOME, &format!("user{attempt}"), now);
        }
        assert_eq!(
            admitted(&guard, HOME, "someone", now),
            Err(Throttled::Address { retry_after: Duration::from_secs(1) })
        );
        assert_eq!(admitted(&guard, ELSEWHERE, "someone", now), Ok(()));
    }

    /// Security review finding 1: a burst for one username is one check.
    #[test]
    fn one_sign_in_per_username_at_a_time() {
        let guard = guard();
        let now = Instant::now();
        let first = guard.admit(HOME, ALICE, now).expect("the first is admitted");
        assert!(matches!(guard.admit(ELSEWHERE, ALICE, now), Err(Throttled::InProgress)));
        assert_eq!(admitted(&guard, HOME, "bob", now), Ok(()), "other usernames go on");
        drop(first);
        assert_eq!(admitted(&guard, HOME, ALICE, now), Ok(()), "free again once answered");
    }

    /// Security review finding 2: a spray of names never resets a lockout;
    /// a table full of locked names refuses new names instead.
    #[test]
    fn a_spray_of_usernames_neither_evicts_a_lockout_nor_grows_the_table() {
        let guard = SignInGuard::new(&SignInLimits { max_tracked: 100, ..SignInLimits::default() });
        let now = Instant::now();
        for _ in 0..5 {
            fail(&guard, HOME, ALICE, now);
        }
        for attempt in 0..1_000u16 {
            let address = IpAddr::V4(Ipv4Addr::new(10, 0, (attempt >> 8) as u8, attempt as u8));
            if let Ok(admission) = guard.admit(address, &format!("user{attempt}"), now) {
                guard.failed(&admission, now + Duration::from_millis(u64::from(attempt)));
            }
        }
        assert!(lock(&guard.usernames).records.len() <= 100);
        assert!(matches!(admitted(&guard, ELSEWHERE, ALICE, now), Err(Throttled::Username { .. })), "still locked");

        // Fill the table with held names: a new name is refused, not tracked over a held one.
        let held = SignInGuard::new(&SignInLimits { max_tracked: 3, ..SignInLimits::default() });
        for name in ["a", "b", "c"] {
            for _ in 0..5 {
                fail(&held, HOME, name, now);
            }
        }
        assert_eq!(admitted(&held, HOME, "d", now), Err(Throttled::Busy), "an address with failures");
        assert_eq!(admitted(&held, ELSEWHERE, "d", now), Ok(()), "a clean address gets its check (review N7)");
        assert!(matches!(admitted(&held, ELSEWHERE, "a", now), Err(Throttled::Username { .. })));
    }

    /// Security review finding 3: usernames are kept as fixed-size digests;
    /// an IPv6 host is one address per /64.
    #[test]
    fn keys_are_fixed_size_and_ipv6_counts_per_64() {
        assert_eq!(username_key(&"x".repeat(1 << 20)).len(), 32);
        let one: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let other: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        assert_eq!(client_key(one), client_key(other));
        assert_ne!(client_key(one), client_key("2001:db8:1:3::1".parse().unwrap()));
        let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped());
        assert_eq!(client_key(mapped), HOME);
        // This machine is one client, however many loopback addresses it binds (review N7).
        let loopback = client_key(IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(client_key("127.0.0.2".parse().unwrap()), loopback);
        assert_eq!(client_key("127.200.3.4".parse().unwrap()), loopback);
        assert_eq!(client_key(IpAddr::V6(Ipv6Addr::LOCALHOST)), loopback);
    }

    #[tokio::test]
    async fn checks_past_the_running_and_waiting_bound_are_refused_at_once() {
        let guard = Arc::new(guard());
        let now = Instant::now();
        let (a, b, c) = (
            guard.admit(HOME, "a", now).unwrap(),
            guard.admit(HOME, "b", now).unwrap(),
            guard.admit(HOME, "c", now).unwrap(),
        );
        let running = guard.check_slot(&a).await.expect("the one running check");
        let waiting = tokio::spawn({
            let guard = guard.clone();
            async move { guard.check_slot(&b).await.is_ok() }
        });
        while guard.admitted.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        assert!(matches!(guard.check_slot(&c).await, Err(Throttled::Busy)));
        drop(running);
        assert!(waiting.await.expect("the waiting check ran"), "the waiting check got its slot");
        assert!(guard.check_slot(&c).await.is_ok(), "room again once the checks finished");
    }

    /// Security review finding 1: a hold that started while a sign-in waited
    /// for its slot stops it before its password is checked.
    #[tokio::test]
    async fn a_hold_that_starts_while_waiting_for_a_slot_stops_the_check() {
        let guard = guard();
        let now = Instant::now();
        let waiting = guard.admit(HOME, ALICE, now).unwrap();
        for attempt in 0..8 {
            fail(&guard, HOME, &format!("user{attempt}"), now);
        }
        assert!(matches!(guard.check_slot(&waiting).await, Err(Throttled::Address { .. })));
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(Throttled::Username { retry_after: Duration::from_millis(1_200) }.retry_after_secs(), 2);
        assert_eq!(Throttled::Address { retry_after: Duration::from_secs(3) }.retry_after_secs(), 3);
        assert_eq!(Throttled::Busy.retry_after_secs(), 1);
        assert_eq!(Throttled::InProgress.retry_after_secs(), 1);
    }
}
