//! Behaviour of both backends as a caller sees it. Redis tests run when
//! `TIDECHAT_TEST_REDIS_URL` is set (CI: `redis://127.0.0.1:6379`) and print a skip line
//! otherwise; each uses its own random key prefix, and every key it writes expires by itself.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use tidechat_limits::{Backend, Limiter, Rate, RedisConfig, SlotDenied};

/// Slow enough that nothing refills during a test: one request per 12 s.
const FIVE_PER_MINUTE: Rate = Rate::per_minute(5);
/// Fast enough to watch refill: one request per 100 ms, burst 3.
const THREE_PER_300MS: Rate = Rate::new(3, Duration::from_millis(300));

fn redis_url(test: &str) -> Option<String> {
    match std::env::var("TIDECHAT_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            println!("skipping {test}: TIDECHAT_TEST_REDIS_URL is not set");
            None
        }
    }
}

fn redis_config(url: &str, prefix: &str) -> RedisConfig {
    let mut config = RedisConfig::new(url);
    config.key_prefix = prefix.to_owned();
    config
}

fn random_prefix() -> String {
    format!("tidechat-test:{}:", uuid::Uuid::new_v4().simple())
}

async fn in_process() -> Limiter {
    Limiter::new(Backend::InProcess).await.unwrap()
}

async fn redis(url: &str, prefix: &str) -> Limiter {
    Limiter::new(Backend::Redis(redis_config(url, prefix)))
        .await
        .unwrap()
}

/// Runs one behaviour against the in-process backend and, when available, Redis.
macro_rules! both_backends {
    ($in_process:ident, $redis:ident, $check:ident) => {
        #[tokio::test]
        async fn $in_process() {
            $check(in_process().await).await;
        }

        #[tokio::test]
        async fn $redis() {
            let Some(url) = redis_url(stringify!($redis)) else {
                return;
            };
            let limiter = redis(&url, &random_prefix()).await;
            assert_eq!(limiter.backend_name(), "redis");
            $check(limiter).await;
        }
    };
}

async fn burst_then_denied(limiter: Limiter) {
    for expected_remaining in (0..5).rev() {
        let d = limiter.check_rate("org:a", FIVE_PER_MINUTE).await;
        assert!(d.allowed, "{d:?}");
        assert_eq!((d.limit, d.remaining), (5, expected_remaining));
        assert!(!d.backend_unavailable);
        assert_eq!(d.retry_after, None);
    }
    let d = limiter.check_rate("org:a", FIVE_PER_MINUTE).await;
    assert!(!d.allowed);
    assert_eq!(d.remaining, 0);
    // The next request is one emission interval (12 s) after the first one.
    let retry = d.retry_after.unwrap();
    assert!(
        retry > Duration::from_secs(11) && retry <= Duration::from_secs(12),
        "{retry:?}"
    );
    assert_eq!(d.retry_after_secs(), Some(12));
    // Full again a whole minute after the first request.
    assert!(
        d.reset_after > Duration::from_secs(59) && d.reset_after <= Duration::from_secs(60),
        "{d:?}"
    );
    assert_eq!(d.reset_after_secs(), 60);
}
both_backends!(
    in_process_burst_then_denied,
    redis_burst_then_denied,
    burst_then_denied
);

async fn keys_are_independent(limiter: Limiter) {
    for _ in 0..5 {
        assert!(limiter.check_rate("org:a", FIVE_PER_MINUTE).await.allowed);
    }
    assert!(!limiter.check_rate("org:a", FIVE_PER_MINUTE).await.allowed);

    let other = limiter.check_rate("org:b", FIVE_PER_MINUTE).await;
    assert_eq!((other.allowed, other.remaining), (true, 4));
    let bigger = limiter.check_rate("key:k", Rate::per_minute(100)).await;
    assert_eq!(
        (bigger.allowed, bigger.limit, bigger.remaining),
        (true, 100, 99)
    );
}
both_backends!(
    in_process_keys_are_independent,
    redis_keys_are_independent,
    keys_are_independent
);

