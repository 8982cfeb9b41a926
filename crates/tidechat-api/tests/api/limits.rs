//! Rate limits, concurrency limits, quotas, key scopes and usage through the
//! public API.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::TestApp;

backends!(
    rate_limit_headers_and_429,
    key_limits_are_separate_from_the_organization,
    chat_keys_cannot_manage,
    quotas_refuse_new_turns_once_spent,
    concurrent_turns_cannot_overshoot_a_quota,
    usage_matches_stored_messages,
    concurrent_stream_limit,
    limits_admin_validation,
);

fn header(res: &reqwest::Response, name: &str) -> Option<i64> {
    res.headers().get(name)?.to_str().ok()?.parse().ok()
}

async fn rate_limit_headers_and_429(app: TestApp) {
    let (status, _) = app.put("/v1/limits", json!({"requestsPerMinute": 5})).await;
    assert_eq!(status, 200);
    let mut allowed = Vec::new();
    let mut refused = None;
    for _ in 0..8 {
        let res = app
            .request(reqwest::Method::GET, "/v1/chat/sessions")
            .send()
            .await
            .unwrap();
        if res.status() == 429 {
            refused = Some(res);
            break;
        }
        assert_eq!(res.status(), 200);
        assert_eq!(header(&res, "ratelimit-limit"), Some(5));
        assert_eq!(header(&res, "x-ratelimit-limit"), Some(5));
        assert!(header(&res, "ratelimit-reset").is_some());
        allowed.push(header(&res, "ratelimit-remaining").unwrap());
    }
    assert!(!allowed.is_empty() && allowed.len() <= 5, "{allowed:?}");
    assert!(
        allowed.windows(2).all(|w| w[1] < w[0]),
        "remaining counts down: {allowed:?}"
    );
    let res = refused.expect("the limit was never reached");
    let retry_after = header(&res, "retry-after").expect("Retry-After");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(header(&res, "ratelimit-remaining"), Some(0));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("5 requests per minute"),
        "{body}"
    );
    // Every authenticated surface counts: the FAQ chat surface is refused too, in its own shape.
    let res = app
        .client
        .get(app.url("/config"))
        .header("mooni-api-key", &app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "rate_limited");
    // Another organization is not affected.
    let other = app.other_org().await;
    let res = app
        .client
        .get(app.url("/v1/chat/sessions"))
        .bearer_auth(&other.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        header(&res, "ratelimit-limit"),
        Some(100),
        "the default is the reference's 100 per minute"
    );
}

