//! What an attacker on the public endpoints tried (issue 22), closed: each
//! through the public API on both databases.

use serde_json::{json, Value};

use crate::support::TestApp;

backends!(
    nul_characters_are_refused_in_the_surface_shape,
    upload_links_ignore_the_host_header,
    uploads_are_bounded_as_a_whole,
    ratings_cannot_mass_create_conversations,
    client_addresses_come_from_trusted_proxies_only,
    slow_bodies_are_cut_off,
    connections_per_address_are_capped_on_public_routes,
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

/// The whole upload form is bounded, not each field: many large extra
/// fields (or several images) are refused with 413 once the form passes the
/// bound, instead of being read to the end.
async fn uploads_are_bounded_as_a_whole(app: TestApp) {
    let (_, key) = crate::widget::site(&app).await;
    let mut png = vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];
    png.extend_from_slice(&[0u8; 64]);
    let send = |form: reqwest::multipart::Form| {
        app.client
            .post(app.url("/api/v1/chat/upload-image"))
            .multipart(form)
            .send()
    };
    // Four 2 MiB extra fields around a small valid image.
    let mut form = reqwest::multipart::Form::new()
        .text("site_key", key.clone())
        .text("session_id", "v-big".to_owned());
    for i in 0..4 {
        form = form.text(format!("junk{i}"), "x".repeat(2 * 1024 * 1024));
    }
    let form = form.part(
        "image",
        reqwest::multipart::Part::bytes(png.clone()).file_name("a.png"),
    );
    let res = send(form).await.unwrap();
    assert_eq!(res.status(), 413);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "file_too_large", "{body}");
    // Two 4 MiB images: each under the image limit, together over the form's.
    let mut big = png.clone();
    big.resize(4 * 1024 * 1024, 0);
    let form = reqwest::multipart::Form::new()
        .text("site_key", key.clone())
        .text("session_id", "v-big".to_owned())
        .part(
            "image",
            reqwest::multipart::Part::bytes(big.clone()).file_name("a.png"),
        )
        .part(
            "image",
            reqwest::multipart::Part::bytes(big).file_name("b.png"),
        );
    let res = send(form).await.unwrap();
    assert_eq!(res.status(), 413);
    // An unknown site key is refused before the image is read.
    let form = reqwest::multipart::Form::new()
        .text("site_key", "sk_nope".to_owned())
        .text("session_id", "v-big".to_owned())
        .part(
            "image",
            reqwest::multipart::Part::bytes(png.clone()).file_name("a.png"),
        );
    let res = send(form).await.unwrap();
    assert_eq!(res.status(), 404);
    // A normal upload still works.
    let form = reqwest::multipart::Form::new()
        .text("site_key", key)
        .text("session_id", "v-big".to_owned())
        .part(
            "image",
            reqwest::multipart::Part::bytes(png).file_name("a.png"),
        );
    let res = send(form).await.unwrap();
    assert_eq!(res.status(), 200);
}

/// `/rate` and `/rate/comment` create a conversation for a new visitor id:
/// they count against the 10 new conversations per minute per address.
async fn ratings_cannot_mass_create_conversations(app: TestApp) {
    let (site_id, key) = crate::widget::site(&app).await;
    let mut created = 0;
    let mut refused = 0;
    for i in 0..14 {
        let (path, body) = if i % 2 == 0 {
            (
                "/api/v1/chat/rate",
                json!({"site_key": key, "session_id": format!("v-r{i}"), "score": 5}),
            )
        } else {
            (
                "/api/v1/chat/rate/comment",
                json!({"site_key": key, "session_id": format!("v-r{i}"), "comment": "ok"}),
            )
        };
        let res = app
            .client
            .post(app.url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        match res.status().as_u16() {
            200 => created += 1,
            429 => {
                assert!(res.headers().get("retry-after").is_some());
                let body: Value = res.json().await.unwrap();
                assert_eq!(body["error"], "rate_limited", "{body}");
                refused += 1;
            }
            other => panic!("{path}: {other}"),
        }
    }
    assert_eq!((created, refused), (10, 4));
    let (_, list) = app.get(&format!("/v1/sites/{site_id}/conversations")).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 10, "{list}");
}

