//! Widget conversation state under concurrency and at scale, over real HTTP:
//! lost updates between operators and visitors, operator replies after many
//! AI messages, retried messages racing their first attempt, origins in
//! another case, and the operator's conversation list.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::TestApp;
use crate::widget::{chunks, public, public_post, send, site};

backends!(
    a_refused_attempt_does_not_hold_its_message_id,
    operator_changes_and_visitor_updates_both_survive_a_race,
    operator_replies_arrive_after_many_ai_messages,
    a_retry_racing_its_first_attempt_gets_that_attempts_reply,
    origins_match_in_any_case,
    conversation_list_shows_each_conversations_last_message,
    conversation_list_filters_before_its_limit,
);

/// The operator's id of the visitor's conversation.
async fn conversation_of(app: &TestApp, site_id: &str, visitor: &str) -> String {
    let (status, list) = app.get(&format!("/v1/sites/{site_id}/conversations")).await;
    assert_eq!(status, 200, "{list}");
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["sessionId"] == visitor)
        .unwrap_or_else(|| panic!("no conversation for {visitor}: {list}"))["conversationId"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn operator_changes_and_visitor_updates_both_survive_a_race(app: TestApp) {
    let (site_id, key) = site(&app).await;
    send(&app, &key, "sess_race", "Do you offer refunds?", "a").await;
    let cid = conversation_of(&app, &site_id, "sess_race").await;
    let base = format!("/v1/sites/{site_id}/conversations/{cid}");
    let visitor = |extra: Value| {
        let mut body = json!({"site_key": key, "session_id": "sess_race"});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    // (Eight rounds: contact updates are limited to ten a minute.)
    for round in 0..8_i64 {
        let score = round % 5 + 1;
        // The operator takes over while the visitor rates.
        let takeover_path = format!("{base}/takeover");
        let takeover = app.post(&takeover_path, json!({}));
        let rate = public_post(&app, "/api/v1/chat/rate", visitor(json!({"score": score})));
        let ((taken, _), (rated, _)) = tokio::join!(takeover, rate);
        assert_eq!((taken, rated), (200, 200), "round {round}");
        let (_, c) = app.get(&base).await;
        assert_eq!(
            (c["mode"].as_str(), c["rating"].as_i64()),
            (Some("operator"), Some(score)),
            "round {round}: both the takeover and the rating survive"
        );
        // The operator hands back while the visitor leaves a comment and contact.
        let comment = format!("comment {round}");
        let email = format!("v{round}@example.com");
        let handback_path = format!("{base}/handback");
        let handback = app.post(&handback_path, json!({}));
        let commented = public_post(
            &app,
            "/api/v1/chat/rate/comment",
            visitor(json!({"comment": comment})),
        );
        let contact = public_post(
            &app,
            "/api/v1/chat/contact",
            visitor(json!({"email": email})),
        );
        let ((back, _), (said, _), (saved, _)) = tokio::join!(handback, commented, contact);
        assert_eq!((back, said, saved), (200, 200, 200), "round {round}");
        let (_, c) = app.get(&base).await;
        assert_eq!(
            (
                c["mode"].as_str(),
                c["rating"].as_i64(),
                c["ratingComment"].as_str(),
                c["email"].as_str()
            ),
            (
                Some("ai"),
                Some(score),
                Some(comment.as_str()),
                Some(email.as_str())
            ),
            "round {round}: the handback, the comment and the contact survive"
        );
    }
    // A block racing a rating: the block always survives.
    for round in 0..6 {
        let block_path = format!("{base}/block");
        let block = app.post(&block_path, json!({}));
        let rate = public_post(&app, "/api/v1/chat/rate", visitor(json!({"score": 3})));
        let ((blocked, _), (rated, _)) = tokio::join!(block, rate);
        assert_eq!(blocked, 200, "round {round}");
        assert!(rated == 200 || rated == 403, "round {round}: {rated}");
        let (_, c) = app.get(&base).await;
        assert_eq!(c["blocked"], true, "round {round}: the block survives");
        let (_, status) = public(
            &app,
            &format!("/api/v1/chat/block-status?site_key={key}&session_id=sess_race"),
        )
        .await;
        assert_eq!(status["blocked"], true);
        let (unblocked, _) = app.post(&format!("{base}/unblock"), json!({})).await;
        assert_eq!(unblocked, 200);
    }
}

async fn operator_replies_arrive_after_many_ai_messages(app: TestApp) {
    let (site_id, key) = site(&app).await;
    send(&app, &key, "sess_long", "Do you offer refunds?", "a").await;
    let cid = conversation_of(&app, &site_id, "sess_long").await;
    let poll = format!("/api/v1/chat/operator-messages?site_key={key}&session_id=sess_long");
    let (_, nothing) = public(&app, &poll).await;
    assert!(nothing["messages"].as_array().unwrap().is_empty());
    // Room for the 245 turns below (the default is 100 requests a minute).
    app.set_org_rate(10_000).await;
    // 250 AI messages (125 turns, a user message and a reply each, through the /v1 API on the same session;
    // the widget's own endpoint limits a visitor to 30 messages a minute).
    let turns = |n: usize| {
        let (app, cid) = (&app, cid.clone());
        async move {
            for i in 0..n {
                let (status, body) = app
                    .post(
                        &format!("/v1/chat/sessions/{cid}/messages"),
                        json!({"userText": format!("Do you offer refunds? ({i})")}),
                    )
                    .await;
                assert_eq!(status, 200, "{body}");
            }
        }
    };
    turns(125).await;
    let base = format!("/v1/sites/{site_id}/conversations/{cid}");
    let (status, reply) = app
        .post(&format!("{base}/reply"), json!({"content": "Sam here."}))
        .await;
    assert_eq!(status, 201, "{reply}");
    let (_, first) = public(&app, &poll).await;
    let contents: Vec<&str> = first["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents, vec!["Sam here."], "{first}");
    assert_eq!(first["messages"][0]["role"], "operator");
    assert_eq!(first["mode"], "operator");
    let (_, again) = public(&app, &poll).await;
    assert!(again["messages"].as_array().unwrap().is_empty(), "{again}");
    // More AI traffic, then two operator replies: both arrive, in order, once.
    app.post(&format!("{base}/handback"), json!({})).await;
    turns(110).await;
    for content in ["One more thing:", "we ship on Mondays."] {
        let (status, _) = app
            .post(&format!("{base}/reply"), json!({"content": content}))
            .await;
        assert_eq!(status, 201);
    }
    let (_, next) = public(&app, &poll).await;
    let contents: Vec<&str> = next["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents, vec!["One more thing:", "we ship on Mondays."]);
    let (_, last) = public(&app, &poll).await;
    assert!(last["messages"].as_array().unwrap().is_empty(), "{last}");
}

async fn a_retry_racing_its_first_attempt_gets_that_attempts_reply(app: TestApp) {
    // A slow persona, so the retry arrives while the first attempt streams.
    let (status, persona) = app
        .post(
            "/v1/personas",
            json!({"name": "Slow", "modelId": "slow-short"}),
        )
        .await;
    assert_eq!(status, 201, "{persona}");
    let (status, created) = app
        .post(
            "/v1/sites",
            json!({"name": "Slow shop", "personaId": persona["personaId"], "allowedOrigins": []}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let site_id = created["siteId"].as_str().unwrap().to_owned();
    let key = created["siteKey"].as_str().unwrap().to_owned();

    let first = send(&app, &key, "sess_retry", "hello there", "m1");
    let meanwhile = async {
        // The visitor's message is stored (the conversation waits for a
        // reply); an operator answers before the AI has finished.
        let mut cid = None;
        for _ in 0..200 {
            let (_, list) = app
                .get(&format!("/v1/sites/{site_id}/conversations?waiting=true"))
                .await;
            if let Some(c) = list["items"].as_array().unwrap().first() {
                cid = c["conversationId"].as_str().map(str::to_owned);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let cid = cid.expect("the visitor's message is stored");
        let (status, _) = app
            .post(
                &format!("/v1/sites/{site_id}/conversations/{cid}/reply"),
                json!({"content": "Sam from support here."}),
            )
            .await;
        assert_eq!(status, 201);
        // The widget retries the same message id (a lost connection).
        let retried = send(&app, &key, "sess_retry", "hello there", "m1").await;
        (cid, retried)
    };
    let ((status, original), (cid, (retry_status, retried))) = tokio::join!(first, meanwhile);
    assert_eq!((status, retry_status), (200, 200));
    let answer = chunks(&original);
    assert!(answer.starts_with("word0."), "{original:?}");
    assert_eq!(
        chunks(&retried),
        answer,
        "the retry gets the first attempt's reply, not the operator's"
    );
    assert_eq!(retried.last().unwrap()["meta"]["replayed"], true);
    // One turn: one user message, one AI reply, one operator reply.
    let (_, detail) = app
        .get(&format!("/v1/sites/{site_id}/conversations/{cid}"))
        .await;
    let kinds: Vec<(String, String)> = detail["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap().to_owned(),
                m["model"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let count = |role: &str, model: &str| {
        kinds
            .iter()
            .filter(|(r, m)| r == role && m == model)
            .count()
    };
    assert_eq!(
        (
            kinds.len(),
            count("user", "slow-short"),
            count("assistant", "slow-short"),
            count("assistant", "operator")
        ),
        (3, 1, 1, 1),
        "{kinds:?}"
    );

    // The same text again under a new id is a new question with its own
    // answer; retrying the first id still replays the first answer.
    app.post(
        &format!("/v1/sites/{site_id}/conversations/{cid}/handback"),
        json!({}),
    )
    .await;
    let (_, second) = send(&app, &key, "sess_retry", "hello there", "m2").await;
    assert!(chunks(&second).starts_with("word0."));
    let (_, again) = send(&app, &key, "sess_retry", "hello there", "m1").await;
    assert_eq!(chunks(&again), answer);
    let (_, detail) = app
        .get(&format!("/v1/sites/{site_id}/conversations/{cid}"))
        .await;
    assert_eq!(detail["messages"].as_array().unwrap().len(), 5, "{detail}");
}

async fn origins_match_in_any_case(app: TestApp) {
    let (status, created) = app
        .post(
            "/v1/sites",
            json!({"name": "Cased", "allowedOrigins": ["https://Example.com", "https://shop.example.org"]}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let key = created["siteKey"].as_str().unwrap().to_owned();
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/api/v1/chat/stream"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
    };
    let config = app.url(&format!("/api/v1/chat/config?site_key={key}"));
    for origin in [
        "https://example.com",
        "https://Example.com",
        "https://EXAMPLE.COM",
        "https://Shop.Example.Org",
        "https://shop.example.org",
    ] {
        let res = preflight(origin).await.unwrap();
        assert_eq!(res.status(), 204);
        assert_eq!(
            res.headers()
                .get("access-control-allow-origin")
                .map(|v| v.to_str().unwrap()),
            Some(origin),
            "preflight from {origin}"
        );
        let res = app
            .client
            .get(&config)
            .header("origin", origin)
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.headers()
                .get("access-control-allow-origin")
                .map(|v| v.to_str().unwrap()),
            Some(origin),
            "answer to {origin}"
        );
    }
    for origin in ["https://example.com.evil.test", "https://other.example"] {
        let res = preflight(origin).await.unwrap();
        assert!(
            res.headers().get("access-control-allow-origin").is_none(),
            "{origin}"
        );
    }
}

async fn conversation_list_shows_each_conversations_last_message(app: TestApp) {
    let (site_id, key) = site(&app).await;
    // An AI answer last.
    send(&app, &key, "sess_ai", "Do you offer refunds?", "a").await;
    // The visitor's message last, waiting for the operator.
    send(&app, &key, "sess_wait", "Do you offer refunds?", "a").await;
    let wait = conversation_of(&app, &site_id, "sess_wait").await;
    app.post(
        &format!("/v1/sites/{site_id}/conversations/{wait}/takeover"),
        json!({}),
    )
    .await;
    send(&app, &key, "sess_wait", "Hello? Anyone?", "b").await;
    // An operator reply last.
    send(
        &app,
        &key,
        "sess_op",
        "What payment methods do you accept?",
        "a",
    )
    .await;
    let op = conversation_of(&app, &site_id, "sess_op").await;
    app.post(
        &format!("/v1/sites/{site_id}/conversations/{op}/reply"),
        json!({"content": "PayPal works too."}),
    )
    .await;
    // No messages at all: only contact details and a rating.
    let quiet = json!({"site_key": key, "session_id": "sess_quiet"});
    let mut contact = quiet.clone();
    contact["email"] = json!("quiet@example.com");
    public_post(&app, "/api/v1/chat/contact", contact).await;
    let mut rating = quiet.clone();
    rating["score"] = json!(4);
    public_post(&app, "/api/v1/chat/rate", rating).await;

    let summary = |list: &Value| -> Vec<Value> {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                json!({
                    "visitor": c["sessionId"],
                    "mode": c["mode"],
                    "waiting": c["waitingForReply"],
                    "count": c["messageCount"],
                    "lastRole": c["lastMessage"]["role"],
                    "lastModel": c["lastMessage"]["model"],
                    "lastContent": c["lastMessage"]["content"],
                    "rating": c["rating"],
                    "email": c["email"],
                })
            })
            .collect()
    };
    let (status, list) = app.get(&format!("/v1/sites/{site_id}/conversations")).await;
    assert_eq!(status, 200);
    let mut all = summary(&list);
    all.sort_by_key(|c| c["visitor"].as_str().unwrap().to_owned());
    assert_eq!(
        all,
        vec![
            json!({"visitor": "sess_ai", "mode": "ai", "waiting": false, "count": 2,
                "lastRole": "assistant", "lastModel": "faq",
                "lastContent": "Yes, within 14 days of purchase.", "rating": null, "email": null}),
            json!({"visitor": "sess_op", "mode": "operator", "waiting": false, "count": 3,
                "lastRole": "assistant", "lastModel": "operator",
                "lastContent": "PayPal works too.", "rating": null, "email": null}),
            json!({"visitor": "sess_quiet", "mode": "ai", "waiting": false, "count": 0,
                "lastRole": null, "lastModel": null, "lastContent": null,
                "rating": 4, "email": "quiet@example.com"}),
            json!({"visitor": "sess_wait", "mode": "operator", "waiting": true, "count": 3,
                "lastRole": "user", "lastModel": "widget",
                "lastContent": "Hello? Anyone?", "rating": null, "email": null}),
        ],
        "{list}"
    );
    let visitors = |list: &Value| -> Vec<String> {
        let mut v: Vec<String> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["sessionId"].as_str().unwrap().to_owned())
            .collect();
        v.sort();
        v
    };
    for (query, expected) in [
        ("waiting=true", vec!["sess_wait"]),
        ("waiting=false", vec!["sess_ai", "sess_op", "sess_quiet"]),
        ("mode=operator", vec!["sess_op", "sess_wait"]),
        ("mode=ai&rated=true", vec!["sess_quiet"]),
        ("hasContact=true", vec!["sess_quiet"]),
        ("mode=operator&waiting=false", vec!["sess_op"]),
    ] {
        let (status, list) = app
            .get(&format!("/v1/sites/{site_id}/conversations?{query}"))
            .await;
        assert_eq!(status, 200, "{query}: {list}");
        assert_eq!(visitors(&list), expected, "{query}");
    }
}

async fn conversation_list_filters_before_its_limit(app: TestApp) {
    let (site_id, key) = site(&app).await;
    // The oldest conversation waits for an operator...
    send(&app, &key, "sess_old", "Do you offer refunds?", "a").await;
    let old = conversation_of(&app, &site_id, "sess_old").await;
    app.post(
        &format!("/v1/sites/{site_id}/conversations/{old}/takeover"),
        json!({}),
    )
    .await;
    send(&app, &key, "sess_old", "Is anyone there?", "b").await;
    // ...behind 500 newer ones (rated, no messages; made through the engine:
    // the widget lets a visitor address open ten conversations a minute).
    let site = app.engine.site_for_key(&key).await.unwrap();
    for i in 0..500 {
        app.engine
            .widget_rate(&site, &format!("sess_new_{i}"), 4)
            .await
            .unwrap();
    }
    let (status, list) = app
        .get(&format!("/v1/sites/{site_id}/conversations?waiting=true"))
        .await;
    assert_eq!(status, 200);
    let visitors: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["sessionId"].as_str().unwrap())
        .collect();
    assert_eq!(
        visitors,
        vec!["sess_old"],
        "the filter applies before the limit"
    );
    let (_, all) = app.get(&format!("/v1/sites/{site_id}/conversations")).await;
    assert_eq!(all["items"].as_array().unwrap().len(), 500, "at most 500");
}

/// A first attempt refused before anything was answered (the quota is
/// spent) gives its message id back: the retry is answered at once instead
/// of waiting for a reply that never comes.
async fn a_refused_attempt_does_not_hold_its_message_id(app: TestApp) {
    let (_, key) = crate::widget::site(&app).await;
    let (status, _) = send(&app, &key, "sess_quota", "Do you offer refunds?", "q0").await;
    assert_eq!(status, 200, "a reply spends tokens");
    let (status, _) = app.put("/v1/limits", json!({"monthlyTokens": 1})).await;
    assert_eq!(status, 200);
    let (status, body) = send(&app, &key, "sess_quota", "And shipping?", "q1").await;
    assert_eq!(status, 429, "{body:?}");
    assert_eq!(body[0]["error"], "quota_exceeded");
    let (status, _) = app.put("/v1/limits", json!({})).await;
    assert_eq!(status, 200);
    let started = std::time::Instant::now();
    let (status, events) = send(&app, &key, "sess_quota", "And shipping?", "q1").await;
    assert_eq!(status, 200, "{events:?}");
    assert!(!crate::widget::chunks(&events).is_empty(), "{events:?}");
    assert!(
        events.iter().all(|e| e["meta"]["replayed"] != true),
        "{events:?}"
    );
    // Not the 20 s replay wait (a generous bound: this is a correctness
    // check, not a timing target).
    assert!(started.elapsed() < Duration::from_secs(15));
}
