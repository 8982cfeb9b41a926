//! The in-process backend: one governor limiter per rate bucket, one counter per slot bucket.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::{Clock, MonotonicClock, Reference};
use governor::middleware::StateInformationMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use crate::{lock, Permit, Rate, RateDecision, Release, SlotDenied};

/// Checks between two sweeps of fully refilled buckets.
const SWEEP_EVERY: u32 = 4096;

type Gcra<C> = RateLimiter<NotKeyed, InMemoryState, C, StateInformationMiddleware>;

struct Bucket<C: Clock> {
    rate: Rate,
    gcra: Gcra<C>,
    /// No later than this the bucket is full again and may be forgotten.
    full_at: C::Instant,
}

struct Buckets<C: Clock> {
    map: HashMap<String, Bucket<C>>,
    checks_since_sweep: u32,
}

/// Rate buckets keyed by caller-chosen strings, each with its own quota. Generic over the clock
/// so the unit tests can drive time by hand.
pub(crate) struct LocalRates<C: Clock = MonotonicClock> {
    clock: C,
    buckets: Mutex<Buckets<C>>,
}

impl LocalRates {
    pub(crate) fn new() -> Self {
        Self::with_clock(MonotonicClock)
    }
}

impl<C: Clock + Clone> LocalRates<C> {
    pub(crate) fn with_clock(clock: C) -> Self {
        LocalRates {
            clock,
            buckets: Mutex::new(Buckets {
                map: HashMap::new(),
                checks_since_sweep: 0,
            }),
        }
    }

    /// `rate.limit` must be non-zero (the [`crate::Limiter`] answers zero limits itself).
    pub(crate) fn check(&self, key: &str, rate: Rate) -> RateDecision {
        let (Some(burst), Some(quota_interval)) = (
            NonZeroU32::new(rate.limit),
            Quota::with_period(rate.interval()),
        ) else {
            return RateDecision::denied_by_zero_limit(rate);
        };
        let quota = quota_interval.allow_burst(burst);
        let interval = rate.interval();
        let tau = interval * (rate.limit - 1);

        let mut buckets = lock(&self.buckets);
        let now = self.clock.now();
        buckets.checks_since_sweep += 1;
        if buckets.checks_since_sweep >= SWEEP_EVERY {
            buckets.checks_since_sweep = 0;
            buckets.map.retain(|_, bucket| bucket.full_at > now);
        }
        let bucket = buckets
            .map
            .entry(key.to_owned())
            .or_insert_with(|| Bucket::new(rate, quota, self.clock.clone(), now));
        if bucket.rate != rate {
            // governor cannot change a limiter's quota, so the bucket is rebuilt, keeping the
            // number of requests already used (as the Redis script does), not their cost in time.
            let old_interval = bucket.rate.interval();
            let debt: Duration = bucket.full_at.duration_since(now).into();
            let used = debt.as_nanos().div_ceil(old_interval.as_nanos().max(1));
            // Unlike in Redis, use beyond the new limit is forgiven: governor's state cannot
            // hold more than one full bucket of debt.
            let used = u32::try_from(used).unwrap_or(u32::MAX).min(rate.limit);
            *bucket = Bucket::new(rate, quota, self.clock.clone(), now);
            if let Some(used) = NonZeroU32::new(used) {
                // Cannot fail: `used` is at most the new burst and the bucket is fresh.
                let _ = bucket.gcra.check_n(used);
                bucket.full_at = now + (interval * used.get()).into();
            }
        }

        match bucket.gcra.check() {
            Ok(state) => {
                let remaining = state.remaining_burst_capacity().min(rate.limit - 1);
                // governor keeps TAT to itself; whole intervals give an upper bound within T.
                let reset_after = interval * (rate.limit - remaining);
                bucket.full_at = now + reset_after.into();
                RateDecision {
                    allowed: true,
                    limit: rate.limit,
                    remaining,
                    reset_after,
                    retry_after: None,
                    backend_unavailable: false,
                }
            }
            Err(not_until) => {
                let retry_after = not_until.wait_time_from(now);
                RateDecision {
                    allowed: false,
                    limit: rate.limit,
                    remaining: 0,
                    reset_after: retry_after + tau,
                    retry_after: Some(retry_after),
                    backend_unavailable: false,
                }
            }
        }
    }

    #[cfg(test)]
    fn bucket_count(&self) -> usize {
        lock(&self.buckets).map.len()
    }
}

impl<C: Clock> Bucket<C> {
    fn new(rate: Rate, quota: Quota, clock: C, now: C::Instant) -> Self {
        Bucket {
            rate,
            gcra: RateLimiter::direct_with_clock(quota, clock).with_middleware(),
            full_at: now,
        }
    }
}