async fn key_limits_are_separate_from_the_organization(app: TestApp) {
    let (_, key) = app.post("/v1/api-keys", json!({"name": "batch"})).await;
    let (key_id, secret) = (
        key["keyId"].as_str().unwrap().to_owned(),
        key["key"].as_str().unwrap().to_owned(),
    );
    let (status, limits) = app
        .put(
            &format!("/v1/limits/keys/{key_id}"),
            json!({"requestsPerMinute": 2}),
        )
        .await;
    assert_eq!(status, 200, "{limits}");
    let (_, read) = app.get(&format!("/v1/limits/keys/{key_id}")).await;
    assert_eq!(read["requestsPerMinute"], 2);
    let mut codes = Vec::new();
    for _ in 0..4 {
        let res = app
            .client
            .get(app.url("/v1/chat/sessions"))
            .bearer_auth(&secret)
            .send()
            .await
            .unwrap();
        codes.push(res.status().as_u16());
    }
    assert_eq!(codes, vec![200, 200, 429, 429]);
    // The organization's other key still has its allowance.
    let (status, _) = app.get("/v1/chat/sessions").await;
    assert_eq!(status, 200);
    // Keys of other organizations cannot be configured.
    let other = app.other_org().await;
    let res = app
        .client
        .put(app.url(&format!("/v1/limits/keys/{key_id}")))
        .bearer_auth(&other.api_key)
        .json(&json!({"requestsPerMinute": 1000}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

async fn chat_keys_cannot_manage(app: TestApp) {
    let (status, key) = app
        .post(
            "/v1/api-keys",
            json!({"name": "widget backend", "scope": "chat"}),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(key["scope"], "chat");
    let secret = key["key"].as_str().unwrap().to_owned();
    let as_chat =
        |m: reqwest::Method, p: &str| app.client.request(m, app.url(p)).bearer_auth(&secret);
    use reqwest::Method as M;
    let res = as_chat(M::POST, "/v1/chat/sessions")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "chat keys hold conversations");
    let session: Value = res.json().await.unwrap();
    let sid = session["sessionId"].as_str().unwrap();
    let res = as_chat(M::POST, &format!("/v1/chat/sessions/{sid}/messages"))
        .json(&json!({"userText": "Do you offer refunds?"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    for path in [
        "/v1/personas",
        "/v1/faqs",
        "/v1/api-keys",
        "/v1/limits",
        "/v1/usage",
        "/v1/tools",
    ] {
        let res = as_chat(M::GET, path).send().await.unwrap();
        assert_eq!(res.status(), 403, "{path}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "forbidden", "{path}");
    }
    let res = as_chat(M::POST, "/v1/api-keys")
        .json(&json!({"scope": "admin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403, "a chat key cannot mint an admin key");
    let (status, _) = app.post("/v1/api-keys", json!({"scope": "root"})).await;
    assert_eq!(status, 422);
}

async fn quotas_refuse_new_turns_once_spent(app: TestApp) {
    let id = app.session().await;
    let path = format!("/v1/chat/sessions/{id}/messages");
    // A streamed reply runs to its end and is counted.
    let res = app
        .request(reqwest::Method::POST, &path)
        .json(&json!({"userText": "How do I reset my password?", "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("event: done"));
    let spent = month_tokens(&app).await;
    assert!(spent > 0);
    // Spent exactly, and short of the next turn's input: both refused.
    for (quota, says) in [
        (spent, "is spent"),
        (spent + 1, "too little left for this turn's input"),
    ] {
        let (status, _) = app.put("/v1/limits", json!({"monthlyTokens": quota})).await;
        assert_eq!(status, 200);
        let (status, body) = app
            .post(&path, json!({"userText": "Do you offer refunds?"}))
            .await;
        assert_eq!(status, 429, "{body}");
        assert_eq!(body["error"]["code"], "quota_exceeded");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("monthly token quota"), "{body}");
        assert!(message.contains(says), "{body}");
    }
    let res = app
        .request(reqwest::Method::POST, &path)
        .json(&json!({"userText": "hi", "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    assert!(header(&res, "retry-after").unwrap() > 0);
    // The refused turn stored nothing.
    let (_, history) = app.get(&path).await;
    assert_eq!(history["items"].as_array().unwrap().len(), 2);
    // Raising the quota lets the organization continue.
    app.put("/v1/limits", json!({"monthlyTokens": 1_000_000}))
        .await;
    let (status, _) = app
        .post(&path, json!({"userText": "Do you offer refunds?"}))
        .await;
    assert_eq!(status, 200);
    // A cost quota on a key: the `faq` model is free, so it is never spent.
    let (_, key_limits) = app
        .put(
            &format!("/v1/limits/keys/{}", app.engine_key_id().await),
            json!({"monthlyCostUsdMicros": 1}),
        )
        .await;
    assert_eq!(key_limits["monthlyCostUsdMicros"], 1);
    let (status, _) = app
        .post(&path, json!({"userText": "Do you offer refunds?"}))
        .await;
    assert_eq!(status, 200);
}

async fn usage_matches_stored_messages(app: TestApp) {
    let id = app.session().await;
    let path = format!("/v1/chat/sessions/{id}/messages");
    for q in ["How do I reset my password?", "Do you offer refunds?"] {
        app.post(&path, json!({"userText": q})).await;
    }
    app.post(
        &path,
        json!({"userText": "Tell me about refunds", "modelId": "echo-context"}),
    )
    .await;
    let (_, history) = app.get(&path).await;
    let replies: Vec<&Value> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "assistant")
        .collect();
    let sum = |f: &str| replies.iter().map(|m| m[f].as_i64().unwrap()).sum::<i64>();
    let (status, usage) = app.get("/v1/usage?groupBy=model").await;
    assert_eq!(status, 200, "{usage}");
    assert_eq!(usage["groupBy"], "model");
    assert_eq!(usage["total"]["requests"], 3);
    assert_eq!(
        usage["total"]["inputTokens"].as_i64().unwrap(),
        sum("inputTokens")
    );
    assert_eq!(
        usage["total"]["outputTokens"].as_i64().unwrap(),
        sum("outputTokens")
    );
    assert_eq!(
        usage["total"]["costUsdMicros"].as_i64().unwrap(),
        sum("costUsdMicros")
    );
    assert!(sum("costUsdMicros") > 0, "echo-context is priced");
    let models: Vec<&str> = usage["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["key"].as_str().unwrap())
        .collect();
    assert_eq!(models, vec!["echo-context", "faq"]);
    let (_, by_key) = app.get("/v1/usage?groupBy=apiKey").await;
    let (_, keys) = app.get("/v1/api-keys").await;
    assert_eq!(by_key["items"][0]["key"], keys["items"][0]["keyId"]);
    let (_, by_day) = app.get("/v1/usage").await;
    assert_eq!(by_day["items"].as_array().unwrap().len(), 1);
    assert_eq!(by_day["total"], usage["total"]);
    let (_, none) = app.get("/v1/usage?from=2020-01-01&to=2020-02-01").await;
    assert_eq!(none["total"]["requests"], 0);
    for q in [
        "groupBy=week",
        "from=yesterday",
        "from=2026-02-01&to=2026-01-01",
    ] {
        let (status, _) = app.get(&format!("/v1/usage?{q}")).await;
        assert_eq!(status, 422, "{q}");
    }
}

async fn concurrent_stream_limit(app: TestApp) {
    let (status, _) = app
        .put("/v1/limits", json!({"maxConcurrentStreams": 1}))
        .await;
    assert_eq!(status, 200);
    let (a, b) = (app.session().await, app.session().await);
    let first = app
        .request(
            reqwest::Method::POST,
            &format!("/v1/chat/sessions/{a}/messages"),
        )
        .json(&json!({"userText": "slow please", "modelId": "slow-short", "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    let (status, body) = app
        .post(
            &format!("/v1/chat/sessions/{b}/messages"),
            json!({"userText": "hi", "stream": true}),
        )
        .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "rate_limited");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1 open streams"),
        "{body}"
    );
    // Non-streamed turns do not hold a stream slot.
    let (status, _) = app
        .post(
            &format!("/v1/chat/sessions/{b}/messages"),
            json!({"userText": "Do you offer refunds?"}),
        )
        .await;
    assert_eq!(status, 200);
    // When the first stream ends, its slot is free again.
    assert!(first.text().await.unwrap().contains("event: done"));
    let mut status = 0;
    for _ in 0..50 {
        let (s, _) = app
            .post(
                &format!("/v1/chat/sessions/{b}/messages"),
                json!({"userText": "Do you offer refunds?", "stream": true}),
            )
            .await;
        status = s;
        if s == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status, 200);
}

async fn limits_admin_validation(app: TestApp) {
    let (status, _) = app
        .put("/v1/limits", json!({"requestsPerMinute": -1}))
        .await;
    assert_eq!(status, 422);
    let (status, _) = app
        .put("/v1/limits", json!({"monthlyTokens": "lots"}))
        .await;
    assert_eq!(status, 422);
    let (_, keys) = app.get("/v1/api-keys").await;
    let key_id = keys["items"][0]["keyId"].as_str().unwrap();
    let (status, _) = app
        .put(
            &format!("/v1/limits/keys/{key_id}"),
            json!({"maxConcurrentStreams": 3}),
        )
        .await;
    assert_eq!(status, 422, "stream limits belong to the organization");
    let (status, _) = app
        .get("/v1/limits/keys/key_01jd3x8y6q1v0w2r7k9m4n5p6t")
        .await;
    assert_eq!(status, 404);
    let (status, set) = app
        .put(
            "/v1/limits",
            json!({"requestsPerMinute": 500, "monthlyCostUsdMicros": 2_500_000}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, read) = app.get("/v1/limits").await;
    assert_eq!(read, set);
    assert!(read["monthlyTokens"].is_null());
}

/// Two server processes sharing one Redis allow exactly N requests of an
/// organization limited to N per minute, whichever process they reach.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_one_redis_limit() {
    let Ok(url) = std::env::var("TIDECHAT_TEST_REDIS_URL") else {
        eprintln!("skipped: TIDECHAT_TEST_REDIS_URL is not set");
        return;
    };
    let mut config = tidechat_limits::RedisConfig::new(url);
    config.key_prefix = format!("tidechat:test:{}:", ulid::Ulid::new());
    let shared = || async {
        tidechat_limits::Limiter::new(tidechat_limits::Backend::Redis(config.clone()))
            .await
            .unwrap()
    };
    let app = TestApp::sqlite().await.use_limiter(shared().await).await;
    app.set_org_rate(5).await;
    let other = app.second_process_with(Some(shared().await)).await;
    let mut allowed = 0;
    for i in 0..10 {
        let base = if i % 2 == 0 {
            app.base.clone()
        } else {
            other.clone()
        };
        let res = app
            .client
            .get(format!("{base}/v1/chat/sessions"))
            .bearer_auth(&app.key)
            .send()
            .await
            .unwrap();
        match res.status().as_u16() {
            200 => allowed += 1,
            429 => {}
            s => panic!("unexpected status {s}"),
        }
    }
    assert_eq!(allowed, 5);
}

/// Tokens billed this month (replies and other usage).
async fn month_tokens(app: &TestApp) -> i64 {
    let (status, usage) = app.get("/v1/usage?groupBy=model").await;
    assert_eq!(status, 200, "{usage}");
    usage["total"]["inputTokens"].as_i64().unwrap()
        + usage["total"]["outputTokens"].as_i64().unwrap()
}

/// Twenty turns at once against a quota that fits a few: the admitted ones
/// together pass the quota by at most one turn's `maxOutputTokens` (the
/// documented bound), the others are refused with 429 before they start,
/// and every hold is released once the turns are done.
async fn concurrent_turns_cannot_overshoot_a_quota(app: TestApp) {
    // `reverse` reports 7 input + 11 output tokens per reply.
    const QUOTA: i64 = 120;
    const MAX_OUTPUT: i64 = 11;
    let (status, _) = app.put("/v1/limits", json!({"monthlyTokens": QUOTA})).await;
    assert_eq!(status, 200);
    let mut paths = Vec::new();
    for _ in 0..20 {
        paths.push(format!(
            "/v1/chat/sessions/{}/messages",
            app.session().await
        ));
    }
    let turns = paths.iter().map(|path| {
        app.post(
            path,
            json!({"userText": "olleh", "modelId": "reverse", "maxOutputTokens": MAX_OUTPUT}),
        )
    });
    let results = futures_util::future::join_all(turns).await;
    let admitted = results.iter().filter(|(s, _)| *s == 200).count();
    for (status, body) in &results {
        assert!(
            *status == 200 || (*status == 429 && body["error"]["code"] == "quota_exceeded"),
            "{status} {body}"
        );
    }
    assert!(admitted >= 1, "the quota fits at least one turn");
    assert!(admitted < 20, "not every turn fits: {admitted} admitted");
    let spent = month_tokens(&app).await;
    assert_eq!(
        spent,
        admitted as i64 * 18,
        "each reply bills what it reported"
    );
    assert!(
        spent <= QUOTA + MAX_OUTPUT,
        "{admitted} turns spent {spent} tokens of a {QUOTA}-token quota"
    );
    // The holds go once the replies are stored.
    let mut holds = i64::MAX;
    for _ in 0..100 {
        holds = app.quota_holds().await;
        if holds == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(holds, 0, "every quota hold is released");
}
