//! The defects the per-surface copies of the plumbing caused (issue 16),
//! each through the public API on both databases.

use serde_json::{json, Value};

use crate::support::TestApp;

backends!(
    faq_chat_holds_a_stream_slot,
    faq_chat_refuses_before_the_stream,
    websocket_turns_count_against_the_request_rate,
    chat_keys_cannot_do_operator_work,
    zero_request_rate_is_refused,
    limits_patch_changes_only_what_it_names,
    framework_errors_answer_in_the_surface_shape,
    widget_operator_mode_done_names_the_message,
);

async fn faq_chat(app: &TestApp, key: &str, body: Value) -> (u16, String) {
    let res = app
        .client
        .post(app.url("/chat"))
        .header("mooni-api-key", key)
        .json(&body)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

async fn faq_chat_holds_a_stream_slot(app: TestApp) {
    let (status, _) = app
        .put("/v1/limits", json!({"maxConcurrentStreams": 1}))
        .await;
    assert_eq!(status, 200);
    let session = app.session().await;
    let first = app
        .request(
            reqwest::Method::POST,
            &format!("/v1/chat/sessions/{session}/messages"),
        )
        .json(&json!({"userText": "slow please", "modelId": "slow-short", "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    // The /v1 stream holds the one slot: the FAQ chat stream is refused
    // with a 429 before any frame, in this surface's shape.
    let (status, body) = faq_chat(&app, &app.key, json!({"query": "Do you offer refunds?"})).await;
    assert_eq!(status, 429, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"], "rate_limited", "{body}");
    assert!(body["message"].as_str().unwrap().contains("open streams"));
    assert!(first.text().await.unwrap().contains("event: done"));
    // Once the first stream is over, the slot is free again.
    let mut status = 0;
    for _ in 0..50 {
        (status, _) = faq_chat(&app, &app.key, json!({"query": "Do you offer refunds?"})).await;
        if status == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200);
}

async fn faq_chat_refuses_before_the_stream(app: TestApp) {
    let long_session = "s".repeat(129);
    let (status, body) = faq_chat(
        &app,
        &app.key,
        json!({"query": "Do you offer refunds?", "sessionId": long_session}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"], "invalid_request");
    assert_eq!(body["field"], "sessionId");

    let (status, body) = faq_chat(&app, &app.key, json!({"query": "refund\u{0}please"})).await;
    assert_eq!(status, 400, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"], "invalid_request");
    assert_eq!(body["field"], "query");

    // A spent quota is a 429 with Retry-After, not `search_failed` after a 200.
    let session = app.session().await;
    let (status, _) = app
        .post(
            &format!("/v1/chat/sessions/{session}/messages"),
            json!({"userText": "Do you offer refunds?"}),
        )
        .await;
    assert_eq!(status, 200, "a reply spends tokens");
    let (status, _) = app.put("/v1/limits", json!({"monthlyTokens": 1})).await;
    assert_eq!(status, 200);
    let res = app
        .client
        .post(app.url("/chat"))
        .header("mooni-api-key", &app.key)
        .json(&json!({"query": "Do you offer refunds?"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    assert!(res.headers().get("retry-after").is_some());
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "quota_exceeded", "{body}");
}

async fn websocket_turns_count_against_the_request_rate(app: TestApp) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message as Ws;
    app.set_org_rate(5).await;
    let url = format!(
        "{}/ws/chat?api_key={}&user_id=rate-user",
        app.base.replacen("http", "ws", 1),
        app.key
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let mut answered = 0;
    let mut refused = 0;
    for i in 0..8 {
        socket
            .send(Ws::text(
                json!({"content": format!("Do you offer refunds? {i}")}).to_string(),
            ))
            .await
            .unwrap();
        // Each message ends in a stored reply or an error.
        loop {
            let frame = tokio::time::timeout(std::time::Duration::from_secs(20), socket.next())
                .await
                .expect("a frame")
                .expect("open")
                .unwrap();
            let Ws::Text(text) = frame else { continue };
            let value: Value = serde_json::from_str(&text).unwrap();
            match value["type"].as_str() {
                Some("message_stream_ended") => {
                    answered += 1;
                    break;
                }
                Some("error") => {
                    assert_eq!(value["code"], "rate_limited", "{value}");
                    refused += 1;
                    break;
                }
                _ => {}
            }
        }
    }
    assert!(
        answered <= 5,
        "{answered} answered at 5 requests per minute"
    );
    assert!(refused >= 3, "{refused} refused");
    // REST calls share the same budget.
    let (status, _) = app.get("/v1/chat/sessions").await;
    assert_eq!(status, 429);
}

async fn chat_keys_cannot_do_operator_work(app: TestApp) {
    let (status, site) = app
        .post(
            "/v1/sites",
            json!({"name": "Shop", "allowedOrigins": ["https://shop.example"]}),
        )
        .await;
    assert_eq!(status, 201, "{site}");
    let site_id = site["siteId"].as_str().unwrap().to_owned();
    let site_key = site["siteKey"].as_str().unwrap().to_owned();
    // A visitor conversation with contact details.
    let res = app
        .client
        .post(app.url("/api/v1/chat/contact"))
        .json(&json!({"site_key": site_key, "session_id": "v-1", "email": "v@example.com", "phone": "+49 30 1234567"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let (_, list) = app.get(&format!("/v1/sites/{site_id}/conversations")).await;
    let conversation = list["items"][0]["conversationId"]
        .as_str()
        .unwrap_or_else(|| panic!("{list}"))
        .to_owned();
    let (status, key) = app
        .post("/v1/api-keys", json!({"name": "chat", "scope": "chat"}))
        .await;
    assert_eq!(status, 201);
    let secret = key["key"].as_str().unwrap().to_owned();
    use reqwest::Method as M;
    let base = format!("/v1/sites/{site_id}");
    let conv = format!("{base}/conversations/{conversation}");
    let calls: Vec<(M, String, Option<Value>)> = vec![
        (M::GET, base.clone(), None),
        (M::GET, format!("{base}/conversations"), None),
        (M::GET, conv.clone(), None),
        (M::POST, format!("{conv}/takeover"), None),
        (
            M::POST,
            format!("{conv}/reply"),
            Some(json!({"content": "hello"})),
        ),
        (M::POST, format!("{conv}/handback"), None),
        (M::POST, format!("{conv}/block"), None),
        (M::POST, format!("{conv}/unblock"), None),
        (M::GET, format!("{base}/proactive"), None),
    ];
    for (method, path, body) in calls {
        let mut req = app
            .client
            .request(method.clone(), app.url(&path))
            .bearer_auth(&secret);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let body: Value = res.json().await.unwrap();
        assert_eq!(status, 403, "{method} {path}: {body}");
        assert_eq!(body["error"]["code"], "forbidden");
        assert!(!body.to_string().contains("v@example.com"));
    }
    // The admin key still can.
    let (status, _) = app.post(&format!("{conv}/takeover"), json!({})).await;
    assert_eq!(status, 200);
}

async fn zero_request_rate_is_refused(app: TestApp) {
    let (status, body) = app.put("/v1/limits", json!({"requestsPerMinute": 0})).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "validation_error");
    let patch = app
        .request(reqwest::Method::PATCH, "/v1/limits")
        .json(&json!({"requestsPerMinute": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(patch.status(), 422);
    let key_id = app.engine_key_id().await;
    let (status, _) = app
        .put(
            &format!("/v1/limits/keys/{key_id}"),
            json!({"requestsPerMinute": 0}),
        )
        .await;
    assert_eq!(status, 422);
    // Nothing was stored: requests still go through.
    let (status, limits) = app.get("/v1/limits").await;
    assert_eq!(status, 200);
    assert_eq!(limits["requestsPerMinute"], Value::Null);
}

async fn patch(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    let res = app
        .request(reqwest::Method::PATCH, path)
        .json(&body)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

async fn limits_patch_changes_only_what_it_names(app: TestApp) {
    let (status, _) = app
        .put(
            "/v1/limits",
            json!({"requestsPerMinute": 50, "monthlyTokens": 1000000}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, limits) = patch(&app, "/v1/limits", json!({"maxConcurrentStreams": 3})).await;
    assert_eq!(status, 200, "{limits}");
    assert_eq!(limits["requestsPerMinute"], 50);
    assert_eq!(limits["monthlyTokens"], 1000000);
    assert_eq!(limits["maxConcurrentStreams"], 3);
    // null unsets; absent keeps.
    let (status, limits) = patch(&app, "/v1/limits", json!({"monthlyTokens": null})).await;
    assert_eq!(status, 200);
    assert_eq!(limits["monthlyTokens"], Value::Null);
    assert_eq!(limits["requestsPerMinute"], 50);
    let (_, stored) = app.get("/v1/limits").await;
    assert_eq!(stored, limits);
    // Unknown fields and bad values are refused.
    let (status, _) = patch(&app, "/v1/limits", json!({"requestsPerHour": 5})).await;
    assert_eq!(status, 422);
    let (status, _) = patch(&app, "/v1/limits", json!({"monthlyTokens": -1})).await;
    assert_eq!(status, 422);
    // Per key.
    let key_id = app.engine_key_id().await;
    let path = format!("/v1/limits/keys/{key_id}");
    let (status, _) = app
        .put(
            &path,
            json!({"requestsPerMinute": 40, "monthlyTokens": 500}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, limits) = patch(&app, &path, json!({"monthlyTokens": 900})).await;
    assert_eq!(status, 200, "{limits}");
    assert_eq!(limits["requestsPerMinute"], 40);
    assert_eq!(limits["monthlyTokens"], 900);
    // PUT stays a full replace.
    let (_, limits) = app.put("/v1/limits", json!({"monthlyTokens": 7})).await;
    assert_eq!(limits["requestsPerMinute"], Value::Null);
}

async fn framework_errors_answer_in_the_surface_shape(app: TestApp) {
    // Wrong method on a FAQ chat path.
    let res = app.client.get(app.url("/chat")).send().await.unwrap();
    assert_eq!(res.status(), 405);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body,
        json!({"error": "method_not_allowed", "message": "this path does not accept this HTTP method"})
    );
    // Unknown widget path and wrong widget method.
    let res = app
        .client
        .get(app.url("/api/v1/chat/no-such-thing"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["success"], false, "{body}");
    assert_eq!(body["error"], "not_found");
    let res = app
        .client
        .delete(app.url("/api/v1/chat/stream"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["success"], false, "{body}");
    // Chats REST.
    let res = app
        .client
        .put(app.url("/api/v1/chats/user/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed", "{body}");
    assert!(body["error"]["details"].is_string(), "{body}");
    // /v1 keeps its own.
    let (status, body) = app.get("/v1/nothing-here").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");
    // An oversized FAQ chat body: 413 in the FAQ chat shape.
    let big = "x".repeat(3 * 1024 * 1024);
    let res = app
        .client
        .post(app.url("/chat"))
        .header("mooni-api-key", &app.key)
        .header("content-type", "application/json")
        .body(format!("{{\"query\": \"{big}\"}}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "payload_too_large", "{body}");
}

async fn widget_operator_mode_done_names_the_message(app: TestApp) {
    let (status, site) = app
        .post(
            "/v1/sites",
            json!({"name": "Shop", "allowedOrigins": ["https://shop.example"],
                   "settings": {"handoffPhrases": ["talk to a human"]}}),
        )
        .await;
    assert_eq!(status, 201);
    let key = site["siteKey"].as_str().unwrap().to_owned();
    let res = app
        .client
        .post(app.url("/api/v1/chat/stream"))
        .json(
            &json!({"site_key": key, "session_id": "v-9", "message": "I want to talk to a human"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let frames = crate::support::sse_data(&res.text().await.unwrap());
    let done = frames.iter().find(|f| f["type"] == "done").expect("done");
    assert_eq!(done["meta"]["mode"], "operator");
    let id = done["meta"]["message_id"].as_str().expect("message_id");
    let history = app
        .client
        .get(app.url(&format!(
            "/api/v1/chat/history?site_key={key}&session_id=v-9"
        )))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(history["messages"][0]["id"], id, "{history}");
    assert_eq!(history["messages"][0]["role"], "user");
}
