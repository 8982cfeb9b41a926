//! What an attacker on the public endpoints tried (issue 22), closed: each
//! through the public API on both databases.

use serde_json::{json, Value};

use crate::support::TestApp;

backends!(nul_characters_are_refused_in_the_surface_shape);

/// PostgreSQL cannot store NUL in text: before this, these inputs were 500s
/// there (and accepted on SQLite).
async fn nul_characters_are_refused_in_the_surface_shape(app: TestApp) {
    let (_, key) = crate::widget::site(&app).await;
    // A site key with NUL, in the query string and in a JSON body.
    let res = app
        .client
        .get(app.url("/api/v1/chat/config?site_key=sk_%00x"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["success"], false, "{body}");
    assert_eq!(body["error"], "invalid_request", "{body}");
    let res = app
        .client
        .post(app.url("/api/v1/chat/stream"))
        .json(&json!({"site_key": "sk_\u{0}", "session_id": "v-1", "message": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request", "{body}");

    // A contact email with NUL (no credential needed).
    let res = app
        .client
        .post(app.url("/api/v1/chat/contact"))
        .json(&json!({"site_key": key, "session_id": "v-2", "email": "a\u{0}b@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request", "{body}");
    // The valid one is still stored.
    let res = app
        .client
        .post(app.url("/api/v1/chat/contact"))
        .json(&json!({"site_key": key, "session_id": "v-2", "email": "ab@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // `?userId=` on the /v1 session list.
    let (status, body) = app.get("/v1/chat/sessions?userId=u%00x").await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "validation_error");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("userId"),
        "{body}"
    );
    let (status, _) = app.get("/v1/chat/sessions?userId=ux").await;
    assert_eq!(status, 200);
}
