//! End-to-end tests of the `/v1` API over real HTTP against real databases:
//! every test runs on SQLite, and on PostgreSQL when
//! `TIDECHAT_TEST_POSTGRES_URL` is set (each test in its own database).
#![allow(clippy::unwrap_used)]

/// Generates `sqlite::name` and `postgres::name` tests that run
/// `async fn name(app: TestApp)` (in the invoking module) on each backend.
macro_rules! backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::TestApp::sqlite().await).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    match super::TestApp::postgres().await {
                        Some(app) => super::$name(app).await,
                        None => eprintln!("skipped: TIDECHAT_TEST_POSTGRES_URL is not set"),
                    }
                }
            )*
        }
    };
}

mod chats;
mod hardening;
mod knowledge;
mod limits;
mod llm;
mod moderation;
mod support;
mod surfaces;
mod widget;
mod widget_state;

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{json, Value};
use support::{sse_data, sse_events, TestApp};

backends!(
    conversation_round_trip,
    out_of_scope_answers_with_fallback,
    streaming_sends_deltas_then_persisted_messages,
    validation_errors_follow_the_table,
    session_state_errors,
    authentication_errors,
    tenants_never_see_each_other,
    api_keys_list_and_revoke,
    session_tokens_are_limited_to_their_session,
    pagination_has_no_gaps_or_duplicates,
    concurrent_messages_both_land_in_order,
    client_disconnect_stores_partial_reply,
    shutdown_lets_running_replies_finish,
    faq_changes_are_answered_at_once,
    faq_changes_reach_every_process,
    faq_import_json_and_csv,
    personas_crud,
    history_is_sent_to_the_model,
    operational_endpoints,
    faq_chat_streams_like_the_reference,
    faq_chat_records_only_with_a_session_id,
    faq_chat_out_of_scope_and_errors,
    faq_chat_organization_filter,
    faq_chat_survives_a_storage_failure,
    faq_chat_grounds_an_llm_in_the_faq,
);

const REFERENCE_MESSAGE_FIELDS: &[&str] = &[
    "messageId",
    "sessionId",
    "role",
    "content",
    "inputTokens",
    "outputTokens",
    "model",
    "latencyMs",
    "costUsdMicros",
    "moderationVerdict",
    "driftScore",
    "createdAt",
];
const REFERENCE_SESSION_FIELDS: &[&str] = &[
    "sessionId",
    "orgId",
    "workspaceId",
    "personaId",
    "userId",
    "title",
    "status",
    "messageCount",
    "inputTokens",
    "outputTokens",
    "costUsdMicros",
    "startedAt",
    "lastActiveAt",
    "endedAt",
];

fn assert_fields(value: &Value, fields: &[&str]) {
    for f in fields {
        assert!(value.get(f).is_some(), "missing `{f}` in {value}");
    }
}

