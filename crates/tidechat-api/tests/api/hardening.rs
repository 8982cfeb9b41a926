//! What an attacker on the public endpoints tried (issue 22), closed: each
//! through the public API on both databases.

use serde_json::{json, Value};

use crate::support::TestApp;

backends!(
    nul_characters_are_refused_in_the_surface_shape,
    upload_links_ignore_the_host_header,
);

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

/// The upload link comes from configuration (here: the listen address),
/// never from the request's `Host` or `X-Forwarded-Host`.
async fn upload_links_ignore_the_host_header(app: TestApp) {
    let (_, key) = crate::widget::site(&app).await;
    let mut png = vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];
    png.extend_from_slice(&[0u8; 64]);
    let form = reqwest::multipart::Form::new()
        .text("site_key", key)
        .text("session_id", "v-host".to_owned())
        .part(
            "image",
            reqwest::multipart::Part::bytes(png).file_name("a.png"),
        );
    let res = app
        .client
        .post(app.url("/api/v1/chat/upload-image"))
        .header("host", "evil.example")
        .header("x-forwarded-host", "evil.example")
        .header("forwarded", "host=evil.example;proto=https")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let url = body["url"].as_str().unwrap();
    assert!(!url.contains("evil"), "{url}");
    assert!(url.starts_with(&app.base), "{url} vs {}", app.base);
    let served = app.client.get(url).send().await.unwrap();
    assert_eq!(served.status(), 200);
}