async fn quota_change_takes_effect(limiter: Limiter) {
    for _ in 0..5 {
        assert!(limiter.check_rate("org:a", FIVE_PER_MINUTE).await.allowed);
    }
    assert!(!limiter.check_rate("org:a", FIVE_PER_MINUTE).await.allowed);

    // Raised to 10: the 5 requests already made still count.
    let raised = Rate::per_minute(10);
    let d = limiter.check_rate("org:a", raised).await;
    assert_eq!((d.allowed, d.limit, d.remaining), (true, 10, 4));
    for _ in 0..4 {
        assert!(limiter.check_rate("org:a", raised).await.allowed);
    }
    assert!(!limiter.check_rate("org:a", raised).await.allowed);

    // Lowered to 2: denied until enough time has passed.
    let d = limiter.check_rate("org:a", Rate::per_minute(2)).await;
    assert_eq!((d.allowed, d.limit), (false, 2));
}
both_backends!(
    in_process_quota_change_takes_effect,
    redis_quota_change_takes_effect,
    quota_change_takes_effect
);

async fn refills_over_time(limiter: Limiter) {
    for _ in 0..3 {
        assert!(limiter.check_rate("org:a", THREE_PER_300MS).await.allowed);
    }
    let denied = limiter.check_rate("org:a", THREE_PER_300MS).await;
    assert!(!denied.allowed);
    let retry = denied.retry_after.unwrap();
    assert!(retry <= Duration::from_millis(100), "{retry:?}");

    tokio::time::sleep(retry + Duration::from_millis(15)).await;
    assert!(limiter.check_rate("org:a", THREE_PER_300MS).await.allowed);
    assert!(!limiter.check_rate("org:a", THREE_PER_300MS).await.allowed);

    // After a whole period the bucket is full again.
    tokio::time::sleep(Duration::from_millis(320)).await;
    let d = limiter.check_rate("org:a", THREE_PER_300MS).await;
    assert_eq!((d.allowed, d.remaining), (true, 2));
}
both_backends!(
    in_process_refills_over_time,
    redis_refills_over_time,
    refills_over_time
);

async fn zero_limit_denies(limiter: Limiter) {
    let d = limiter.check_rate("org:blocked", Rate::per_minute(0)).await;
    assert!(!d.allowed && !d.backend_unavailable);
    assert_eq!(d.retry_after_secs(), Some(60));
}
both_backends!(
    in_process_zero_limit_denies,
    redis_zero_limit_denies,
    zero_limit_denies
);

async fn check_rates_stops_at_the_first_denial(limiter: Limiter) {
    let key = Rate::per_minute(2);
    let org = Rate::per_minute(5);
    for remaining in [1, 0] {
        let d = limiter.check_rates(&[("key:k", key), ("org:o", org)]).await;
        assert!(d.allowed);
        // The key's bucket is the tighter one, so it is reported.
        assert_eq!((d.limit, d.remaining), (2, remaining));
    }
    let d = limiter.check_rates(&[("key:k", key), ("org:o", org)]).await;
    assert_eq!((d.allowed, d.limit), (false, 2));
    // The denied request was not charged to the organization: 2 used, 3 left.
    let d = limiter.check_rate("org:o", org).await;
    assert_eq!(d.remaining, 2);
}
both_backends!(
    in_process_check_rates_stops_at_the_first_denial,
    redis_check_rates_stops_at_the_first_denial,
    check_rates_stops_at_the_first_denial
);

