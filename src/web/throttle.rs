//! Throttling of failed sign-ins, per account and per client address, in memory.
//!
//! Each key (an account name, a client address) counts its recent failures (an attempt
//! counts as one from the moment it starts until it succeeds). The first few are free; after that each failure closes the key for a delay that doubles with
//! every further failure, up to a cap. While a key is closed, sign-ins that touch it are
//! answered 429 without checking the password (no argon2 work for the attacker to spend).
//! A success clears the account's and the address's counts. Counts are forgotten after a
//! quiet period. An account is never closed for longer than [`ThrottlePolicy::account`]'s
//! cap (a minute), so an attacker guessing a moderator's password from elsewhere keeps
//! the real moderator out for at most that long; an address is closed for longer.
//!
//! The state is per process (several replicas each throttle on their own) and is lost at
//! restart; both only make guessing a little faster, never slower than the policy.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How one kind of key is throttled.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// Failures allowed before any delay.
    pub free: u32,
    /// Delay after the first failure beyond the free ones; doubles with each further one.
    pub first_delay: Duration,
    /// Longest delay.
    pub max_delay: Duration,
}

impl Backoff {
    /// How long a key with `failures` recent failures is closed after the last one.
    pub fn delay(&self, failures: u32) -> Duration {
        let Some(beyond) = failures.checked_sub(self.free).filter(|b| *b > 0) else {
            return Duration::ZERO;
        };
        let doublings = (beyond - 1).min(30);
        self.first_delay.saturating_mul(1 << doublings).min(self.max_delay)
    }
}

/// The throttle's settings.
#[derive(Debug, Clone, Copy)]
pub struct ThrottlePolicy {
    pub account: Backoff,
    pub address: Backoff,
    /// A key's failures are forgotten after this long without a new one.
    pub forget_after: Duration,
    /// Most keys remembered per kind (memory bound); the oldest are forgotten first.
    pub max_keys: usize,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        ThrottlePolicy {
            // 5 free, then 1 s, 2 s, … 32 s, then one guess a minute.
            account: Backoff { free: 5, first_delay: Duration::from_secs(1), max_delay: Duration::from_secs(60) },
            // An address may fail more (several moderators behind one NAT), then 1 s … 5 min.
            address: Backoff { free: 20, first_delay: Duration::from_secs(1), max_delay: Duration::from_secs(300) },
            forget_after: Duration::from_secs(15 * 60),
            max_keys: 10_000,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    last_failure: Instant,
}

#[derive(Debug, Default)]
struct Keys<K> {
    records: HashMap<K, Record>,
}

impl<K: std::hash::Hash + Eq + Clone> Keys<K> {
    /// When `key` opens again, if it is closed at `now`.
    fn closed_until(&self, key: &K, backoff: &Backoff, now: Instant) -> Option<Instant> {
        let record = self.records.get(key)?;
        let until = record.last_failure + backoff.delay(record.failures);
        (until > now).then_some(until)
    }

    fn fail(&mut self, key: K, policy: &ThrottlePolicy, now: Instant) {
        if !self.records.contains_key(&key) && self.records.len() >= policy.max_keys {
            self.records.retain(|_, r| now.duration_since(r.last_failure) < policy.forget_after);
            if self.records.len() >= policy.max_keys
                && let Some(oldest) = self.records.iter().min_by_key(|(_, r)| r.last_failure).map(|(k, _)| k.clone())
            {
                self.records.remove(&oldest);
            }
        }
        let record = self.records.entry(key).or_insert(Record { failures: 0, last_failure: now });
        if now.duration_since(record.last_failure) >= policy.forget_after {
            record.failures = 0;
        }
        record.failures = record.failures.saturating_add(1);
        record.last_failure = now;
    }
}

/// Failed sign-ins per account and per address (cheap to share; one lock).
#[derive(Debug, Default)]
pub struct SignInThrottle {
    policy: ThrottlePolicy,
    state: Mutex<(Keys<String>, Keys<Option<IpAddr>>)>,
}

/// A sign-in refused before its password was checked: retry after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    pub retry_after: Duration,
}

