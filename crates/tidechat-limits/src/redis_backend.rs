//! The Redis backend: GCRA and lease sets in server-side Lua, bounded by timeouts, with a
//! fail-open/closed policy when Redis cannot be asked.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisResult, Script};
use tokio::sync::oneshot;

use crate::{lock, LimitsError, Permit, Rate, RateDecision, RedisConfig, Release, SlotDenied};

/// At most one "Redis unavailable" warning per this interval.
const WARN_EVERY: Duration = Duration::from_secs(10);

pub(crate) struct RedisBackend {
    conn: ConnectionManager,
    config: RedisConfig,
    gcra: Script,
    acquire: Script,
    refresh: Script,
    health: Health,
}

impl RedisBackend {
    pub(crate) async fn connect(config: RedisConfig) -> Result<RedisBackend, LimitsError> {
        if config.call_timeout.is_zero() {
            return Err(LimitsError::InvalidConfig("call_timeout must be positive"));
        }
        if config.lease < Duration::from_millis(30) {
            return Err(LimitsError::InvalidConfig("lease must be at least 30 ms"));
        }
        let client =
            redis::Client::open(config.url.as_str()).map_err(LimitsError::InvalidRedisUrl)?;
        // One connection attempt per call: the per-call timeout and the cooldown, not the
        // client's own backoff, decide how long a request may wait.
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.call_timeout))
            .set_response_timeout(Some(config.call_timeout))
            .set_number_of_retries(0);
        let conn = ConnectionManager::new_lazy_with_config(client, manager_config)
            .map_err(LimitsError::InvalidRedisUrl)?;
        let backend = RedisBackend {
            conn,
            config,
            gcra: Script::new(include_str!("lua/gcra.lua")),
            acquire: Script::new(include_str!("lua/acquire.lua")),
            refresh: Script::new(include_str!("lua/refresh.lua")),
            health: Health::default(),
        };
        // Warm the connection and the script cache so the first request does not pay for them;
        // a failure here is only logged (and answered by policy like any other).
        let mut conn = backend.conn.clone();
        let scripts = [&backend.gcra, &backend.acquire, &backend.refresh];
        backend
            .guarded("start", true, async move {
                for script in scripts {
                    script.load_async(&mut conn).await?;
                }
                Ok(())
            })
            .await;
        Ok(backend)
    }

    pub(crate) async fn check_rate(&self, key: &str, rate: Rate) -> RateDecision {
        let redis_key = format!("{}rate:{}", self.config.key_prefix, key);
        let interval_us = u64::try_from(rate.interval().as_micros()).unwrap_or(u64::MAX);
        let mut invocation = self.gcra.key(redis_key);
        invocation.arg(interval_us).arg(rate.limit);
        let mut conn = self.conn.clone();
        let reply: Option<(u8, i64, i64, i64)> = self
            .guarded("check_rate", true, invocation.invoke_async(&mut conn))
            .await;
        match reply {
            Some((allowed, remaining, retry_us, reset_us)) => RateDecision {
                allowed: allowed == 1,
                limit: rate.limit,
                remaining: u32::try_from(remaining.max(0)).unwrap_or(u32::MAX),
                reset_after: micros(reset_us),
                retry_after: (allowed != 1).then(|| micros(retry_us)),
                backend_unavailable: false,
            },
            None if self.config.fail_open => RateDecision {
                allowed: true,
                limit: rate.limit,
                remaining: rate.limit,
                reset_after: Duration::ZERO,
                retry_after: None,
                backend_unavailable: true,
            },
            None => RateDecision {
                allowed: false,
                limit: rate.limit,
                remaining: 0,
                reset_after: self.config.cooldown,
                retry_after: Some(self.config.cooldown),
                backend_unavailable: true,
            },
        }
    }

    pub(crate) async fn acquire_slot(
        self: &Arc<Self>,
        key: &str,
        limit: u32,
    ) -> Result<Permit, SlotDenied> {
        let set_key = format!("{}slots:{}", self.config.key_prefix, key);
        let lease_id = uuid::Uuid::new_v4().simple().to_string();
        let mut invocation = self.acquire.key(&set_key);
        invocation.arg(&lease_id).arg(limit).arg(self.lease_ms());
        let mut conn = self.conn.clone();
        let reply: Option<(u8, i64)> = self
            .guarded("acquire_slot", true, invocation.invoke_async(&mut conn))
            .await;
        let in_use = |n: i64| u32::try_from(n.max(0)).unwrap_or(u32::MAX);
        match reply {
            Some((1, n)) => {
                let (stop, stopped) = oneshot::channel();
                tokio::spawn(Arc::clone(self).keep_lease(set_key, lease_id, limit, stopped));
                Ok(Permit {
                    limit,
                    in_use: in_use(n),
                    release: Release::Redis { _stop: stop },
                })
            }
            Some((_, n)) => Err(SlotDenied::Full {
                limit,
                in_use: in_use(n),
            }),
            None if self.config.fail_open => Ok(Permit {
                limit,
                in_use: 0,
                release: Release::Untracked,
            }),
            None => Err(SlotDenied::Unavailable),
        }
    }

    /// Runs for as long as the permit lives: refreshes the lease every third of its length,
    /// then removes it once the permit is dropped (`stopped` resolves when the sender goes).
    async fn keep_lease(
        self: Arc<Self>,
        set_key: String,
        lease_id: String,
        limit: u32,
        mut stopped: oneshot::Receiver<()>,
    ) {
        let every = self.config.lease / 3;
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                () = tokio::time::sleep(every) => {
                    let mut invocation = self.refresh.key(&set_key);
                    invocation.arg(&lease_id).arg(limit).arg(self.lease_ms());
                    let mut conn = self.conn.clone();
                    let status: Option<u8> = self
                        .guarded("refresh_slot", true, invocation.invoke_async(&mut conn))
                        .await;
                    match status {
                        Some(0) => tracing::warn!(
                            key = %set_key,
                            limit,
                            "concurrency lease expired and the set is full; \
                             this stream is no longer counted"
                        ),
                        Some(2) => tracing::info!(key = %set_key, "concurrency lease expired and was taken again"),
                        _ => {}
                    }
                }
            }
        }
        // Released even while the cooldown is on: a slot left behind blocks a tenant for a
        // whole lease, and this task has no caller waiting on it.
        let mut conn = self.conn.clone();
        let mut zrem = redis::cmd("ZREM");
        zrem.arg(&set_key).arg(&lease_id);
        self.guarded("release_slot", false, zrem.query_async::<i64>(&mut conn))
            .await;
    }

    fn lease_ms(&self) -> u64 {
        u64::try_from(self.config.lease.as_millis()).unwrap_or(u64::MAX)
    }

    /// Runs one Redis operation under the call timeout. `None` means Redis could not be asked:
    /// the cooldown was on (when `respect_cooldown`), the call failed, or it timed out.
    async fn guarded<T>(
        &self,
        operation: &'static str,
        respect_cooldown: bool,
        call: impl Future<Output = RedisResult<T>>,
    ) -> Option<T> {
        if respect_cooldown && self.health.cooling_down() {
            self.health.suppressed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let error = match tokio::time::timeout(self.config.call_timeout, call).await {
            Ok(Ok(value)) => {
                if self.health.degraded.swap(false, Ordering::Relaxed) {
                    tracing::info!("Redis limits backend is reachable again");
                }
                return Some(value);
            }
            Ok(Err(error)) => error.to_string(),
            Err(_) => format!("timed out after {:?}", self.config.call_timeout),
        };
        self.health.failed(self.config.cooldown);
        if self.health.should_warn() {
            let suppressed = self.health.suppressed.swap(0, Ordering::Relaxed);
            tracing::warn!(
                operation,
                error = %error,
                fail_open = self.config.fail_open,
                failures_since_last_warning = suppressed,
                "Redis limits backend unavailable; {}",
                if self.config.fail_open {
                    "allowing requests unchecked"
                } else {
                    "denying requests"
                }
            );
        } else {
            self.health.suppressed.fetch_add(1, Ordering::Relaxed);
        }
        None
    }
}

fn micros(us: i64) -> Duration {
    Duration::from_micros(u64::try_from(us).unwrap_or(0))
}

#[derive(Default)]
struct Health {
    /// Until then, calls are answered by policy without asking Redis.
    cooldown_until: Mutex<Option<Instant>>,
    last_warning: Mutex<Option<Instant>>,
    /// Failures not logged individually since the last warning.
    suppressed: AtomicU64,
    /// A failure was seen and no success since, so the next success is worth a log line.
    degraded: AtomicBool,
}

impl Health {
    fn cooling_down(&self) -> bool {
        let until = *lock(&self.cooldown_until);
        until.is_some_and(|until| Instant::now() < until)
    }

    fn failed(&self, cooldown: Duration) {
        self.degraded.store(true, Ordering::Relaxed);
        *lock(&self.cooldown_until) = Some(Instant::now() + cooldown);
    }

    fn should_warn(&self) -> bool {
        let mut last = lock(&self.last_warning);
        let now = Instant::now();
        if last.is_some_and(|at| now.duration_since(at) < WARN_EVERY) {
            return false;
        }
        *last = Some(now);
        true
    }
}
