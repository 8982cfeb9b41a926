//! Request-rate and concurrency limits for tidechat, kept in process or shared through Redis.
//!
//! This crate knows nothing of HTTP, tenants or configuration files: callers pick opaque bucket
//! keys (`org:org_01…`, `key:key_01…`) and the quota for each call, and turn the returned
//! [`RateDecision`] / [`SlotDenied`] into responses and headers themselves.
//!
//! # Request rate: GCRA
//!
//! Rates are enforced with the Generic Cell Rate Algorithm, which behaves like a token bucket of
//! `limit` tokens refilled continuously at `limit / period`, but stores a single timestamp per
//! bucket instead of a count and a refill time.
//!
//! With a [`Rate`] of `limit` requests per `period`:
//!
//! * `T = period / limit` is the *emission interval*, the cost of one request in time;
//! * `τ = T · (limit − 1)` is the *delay tolerance*: how far ahead of the steady rate a client
//!   may run, which is what allows a burst of `limit` requests;
//! * `TAT`, the *theoretical arrival time*, is the only state: the moment the bucket would be
//!   "caught up" if requests had arrived exactly at the steady rate. A missing TAT means `now`.
//!
//! A request arriving at `now` is allowed iff `now ≥ TAT − τ`; if allowed,
//! `TAT ← max(TAT, now) + T`. From that one number follow everything the headers need:
//!
//! * `remaining = ⌊(now + τ + T − TAT) / T⌋` further requests would be allowed right now;
//! * `reset_after = TAT − now` until the bucket is full again (`RateLimit-Reset`);
//! * when denied, `retry_after = (TAT − τ) − now` until the next request is allowed
//!   (`Retry-After`).
//!
//! Denied requests do not move `TAT`, so a client hammering an empty bucket is not punished
//! further. When a bucket's quota changes, the requests already used carry over, not their
//! cost in time: the debt `TAT − now` is rescaled by `T_new / T_old`. So an organization that
//! made 5 of its 5 requests and is raised to 10 has 5 left at once, and one lowered below what
//! it has used waits until the new rate has paid the excess off.
//!
//! # Backends
//!
//! [`Backend::InProcess`] keeps one [`governor`] direct limiter per key, each with its own
//! quota. governor cannot change a limiter's quota, so a key whose quota changes gets a new
//! limiter charged with the requests already used (capped at the new limit: in process, debt
//! beyond one full bucket is forgiven). Buckets that have fully refilled are dropped every few
//! thousand checks, because a full bucket and a missing one behave alike. governor does not expose `TAT` after an allowed request, so there
//! `reset_after` is rounded up to a whole number of emission intervals (`T · (limit −
//! remaining)`), which is never earlier than the true value and at most `T` later.
//! Concurrency slots are a counter per key.
//!
//! [`Backend::Redis`] shares one limit between every process that uses the same Redis and
//! [`RedisConfig::key_prefix`]. Each operation is one Lua script, so it is atomic on the
//! server, and every script reads time from Redis (`redis.call('TIME')`), never from the
//! calling process, so processes with skewed clocks still agree. Scripts are sent with
//! `EVALSHA` and loaded on `NOSCRIPT` ([`redis::Script`]), so a Redis restart or `SCRIPT FLUSH`
//! costs one extra round trip. Every script touches a single key, so they also work on Redis
//! Cluster.
//!
//! * `{prefix}rate:{key}` is a hash holding `tat` (microseconds of Redis' clock) and the
//!   `interval` it was computed with, to rescale on a quota change. The GCRA script
//!   (`src/lua/gcra.lua`) gives it an expiry of `TAT − now`, so the key disappears exactly when
//!   the bucket is full again.
//! * `{prefix}slots:{key}` is a sorted set of leases: member = random lease id, score = lease
//!   expiry in milliseconds of Redis' clock. Acquiring (`src/lua/acquire.lua`) removes expired
//!   leases, checks `count < limit` and adds the new lease in one step. The [`Permit`] owns a
//!   background task that extends the lease every `lease / 3` (`src/lua/refresh.lua`) and
//!   removes it (`ZREM`) when the permit is dropped. A process that dies stops refreshing, so
//!   its leases expire after at most [`RedisConfig::lease`]; the set itself expires with its
//!   longest lease.
//!
//! # Failure modes
//!
//! Limits must never take the service down with them. Every Redis call is bounded by
//! [`RedisConfig::call_timeout`] (200 ms by default), connecting included, and an
//! unreachable Redis at start-up is not an error: the connection is made lazily and retried.
//! When a call fails or times out:
//!
//! * with [`RedisConfig::fail_open`] the request is allowed and a concurrency slot is granted
//!   untracked ([`Permit::is_tracked`] is `false`);
//! * without it the request is denied and slots are refused with [`SlotDenied::Unavailable`];
//! * either way the decision carries `backend_unavailable: true`, so the caller can tell "over
//!   the limit" (429) from "cannot check the limit" (503), and a `tracing::warn!` is logged at
//!   most once per 10 seconds with the number of failures it stands for.
//!
//! After a failure Redis is not asked again for [`RedisConfig::cooldown`] (1 s by default):
//! during an outage that hangs rather than refuses connections, only one request per cooldown
//! pays the timeout, the rest get the fail-open/closed answer at once. A lease refresh that
//! finds its lease expired (e.g. after an outage longer than the lease) takes it again if there
//! is room, and otherwise logs a warning and lets the stream run unaccounted.
//!
//! # Headers
//!
//! A [`RateDecision`] maps to the IETF `RateLimit` fields and the older `X-RateLimit-*` ones:
//!
//! | header | value |
//! | --- | --- |
//! | `RateLimit-Limit`, `X-RateLimit-Limit` | [`RateDecision::limit`] |
//! | `RateLimit-Remaining`, `X-RateLimit-Remaining` | [`RateDecision::remaining`] |
//! | `RateLimit-Reset`, `X-RateLimit-Reset` | [`RateDecision::reset_after_secs`]: seconds until the bucket is full, rounded up |
//! | `Retry-After` (denied only) | [`RateDecision::retry_after_secs`]: seconds until one request is allowed, rounded up |
//!
//! When one request is checked against several buckets (organization and API key),
//! [`Limiter::check_rates`] returns the most restrictive decision, which is the one to report.
//!
//! # Example
//!
//! ```no_run
//! # async fn handle() -> Result<(), tidechat_limits::LimitsError> {
//! use tidechat_limits::{Backend, Limiter, Rate, RedisConfig, SlotDenied};
//!
//! let limiter = Limiter::new(Backend::Redis(RedisConfig::new("redis://127.0.0.1:6379"))).await?;
//! // Narrowest bucket first, so a key over its own limit does not spend its organization's.
//! let decision = limiter
//!     .check_rates(&[
//!         ("key:key_01", Rate::per_minute(60)),
//!         ("org:org_01", Rate::per_minute(100)),
//!     ])
//!     .await;
//! if !decision.allowed {
//!     // 503 if decision.backend_unavailable, else 429 with Retry-After.
//!     return Ok(());
//! }
//! match limiter.acquire_slot("org:org_01", 50).await {
//!     Ok(_permit) => { /* stream while holding the permit */ }
//!     Err(SlotDenied::Full { .. }) => { /* 429 */ }
//!     Err(SlotDenied::Unavailable) => { /* 503 */ }
//! }
//! # Ok(())
//! # }
//! ```

