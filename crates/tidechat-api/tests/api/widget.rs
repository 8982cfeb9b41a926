//! The public widget API and the operator side, over real HTTP.

use serde_json::{json, Value};

use crate::support::{sse_data, TestApp};

backends!(
    visitor_chats_and_retries_are_idempotent,
    operator_takes_over_and_hands_back,
    blocked_visitors_are_refused_everywhere,
    sites_are_isolated,
    cors_grants_only_allowed_origins,
    uploads_accept_only_real_images,
    proactive_messages_once_per_visitor,
    contact_updates_are_rate_limited,
);

pub(crate) const ORIGIN: &str = "https://shop.example";

pub(crate) async fn site(app: &TestApp) -> (String, String) {
    let (status, site) = app
        .post(
            "/v1/sites",
            json!({"name": "Shop", "allowedOrigins": [ORIGIN], "settings": {
                "greeting": "Hi! Ask me anything.", "primaryColor": "#0a7", "askEmail": true,
                "handoffPhrases": ["talk to a human"]}}),
        )
        .await;
    assert_eq!(status, 201, "{site}");
    let key = site["siteKey"].as_str().unwrap().to_owned();
    assert!(key.starts_with("sk_"));
    (site["siteId"].as_str().unwrap().to_owned(), key)
}

pub(crate) async fn send(
    app: &TestApp,
    key: &str,
    visitor: &str,
    message: &str,
    message_id: &str,
) -> (u16, Vec<Value>) {
    let res = app
        .client
        .post(app.url("/api/v1/chat/stream"))
        .json(&json!({"site_key": key, "session_id": visitor, "message": message, "lang": "en", "message_id": message_id}))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    if status != 200 {
        return (status, vec![serde_json::from_str(&text).unwrap()]);
    }
    (status, sse_data(&text))
}

pub(crate) fn chunks(events: &[Value]) -> String {
    events
        .iter()
        .filter(|e| e["type"] == "chunk")
        .map(|e| e["content"].as_str().unwrap())
        .collect()
}