/// Redis releases on a background task, so a freed slot shows up shortly after the drop.
async fn acquire_eventually(limiter: &Limiter, key: &str, limit: u32) -> tidechat_limits::Permit {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match limiter.acquire_slot(key, limit).await {
            Ok(permit) => return permit,
            Err(denied) if Instant::now() > deadline => panic!("slot never freed: {denied}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

async fn slots_are_limited_and_released(limiter: Limiter) {
    let first = limiter.acquire_slot("org:a", 2).await.unwrap();
    let second = limiter.acquire_slot("org:a", 2).await.unwrap();
    assert_eq!((first.in_use(), second.in_use(), second.limit()), (1, 2, 2));
    assert!(first.is_tracked());
    assert_eq!(
        limiter.acquire_slot("org:a", 2).await.unwrap_err(),
        SlotDenied::Full {
            limit: 2,
            in_use: 2
        }
    );
    // Another organization has its own slots; a raised limit applies at once.
    let _other = limiter.acquire_slot("org:b", 2).await.unwrap();
    let third = limiter.acquire_slot("org:a", 3).await.unwrap();
    drop(third);

    drop(first);
    let again = acquire_eventually(&limiter, "org:a", 2).await;
    assert_eq!(again.in_use(), 2);
}
both_backends!(
    in_process_slots_are_limited_and_released,
    redis_slots_are_limited_and_released,
    slots_are_limited_and_released
);

#[tokio::test]
async fn in_process_limiter_is_send_sync_and_cheap_to_clone() {
    fn send_sync<T: Send + Sync + Clone>(_: &T) {}
    let limiter = in_process().await;
    send_sync(&limiter);
    let clone = limiter.clone();
    assert!(
        limiter
            .check_rate("org:a", Rate::per_minute(1))
            .await
            .allowed
    );
    // Clones share state.
    assert!(!clone.check_rate("org:a", Rate::per_minute(1)).await.allowed);
    assert_eq!(clone.backend_name(), "in_process");
}

#[tokio::test]
async fn redis_processes_share_one_rate_limit() {
    let Some(url) = redis_url("redis_processes_share_one_rate_limit") else {
        return;
    };
    let prefix = random_prefix();
    let (a, b) = (redis(&url, &prefix).await, redis(&url, &prefix).await);
    let rate = Rate::per_minute(10);
    let mut allowed = 0;
    for i in 0..20 {
        let limiter = if i % 2 == 0 { &a } else { &b };
        if limiter.check_rate("org:shared", rate).await.allowed {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 10);

    // A third process on another prefix is not affected.
    let c = redis(&url, &random_prefix()).await;
    assert!(c.check_rate("org:shared", rate).await.allowed);
}

#[tokio::test]
async fn redis_processes_share_concurrency_slots() {
    let Some(url) = redis_url("redis_processes_share_concurrency_slots") else {
        return;
    };
    let prefix = random_prefix();
    let (a, b) = (redis(&url, &prefix).await, redis(&url, &prefix).await);
    let from_a = a.acquire_slot("org:s", 2).await.unwrap();
    let from_b = b.acquire_slot("org:s", 2).await.unwrap();
    assert_eq!(from_b.in_use(), 2);
    assert_eq!(
        a.acquire_slot("org:s", 2).await.unwrap_err(),
        SlotDenied::Full {
            limit: 2,
            in_use: 2
        }
    );
    drop(from_b);
    let _taken_by_a = acquire_eventually(&a, "org:s", 2).await;
    drop(from_a);
}

#[tokio::test]
async fn redis_leases_are_refreshed_while_held() {
    let Some(url) = redis_url("redis_leases_are_refreshed_while_held") else {
        return;
    };
    let prefix = random_prefix();
    let mut config = redis_config(&url, &prefix);
    config.lease = Duration::from_millis(300);
    let holder = Limiter::new(Backend::Redis(config)).await.unwrap();
    let other = redis(&url, &prefix).await;

    let permit = holder.acquire_slot("org:l", 1).await.unwrap();
    // Three lease lengths later the refreshed lease still holds the only slot.
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(matches!(
        other.acquire_slot("org:l", 1).await,
        Err(SlotDenied::Full { in_use: 1, .. })
    ));
    drop(permit);
    let _ = acquire_eventually(&other, "org:l", 1).await;
}

#[tokio::test]
async fn redis_leases_of_a_crashed_process_expire() {
    let Some(url) = redis_url("redis_leases_of_a_crashed_process_expire") else {
        return;
    };
    let prefix = random_prefix();
    let mut config = redis_config(&url, &prefix);
    config.lease = Duration::from_millis(500);

    // A "process" with its own runtime takes a slot and dies without releasing it: the
    // permit is leaked and its runtime, lease task included, is torn down.
    let crashed = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let limiter = Limiter::new(Backend::Redis(config)).await.unwrap();
            std::mem::forget(limiter.acquire_slot("org:c", 1).await.unwrap());
        });
    });
    crashed.join().unwrap();

    let survivor = redis(&url, &prefix).await;
    assert!(matches!(
        survivor.acquire_slot("org:c", 1).await,
        Err(SlotDenied::Full { .. })
    ));
    tokio::time::sleep(Duration::from_millis(550)).await;
    let permit = survivor.acquire_slot("org:c", 1).await.unwrap();
    assert_eq!(permit.in_use(), 1);
}