impl SignInThrottle {
    pub fn new(policy: ThrottlePolicy) -> Self {
        SignInThrottle { policy, state: Mutex::default() }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Keys<String>, &mut Keys<Option<IpAddr>>) -> R) -> R {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (accounts, addresses) = &mut *state;
        f(accounts, addresses)
    }

    /// Whether a sign-in as `account` from `address` may be tried at `now`. `address` is
    /// `None` when the connection's address is unknown (all such sign-ins share one key).
    pub fn check(&self, account: &str, address: Option<IpAddr>, now: Instant) -> Result<(), Throttled> {
        let account = account_key(account);
        self.with(|accounts, addresses| {
            let until = [
                accounts.closed_until(&account, &self.policy.account, now),
                addresses.closed_until(&address, &self.policy.address, now),
            ]
            .into_iter()
            .flatten()
            .max();
            match until {
                // Rounded up, so that a client waiting exactly this long is let in.
                Some(until) => Err(Throttled { retry_after: round_up_to_seconds(until - now) }),
                None => Ok(()),
            }
        })
    }

    /// Starts a sign-in attempt: refused while the account or the address is closed;
    /// otherwise counted as a failure at once, until [`SignInThrottle::succeed`] clears it.
    /// Counting before the (slow) password check means many attempts sent at the same
    /// moment cannot all slip past the throttle.
    pub fn attempt(&self, account: &str, address: Option<IpAddr>, now: Instant) -> Result<(), Throttled> {
        self.check(account, address, now)?;
        let account = account_key(account);
        self.with(|accounts, addresses| {
            accounts.fail(account, &self.policy, now);
            addresses.fail(address, &self.policy, now);
        });
        Ok(())
    }

    /// Records a success: the account and the address start afresh.
    pub fn succeed(&self, account: &str, address: Option<IpAddr>) {
        let account = account_key(account);
        self.with(|accounts, addresses| {
            accounts.records.remove(&account);
            addresses.records.remove(&address);
        })
    }
}

/// Usernames are compared as typed but trimmed and lowercased here, so `Alice ` and
/// `alice` share a count.
fn account_key(account: &str) -> String {
    account.trim().to_lowercase()
}

fn round_up_to_seconds(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs() + u64::from(d.subsec_nanos() > 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1)));
    const B: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2)));

    #[test]
    fn delays_double_up_to_the_cap() {
        let b = ThrottlePolicy::default().account;
        let secs: Vec<u64> = (0..=13).map(|n| b.delay(n).as_secs()).collect();
        assert_eq!(secs, [0, 0, 0, 0, 0, 0, 1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(60));
    }

    #[test]
    fn an_account_under_attack_opens_within_a_minute_and_after_a_success() {
        let t = SignInThrottle::default();
        let start = Instant::now();
        let mut now = start;
        // An attacker at A guesses as fast as the throttle lets them for ten minutes.
        let mut guesses = 0;
        while now < start + Duration::from_secs(600) {
            match t.attempt("alice", A, now) {
                Ok(()) => guesses += 1,
                Err(Throttled { retry_after }) => {
                    assert!(retry_after <= Duration::from_secs(300), "{retry_after:?}");
                    // The real user at B is kept out at most a minute.
                    if let Err(Throttled { retry_after }) = t.check("Alice", B, now) {
                        assert!(retry_after <= Duration::from_secs(60), "{retry_after:?}");
                    }
                }
            }
            now += Duration::from_millis(250);
        }
        // 5 free, 6 more in the first 63 s, then one a minute.
        assert!((15..=22).contains(&guesses), "{guesses} guesses in ten minutes");
        // The real user waits out the account's delay, signs in from B, and is free again.
        let wait = t.check("alice", B, now).err().map_or(Duration::ZERO, |e| e.retry_after);
        assert!(wait <= Duration::from_secs(60));
        now += wait;
        assert_eq!(t.check("alice", B, now), Ok(()));
        t.succeed("alice", B);
        assert_eq!(t.check("alice", B, now), Ok(()));
    }

    #[test]
    fn failures_are_forgotten_after_a_quiet_period_and_keys_are_bounded() {
        let policy = ThrottlePolicy { max_keys: 3, ..ThrottlePolicy::default() };
        let t = SignInThrottle::new(policy);
        let now = Instant::now();
        for _ in 0..6 {
            t.attempt("alice", A, now).unwrap();
        }
        assert!(t.attempt("alice", B, now).is_err());
        let later = now + policy.forget_after;
        assert_eq!(t.attempt("alice", B, later), Ok(()), "the count restarted");
        assert_eq!(t.check("alice", B, later), Ok(()));
        for name in ["a", "b", "c", "d", "e"] {
            t.attempt(name, B, later).unwrap();
        }
        assert!(t.with(|accounts, _| accounts.records.len()) <= 3);
    }

    #[test]
    fn attempts_in_flight_count_before_their_outcome() {
        let t = SignInThrottle::default();
        let now = Instant::now();
        // Twenty attempts sent at once, none finished yet: only the free ones and the
        // one that closes the account get through.
        let through = (0..20).filter(|_| t.attempt("alice", A, now).is_ok()).count();
        assert_eq!(through, 6);
        t.succeed("alice", A);
        assert_eq!(t.attempt("alice", A, now), Ok(()));
    }
}