pub(crate) async fn public(app: &TestApp, path: &str) -> (u16, Value) {
    let res = app.client.get(app.url(path)).send().await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

pub(crate) async fn public_post(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    let res = app
        .client
        .post(app.url(path))
        .json(&body)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

async fn visitor_chats_and_retries_are_idempotent(app: TestApp) {
    let (_, key) = site(&app).await;
    let (status, config) = public(&app, &format!("/api/v1/chat/config?site_key={key}")).await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            config["success"].as_bool(),
            config["name"].as_str(),
            config["ask_email"].as_bool()
        ),
        (Some(true), Some("Shop"), Some(true))
    );
    assert_eq!(config["colors"]["primary"], "#0a7");

    let (status, events) = send(&app, &key, "sess_1", "How do I reset my password?", "m1").await;
    assert_eq!(status, 200);
    assert_eq!(chunks(&events), "Use the reset link on the sign-in page.");
    let done = events.last().unwrap();
    assert_eq!(done["type"], "done");
    let conversation = done["meta"]["conversation_id"].as_str().unwrap().to_owned();
    // The same message_id again: the same answer, nothing new stored, no second model call.
    let (_, again) = send(&app, &key, "sess_1", "How do I reset my password?", "m1").await;
    assert_eq!(chunks(&again), "Use the reset link on the sign-in page.");
    assert_eq!(
        again.last().unwrap()["meta"]["conversation_id"],
        conversation.as_str()
    );
    let (status, history) = public(
        &app,
        &format!("/api/v1/chat/history?site_key={key}&session_id=sess_1"),
    )
    .await;
    assert_eq!(status, 200);
    let messages = history["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2, "{history}");
    assert_eq!(
        (messages[0]["role"].as_str(), messages[1]["role"].as_str()),
        (Some("user"), Some("assistant"))
    );
    // One engine: the conversation is a /v1 session.
    let (status, session) = app.get(&format!("/v1/chat/sessions/{conversation}")).await;
    assert_eq!((status, session["messageCount"].as_i64()), (200, Some(2)));

    let visitor = |extra: Value| {
        let mut body = json!({"site_key": key, "session_id": "sess_1"});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    let (status, body) = public_post(
        &app,
        "/api/v1/chat/email",
        visitor(json!({"email": "jane@example.com"})),
    )
    .await;
    assert_eq!(
        (status, body),
        (200, json!({"success": true, "message": "Email saved"}))
    );
    let (status, body) = public_post(
        &app,
        "/api/v1/chat/email",
        visitor(json!({"email": "not-an-email"})),
    )
    .await;
    assert_eq!(
        (status, body["success"].as_bool(), body["error"].as_str()),
        (400, Some(false), Some("invalid_request"))
    );
    let (status, body) = public_post(
        &app,
        "/api/v1/chat/contact",
        visitor(json!({"phone": "+49 30 1234567", "name": "Jane"})),
    )
    .await;
    assert_eq!(
        (status, body),
        (200, json!({"success": true, "message": "Contact saved"}))
    );
    let (status, _) = public_post(
        &app,
        "/api/v1/chat/contact",
        visitor(json!({"name": "only a name"})),
    )
    .await;
    assert_eq!(status, 400);
    for score in [0, 6] {
        let (status, _) =
            public_post(&app, "/api/v1/chat/rate", visitor(json!({"score": score}))).await;
        assert_eq!(status, 400, "{score}");
    }
    let (status, body) = public_post(&app, "/api/v1/chat/rate", visitor(json!({"score": 5}))).await;
    assert_eq!((status, body), (200, json!({"success": true})));
    let (status, _) = public_post(
        &app,
        "/api/v1/chat/rate/comment",
        visitor(json!({"comment": "Great!"})),
    )
    .await;
    assert_eq!(status, 200);
    let (_, list) = app
        .get(&format!(
            "/v1/sites/{}/conversations?rated=true",
            site_id_of(&app, &key).await
        ))
        .await;
    let c = &list["items"][0];
    assert_eq!(
        (
            c["rating"].as_i64(),
            c["ratingComment"].as_str(),
            c["email"].as_str(),
            c["phone"].as_str()
        ),
        (
            Some(5),
            Some("Great!"),
            Some("jane@example.com"),
            Some("+49 30 1234567")
        )
    );

    let (status, body) = public(&app, "/api/v1/chat/config?site_key=sk_nope").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("unknown_site"))
    );
    let res = app.client.get(app.url("/widget.js")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
}

async fn site_id_of(app: &TestApp, key: &str) -> String {
    let (_, sites) = app.get("/v1/sites").await;
    sites["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["siteKey"] == key)
        .unwrap()["siteId"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn operator_takes_over_and_hands_back(app: TestApp) {
    let (site_id, key) = site(&app).await;
    send(&app, &key, "sess_op", "Do you offer refunds?", "a").await;
    let (_, list) = app.get(&format!("/v1/sites/{site_id}/conversations")).await;
    let cid = list["items"][0]["conversationId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(list["items"][0]["sessionId"], "sess_op");
    assert_eq!(list["items"][0]["mode"], "ai");
    let base = format!("/v1/sites/{site_id}/conversations/{cid}");
    let (status, taken) = app.post(&format!("{base}/takeover"), json!({})).await;
    assert_eq!((status, taken["mode"].as_str()), (200, Some("operator")));
    // The AI stays silent; the message waits for the operator.
    let (_, events) = send(&app, &key, "sess_op", "Can I speak to someone?", "b").await;
    assert_eq!(chunks(&events), "");
    assert_eq!(events.last().unwrap()["meta"]["mode"], "operator");
    let (_, waiting) = app
        .get(&format!(
            "/v1/sites/{site_id}/conversations?waiting=true&mode=operator"
        ))
        .await;
    assert_eq!(waiting["items"].as_array().unwrap().len(), 1);
    let (status, reply) = app
        .post(
            &format!("{base}/reply"),
            json!({"content": "Hi, this is Sam from support."}),
        )
        .await;
    assert_eq!(status, 201, "{reply}");
    assert_eq!(reply["model"], "operator");
    let poll = format!("/api/v1/chat/operator-messages?site_key={key}&session_id=sess_op");
    let (_, first) = public(&app, &poll).await;
    assert_eq!(first["mode"], "operator");
    assert_eq!(first["messages"].as_array().unwrap().len(), 1);
    assert_eq!(
        first["messages"][0]["content"],
        "Hi, this is Sam from support."
    );
    let (_, second) = public(&app, &poll).await;
    assert!(
        second["messages"].as_array().unwrap().is_empty(),
        "only new messages"
    );
    let (_, history) = public(
        &app,
        &format!("/api/v1/chat/history?site_key={key}&session_id=sess_op"),
    )
    .await;
    let roles: Vec<&str> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, vec!["user", "assistant", "user", "operator"]);
    let (_, back) = app.post(&format!("{base}/handback"), json!({})).await;
    assert_eq!(back["mode"], "ai");
    let (_, events) = send(&app, &key, "sess_op", "Do you offer refunds?", "c").await;
    assert_eq!(chunks(&events), "Yes, within 14 days of purchase.");
    // A configured handoff phrase switches to operator mode and tells the visitor.
    let (_, events) = send(
        &app,
        &key,
        "sess_phrase",
        "I want to talk to a human please",
        "d",
    )
    .await;
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "mode" && e["mode"] == "operator"),
        "{events:?}"
    );
    let (_, poll) = public(
        &app,
        &format!("/api/v1/chat/operator-messages?site_key={key}&session_id=sess_phrase"),
    )
    .await;
    assert_eq!(poll["mode"], "operator");
}

async fn blocked_visitors_are_refused_everywhere(app: TestApp) {
    let (site_id, key) = site(&app).await;
    send(&app, &key, "sess_bad", "Do you offer refunds?", "a").await;
    let (_, list) = app.get(&format!("/v1/sites/{site_id}/conversations")).await;
    let cid = list["items"][0]["conversationId"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, blocked) = app
        .post(
            &format!("/v1/sites/{site_id}/conversations/{cid}/block"),
            json!({}),
        )
        .await;
    assert_eq!((status, blocked["blocked"].as_bool()), (200, Some(true)));
    let (status, body) = send(&app, &key, "sess_bad", "hello?", "b").await;
    assert_eq!((status, body[0]["error"].as_str()), (403, Some("blocked")));
    let q = format!("site_key={key}&session_id=sess_bad");
    for path in [
        format!("/api/v1/chat/history?{q}"),
        format!("/api/v1/chat/operator-messages?{q}"),
        format!("/api/v1/chat/pending-proactive?{q}&url=x"),
    ] {
        let (status, body) = public(&app, &path).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (403, Some("blocked")),
            "{path}"
        );
    }
    let body = json!({"site_key": key, "session_id": "sess_bad", "email": "a@b.example", "score": 5, "comment": "x"});
    for path in [
        "/api/v1/chat/email",
        "/api/v1/chat/contact",
        "/api/v1/chat/rate",
        "/api/v1/chat/rate/comment",
    ] {
        let (status, _) = public_post(&app, path, body.clone()).await;
        assert_eq!(status, 403, "{path}");
    }
    let (_, status) = public(&app, &format!("/api/v1/chat/block-status?{q}")).await;
    assert_eq!(status, json!({"success": true, "blocked": true}));
    app.post(
        &format!("/v1/sites/{site_id}/conversations/{cid}/unblock"),
        json!({}),
    )
    .await;
    let (status, _) = send(&app, &key, "sess_bad", "Do you offer refunds?", "c").await;
    assert_eq!(status, 200);
}

async fn sites_are_isolated(app: TestApp) {
    let (site_a, key_a) = site(&app).await;
    let (_, key_b) = site(&app).await;
    send(&app, &key_a, "sess_same", "Do you offer refunds?", "a").await;
    let (_, history_b) = public(
        &app,
        &format!("/api/v1/chat/history?site_key={key_b}&session_id=sess_same"),
    )
    .await;
    assert!(
        history_b["messages"].as_array().unwrap().is_empty(),
        "another site's key never reads this visitor"
    );
    let other = app.other_org().await;
    for path in [
        format!("/v1/sites/{site_a}"),
        format!("/v1/sites/{site_a}/conversations"),
    ] {
        let res = app
            .client
            .get(app.url(&path))
            .bearer_auth(&other.api_key)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404, "{path}");
    }
    let (_, list) = app.get(&format!("/v1/sites/{site_a}/conversations")).await;
    let cid = list["items"][0]["conversationId"].as_str().unwrap();
    let res = app
        .client
        .post(app.url(&format!("/v1/sites/{site_a}/conversations/{cid}/reply")))
        .bearer_auth(&other.api_key)
        .json(&json!({"content": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

async fn cors_grants_only_allowed_origins(app: TestApp) {
    let (_, key) = site(&app).await;
    let url = app.url(&format!("/api/v1/chat/config?site_key={key}"));
    let allowed = app
        .client
        .get(&url)
        .header("origin", ORIGIN)
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.headers()["access-control-allow-origin"], ORIGIN);
    let evil = app
        .client
        .get(&url)
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(evil.headers().get("access-control-allow-origin").is_none());
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/api/v1/chat/stream"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
    };
    let ok = preflight(ORIGIN).await.unwrap();
    assert_eq!(ok.status(), 204);
    assert_eq!(ok.headers()["access-control-allow-origin"], ORIGIN);
    let no = preflight("https://evil.example").await.unwrap();
    assert!(no.headers().get("access-control-allow-origin").is_none());
}

fn png() -> Vec<u8> {
    let mut bytes = vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];
    bytes.extend_from_slice(&[0u8; 64]);
    bytes
}

async fn upload(app: &TestApp, key: &str, name: &str, bytes: Vec<u8>) -> (u16, Value) {
    let form = reqwest::multipart::Form::new()
        .text("site_key", key.to_owned())
        .text("session_id", "sess_up".to_owned())
        .part(
            "image",
            reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned()),
        );
    let res = app
        .client
        .post(app.url("/api/v1/chat/upload-image"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

async fn uploads_accept_only_real_images(app: TestApp) {
    let (_, key) = site(&app).await;
    let (status, body) = upload(&app, &key, "cat.png", png()).await;
    assert_eq!(status, 200, "{body}");
    let url = body["url"].as_str().unwrap();
    let served = app.client.get(url).send().await.unwrap();
    assert_eq!(served.headers()["content-type"], "image/png");
    assert_eq!(served.bytes().await.unwrap().to_vec(), png());
    let (status, body) = upload(
        &app,
        &key,
        "evil.png",
        b"<script>alert(1)</script>".to_vec(),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (415, Some("not_an_image")),
        "named .png but not an image"
    );
    let (status, body) = upload(&app, &key, "huge.png", vec![0x89; 6 * 1024 * 1024]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (413, Some("file_too_large"))
    );
    let res = app
        .client
        .get(app.url("/uploads/..%2Fsecret.png"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

async fn proactive_messages_once_per_visitor(app: TestApp) {
    let (site_id, key) = site(&app).await;
    let (status, p) = app
        .post(&format!("/v1/sites/{site_id}/proactive"), json!({"content": "Need help with checkout?", "delaySeconds": 3, "urlPattern": "https://shop.example/*/checkout"}))
        .await;
    assert_eq!(status, 201, "{p}");
    let app = &app;
    let key = key.as_str();
    let pending = |visitor: &'static str, url: &'static str| async move {
        let path = format!(
            "/api/v1/chat/pending-proactive?site_key={key}&session_id={visitor}&url={}",
            urlencoding(url)
        );
        public(app, &path).await.1
    };
    let first = pending("v1", "https://shop.example/eu/checkout").await;
    assert_eq!(first["messages"].as_array().unwrap().len(), 1);
    assert_eq!(
        (
            first["messages"][0]["content"].as_str(),
            first["messages"][0]["delay_seconds"].as_i64()
        ),
        (Some("Need help with checkout?"), Some(3))
    );
    let again = pending("v1", "https://shop.example/eu/checkout").await;
    assert!(
        again["messages"].as_array().unwrap().is_empty(),
        "once per visitor"
    );
    let elsewhere = pending("v2", "https://shop.example/eu/cart").await;
    assert!(elsewhere["messages"].as_array().unwrap().is_empty());
    let (status, _) = app
        .delete(&format!(
            "/v1/sites/{site_id}/proactive/{}",
            p["proactiveId"].as_str().unwrap()
        ))
        .await;
    assert_eq!(status, 204);
    let gone = pending("v3", "https://shop.example/eu/checkout").await;
    assert!(gone["messages"].as_array().unwrap().is_empty());
}

fn urlencoding(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn contact_updates_are_rate_limited(app: TestApp) {
    let (_, key) = site(&app).await;
    let mut codes = Vec::new();
    for i in 0..12 {
        let (status, body) = public_post(
            &app,
            "/api/v1/chat/contact",
            json!({"site_key": key, "session_id": "sess_spam", "email": format!("a{i}@b.example")}),
        )
        .await;
        codes.push((status, body["error"].as_str().map(str::to_owned)));
    }
    assert!(codes[..10].iter().all(|(s, _)| *s == 200), "{codes:?}");
    assert_eq!(codes[10], (429, Some("rate_limited".to_owned())));
}

/// With an S3-compatible bucket, uploads go there and are served back the
/// same way (runs when `TIDECHAT_TEST_S3_URL` points at one, e.g. moto).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_can_live_in_s3() {
    let Ok(endpoint) = std::env::var("TIDECHAT_TEST_S3_URL") else {
        eprintln!("skipped: TIDECHAT_TEST_S3_URL is not set");
        return;
    };
    let bucket = format!(
        "tidechat-test-{}",
        ulid::Ulid::new().to_string().to_ascii_lowercase()
    );
    let created = reqwest::Client::new()
        .put(format!("{endpoint}/{bucket}"))
        .send()
        .await
        .unwrap();
    assert!(
        created.status().is_success(),
        "create bucket: {}",
        created.status()
    );
    let s3 = tidechat_api::S3Uploads {
        bucket: bucket.clone(),
        endpoint: Some(endpoint.clone()),
        region: Some("us-east-1".into()),
        access_key_id: Some("test".into()),
        secret_access_key: Some("test".into()),
    };
    let app = TestApp::sqlite().await.use_s3_uploads(s3).await;
    let (_, key) = site(&app).await;
    let (status, body) = upload(&app, &key, "cat.png", png()).await;
    assert_eq!(status, 200, "{body}");
    let url = body["url"].as_str().unwrap();
    // Served back from the bucket (the app has no local upload store).
    let served = app.client.get(url).send().await.unwrap();
    assert_eq!(served.status(), 200);
    assert_eq!(served.bytes().await.unwrap().to_vec(), png());
    let missing = app
        .client
        .get(app.url("/uploads/01jd3x8y6q1v0w2r7k9m4n5p6t.png"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}