fn unreachable_config(url: &str, fail_open: bool) -> RedisConfig {
    let mut config = RedisConfig::new(url);
    config.fail_open = fail_open;
    config.key_prefix = random_prefix();
    config
}

/// A server that accepts connections and never answers: the worst kind of outage.
async fn silent_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    format!("redis://{addr}")
}

async fn assert_policy_without_hanging(url: &str) {
    let bound = Duration::from_millis(800);

    let started = Instant::now();
    let open = Limiter::new(Backend::Redis(unreachable_config(url, true)))
        .await
        .unwrap();
    let d = open.check_rate("org:a", Rate::per_minute(5)).await;
    assert!(d.allowed && d.backend_unavailable, "{d:?}");
    let permit = open.acquire_slot("org:a", 1).await.unwrap();
    assert!(!permit.is_tracked());
    assert!(started.elapsed() < bound, "{:?}", started.elapsed());

    let started = Instant::now();
    let closed = Limiter::new(Backend::Redis(unreachable_config(url, false)))
        .await
        .unwrap();
    let d = closed.check_rate("org:a", Rate::per_minute(5)).await;
    assert!(!d.allowed && d.backend_unavailable, "{d:?}");
    assert!(d.retry_after.is_some());
    assert_eq!(
        closed.acquire_slot("org:a", 1).await.unwrap_err(),
        SlotDenied::Unavailable
    );
    assert!(started.elapsed() < bound, "{:?}", started.elapsed());

    // After the cooldown Redis is asked again, and still bounded by the call timeout.
    tokio::time::sleep(Duration::from_millis(1050)).await;
    let started = Instant::now();
    assert!(
        !closed
            .check_rate("org:a", Rate::per_minute(5))
            .await
            .allowed
    );
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn refused_connections_follow_the_fail_policy_quickly() {
    assert_policy_without_hanging("redis://127.0.0.1:1").await;
}

#[tokio::test]
async fn a_silent_server_follows_the_fail_policy_within_the_timeout() {
    let url = silent_server().await;
    assert_policy_without_hanging(&url).await;
}

#[tokio::test]
async fn invalid_configuration_is_an_error() {
    let bad_url = Limiter::new(Backend::Redis(RedisConfig::new("not a url"))).await;
    assert!(bad_url.is_err());
    let mut config = RedisConfig::new("redis://127.0.0.1:1");
    config.lease = Duration::ZERO;
    assert!(Limiter::new(Backend::Redis(config)).await.is_err());
}

#[test]
fn header_values_round_up() {
    let d = tidechat_limits::RateDecision {
        allowed: false,
        limit: 10,
        remaining: 0,
        reset_after: Duration::from_millis(59_001),
        retry_after: Some(Duration::from_millis(1)),
        backend_unavailable: false,
    };
    assert_eq!(d.reset_after_secs(), 60);
    assert_eq!(d.retry_after_secs(), Some(1));
    let full = tidechat_limits::RateDecision {
        reset_after: Duration::ZERO,
        retry_after: None,
        ..d
    };
    assert_eq!(
        (full.reset_after_secs(), full.retry_after_secs()),
        (0, None)
    );
}