async fn rate_as(app: &TestApp, key: &str, visitor: &str, forwarded: &str) -> u16 {
    app.client
        .post(app.url("/api/v1/chat/rate"))
        .header("x-forwarded-for", forwarded)
        .json(&json!({"site_key": key, "session_id": visitor, "score": 4}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Abuse limits key on the client address: `X-Forwarded-For` is ignored
/// unless the peer is a configured trusted proxy, and then only its
/// right-most untrusted entry counts (a client cannot spoof its way out).
async fn client_addresses_come_from_trusted_proxies_only(app: TestApp) {
    let (_, key) = crate::widget::site(&app).await;
    // Not trusted: a different X-Forwarded-For per request changes nothing.
    let mut statuses = Vec::new();
    for i in 0..12 {
        statuses.push(rate_as(&app, &key, &format!("a{i}"), &format!("198.51.100.{i}")).await);
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        10,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        2,
        "{statuses:?}"
    );

    // Behind a trusted proxy on 127.0.0.1: each client has its own budget.
    let app = app
        .use_trusted_proxies(vec!["127.0.0.1/32".parse().unwrap()])
        .await;
    for i in 0..10 {
        assert_eq!(
            rate_as(&app, &key, &format!("b{i}"), "203.0.113.1").await,
            200,
            "{i}"
        );
    }
    assert_eq!(rate_as(&app, &key, "b10", "203.0.113.1").await, 429);
    // Another client behind the same proxy is not affected.
    assert_eq!(rate_as(&app, &key, "c0", "203.0.113.2").await, 200);
    // A client that writes its own X-Forwarded-For entry is still itself:
    // the proxy appended the real address on the right.
    assert_eq!(
        rate_as(&app, &key, "b11", "192.0.2.77, 203.0.113.1").await,
        429
    );
}

/// Sends a request head promising a body, one byte of it, then nothing;
/// returns what the server answered before closing.
async fn slow_body(app: &TestApp, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{",
        app.key
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    // The server answers and closes; a bound well above the 1 s deadline.
    tokio::time::timeout(
        std::time::Duration::from_secs(15),
        socket.read_to_end(&mut answer),
    )
    .await
    .expect("the server closes a connection whose body stalls")
    .unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

/// A body that stalls is answered 408 in the surface's shape and its
/// connection closed; the server keeps serving others meanwhile.
async fn slow_bodies_are_cut_off(app: TestApp) {
    let app = app
        .restart_with(|o| o.body_timeout = std::time::Duration::from_secs(1))
        .await;
    let (widget, v1, health) = tokio::join!(
        slow_body(&app, "/api/v1/chat/rate"),
        slow_body(&app, "/v1/chat/sessions"),
        async {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            app.get("/healthz").await.0
        }
    );
    assert_eq!(health, 200);
    assert!(widget.starts_with("HTTP/1.1 408"), "{widget}");
    assert!(widget.contains(r#""error":"request_timeout""#), "{widget}");
    assert!(v1.starts_with("HTTP/1.1 408"), "{v1}");
    assert!(v1.contains(r#""code":"request_timeout""#), "{v1}");
    // A body sent in time is unaffected.
    let (status, _) = app.post("/v1/chat/sessions", json!({})).await;
    assert_eq!(status, 201);
}

/// An address holding more connections than the cap gets `429` in the
/// widget's shape on the public routes (and the connection closed) before
/// its body is read; `/healthz` and authenticated routes still answer, and
/// once its connections close the address is served again.
async fn connections_per_address_are_capped_on_public_routes(app: TestApp) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = app
        .restart_with(|o| {
            o.max_connections_per_ip = 3;
            o.header_timeout = std::time::Duration::from_secs(30);
        })
        .await;
    let (_, key) = crate::widget::site(&app).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    // Let the server accept them before the next one.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let mut extra = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /api/v1/chat/rate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{{\"site_key\":\"{key}\""
    );
    extra.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(15),
        extra.read_to_end(&mut answer),
    )
    .await
    .expect("the server answers and closes without waiting for the body")
    .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(answer.contains(r#""error":"rate_limited""#), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after: 1"),
        "{answer}"
    );

    assert_eq!(app.get("/healthz").await.0, 200);
    let (status, _) = app.post("/v1/chat/sessions", json!({})).await;
    assert_eq!(status, 201, "authenticated routes are not capped");
    // A fresh connection past the cap is refused too…
    let get = format!(
        "GET /api/v1/chat/config?site_key={key} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    );
    let fresh = async || {
        let mut socket = tokio::net::TcpStream::connect(&addr).await.unwrap();
        socket.write_all(get.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(
            std::time::Duration::from_secs(15),
            socket.read_to_end(&mut answer),
        )
        .await
        .expect("answered")
        .unwrap();
        String::from_utf8_lossy(&answer).into_owned()
    };
    let answer = fresh().await;
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    // …and served once the idle connections are closed.
    drop(idle);
    let mut answer = String::new();
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        answer = fresh().await;
        if answer.starts_with("HTTP/1.1 200") {
            break;
        }
    }
    assert!(answer.starts_with("HTTP/1.1 200"), "served again: {answer}");
}
