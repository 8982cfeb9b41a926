//! Knowledge documents (upload, search, citations), "try a question", and
//! semantic retrieval through an OpenAI-compatible embeddings endpoint (the
//! mock upstream).

use std::sync::Arc;

use serde_json::{json, Value};
use tidechat_llm::{OpenAiEmbedder, OpenAiEmbedderConfig, Pricing};
use tidechat_mock_llm::{MockConfig, MockServer};

use super::TestApp;

backends!(
    documents_are_uploaded_searched_and_cited,
    documents_are_validated_and_tenant_scoped,
    an_embedding_endpoint_ranks_metered_and_cited,
    a_failing_embedding_endpoint_falls_back_to_lexical,
);

const GUIDE: &str = "# Tablet care guide

Read this before you contact support.

## Cleaning the screen

Wipe the e-ink screen with a dry microfiber cloth. Never spray liquid directly on the display.

## Charging in winter

Below zero degrees the battery charges slowly. Let the tablet warm up to room temperature for an hour before you plug it in.
";

async fn upload_json(app: &TestApp, body: Value) -> (u16, Value) {
    app.post("/v1/documents", body).await
}

async fn search(app: &TestApp, query: &str) -> Value {
    let (status, body) = app
        .post("/v1/knowledge/search", json!({"query": query}))
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn ask(app: &TestApp, session: &str, text: &str) -> Value {
    let (status, body) = app
        .post(
            &format!("/v1/chat/sessions/{session}/messages"),
            json!({"userText": text}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn documents_are_uploaded_searched_and_cited(app: TestApp) {
    // JSON upload: title and format from the Markdown itself.
    let (status, doc) = upload_json(&app, json!({"content": GUIDE, "fileName": "care.md"})).await;
    assert_eq!(status, 201, "{doc}");
    assert_eq!(doc["title"], "Tablet care guide");
    assert_eq!(doc["format"], "markdown");
    assert_eq!(doc["fileName"], "care.md");
    assert!(doc["chunkCount"].as_i64().unwrap() >= 2, "{doc}");
    let doc_id = doc["documentId"].as_str().unwrap().to_owned();
    assert!(doc_id.starts_with("doc_"));

    let (status, detail) = app.get(&format!("/v1/documents/{doc_id}")).await;
    assert_eq!(status, 200, "{detail}");
    assert!(detail["text"]
        .as_str()
        .unwrap()
        .contains("microfiber cloth"));
    let chunks = detail["chunks"].as_array().unwrap();
    assert_eq!(chunks.len() as i64, doc["chunkCount"].as_i64().unwrap());
    let winter = chunks
        .iter()
        .find(|c| c["content"].as_str().unwrap().contains("warm up"))
        .expect("a chunk about charging in winter");
    assert!(
        winter["heading"]
            .as_str()
            .unwrap()
            .contains("Charging in winter"),
        "{winter}"
    );

    // Multipart and raw uploads.
    let form = reqwest::multipart::Form::new()
        .text("title", "Shipping notes")
        .part(
            "file",
            reqwest::multipart::Part::bytes(
                b"<html><head><title>x</title><script>var secret = 1;</script></head><body><h1>Shipping</h1><p>Parcels to Canada take 9&nbsp;days &amp; need a customs form.</p></body></html>".to_vec(),
            )
            .file_name("shipping.html")
            .mime_str("text/html")
            .unwrap(),
        );
    let res = app
        .request(reqwest::Method::POST, "/v1/documents")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let html: Value = res.json().await.unwrap();
    assert_eq!(html["title"], "Shipping notes");
    assert_eq!(html["format"], "html");
    let html_id = html["documentId"].as_str().unwrap().to_owned();
    let (_, html_detail) = app.get(&format!("/v1/documents/{html_id}")).await;
    let text = html_detail["text"].as_str().unwrap();
    assert!(text.contains("9 days & need a customs form"), "{text}");
    assert!(!text.contains("secret"), "scripts are not text: {text}");

    let res = app
        .request(reqwest::Method::POST, "/v1/documents?title=Opening%20hours")
        .header("content-type", "text/plain")
        .body("Our support team answers on weekdays from 9 to 17 CET.")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let plain: Value = res.json().await.unwrap();
    assert_eq!(
        (plain["title"].as_str(), plain["format"].as_str()),
        (Some("Opening hours"), Some("text"))
    );

    let (status, list) = app.get("/v1/documents?limit=2").await;
    assert_eq!(status, 200);
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    assert_eq!(list["hasMore"], true);
    assert!(
        list["items"][0].get("text").is_none(),
        "listings carry no text"
    );

    // Search ranks the passage; the verdict is in scope.
    let found = search(
        &app,
        "should the tablet warm up to room temperature before charging in winter",
    )
    .await;
    assert_eq!(found["outOfScope"], false, "{found}");
    assert_eq!(found["mode"], "lexical");
    let top = &found["hits"][0];
    assert_eq!(top["source"]["type"], "document", "{found}");
    assert_eq!(top["source"]["documentId"], doc_id.as_str());
    assert!(top["text"].as_str().unwrap().contains("warm up"));
    assert!(top["semantic"].is_null());
    let faq = search(&app, "How do I reset my password?").await;
    assert_eq!(faq["hits"][0]["source"]["type"], "faq", "{faq}");

    // The `faq` model answers with the passage and cites it; FAQ answers
    // cite their entry; fallbacks cite nothing. History keeps citations.
    let session = app.session().await;
    let reply = ask(
        &app,
        &session,
        "should the tablet warm up to room temperature before charging in winter",
    )
    .await;
    let message = &reply["assistantMessage"];
    assert!(
        message["content"].as_str().unwrap().contains("warm up"),
        "{reply}"
    );
    let citations = message["citations"].as_array().unwrap();
    assert_eq!(citations.len(), 1, "{reply}");
    assert_eq!(citations[0]["type"], "document");
    assert_eq!(citations[0]["documentId"], doc_id.as_str());
    assert!(citations[0]["title"]
        .as_str()
        .unwrap()
        .contains("Charging in winter"));
    let reply = ask(&app, &session, "How do I reset my password?").await;
    let citations = reply["assistantMessage"]["citations"].as_array().unwrap();
    assert_eq!(citations.len(), 1);
    assert_eq!(citations[0]["type"], "faq");
    assert!(citations[0]["faqId"].as_str().unwrap().starts_with("faq_"));
    let reply = ask(&app, &session, "What is the weather on Mars tomorrow?").await;
    assert_eq!(reply["assistantMessage"]["citations"], json!([]));
    assert_eq!(reply["userMessage"]["citations"], json!([]));
    let (_, history) = app
        .get(&format!("/v1/chat/sessions/{session}/messages?order=asc"))
        .await;
    let cited: Vec<&Value> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| !m["citations"].as_array().unwrap().is_empty())
        .collect();
    assert_eq!(cited.len(), 2, "{history}");
    assert_eq!(cited[0]["citations"][0]["documentId"], doc_id.as_str());

    // The FAQ chat's suggestions name the passage.
    let res = app
        .client
        .post(app.url("/chat"))
        .header("mooni-api-key", &app.key)
        .json(&json!({"query": "customs form for parcels to Canada"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body = res.text().await.unwrap();
    let suggestions: Vec<Value> = super::sse_data(&body)
        .into_iter()
        .filter(|v| v["type"] == "faq")
        .collect();
    assert_eq!(suggestions.len(), 1, "{body}");
    let first = &suggestions[0]["results"][0];
    assert_eq!(first["type"], "document", "{body}");
    assert_eq!(first["documentId"], html_id.as_str());
    assert!(first["id"].as_str().is_some() && first["title"].as_str().is_some());

    // Replacing changes what is found, at once; deleting removes it.
    let (status, replaced) = app
        .put(
            &format!("/v1/documents/{doc_id}"),
            json!({"content": "# Tablet care guide\n\n## Storage\n\nKeep the tablet in its sleeve when you travel.", "format": "markdown"}),
        )
        .await;
    assert_eq!(status, 200, "{replaced}");
    assert_eq!(replaced["documentId"], doc_id.as_str());
    assert_eq!(replaced["createdAt"], doc["createdAt"]);
    let after = search(&app, "keep the tablet in its sleeve when travelling").await;
    assert_eq!(
        after["hits"][0]["source"]["documentId"],
        doc_id.as_str(),
        "{after}"
    );
    let winter = search(
        &app,
        "should the tablet warm up to room temperature before charging in winter",
    )
    .await;
    assert!(
        winter["hits"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| !h["text"].as_str().unwrap().contains("warm up")),
        "the old text is gone: {winter}"
    );
    let (status, _) = app.delete(&format!("/v1/documents/{doc_id}")).await;
    assert_eq!(status, 204);
    let (status, _) = app.delete(&format!("/v1/documents/{doc_id}")).await;
    assert_eq!(status, 404);
    let (status, _) = app.get(&format!("/v1/documents/{doc_id}")).await;
    assert_eq!(status, 404);
    let gone = search(&app, "keep the tablet in its sleeve when travelling").await;
    assert!(
        gone["hits"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["source"]["documentId"] != doc_id.as_str()),
        "{gone}"
    );
}

async fn documents_are_validated_and_tenant_scoped(app: TestApp) {
    let (status, doc) = upload_json(&app, json!({"content": GUIDE, "format": "markdown"})).await;
    assert_eq!(status, 201);
    let doc_id = doc["documentId"].as_str().unwrap().to_owned();

    // Bad input: the /v1 error table, never a 500.
    for (body, code) in [
        (
            json!({"content": "   \n  ", "format": "text"}),
            "validation_error",
        ),
        (
            json!({"content": "hello", "format": "docx"}),
            "invalid_json",
        ),
        (
            json!({"content": "# T\n\nx", "format": "markdown", "title": "t\u{0}"}),
            "validation_error",
        ),
        (json!({"title": "no content"}), "invalid_json"),
    ] {
        let (status, err) = upload_json(&app, body.clone()).await;
        assert_eq!(status, 422, "{body} → {err}");
        assert_eq!(err["error"]["code"], code, "{body} → {err}");
    }
    let res = app
        .request(reqwest::Method::POST, "/v1/documents")
        .header("content-type", "application/octet-stream")
        .body(vec![0u8, 1, 2, 3])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422, "an unknown format is refused");
    let (status, untyped) =
        upload_json(&app, json!({"content": "Plain words, no format given."})).await;
    assert_eq!(
        (status, untyped["format"].as_str()),
        (201, Some("markdown")),
        "{untyped}"
    );
    let res = app
        .request(reqwest::Method::POST, "/v1/documents?format=pdf")
        .header("content-type", "application/pdf")
        .body("%PDF-1.4 this is not really a pdf")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let err: Value = res.json().await.unwrap();
    assert_eq!(err["error"]["code"], "validation_error", "{err}");
    let big = vec![b'a'; 17 * 1024 * 1024];
    let res = app
        .request(reqwest::Method::POST, "/v1/documents")
        .header("content-type", "text/plain")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    let err: Value = res.json().await.unwrap();
    assert_eq!(err["error"]["code"], "payload_too_large");
    let (status, err) = app
        .post("/v1/knowledge/search", json!({"query": "  "}))
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (422, Some("validation_error"))
    );
    let (status, _) = app
        .post(
            "/v1/knowledge/search",
            json!({"query": "x", "threshold": 3}),
        )
        .await;
    assert_eq!(status, 422);
    let (status, _) = app.get("/v1/documents/not-an-id").await;
    assert_eq!(status, 404);

    // Other organizations see nothing and their searches never find it.
    let other = app.other_org().await;
    let as_other = |m: reqwest::Method, p: &str| {
        app.client
            .request(m, app.url(p))
            .bearer_auth(&other.api_key)
    };
    use reqwest::Method as M;
    let path = format!("/v1/documents/{doc_id}");
    assert_eq!(as_other(M::GET, &path).send().await.unwrap().status(), 404);
    assert_eq!(
        as_other(M::DELETE, &path).send().await.unwrap().status(),
        404
    );
    let res = as_other(M::PUT, &path)
        .json(&json!({"content": "hijacked", "format": "text"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let list: Value = as_other(M::GET, "/v1/documents")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"], json!([]));
    let found: Value = as_other(M::POST, "/v1/knowledge/search")
        .json(&json!({"query": "wipe the e-ink screen with a dry microfiber cloth"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        found["hits"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["source"]["type"] != "document"),
        "{found}"
    );

    // Chat-scoped keys and session tokens manage no knowledge.
    let (_, key) = app
        .post("/v1/api-keys", json!({"name": "chat", "scope": "chat"}))
        .await;
    let chat_key = key["key"].as_str().unwrap().to_owned();
    for (m, p) in [
        (M::GET, "/v1/documents".to_owned()),
        (M::GET, path.clone()),
        (M::DELETE, path.clone()),
        (M::POST, "/v1/knowledge/search".to_owned()),
    ] {
        let res = app
            .client
            .request(m.clone(), app.url(&p))
            .bearer_auth(&chat_key)
            .json(&json!({"query": "x"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403, "{m} {p}");
    }
    let res = app
        .client
        .post(app.url("/v1/documents"))
        .bearer_auth(&chat_key)
        .json(&json!({"content": "x", "format": "text"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let (status, _) = app.get(&path).await;
    assert_eq!(status, 200, "still there after the refused calls");
}

/// An app whose engine embeds through the mock's `/v1/embeddings`.
async fn with_mock_embedder(app: TestApp, mock: &MockServer, batch: usize) -> TestApp {
    let mut config = OpenAiEmbedderConfig::new("mock-embed:hash", mock.openai_base_url(), "hash");
    config.batch_size = batch;
    config.pricing = Pricing::new(1.0, 0.0);
    let embedder = Arc::new(OpenAiEmbedder::new(config).expect("embedder"));
    app.reconfigure(move |_, config| config.embedder = Some(embedder))
        .await
}

async fn an_embedding_endpoint_ranks_metered_and_cited(app: TestApp) {
    let mock = MockServer::start(MockConfig::default()).expect("mock");
    let app = with_mock_embedder(app, &mock, 2).await;

    // Entries written before the embedder existed are embedded on the
    // first lookup (in the background); new ones when they are written.
    let before = mock.embedding_stats();
    let (status, _) = app
        .post(
            "/v1/faqs",
            json!({"question": "Can I bring my dog to the office?", "answer": "Dogs are welcome on Fridays."}),
        )
        .await;
    assert_eq!(status, 201);
    let after_write = mock.embedding_stats();
    assert!(
        after_write.inputs > before.inputs,
        "embedded when written: {after_write:?}"
    );
    let (status, _) = upload_json(&app, json!({"content": GUIDE, "format": "markdown"})).await;
    assert_eq!(status, 201);
    let after_doc = mock.embedding_stats();
    assert!(after_doc.requests > after_write.requests);

    // Searches are hybrid with a cosine per hit; a query costs one call.
    let mut found = Value::Null;
    for _ in 0..50 {
        found = search(&app, "Can I bring my dog to the office?").await;
        if found["hits"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| !h["semantic"].is_null())
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(found["mode"], "hybrid", "{found}");
    let top = &found["hits"][0];
    assert_eq!(top["title"], "Can I bring my dog to the office?", "{found}");
    let cosine = |h: &Value| h["semantic"].as_f64().unwrap();
    assert!(
        found["hits"].as_array().unwrap()[1..]
            .iter()
            .all(|h| cosine(h) < cosine(top)),
        "the same question is the closest vector: {found}"
    );
    assert!(
        found["hits"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| !h["semantic"].is_null()),
        "every item has an embedding once the backfill ran: {found}"
    );
    let stats = mock.embedding_stats();
    let _ = search(&app, "how do I clean the screen").await;
    let one = mock.embedding_stats();
    assert_eq!(
        (one.requests - stats.requests, one.inputs - stats.inputs),
        (1, 1)
    );
    let last = mock.last_request().expect("request");
    assert_eq!(last["input"], json!(["how do I clean the screen"]));

    // Embedding calls are usage: tokens and cost, by model and in quotas.
    let mut usage = Value::Null;
    for _ in 0..50 {
        let (_, u) = app.get("/v1/usage?groupBy=model").await;
        usage = u;
        let embed = usage["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["key"] == "mock-embed:hash")
            .cloned();
        if embed.is_some_and(|e| e["requests"].as_i64().unwrap() >= 4) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let embed = usage["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["key"] == "mock-embed:hash")
        .unwrap_or_else(|| panic!("embedding usage is reported: {usage}"))
        .clone();
    assert!(embed["inputTokens"].as_i64().unwrap() > 0, "{embed}");
    assert_eq!(embed["outputTokens"], 0);
    assert!(embed["costUsdMicros"].as_i64().unwrap() > 0, "{embed}");
    // No reply was billed yet: embedding tokens alone spend the quota.
    let session = app.session().await;
    let (status, _) = app.put("/v1/limits", json!({"monthlyTokens": 1})).await;
    assert_eq!(status, 200);
    let (status, err) = app
        .post(
            &format!("/v1/chat/sessions/{session}/messages"),
            json!({"userText": "Can I bring my dog to the office?"}),
        )
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (429, Some("quota_exceeded")),
        "{err}"
    );
    let (status, _) = app.put("/v1/limits", json!({})).await;
    assert_eq!(status, 200);

    // A turn: one query embedding, the reply cites what it used.
    let stats = mock.embedding_stats();
    let reply = ask(&app, &session, "Can I bring my dog to the office?").await;
    assert_eq!(
        reply["assistantMessage"]["content"],
        "Dogs are welcome on Fridays."
    );
    assert_eq!(reply["assistantMessage"]["citations"][0]["type"], "faq");
    let turn = mock.embedding_stats();
    assert_eq!(
        (turn.requests - stats.requests, turn.inputs - stats.inputs),
        (1, 1)
    );
    mock.stop().await;
}

async fn a_failing_embedding_endpoint_falls_back_to_lexical(app: TestApp) {
    // Nothing listens here: every embedding call fails at once.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}/v1", listener.local_addr().unwrap());
    drop(listener);
    let mut config = OpenAiEmbedderConfig::new("dead:hash", dead, "hash");
    config.policy.max_retries = 0;
    let embedder = Arc::new(OpenAiEmbedder::new(config).expect("embedder"));
    let app = app
        .reconfigure(move |_, config| config.embedder = Some(embedder))
        .await;
    let (status, _) = app
        .post(
            "/v1/faqs",
            json!({"question": "Can I bring my dog to the office?", "answer": "Dogs are welcome on Fridays."}),
        )
        .await;
    assert_eq!(status, 201, "a write never fails because the embedder does");
    let (status, doc) = upload_json(&app, json!({"content": GUIDE, "format": "markdown"})).await;
    assert_eq!(status, 201, "{doc}");
    let found = search(&app, "Can I bring my dog to the office?").await;
    assert_eq!(found["mode"], "lexical", "{found}");
    assert_eq!(
        found["hits"][0]["title"],
        "Can I bring my dog to the office?"
    );
    let session = app.session().await;
    let reply = ask(&app, &session, "Can I bring my dog to the office?").await;
    assert_eq!(
        reply["assistantMessage"]["content"],
        "Dogs are welcome on Fridays."
    );
}