/// Open-slot counters per key.
#[derive(Default)]
pub(crate) struct LocalSlots {
    in_use: Mutex<HashMap<String, u32>>,
}

impl LocalSlots {
    pub(crate) fn acquire(self: &Arc<Self>, key: &str, limit: u32) -> Result<Permit, SlotDenied> {
        let mut counts = lock(&self.in_use);
        let in_use = counts.get(key).copied().unwrap_or(0);
        if in_use >= limit {
            return Err(SlotDenied::Full { limit, in_use });
        }
        counts.insert(key.to_owned(), in_use + 1);
        Ok(Permit {
            limit,
            in_use: in_use + 1,
            release: Release::Local {
                _guard: LocalSlotGuard {
                    slots: Arc::clone(self),
                    key: key.to_owned(),
                },
            },
        })
    }
}

pub(crate) struct LocalSlotGuard {
    slots: Arc<LocalSlots>,
    key: String,
}

impl std::fmt::Debug for LocalSlotGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalSlotGuard")
            .field("key", &self.key)
            .finish()
    }
}

impl Drop for LocalSlotGuard {
    fn drop(&mut self) {
        let mut counts = lock(&self.slots.in_use);
        if let Some(count) = counts.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use governor::clock::FakeRelativeClock;

    use super::*;

    fn rates() -> (FakeRelativeClock, LocalRates<FakeRelativeClock>) {
        let clock = FakeRelativeClock::default();
        (clock.clone(), LocalRates::with_clock(clock))
    }

    const FIVE_PER_SECOND: Rate = Rate::new(5, Duration::from_secs(1));
    const T: Duration = Duration::from_millis(200);

    #[test]
    fn gcra_numbers_match_the_documented_formulas() {
        let (clock, rates) = rates();
        for expected_remaining in (0..5).rev() {
            let d = rates.check("k", FIVE_PER_SECOND);
            assert!(d.allowed);
            assert_eq!(d.remaining, expected_remaining);
            assert_eq!(d.reset_after, T * (5 - expected_remaining));
        }
        let denied = rates.check("k", FIVE_PER_SECOND);
        assert!(!denied.allowed);
        assert_eq!(denied.retry_after, Some(T));
        assert_eq!(denied.reset_after, T * 5);

        clock.advance(Duration::from_millis(150));
        let denied = rates.check("k", FIVE_PER_SECOND);
        assert_eq!(denied.retry_after, Some(Duration::from_millis(50)));

        clock.advance(Duration::from_millis(50));
        let d = rates.check("k", FIVE_PER_SECOND);
        assert!(d.allowed);
        assert_eq!(d.remaining, 0);

        clock.advance(Duration::from_secs(10));
        let d = rates.check("k", FIVE_PER_SECOND);
        assert_eq!((d.allowed, d.remaining, d.reset_after), (true, 4, T));
    }

    #[test]
    fn a_quota_change_keeps_the_requests_already_used() {
        let (_clock, rates) = rates();
        rates.check("k", FIVE_PER_SECOND);
        rates.check("k", FIVE_PER_SECOND);
        let ten_per_second = Rate::new(10, Duration::from_secs(1));
        let d = rates.check("k", ten_per_second);
        assert_eq!((d.allowed, d.limit, d.remaining), (true, 10, 7));
        assert_eq!(d.reset_after, Duration::from_millis(300));

        // Lowering the quota below what was used empties the bucket.
        let d = rates.check("k", Rate::new(2, Duration::from_secs(1)));
        assert_eq!((d.allowed, d.limit), (false, 2));
    }

    #[test]
    fn refilled_buckets_are_swept() {
        let (clock, rates) = rates();
        for i in 0..SWEEP_EVERY - 1 {
            rates.check(&format!("k{i}"), FIVE_PER_SECOND);
        }
        assert_eq!(rates.bucket_count(), (SWEEP_EVERY - 1) as usize);
        clock.advance(Duration::from_secs(1));
        rates.check("busy", FIVE_PER_SECOND);
        // Every old bucket had refilled; only the one just used is left.
        assert_eq!(rates.bucket_count(), 1);
    }

    #[test]
    fn slots_count_per_key_and_release_on_drop() {
        let slots = Arc::new(LocalSlots::default());
        let a = slots.acquire("org:a", 2);
        let b = slots.acquire("org:a", 2);
        assert!(a.is_ok() && b.is_ok());
        assert_eq!(
            slots.acquire("org:a", 2).err(),
            Some(SlotDenied::Full {
                limit: 2,
                in_use: 2
            })
        );
        assert!(slots.acquire("org:b", 2).is_ok());
        drop(a);
        assert_eq!(slots.acquire("org:a", 2).map(|p| p.in_use()).ok(), Some(2));
        drop(b);
        assert!(lock(&slots.in_use).is_empty());
    }
}