async fn conversation_round_trip(app: TestApp) {
    let (status, session) = app
        .post(
            "/v1/chat/sessions",
            json!({"userId": "u-1", "title": "Hi 👋", "metadata": {"plan": "pro"}}),
        )
        .await;
    assert_eq!(status, 201, "{session}");
    assert_fields(&session, REFERENCE_SESSION_FIELDS);
    assert!(session["sessionId"].as_str().unwrap().starts_with("chs_"));
    assert_eq!(session["status"], "active");
    assert_eq!(session["personaId"], app.org.persona_id.as_str());
    assert_eq!(session["metadata"]["plan"], "pro");
    assert!(session["endedAt"].is_null());
    let id = session["sessionId"].as_str().unwrap();

    let (status, body) = app
        .post(
            &format!("/v1/chat/sessions/{id}/messages"),
            json!({"userText": "How can I reset my password?"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (user, assistant, session) = (
        &body["userMessage"],
        &body["assistantMessage"],
        &body["session"],
    );
    assert_fields(user, REFERENCE_MESSAGE_FIELDS);
    assert_fields(assistant, REFERENCE_MESSAGE_FIELDS);
    assert_fields(session, REFERENCE_SESSION_FIELDS);
    assert_eq!(user["role"], "user");
    assert_eq!(user["content"], "How can I reset my password?");
    assert_eq!(assistant["role"], "assistant");
    assert!(
        assistant["content"]
            .as_str()
            .unwrap()
            .contains("reset link"),
        "{assistant}"
    );
    assert_eq!(assistant["model"], "faq");
    assert_eq!(assistant["moderationVerdict"], "allowed");
    let drift = assistant["driftScore"].as_f64().unwrap();
    assert!(
        (0.0..0.5).contains(&drift),
        "an FAQ answer is on topic: {drift}"
    );
    assert_eq!(assistant["costUsdMicros"], 0);
    assert_eq!(assistant["status"], "complete");
    assert!(assistant["outputTokens"].as_i64().unwrap() > 0);
    assert!(assistant["inputTokens"].as_i64().unwrap() > 0);
    assert!(user["inputTokens"].as_i64().unwrap() > 0);
    assert!(user["messageId"].as_str().unwrap().starts_with("msg_"));
    assert!(user["seq"].as_i64().unwrap() < assistant["seq"].as_i64().unwrap());
    assert_eq!(session["messageCount"], 2);
    assert_eq!(session["inputTokens"], assistant["inputTokens"]);
    assert_eq!(session["outputTokens"], assistant["outputTokens"]);
    chrono::DateTime::parse_from_rfc3339(assistant["createdAt"].as_str().unwrap()).unwrap();

    let (status, history) = app.get(&format!("/v1/chat/sessions/{id}/messages")).await;
    assert_eq!(status, 200);
    let items = history["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["messageId"], user["messageId"]);
    assert_eq!(items[1]["messageId"], assistant["messageId"]);
    assert_eq!(history["hasMore"], false);

    let (status, fetched) = app.get(&format!("/v1/chat/sessions/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(fetched["messageCount"], 2);

    // Non-English text and emoji.
    let (status, body) = app
        .post(
            &format!("/v1/chat/sessions/{id}/messages"),
            json!({"userText": "비밀번호를 재설정하려면 어떻게 하나요? 🔑"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["assistantMessage"]["content"]
            .as_str()
            .unwrap()
            .contains("비밀번호"),
        "{body}"
    );
    assert_eq!(body["session"]["messageCount"], 4);
}

async fn out_of_scope_answers_with_fallback(app: TestApp) {
    let id = app.session().await;
    let (status, body) = app
        .post(
            &format!("/v1/chat/sessions/{id}/messages"),
            json!({"userText": "What is the weather on Mars tomorrow?"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body["assistantMessage"]["content"],
        tidechat_domain::PersonaDraft::DEFAULT_FALLBACK
    );
}

async fn streaming_sends_deltas_then_persisted_messages(app: TestApp) {
    let id = app.session().await;
    let res = app
        .request(
            reqwest::Method::POST,
            &format!("/v1/chat/sessions/{id}/messages"),
        )
        .json(&json!({"userText": "Which payment methods do you accept?", "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let events = sse_events(&res.text().await.unwrap());
    let deltas: Vec<&(String, Value)> = events.iter().filter(|(e, _)| e == "delta").collect();
    // Text is released a sentence (moderation window) at a time.
    assert!(!deltas.is_empty(), "expected deltas: {events:?}");
    let text: String = deltas
        .iter()
        .map(|(_, d)| d["text"].as_str().unwrap())
        .collect();
    let (last, done) = events.last().unwrap();
    assert_eq!(last, "done");
    assert_eq!(done["assistantMessage"]["content"].as_str().unwrap(), text);
    assert!(text.contains("PayPal"));
    assert_fields(&done["userMessage"], REFERENCE_MESSAGE_FIELDS);
    assert_fields(&done["session"], REFERENCE_SESSION_FIELDS);
    // The ids in the final event are the stored ones.
    let (_, history) = app.get(&format!("/v1/chat/sessions/{id}/messages")).await;
    assert_eq!(
        history["items"][1]["messageId"],
        done["assistantMessage"]["messageId"]
    );
    assert_eq!(
        history["items"][0]["messageId"],
        done["userMessage"]["messageId"]
    );

    // Errors before generation are plain JSON even when streaming.
    let (status, body) = app
        .post(
            &format!("/v1/chat/sessions/{id}/messages"),
            json!({"userText": " ", "stream": true}),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(body["error"]["code"], "validation_error");
}

async fn validation_errors_follow_the_table(app: TestApp) {
    let id = app.session().await;
    let path = format!("/v1/chat/sessions/{id}/messages");
    let long = "a".repeat(tidechat_domain::validate::USER_TEXT_MAX_CHARS + 1);
    let cases: Vec<(Value, &str)> = vec![
        (json!({"userText": ""}), "validation_error"),
        (json!({"userText": "   \n\t"}), "validation_error"),
        (json!({"userText": long}), "validation_error"),
        (json!({}), "validation_error"),
        (json!({"userText": 5}), "validation_error"),
        (
            json!({"userText": "hi", "temperature": 2.5}),
            "validation_error",
        ),
        (
            json!({"userText": "hi", "temperature": -0.1}),
            "validation_error",
        ),
        (
            json!({"userText": "hi", "temperature": "hot"}),
            "validation_error",
        ),
        (
            json!({"userText": "hi", "maxOutputTokens": 0}),
            "validation_error",
        ),
        (
            json!({"userText": "hi", "maxOutputTokens": -5}),
            "validation_error",
        ),
        (
            json!({"userText": "hi", "historyLimit": 0}),
            "validation_error",
        ),
        (
            json!({"userText": "hi", "historyLimit": 1.5}),
            "validation_error",
        ),
        (
            json!({"userText": "hi", "stream": "yes"}),
            "validation_error",
        ),
        (
            json!({"userText": "hi", "toolNames": "search"}),
            "validation_error",
        ),
        (
            json!({"userText": "hi", "modelId": "gpt-nope"}),
            "unknown_model",
        ),
        (
            json!({"userText": "hi", "toolNames": ["web_search"]}),
            "unknown_tool",
        ),
        (
            json!({"userText": "hi", "extraGuardrails": [""]}),
            "validation_error",
        ),
    ];
    for (body, code) in cases {
        let (status, err) = app.post(&path, body.clone()).await;
        assert_eq!(status, 422, "{body} -> {err}");
        assert_eq!(err["error"]["code"], code, "{body} -> {err}");
        assert!(!err["error"]["message"].as_str().unwrap().is_empty());
    }
    for raw in ["{\"userText\": ", "not json", "[1,2", ""] {
        let res = app
            .request(reqwest::Method::POST, &path)
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 422, "{raw}");
        let err: Value = res.json().await.unwrap();
        assert_eq!(err["error"]["code"], "invalid_json", "{raw}");
    }
    // Body size cap: 413 in the same shape, never a dropped connection.
    let huge = json!({"userText": "x".repeat(3 * 1024 * 1024)});
    let (status, err) = app.post(&path, huge).await;
    assert_eq!(status, 413);
    assert_eq!(err["error"]["code"], "payload_too_large");
    // Bad query parameters.
    for q in [
        "limit=0",
        "limit=201",
        "limit=abc",
        "order=sideways",
        "cursor=zzz",
    ] {
        let (status, err) = app.get(&format!("{path}?{q}")).await;
        assert_eq!(status, 422, "{q}: {err}");
    }
    let (status, err) = app.get("/v1/chat/sessions?status=open").await;
    assert_eq!(status, 422, "{err}");
    // Session creation checks too.
    let (status, err) = app
        .post(
            "/v1/chat/sessions",
            json!({"personaId": "per_01jd3x8y6q1v0w2r7k9m4n5p6t"}),
        )
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str().unwrap()),
        (422, "unknown_persona")
    );
    let (status, _) = app
        .post("/v1/chat/sessions", json!({"metadata": [1, 2]}))
        .await;
    assert_eq!(status, 422);
    let (status, _) = app
        .post("/v1/chat/sessions", json!({"title": "t".repeat(500)}))
        .await;
    assert_eq!(status, 422);
    // Nothing was stored by the rejected requests.
    let (_, s) = app.get(&format!("/v1/chat/sessions/{id}")).await;
    assert_eq!(s["messageCount"], 0);
}

async fn session_state_errors(app: TestApp) {
    let (status, err) = app
        .post(
            "/v1/chat/sessions/chs_01jd3x8y6q1v0w2r7k9m4n5p6t/messages",
            json!({"userText": "hi"}),
        )
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str().unwrap()),
        (404, "not_found")
    );
    let (status, _) = app
        .post(
            "/v1/chat/sessions/not-an-id/messages",
            json!({"userText": "hi"}),
        )
        .await;
    assert_eq!(status, 404);

    let id = app.session().await;
    let (status, ended) = app
        .post(&format!("/v1/chat/sessions/{id}/end"), json!({}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(ended["status"], "ended");
    assert!(ended["endedAt"].is_string());
    let (status, err) = app
        .post(
            &format!("/v1/chat/sessions/{id}/messages"),
            json!({"userText": "hi"}),
        )
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str().unwrap()),
        (409, "session_not_active")
    );
    let (status, archived) = app
        .post(&format!("/v1/chat/sessions/{id}/archive"), json!({}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(archived["status"], "archived");
    assert_eq!(
        archived["endedAt"], ended["endedAt"],
        "archiving keeps the end time"
    );
    let (status, _) = app
        .post(&format!("/v1/chat/sessions/{id}/end"), json!({}))
        .await;
    assert_eq!(
        status, 409,
        "an archived session cannot be un-archived by ending it"
    );
    let (status, err) = app
        .post(
            &format!("/v1/chat/sessions/{id}/messages"),
            json!({"userText": "hi", "stream": true}),
        )
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str().unwrap()),
        (409, "session_not_active")
    );
}

async fn authentication_errors(app: TestApp) {
    let id = app.session().await;
    let path = format!("/v1/chat/sessions/{id}/messages");
    let bad = [
        None,
        Some("Bearer".to_owned()),
        Some("Bearer tc_nope".to_owned()),
        Some("Basic dXNlcjpwYXNz".to_owned()),
        Some(format!("Bearer {}x", app.key)),
        Some("Bearer eyJhbGciOiJIUzI1NiJ9.e30.AAAA".to_owned()),
    ];
    for header in bad {
        let mut req = app
            .client
            .post(app.url(&path))
            .json(&json!({"userText": "hi"}));
        if let Some(h) = &header {
            req = req.header("authorization", h);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 401, "{header:?}");
        let err: Value = res.json().await.unwrap();
        assert_eq!(err["error"]["code"], "unauthenticated");
    }
}

async fn tenants_never_see_each_other(app: TestApp) {
    let other = app.other_org().await;
    let id = app.session().await;
    app.post(
        &format!("/v1/chat/sessions/{id}/messages"),
        json!({"userText": "How do I reset my password?"}),
    )
    .await;
    let (_, persona) = app.post("/v1/personas", json!({"name": "Mine"})).await;
    let persona_id = persona["personaId"].as_str().unwrap().to_owned();
    let (_, faq) = app
        .post(
            "/v1/faqs",
            json!({"question": "Secret question?", "answer": "Secret answer."}),
        )
        .await;
    let faq_id = faq["faqId"].as_str().unwrap().to_owned();
    let (_, key) = app.post("/v1/api-keys", json!({"name": "second"})).await;
    let key_id = key["keyId"].as_str().unwrap().to_owned();

    let o = |m: reqwest::Method, p: String| {
        app.client
            .request(m, app.url(&p))
            .bearer_auth(&other.api_key)
    };
    use reqwest::Method as M;
    let attempts = vec![
        o(M::GET, format!("/v1/chat/sessions/{id}")),
        o(M::GET, format!("/v1/chat/sessions/{id}/messages")),
        o(M::POST, format!("/v1/chat/sessions/{id}/messages")).json(&json!({"userText": "hi"})),
        o(M::POST, format!("/v1/chat/sessions/{id}/messages"))
            .json(&json!({"userText": "hi", "stream": true})),
        o(M::POST, format!("/v1/chat/sessions/{id}/end")),
        o(M::POST, format!("/v1/chat/sessions/{id}/archive")),
        o(M::POST, format!("/v1/chat/sessions/{id}/token")),
        o(M::GET, format!("/v1/personas/{persona_id}")),
        o(M::PUT, format!("/v1/personas/{persona_id}")).json(&json!({"name": "stolen"})),
        o(M::DELETE, format!("/v1/personas/{persona_id}")),
        o(M::GET, format!("/v1/faqs/{faq_id}")),
        o(M::PUT, format!("/v1/faqs/{faq_id}")).json(&json!({"question": "q", "answer": "a"})),
        o(M::DELETE, format!("/v1/faqs/{faq_id}")),
        o(M::DELETE, format!("/v1/api-keys/{key_id}")),
    ];
    for req in attempts {
        let req = req.build().unwrap();
        let what = format!("{} {}", req.method(), req.url().path());
        let res = app.client.execute(req).await.unwrap();
        assert_eq!(res.status(), 404, "{what}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "not_found", "{what}");
    }
    // Persona of another org cannot be used to create a session.
    let res = o(M::POST, "/v1/chat/sessions".into())
        .json(&json!({"personaId": persona_id}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    // Listings only show the caller's own records.
    for path in [
        "/v1/chat/sessions",
        "/v1/personas",
        "/v1/faqs",
        "/v1/api-keys",
    ] {
        let body: Value = o(M::GET, path.into())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let text = body.to_string();
        assert!(
            !text.contains(&id)
                && !text.contains(&persona_id)
                && !text.contains(&faq_id)
                && !text.contains(&key_id),
            "{path}: {text}"
        );
    }
    // The other org's FAQ model does not answer from our FAQ.
    let res = o(M::POST, "/v1/chat/sessions".into())
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let s: Value = res.json().await.unwrap();
    let sid = s["sessionId"].as_str().unwrap();
    let r: Value = o(M::POST, format!("/v1/chat/sessions/{sid}/messages"))
        .json(&json!({"userText": "Secret question?"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_ne!(r["assistantMessage"]["content"], "Secret answer.");
    // And ours is untouched.
    let (status, mine) = app.get(&format!("/v1/faqs/{faq_id}")).await;
    assert_eq!(
        (status, mine["answer"].as_str().unwrap()),
        (200, "Secret answer.")
    );
}

async fn api_keys_list_and_revoke(app: TestApp) {
    let (status, created) = app.post("/v1/api-keys", json!({"name": "ci"})).await;
    assert_eq!(status, 201);
    let secret = created["key"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("tc_") && secret.len() >= 46);
    assert!(secret.starts_with(created["prefix"].as_str().unwrap()));

    let (status, list) = app.get("/v1/api-keys").await;
    assert_eq!(status, 200);
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    assert!(
        !list.to_string().contains(&secret),
        "listings never show secrets"
    );
    assert!(!list.to_string().contains(&app.key));

    let res = app
        .client
        .get(app.url("/v1/chat/sessions"))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let (status, revoked) = app
        .delete(&format!(
            "/v1/api-keys/{}",
            created["keyId"].as_str().unwrap()
        ))
        .await;
    assert_eq!(status, 200);
    assert!(revoked["revokedAt"].is_string());
    let res = app
        .client
        .get(app.url("/v1/chat/sessions"))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "a revoked key is refused at once");
    let (status, again) = app
        .delete(&format!(
            "/v1/api-keys/{}",
            created["keyId"].as_str().unwrap()
        ))
        .await;
    assert_eq!((status, &again["revokedAt"]), (200, &revoked["revokedAt"]));
}

async fn session_tokens_are_limited_to_their_session(app: TestApp) {
    let id = app.session().await;
    let other_session = app.session().await;
    let (status, token) = app
        .post(
            &format!("/v1/chat/sessions/{id}/token"),
            json!({"ttlSeconds": 600}),
        )
        .await;
    assert_eq!(status, 201, "{token}");
    let jwt = token["token"].as_str().unwrap().to_owned();
    let expires =
        chrono::DateTime::parse_from_rfc3339(token["expiresAt"].as_str().unwrap()).unwrap();
    let ttl = expires
        .signed_duration_since(chrono::Utc::now())
        .num_seconds();
    assert!((590..=600).contains(&ttl), "{ttl}");

    let t = |m: reqwest::Method, p: String| app.client.request(m, app.url(&p)).bearer_auth(&jwt);
    use reqwest::Method as M;
    let res = t(M::POST, format!("/v1/chat/sessions/{id}/messages"))
        .json(&json!({"userText": "How do I reset my password?"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        t(M::GET, format!("/v1/chat/sessions/{id}/messages"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        t(M::GET, format!("/v1/chat/sessions/{id}"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    for (m, p) in [
        (M::GET, format!("/v1/chat/sessions/{other_session}")),
        (
            M::POST,
            format!("/v1/chat/sessions/{other_session}/messages"),
        ),
        (M::GET, "/v1/chat/sessions".to_owned()),
        (M::POST, "/v1/chat/sessions".to_owned()),
        (M::POST, format!("/v1/chat/sessions/{id}/end")),
        (M::POST, format!("/v1/chat/sessions/{id}/token")),
        (M::GET, "/v1/personas".to_owned()),
        (M::GET, "/v1/faqs".to_owned()),
        (M::GET, "/v1/api-keys".to_owned()),
    ] {
        let res = t(m.clone(), p.clone())
            .json(&json!({"userText": "hi"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403, "{m} {p}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "forbidden");
    }
    // Tampered, expired and unsigned tokens are refused.
    let mut parts: Vec<String> = jwt.split('.').map(str::to_owned).collect();
    let forged_sig = format!("{}.{}.{}", parts[0], parts[1], "A".repeat(parts[2].len()));
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut claims: Value = serde_json::from_slice(&b64.decode(&parts[1]).unwrap()).unwrap();
    claims["sub"] = json!(other_session);
    let swapped = format!(
        "{}.{}.{}",
        parts[0],
        b64.encode(claims.to_string()),
        parts[2]
    );
    parts[0] = b64.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let unsigned = format!("{}.{}.", parts[0], parts[1]);
    let expired = {
        let key = jsonwebtoken::EncodingKey::from_secret(b"whatever");
        jsonwebtoken::encode(&jsonwebtoken::Header::default(), &json!({"sub": id, "exp": 1_000_000, "org": app.org.org_id, "wsp": "x", "typ": "session"}), &key).unwrap()
    };
    for bad in [forged_sig, swapped, unsigned, expired] {
        let res = app
            .client
            .get(app.url(&format!("/v1/chat/sessions/{id}")))
            .bearer_auth(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "{bad}");
    }
    let (status, _) = app
        .post(
            &format!("/v1/chat/sessions/{id}/token"),
            json!({"ttlSeconds": 86_401}),
        )
        .await;
    assert_eq!(status, 422);
}

async fn pagination_has_no_gaps_or_duplicates(app: TestApp) {
    let mut ids = Vec::new();
    for i in 0..5 {
        let (_, s) = app
            .post(
                "/v1/chat/sessions",
                json!({"userId": if i % 2 == 0 { "even" } else { "odd" }}),
            )
            .await;
        ids.push(s["sessionId"].as_str().unwrap().to_owned());
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/chat/sessions?limit=2&cursor={c}"),
            None => "/v1/chat/sessions?limit=2".to_owned(),
        };
        let (status, page) = app.get(&path).await;
        assert_eq!(status, 200);
        for s in page["items"].as_array().unwrap() {
            seen.push(s["sessionId"].as_str().unwrap().to_owned());
        }
        if page["hasMore"] == false {
            assert!(page["nextCursor"].is_null());
            break;
        }
        cursor = Some(page["nextCursor"].as_str().unwrap().to_owned());
    }
    ids.reverse();
    assert_eq!(seen, ids, "newest first, each once");
    let (_, evens) = app.get("/v1/chat/sessions?userId=even").await;
    assert_eq!(evens["items"].as_array().unwrap().len(), 3);
    app.post(&format!("/v1/chat/sessions/{}/end", ids[0]), json!({}))
        .await;
    let (_, ended) = app.get("/v1/chat/sessions?status=ended").await;
    assert_eq!(ended["items"].as_array().unwrap().len(), 1);

    // Messages both ways.
    let id = &ids[0];
    let id2 = &ids[1];
    for q in [
        "How do I reset my password?",
        "Do you offer refunds?",
        "Where are my invoices?",
    ] {
        app.post(
            &format!("/v1/chat/sessions/{id2}/messages"),
            json!({"userText": q}),
        )
        .await;
    }
    let _ = id;
    let mut asc = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = format!(
            "/v1/chat/sessions/{id2}/messages?limit=4{}",
            cursor
                .as_ref()
                .map(|c| format!("&cursor={c}"))
                .unwrap_or_default()
        );
        let (_, page) = app.get(&path).await;
        asc.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["seq"].as_i64().unwrap()),
        );
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(asc, (0..6).collect::<Vec<_>>());
    let (_, desc) = app
        .get(&format!(
            "/v1/chat/sessions/{id2}/messages?order=desc&limit=2"
        ))
        .await;
    let seqs: Vec<i64> = desc["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, vec![5, 4]);
    let c = desc["nextCursor"].as_str().unwrap();
    let (_, desc2) = app
        .get(&format!(
            "/v1/chat/sessions/{id2}/messages?order=desc&limit=2&cursor={c}"
        ))
        .await;
    let seqs: Vec<i64> = desc2["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, vec![3, 2]);
}

async fn concurrent_messages_both_land_in_order(app: TestApp) {
    let id = app.session().await;
    let path = format!("/v1/chat/sessions/{id}/messages");
    let a = app.post(&path, json!({"userText": "How do I reset my password?"}));
    let b = app.post(&path, json!({"userText": "Do you offer refunds?"}));
    let ((sa, ba), (sb, bb)) = tokio::join!(a, b);
    assert_eq!((sa, sb), (200, 200), "{ba} {bb}");
    let (_, history) = app.get(&path).await;
    let items = history["items"].as_array().unwrap();
    assert_eq!(items.len(), 4);
    let seqs: Vec<i64> = items.iter().map(|m| m["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, vec![0, 1, 2, 3]);
    // Each user message comes before its own reply.
    for body in [&ba, &bb] {
        let u = body["userMessage"]["seq"].as_i64().unwrap();
        let r = body["assistantMessage"]["seq"].as_i64().unwrap();
        assert!(u < r);
    }
    let (_, session) = app.get(&format!("/v1/chat/sessions/{id}")).await;
    assert_eq!(session["messageCount"], 4);
    let out: i64 = items
        .iter()
        .map(|m| m["outputTokens"].as_i64().unwrap())
        .sum();
    assert_eq!(session["outputTokens"].as_i64().unwrap(), out);
}

async fn client_disconnect_stores_partial_reply(app: TestApp) {
    let id = app.session().await;
    let res = app
        .request(
            reqwest::Method::POST,
            &format!("/v1/chat/sessions/{id}/messages"),
        )
        .json(&json!({"userText": "tell me a long story", "modelId": "slow", "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut body = res.bytes_stream();
    let mut received = String::new();
    while !received.contains("event: delta") {
        received.push_str(&String::from_utf8_lossy(
            &body.next().await.unwrap().unwrap(),
        ));
    }
    drop(body);
    let assistant = app.wait_for_reply(&id).await;
    assert_eq!(assistant["status"], "partial");
    let content = assistant["content"].as_str().unwrap();
    assert!(content.starts_with("word0. "), "{content}");
    assert!(
        !content.contains(&format!("word{}. ", support::SLOW_WORDS - 1)),
        "generation stopped early: {content}"
    );
    assert!(
        assistant["outputTokens"].as_i64().unwrap() > 0,
        "partial replies are metered"
    );
    assert!(
        app.slow_model_dropped_within(Duration::from_secs(5)).await,
        "upstream generation was cancelled"
    );
}

async fn shutdown_lets_running_replies_finish(app: TestApp) {
    let id = app.session().await;
    let path = format!("/v1/chat/sessions/{id}/messages");
    let req = app
        .request(reqwest::Method::POST, &path)
        .json(&json!({"userText": "slow please", "modelId": "slow-short"}))
        .send();
    let pending = tokio::spawn(req);
    app.wait_until_running().await;
    let app = app.shut_down(Duration::from_secs(20)).await;
    let res = pending.await.unwrap().unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["assistantMessage"]["status"], "complete");
    let stored = app.stored_messages(&id).await;
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[1].status, tidechat_domain::MessageStatus::Complete);
}

async fn faq_changes_are_answered_at_once(app: TestApp) {
    let id = app.session().await;
    let path = format!("/v1/chat/sessions/{id}/messages");
    let ask = || {
        app.post(
            &path,
            json!({"userText": "Can I bring my dog to the office?"}),
        )
    };
    let (_, before) = ask().await;
    assert_eq!(
        before["assistantMessage"]["content"],
        tidechat_domain::PersonaDraft::DEFAULT_FALLBACK
    );
    let (status, faq) = app.post("/v1/faqs", json!({"question": "Can I bring my dog to the office?", "answer": "Dogs are welcome on Fridays.", "tags": ["office"]})).await;
    assert_eq!(status, 201, "{faq}");
    let (_, after) = ask().await;
    assert_eq!(
        after["assistantMessage"]["content"],
        "Dogs are welcome on Fridays."
    );
    let faq_id = faq["faqId"].as_str().unwrap();
    let (status, _) = app.put(&format!("/v1/faqs/{faq_id}"), json!({"question": "Can I bring my dog to the office?", "answer": "Dogs are welcome every day."})).await;
    assert_eq!(status, 200);
    let (_, updated) = ask().await;
    assert_eq!(
        updated["assistantMessage"]["content"],
        "Dogs are welcome every day."
    );
    let (status, _) = app.delete(&format!("/v1/faqs/{faq_id}")).await;
    assert_eq!(status, 204);
    let (_, gone) = ask().await;
    assert_eq!(
        gone["assistantMessage"]["content"],
        tidechat_domain::PersonaDraft::DEFAULT_FALLBACK
    );
    let (status, _) = app.get(&format!("/v1/faqs/{faq_id}")).await;
    assert_eq!(status, 404);
}

async fn faq_changes_reach_every_process(app: TestApp) {
    let other = app.second_process().await;
    let id = app.session().await;
    let ask = || async {
        let res = app
            .client
            .post(format!("{other}/v1/chat/sessions/{id}/messages"))
            .bearer_auth(&app.key)
            .json(&json!({"userText": "What are your opening hours?"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.unwrap();
        body["assistantMessage"]["content"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    // The second process has built and cached its index before the change.
    assert_eq!(ask().await, tidechat_domain::PersonaDraft::DEFAULT_FALLBACK);
    let (status, _) = app.post("/v1/faqs", json!({"question": "What are your opening hours?", "answer": "9 to 5, Monday to Friday."})).await;
    assert_eq!(status, 201);
    assert_eq!(ask().await, "9 to 5, Monday to Friday.");
}

async fn faq_import_json_and_csv(app: TestApp) {
    let (status, body) = app
        .post("/v1/faqs/import", json!([{"question": "Is there a mobile app?", "answer": "Yes, for iOS and Android.", "organizationId": "eu"}, {"question": "Gibt es eine App?", "answer": "Ja.", "tags": ["de"]}]))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["imported"], 2);
    assert_eq!(body["items"][0]["organizationId"], "eu");
    let csv = "question,answer,tags\n\"Do you ship, worldwide?\",\"Yes, \"\"everywhere\"\".\",shipping;intl\n";
    let res = app
        .request(reqwest::Method::POST, "/v1/faqs/import")
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["items"][0]["answer"], "Yes, \"everywhere\".");
    assert_eq!(body["items"][0]["tags"], json!(["shipping", "intl"]));
    // All or nothing: one bad entry imports none.
    let (_, before) = app.get("/v1/faqs?limit=200").await;
    let (status, err) = app
        .post(
            "/v1/faqs/import",
            json!([{"question": "ok?", "answer": "ok"}, {"question": "", "answer": "x"}]),
        )
        .await;
    assert_eq!(status, 422);
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("entry 2"),
        "{err}"
    );
    let (_, after) = app.get("/v1/faqs?limit=200").await;
    assert_eq!(
        before["items"].as_array().unwrap().len(),
        after["items"].as_array().unwrap().len()
    );
    let res = app
        .request(reqwest::Method::POST, "/v1/faqs/import")
        .header("content-type", "text/csv")
        .body("foo,bar\n1,2\n")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
}

async fn personas_crud(app: TestApp) {
    let (status, p) = app.post("/v1/personas", json!({"name": "Billing bot", "systemPrompt": "Only billing.", "guardrails": ["Never promise refunds."], "fallbackReply": "Ask billing@example.com."})).await;
    assert_eq!(status, 201, "{p}");
    assert_eq!(p["modelId"], "faq");
    assert_eq!(p["temperature"], 0.7);
    let pid = p["personaId"].as_str().unwrap();
    let (status, s) = app
        .post("/v1/chat/sessions", json!({"personaId": pid}))
        .await;
    assert_eq!(status, 201);
    assert_eq!(s["personaId"], pid);
    let sid = s["sessionId"].as_str().unwrap();
    let (_, reply) = app
        .post(
            &format!("/v1/chat/sessions/{sid}/messages"),
            json!({"userText": "Tell me a joke about penguins"}),
        )
        .await;
    assert_eq!(
        reply["assistantMessage"]["content"],
        "Ask billing@example.com."
    );
    let (status, updated) = app
        .put(
            &format!("/v1/personas/{pid}"),
            json!({"name": "Billing bot 2", "temperature": 0.2}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(updated["name"], "Billing bot 2");
    let (status, err) = app
        .put(
            &format!("/v1/personas/{pid}"),
            json!({"name": "x", "modelId": "nope"}),
        )
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str().unwrap()),
        (422, "unknown_model")
    );
    let (status, _) = app
        .post("/v1/personas", json!({"name": "x", "temperature": 9}))
        .await;
    assert_eq!(status, 422);
    let (status, err) = app.delete(&format!("/v1/personas/{pid}")).await;
    assert_eq!(
        (status, err["error"]["code"].as_str().unwrap()),
        (409, "conflict"),
        "in use by a session"
    );
    let (status, _) = app
        .delete(&format!("/v1/personas/{}", app.org.persona_id))
        .await;
    assert_eq!(status, 409, "the default persona");
    let (_, unused) = app.post("/v1/personas", json!({"name": "Unused"})).await;
    let (status, _) = app
        .delete(&format!(
            "/v1/personas/{}",
            unused["personaId"].as_str().unwrap()
        ))
        .await;
    assert_eq!(status, 204);
    let (_, list) = app.get("/v1/personas").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
}

async fn history_is_sent_to_the_model(app: TestApp) {
    let id = app.session().await;
    let path = format!("/v1/chat/sessions/{id}/messages");
    app.post(&path, json!({"userText": "first question"})).await;
    let (status, body) = app.post(&path, json!({"userText": "second", "modelId": "echo-context", "memoryDigest": "The user likes tea.", "extraGuardrails": ["Be brief."]})).await;
    assert_eq!(status, 200, "{body}");
    let seen = body["assistantMessage"]["content"].as_str().unwrap();
    assert!(
        seen.contains("system:")
            && seen.contains("The user likes tea.")
            && seen.contains("Be brief."),
        "{seen}"
    );
    assert!(seen.contains("user:first question"), "{seen}");
    assert!(seen.ends_with("user:second"), "{seen}");
    let (_, body) = app
        .post(
            &path,
            json!({"userText": "third", "modelId": "echo-context", "historyLimit": 1}),
        )
        .await;
    let lines: Vec<&str> = body["assistantMessage"]["content"]
        .as_str()
        .unwrap()
        .lines()
        .collect();
    assert_eq!(
        lines.len(),
        3,
        "system, the one previous message, the new turn: {lines:?}"
    );
    assert!(
        lines[1].starts_with("assistant:") && lines[2] == "user:third",
        "{lines:?}"
    );
}

async fn operational_endpoints(app: TestApp) {
    let res = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().contains_key("x-request-id"));
    let res = app
        .client
        .get(app.url("/readyz"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-request-id"], "abc-123");
    let res = app.client.get(app.url("/nope")).send().await.unwrap();
    assert_eq!(res.status(), 404);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    let res = app
        .client
        .delete(app.url("/v1/chat/sessions"))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed");
    let res = app.client.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("swagger"));
    let spec: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(spec["openapi"], "3.1.0");
    assert_eq!(
        spec["paths"]["/v1/chat/sessions/{id}/messages"]["post"]["operationId"],
        "sendChatMessage"
    );
}

/// The committed spec is what the server serves (regenerate with `just openapi`).
#[test]
fn committed_openapi_is_fresh() {
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../openapi/openapi.json"
    ))
    .unwrap_or_default();
    assert!(
        committed == tidechat_api::openapi::json(),
        "openapi/openapi.json is stale: run `just openapi` (cargo run -q -p tidechat -- openapi > openapi/openapi.json)"
    );
}

/// Every field of the reference response exists in the documented schema.
#[test]
fn openapi_documents_the_reference_fields() {
    let spec: Value = serde_json::from_str(&tidechat_api::openapi::json()).unwrap();
    let schemas = &spec["components"]["schemas"];
    for f in REFERENCE_MESSAGE_FIELDS {
        assert!(
            schemas["MessageDto"]["properties"].get(f).is_some(),
            "MessageDto.{f}"
        );
    }
    for f in REFERENCE_SESSION_FIELDS {
        assert!(
            schemas["SessionDto"]["properties"].get(f).is_some(),
            "SessionDto.{f}"
        );
    }
    for f in [
        "userText",
        "modelId",
        "historyLimit",
        "temperature",
        "maxOutputTokens",
        "toolNames",
        "memoryDigest",
        "extraGuardrails",
        "stream",
    ] {
        assert!(
            schemas["SendMessageRequest"]["properties"].get(f).is_some(),
            "SendMessageRequest.{f}"
        );
    }
    let responses = &spec["paths"]["/v1/chat/sessions/{id}/messages"]["post"]["responses"];
    for code in ["200", "401", "404", "409", "422", "429"] {
        assert!(responses.get(code).is_some(), "status {code}");
    }
}

async fn faq_chat(app: &TestApp, body: Value) -> (u16, Vec<Value>) {
    let res = app
        .client
        .post(app.url("/chat"))
        .header("mooni-api-key", &app.key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    if status == 200 {
        assert!(res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"));
    }
    let text = res.text().await.unwrap();
    if status != 200 {
        return (
            status,
            vec![serde_json::from_str(&text).unwrap_or(Value::String(text))],
        );
    }
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    (status, sse_data(&text))
}

fn chat_text(events: &[Value]) -> String {
    events
        .iter()
        .filter(|e| e["type"] == "text")
        .map(|e| e["content"].as_str().unwrap())
        .collect()
}

async fn faq_chat_streams_like_the_reference(app: TestApp) {
    let sid = "550e8400-e29b-41d4-a716-446655440000";
    let (status, events) = faq_chat(&app, json!({"query": "  How do I reset my password?  ", "sessionId": sid, "userId": "user@example.com"})).await;
    assert_eq!(status, 200);
    assert_eq!(
        events[0],
        json!({"type": "status", "status": "searching", "level": "loading"})
    );
    assert_eq!(events.last().unwrap(), &json!("[DONE]"));
    let n = events.len();
    assert_eq!(
        events[n - 2],
        json!({"type": "status", "status": "done", "level": "success"})
    );
    assert_eq!(events[n - 3]["type"], "faq");
    let first = &events[n - 3]["results"][0];
    assert!(first["id"].as_str().unwrap().starts_with("faq_"));
    assert_eq!(first["title"], "How do I reset my password?");
    assert_eq!(
        chat_text(&events),
        "Use the reset link on the sign-in page."
    );
    assert!(
        events[1..n - 3].iter().all(|e| e["type"] == "text"),
        "{events:?}"
    );

    // The same sessionId continues the same session; history lists it.
    faq_chat(
        &app,
        json!({"query": "Do you offer refunds?", "sessionId": sid, "userId": "user@example.com"}),
    )
    .await;
    let res = app
        .client
        .get(app.url("/history/sessions?userId=user@example.com"))
        .header("mooni-api-key", &app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let history: Value = res.json().await.unwrap();
    let items = history["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{history}");
    assert_eq!(items[0]["id"], sid);
    assert_eq!(items[0]["messageCount"], 4);
    assert_eq!(items[0]["title"], "How do I reset my password?");
    // One engine: the conversation is readable through /v1.
    let chs = items[0]["chatSessionId"].as_str().unwrap();
    let (_, messages) = app.get(&format!("/v1/chat/sessions/{chs}/messages")).await;
    let contents: Vec<&str> = messages["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents[0], "How do I reset my password?");
    assert_eq!(contents[3], "Yes, within 14 days of purchase.");

    // Other accepted headers; /config.
    for (name, value) in [
        ("authorization", format!("Bearer {}", app.key)),
        ("x-api-key", app.key.clone()),
    ] {
        let res = app
            .client
            .get(app.url("/config"))
            .header(name, value)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{name}");
        let config: Value = res.json().await.unwrap();
        assert_eq!(config, json!({"clientId": app.org.org_id, "name": "Acme"}));
    }
}

async fn faq_chat_records_only_with_a_session_id(app: TestApp) {
    let (_, before) = app.get("/v1/chat/sessions").await;
    let (status, events) = faq_chat(
        &app,
        json!({"query": "Do you offer refunds?", "userId": null}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(chat_text(&events), "Yes, within 14 days of purchase.");
    let (_, after) = app.get("/v1/chat/sessions").await;
    assert_eq!(before["items"], after["items"], "no sessionId, no record");
    // An anonymous session (no userId) is recorded without a user.
    faq_chat(
        &app,
        json!({"query": "Do you offer refunds?", "sessionId": "anon-1"}),
    )
    .await;
    let (_, after) = app.get("/v1/chat/sessions").await;
    let items = after["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert!(items[0]["userId"].is_null());
    assert_eq!(items[0]["messageCount"], 2);
}

async fn faq_chat_out_of_scope_and_errors(app: TestApp) {
    let (status, events) = faq_chat(
        &app,
        json!({"query": "What is the weather on Mars tomorrow?"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(events[0]["status"], "searching");
    let n = events.len();
    assert_eq!(
        events[n - 2],
        json!({"type": "status", "status": "out_of_scope", "level": "warning"})
    );
    assert_eq!(
        chat_text(&events),
        tidechat_domain::PersonaDraft::DEFAULT_FALLBACK
    );

    let raw = |body: &'static str| {
        app.client
            .post(app.url("/chat"))
            .header("mooni-api-key", &app.key)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    for (body, expected) in [
        ("{not json", json!({"error": "invalid_json"})),
        ("", json!({"error": "invalid_json"})),
        ("{}", json!({"error": "missing_query"})),
        (r#"{"query": "   "}"#, json!({"error": "missing_query"})),
        (r#"{"query": 42}"#, json!({"error": "missing_query"})),
    ] {
        let res = raw(body).await.unwrap();
        assert_eq!(res.status(), 400, "{body}");
        assert_eq!(res.json::<Value>().await.unwrap(), expected, "{body}");
    }
    let (status, body) = faq_chat(&app, json!({"query": "x".repeat(501)})).await;
    assert_eq!(
        (status, &body[0]),
        (400, &json!({"error": "query_too_long", "maxLength": 500}))
    );
    for key in [
        None,
        Some("tc_wrong"),
        Some(app.key.as_str()).map(|k| &k[..20]),
    ] {
        let mut req = app
            .client
            .post(app.url("/chat"))
            .json(&json!({"query": "hi"}));
        if let Some(k) = key {
            req = req.header("mooni-api-key", k);
        }
        assert_eq!(req.send().await.unwrap().status(), 401, "{key:?}");
    }
    let res = app
        .client
        .get(app.url("/history/sessions"))
        .header("mooni-api-key", &app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"error": "missing_user_id"})
    );
}

async fn faq_chat_organization_filter(app: TestApp) {
    let (status, _) = app
        .post("/v1/faqs/import", json!([
            {"question": "When does the semester start?", "answer": "School A starts on 1 September.", "organizationId": "school-a"},
            {"question": "When does the semester start?", "answer": "School B starts on 15 September.", "organizationId": "school-b"},
        ]))
        .await;
    assert_eq!(status, 201);
    for (org, answer) in [
        ("school-a", "School A starts on 1 September."),
        ("school-b", "School B starts on 15 September."),
    ] {
        let (_, events) = faq_chat(
            &app,
            json!({"query": "When does the semester start?", "organizationId": org}),
        )
        .await;
        assert_eq!(chat_text(&events), answer, "{org}");
        let n = events.len();
        let results = events[n - 3]["results"].as_array().unwrap();
        assert_eq!(
            results.len(),
            1,
            "only {org}'s entries are searched: {results:?}"
        );
    }
    // Without the filter the whole tenant's FAQ is searched.
    let (_, events) = faq_chat(&app, json!({"query": "When does the semester start?"})).await;
    let n = events.len();
    assert_eq!(events[n - 3]["results"].as_array().unwrap().len(), 2);
}

async fn faq_chat_survives_a_storage_failure(app: TestApp) {
    // Warm the FAQ index, then break message storage mid-flight.
    faq_chat(&app, json!({"query": "Do you offer refunds?"})).await;
    app.break_message_storage().await;
    let (status, events) = faq_chat(
        &app,
        json!({"query": "How do I reset my password?", "sessionId": "s-1", "userId": "u-1"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        chat_text(&events),
        "Use the reset link on the sign-in page."
    );
    let n = events.len();
    assert_eq!(
        events[n - 2],
        json!({"type": "status", "status": "done", "level": "success"})
    );
}

async fn faq_chat_grounds_an_llm_in_the_faq(app: TestApp) {
    // The tenant's persona uses a model other than the built-in one.
    let (status, _) = app
        .put(
            &format!("/v1/personas/{}", app.org.persona_id),
            json!({"name": "Support", "modelId": "echo-context"}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, events) = faq_chat(&app, json!({"query": "How can I reset my password?"})).await;
    let prompt = chat_text(&events);
    assert!(prompt.starts_with("system:"), "{prompt}");
    assert!(
        prompt.contains(
            "Q: How do I reset my password? | A: Use the reset link on the sign-in page."
        ),
        "the top FAQ entries are in the model's instructions: {prompt}"
    );
    assert!(
        prompt.ends_with("user:How can I reset my password?"),
        "{prompt}"
    );
    let n = events.len();
    assert_eq!(
        events[n - 3]["type"],
        "faq",
        "suggestions still come with an LLM"
    );
    // Out of scope: the fallback, without asking the model.
    let (_, events) = faq_chat(
        &app,
        json!({"query": "What is the weather on Mars tomorrow?"}),
    )
    .await;
    assert_eq!(
        chat_text(&events),
        tidechat_domain::PersonaDraft::DEFAULT_FALLBACK
    );
}