mod local;
mod redis_backend;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::local::{LocalRates, LocalSlotGuard, LocalSlots};
use crate::redis_backend::RedisBackend;

/// Requests per minute a tenant gets unless its organization or key overrides it.
pub const DEFAULT_REQUESTS_PER_MINUTE: u32 = 100;

/// Open streams / WebSocket connections an organization gets unless overridden.
pub const DEFAULT_MAX_CONCURRENT: u32 = 50;

/// A request quota: at most `limit` requests per `period`, all of which may come in one burst.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rate {
    limit: u32,
    period: Duration,
}

impl Rate {
    /// `limit` requests per `period`. A `limit` of 0 denies every request.
    pub const fn new(limit: u32, period: Duration) -> Rate {
        Rate { limit, period }
    }

    /// `limit` requests per minute.
    pub const fn per_minute(limit: u32) -> Rate {
        Rate::new(limit, Duration::from_secs(60))
    }

    pub const fn limit(&self) -> u32 {
        self.limit
    }

    pub const fn period(&self) -> Duration {
        self.period
    }

    /// The emission interval `T`: how much time one request costs. At least 1 µs, the
    /// resolution the Redis script works in.
    fn interval(&self) -> Duration {
        (self.period / self.limit.max(1)).max(Duration::from_micros(1))
    }
}

/// The outcome of one request against one or more rate buckets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateDecision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// The bucket's size: requests allowed per period.
    pub limit: u32,
    /// Requests that would still be allowed right now, after this one.
    pub remaining: u32,
    /// Time until the bucket is completely refilled.
    pub reset_after: Duration,
    /// When denied: time until one request would be allowed.
    pub retry_after: Option<Duration>,
    /// The backend could not be asked; `allowed` is the configured fail-open/closed policy,
    /// not a measurement. A denial with this set is "limits unavailable" (503), not "too many
    /// requests" (429).
    pub backend_unavailable: bool,
}

impl RateDecision {
    /// `reset_after` in whole seconds, rounded up (`RateLimit-Reset`).
    pub fn reset_after_secs(&self) -> u64 {
        ceil_secs(self.reset_after)
    }

    /// `retry_after` in whole seconds, rounded up and at least 1 (`Retry-After`).
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after.map(|d| ceil_secs(d).max(1))
    }

    /// The decision to report when a request was checked against both `self` and `other`: a
    /// denial over an allowance, then the fewer remaining requests, then the later reset.
    pub fn most_restrictive(self, other: RateDecision) -> RateDecision {
        let key = |d: &RateDecision| (d.allowed, d.remaining, std::cmp::Reverse(d.reset_after));
        if key(&other) < key(&self) {
            other
        } else {
            self
        }
    }

    fn denied_by_zero_limit(rate: Rate) -> RateDecision {
        RateDecision {
            allowed: false,
            limit: 0,
            remaining: 0,
            reset_after: Duration::ZERO,
            retry_after: Some(rate.period),
            backend_unavailable: false,
        }
    }
}

/// Every critical section in this crate is a single read-modify-write, so a poisoned lock
/// still guards consistent data.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// Why [`Limiter::acquire_slot`] refused a slot.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SlotDenied {
    /// Every slot is taken (429).
    #[error("all {limit} concurrent slots are in use ({in_use} open)")]
    Full { limit: u32, in_use: u32 },
    /// The Redis backend could not be asked and `fail_open` is off (503).
    #[error("the limits backend is unavailable")]
    Unavailable,
}

/// Errors building a [`Limiter`]. An unreachable Redis is *not* one of them.
#[derive(Debug, thiserror::Error)]
pub enum LimitsError {
    #[error("invalid Redis URL")]
    InvalidRedisUrl(#[source] redis::RedisError),
    #[error("invalid limits configuration: {0}")]
    InvalidConfig(&'static str),
}

/// Settings of the Redis backend. Build with [`RedisConfig::new`] and adjust the fields.
#[derive(Clone)]
#[non_exhaustive]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]` (the binary reads `TIDECHAT_REDIS_URL`).
    pub url: String,
    /// When Redis cannot be asked: allow (true, the default) or deny (false).
    pub fail_open: bool,
    /// Prepended to every key; processes sharing limits must share it. Default `tidechat:rl:`.
    pub key_prefix: String,
    /// Upper bound of one Redis operation, connecting included. Default 200 ms.
    pub call_timeout: Duration,
    /// After a failed call, how long to answer by policy without asking Redis. Default 1 s.
    pub cooldown: Duration,
    /// How long a concurrency lease lives without being refreshed; refreshed every third of
    /// it. Bounds how long a crashed process's slots stay taken. Default 60 s.
    pub lease: Duration,
}

impl RedisConfig {
    pub fn new(url: impl Into<String>) -> RedisConfig {
        RedisConfig {
            url: url.into(),
            fail_open: true,
            key_prefix: "tidechat:rl:".to_owned(),
            call_timeout: Duration::from_millis(200),
            cooldown: Duration::from_secs(1),
            lease: Duration::from_secs(60),
        }
    }
}

// The URL may carry a password.
impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &"<redacted>")
            .field("fail_open", &self.fail_open)
            .field("key_prefix", &self.key_prefix)
            .field("call_timeout", &self.call_timeout)
            .field("cooldown", &self.cooldown)
            .field("lease", &self.lease)
            .finish()
    }
}

/// Where limit state lives.
#[derive(Clone, Debug)]
pub enum Backend {
    /// In this process only: each process enforces the full limit on its own.
    InProcess,
    /// In Redis, shared by every process with the same URL and key prefix.
    Redis(RedisConfig),
}

/// Checks request rates and hands out concurrency slots. Cheap to clone.
#[derive(Clone)]
pub struct Limiter {
    inner: Arc<Inner>,
}

enum Inner {
    InProcess {
        rates: LocalRates,
        slots: Arc<LocalSlots>,
    },
    Redis(Arc<RedisBackend>),
}

impl fmt::Debug for Limiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Limiter")
            .field("backend", &self.backend_name())
            .finish_non_exhaustive()
    }
}

impl Limiter {
    /// Builds a limiter. For Redis this validates the settings and starts connecting, but an
    /// unreachable server is only logged: calls then follow `fail_open` until it is back.
    /// Must be called inside a Tokio runtime.
    pub async fn new(backend: Backend) -> Result<Limiter, LimitsError> {
        let inner = match backend {
            Backend::InProcess => Inner::InProcess {
                rates: LocalRates::new(),
                slots: Arc::new(LocalSlots::default()),
            },
            Backend::Redis(config) => Inner::Redis(Arc::new(RedisBackend::connect(config).await?)),
        };
        Ok(Limiter {
            inner: Arc::new(inner),
        })
    }

    /// `"in_process"` or `"redis"`, for logs and health endpoints.
    pub fn backend_name(&self) -> &'static str {
        match &*self.inner {
            Inner::InProcess { .. } => "in_process",
            Inner::Redis(_) => "redis",
        }
    }

    /// Counts one request against bucket `key` with quota `rate`.
    pub async fn check_rate(&self, key: &str, rate: Rate) -> RateDecision {
        if rate.limit == 0 {
            return RateDecision::denied_by_zero_limit(rate);
        }
        match &*self.inner {
            Inner::InProcess { rates, .. } => rates.check(key, rate),
            Inner::Redis(redis) => redis.check_rate(key, rate).await,
        }
    }

    /// Counts one request against each bucket in order, stopping at the first denial (later
    /// buckets are not charged), and returns the most restrictive decision. Put the narrowest
    /// bucket first (API key, then organization) so a key over its own limit does not use up
    /// its organization's.
    ///
    /// With no buckets the request is allowed with `limit` and `remaining` at `u32::MAX`.
    pub async fn check_rates(&self, buckets: &[(&str, Rate)]) -> RateDecision {
        let mut result: Option<RateDecision> = None;
        for (key, rate) in buckets {
            let decision = self.check_rate(key, *rate).await;
            let allowed = decision.allowed;
            result = Some(match result {
                Some(previous) => previous.most_restrictive(decision),
                None => decision,
            });
            if !allowed {
                break;
            }
        }
        result.unwrap_or(RateDecision {
            allowed: true,
            limit: u32::MAX,
            remaining: u32::MAX,
            reset_after: Duration::ZERO,
            retry_after: None,
            backend_unavailable: false,
        })
    }

    /// Takes one of `limit` concurrent slots of bucket `key` (e.g. open streams of an
    /// organization). The slot is held until the [`Permit`] is dropped.
    pub async fn acquire_slot(&self, key: &str, limit: u32) -> Result<Permit, SlotDenied> {
        match &*self.inner {
            Inner::InProcess { slots, .. } => slots.acquire(key, limit),
            Inner::Redis(redis) => redis.acquire_slot(key, limit).await,
        }
    }
}

/// One held concurrency slot; dropping it gives the slot back.
///
/// With Redis the release happens shortly after the drop, on a background task; if the
/// runtime is gone by then the lease simply expires.
#[must_use = "the slot is released as soon as the permit is dropped"]
#[derive(Debug)]
pub struct Permit {
    limit: u32,
    in_use: u32,
    release: Release,
}

#[derive(Debug)]
enum Release {
    Local {
        _guard: LocalSlotGuard,
    },
    /// Dropping the sender tells the lease task to stop refreshing and remove the lease.
    Redis {
        _stop: tokio::sync::oneshot::Sender<()>,
    },
    /// Granted by the fail-open policy; nothing to release.
    Untracked,
}

impl Permit {
    /// The limit the slot was taken under.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Slots in use right after this one was taken, this one included (0 when untracked).
    pub fn in_use(&self) -> u32 {
        self.in_use
    }

    /// False when Redis was unavailable and the slot was granted by the fail-open policy
    /// without being counted.
    pub fn is_tracked(&self) -> bool {
        !matches!(self.release, Release::Untracked)
    }
}
