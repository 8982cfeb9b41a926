//! `TestApp`: a real tidechat HTTP server on a free port, over a fresh
//! database, with an organization, its API key and a few FAQ entries, plus
//! test models that are slow or echo their context.
#![allow(dead_code)]

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{self, BoxStream, StreamExt};
use serde_json::{json, Value};
use tidechat_domain::{FaqDraft, Message, OrgId, SessionId};
use tidechat_engine::{Engine, EngineConfig};
use tidechat_llm::{
    ChatModel, LlmError, ModelEntry, ModelEvent, ModelRegistry, ModelRequest, Pricing, Usage,
};
use tidechat_store::testing::TestDb;

pub const SLOW_WORDS: usize = 200;

pub struct Org {
    pub org_id: String,
    pub workspace_id: String,
    pub persona_id: String,
    pub api_key: String,
}

pub struct TestApp {
    pub client: reqwest::Client,
    pub base: String,
    pub key: String,
    pub org: Org,
    pub engine: Engine,
    server: actix_web::dev::ServerHandle,
    slow_dropped: Arc<AtomicBool>,
    _db: TestDb,
}

/// Streams `words` one-word sentences (`word0. word1. …`), one every
/// `pause`, so moderation releases each at once; records when it is dropped.
struct SlowModel {
    words: usize,
    pause: Duration,
    dropped: Arc<AtomicBool>,
}

struct DropFlag(Arc<AtomicBool>);
impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl ChatModel for SlowModel {
    fn stream(&self, _request: ModelRequest) -> BoxStream<'static, Result<ModelEvent, LlmError>> {
        let flag = DropFlag(self.dropped.clone());
        let (words, pause) = (self.words, self.pause);
        let counter = Arc::new(AtomicUsize::new(0));
        stream::unfold(
            (0usize, flag, counter),
            move |(i, flag, counter)| async move {
                if i > words {
                    return None;
                }
                if i == words {
                    let usage = Usage {
                        input_tokens: 10,
                        output_tokens: words as u64,
                        estimated: false,
                    };
                    return Some((Ok(ModelEvent::Usage(usage)), (i + 1, flag, counter)));
                }
                tokio::time::sleep(pause).await;
                counter.fetch_add(1, Ordering::SeqCst);
                Some((
                    Ok(ModelEvent::Delta(format!("word{i}. "))),
                    (i + 1, flag, counter),
                ))
            },
        )
        .boxed()
    }
}

/// Replies with the user's last message reversed, a word per delta, then
/// exact usage — so a test can make the *model* say something its input
/// did not (moderation of output).
struct Reverse;
impl ChatModel for Reverse {
    fn stream(&self, request: ModelRequest) -> BoxStream<'static, Result<ModelEvent, LlmError>> {
        let last = request
            .messages
            .last()
            .map(|m| m.content.clone())
            .unwrap_or_default();
        let reversed: String = last.chars().rev().collect();
        let mut events: Vec<Result<ModelEvent, LlmError>> = reversed
            .split_inclusive(' ')
            .map(|w| Ok(ModelEvent::Delta(w.to_owned())))
            .collect();
        events.push(Ok(ModelEvent::Usage(Usage {
            input_tokens: 7,
            output_tokens: 11,
            estimated: false,
        })));
        events.push(Ok(ModelEvent::Done {
            finish_reason: "stop".into(),
        }));
        stream::iter(events).boxed()
    }
}

/// One moderator for every test (building it takes a moment).
fn moderator() -> Arc<dyn tidechat_guard::Guard> {
    static MODERATOR: std::sync::OnceLock<tidechat_guard::Moderator> = std::sync::OnceLock::new();
    Arc::new(
        MODERATOR
            .get_or_init(tidechat_guard::Moderator::new)
            .clone(),
    )
}

/// Replies with the messages it was given, one `role:content` per line.
struct EchoContext;
impl ChatModel for EchoContext {
    fn stream(&self, request: ModelRequest) -> BoxStream<'static, Result<ModelEvent, LlmError>> {
        let text = request
            .messages
            .iter()
            .map(|m| format!("{}:{}", m.role.as_str(), m.content.replace('\n', " | ")))
            .collect::<Vec<_>>()
            .join("\n");
        stream::iter(vec![
            Ok(ModelEvent::Delta(text)),
            Ok(ModelEvent::Done {
                finish_reason: "stop".into(),
            }),
        ])
        .boxed()
    }
}

fn entry(id: &str, model: Arc<dyn ChatModel>) -> ModelEntry {
    ModelEntry {
        id: id.to_owned(),
        model,
        pricing: Pricing::new(1.0, 2.0),
        context_window: 100_000,
        max_output_tokens: 4096,
        max_temperature: 2.0,
    }
}

const FAQ: &[(&str, &str)] = &[
    (
        "How do I reset my password?",
        "Use the reset link on the sign-in page.",
    ),
    (
        "What payment methods do you accept?",
        "We accept Visa, Mastercard and PayPal.",
    ),
    ("Do you offer refunds?", "Yes, within 14 days of purchase."),
    (
        "Where can I download my invoices?",
        "Under Settings, Billing, Invoices.",
    ),
    (
        "비밀번호를 어떻게 재설정하나요?",
        "로그인 페이지에서 비밀번호 재설정 링크를 사용하세요.",
    ),
];

impl TestApp {
    pub async fn sqlite() -> Self {
        Self::start(tidechat_store::testing::sqlite().await).await
    }

    pub async fn postgres() -> Option<Self> {
        Some(Self::start(tidechat_store::testing::postgres().await?).await)
    }

    /// The test models every app has (besides the built-in `faq`).
    fn test_models(slow_dropped: &Arc<AtomicBool>) -> ModelRegistry {
        let mut models = ModelRegistry::builtin();
        models.insert(entry(
            "slow",
            Arc::new(SlowModel {
                words: SLOW_WORDS,
                pause: Duration::from_millis(25),
                dropped: slow_dropped.clone(),
            }),
        ));
        models.insert(entry(
            "slow-short",
            Arc::new(SlowModel {
                words: 10,
                pause: Duration::from_millis(150),
                dropped: Arc::new(AtomicBool::new(false)),
            }),
        ));
        models.insert(entry("echo-context", Arc::new(EchoContext)));
        models.insert(entry("reverse", Arc::new(Reverse)));
        models
    }

    async fn start(db: TestDb) -> Self {
        let slow_dropped = Arc::new(AtomicBool::new(false));
        let models = Self::test_models(&slow_dropped);
        let engine = Engine::new(
            db.store.clone(),
            models,
            moderator(),
            EngineConfig::default(),
        )
        .await
        .expect("engine");
        let bundle = engine.create_org("Acme").await.expect("org");
        let drafts = FAQ
            .iter()
            .map(|(q, a)| FaqDraft {
                question: (*q).into(),
                answer: (*a).into(),
                organization_id: None,
                tags: vec![],
            })
            .collect();
        engine
            .import_faqs_for(&bundle.org.id, &bundle.workspace.id, drafts)
            .await
            .expect("faq");

        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let options = tidechat_api::ServerOptions {
            workers: 2,
            shutdown_grace: Duration::from_secs(20),
            keep_alive: Duration::from_secs(1),
            upload_dir: std::env::temp_dir()
                .join(format!("tidechat-test-uploads-{}", ulid::Ulid::new())),
            ..Default::default()
        };
        let server = tidechat_api::server(engine.clone(), listener, options)
            .await
            .expect("server");
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            client: reqwest::Client::new(),
            base,
            key: bundle.api_key.clone(),
            org: Org {
                org_id: bundle.org.id.to_string(),
                workspace_id: bundle.workspace.id.to_string(),
                persona_id: bundle.persona.id.to_string(),
                api_key: bundle.api_key,
            },
            engine,
            server: handle,
            slow_dropped,
            _db: db,
        }
    }

    /// Restarts the server on the same database (same organization and key)
    /// with more models and/or another engine configuration.
    pub async fn reconfigure(
        mut self,
        change: impl FnOnce(&mut ModelRegistry, &mut EngineConfig),
    ) -> Self {
        self.server.stop(true).await;
        let mut models = Self::test_models(&self.slow_dropped);
        let mut config = EngineConfig::default();
        change(&mut models, &mut config);
        let engine = Engine::new(self._db.store.clone(), models, moderator(), config)
            .await
            .expect("engine");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        self.base = format!("http://{}", listener.local_addr().expect("addr"));
        let options = tidechat_api::ServerOptions {
            workers: 2,
            shutdown_grace: Duration::from_secs(20),
            keep_alive: Duration::from_secs(1),
            upload_dir: std::env::temp_dir()
                .join(format!("tidechat-test-uploads-{}", ulid::Ulid::new())),
            ..Default::default()
        };
        let server = tidechat_api::server(engine.clone(), listener, options)
            .await
            .expect("server");
        self.server = server.handle();
        tokio::spawn(server);
        self.engine = engine;
        self
    }

    /// Another tidechat process on the same database: its own store, engine
    /// and HTTP server. Returns its base URL.
    pub async fn second_process(&self) -> String {
        self.second_process_with(None).await
    }

    /// Like [`second_process`], sharing `limiter`'s backend when given.
    pub async fn second_process_with(&self, limiter: Option<tidechat_limits::Limiter>) -> String {
        let store = tidechat_store::Store::connect(&self._db.url, 4)
            .await
            .expect("store");
        let engine = Engine::new(
            store,
            ModelRegistry::builtin(),
            moderator(),
            EngineConfig::default(),
        )
        .await
        .expect("engine");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let options = tidechat_api::ServerOptions {
            limiter,
            upload_dir: std::env::temp_dir()
                .join(format!("tidechat-test-uploads-{}", ulid::Ulid::new())),
            ..Default::default()
        };
        let server = tidechat_api::server(engine, listener, options)
            .await
            .expect("server");
        tokio::spawn(server);
        base
    }

    /// Restarts this app's server (same engine) storing uploads in S3.
    pub async fn use_s3_uploads(mut self, s3: tidechat_api::S3Uploads) -> Self {
        self.server.stop(true).await;
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        self.base = format!("http://{}", listener.local_addr().expect("addr"));
        let options = tidechat_api::ServerOptions {
            upload_s3: Some(s3),
            ..Default::default()
        };
        let server = tidechat_api::server(self.engine.clone(), listener, options)
            .await
            .expect("server");
        self.server = server.handle();
        tokio::spawn(server);
        self
    }

    /// Restarts this app's server (same engine) believing `X-Forwarded-For`
    /// from these proxies.
    pub async fn use_trusted_proxies(self, proxies: Vec<tidechat_api::IpNet>) -> Self {
        self.restart_with(|o| o.trusted_proxies = proxies).await
    }

    /// Restarts this app's server (same engine) with changed server options.
    pub async fn restart_with(
        mut self,
        change: impl FnOnce(&mut tidechat_api::ServerOptions),
    ) -> Self {
        self.server.stop(true).await;
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        self.base = format!("http://{}", listener.local_addr().expect("addr"));
        let mut options = tidechat_api::ServerOptions {
            upload_dir: std::env::temp_dir()
                .join(format!("tidechat-test-uploads-{}", ulid::Ulid::new())),
            ..Default::default()
        };
        change(&mut options);
        let server = tidechat_api::server(self.engine.clone(), listener, options)
            .await
            .expect("server");
        self.server = server.handle();
        tokio::spawn(server);
        self
    }

    /// Restarts this app's server (same engine) with `limiter`.
    pub async fn use_limiter(mut self, limiter: tidechat_limits::Limiter) -> Self {
        self.server.stop(true).await;
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        self.base = format!("http://{}", listener.local_addr().expect("addr"));
        let options = tidechat_api::ServerOptions {
            limiter: Some(limiter),
            upload_dir: std::env::temp_dir()
                .join(format!("tidechat-test-uploads-{}", ulid::Ulid::new())),
            ..Default::default()
        };
        let server = tidechat_api::server(self.engine.clone(), listener, options)
            .await
            .expect("server");
        self.server = server.handle();
        tokio::spawn(server);
        self
    }

    /// The id of the organization's first API key (the one tests use).
    pub async fn engine_key_id(&self) -> String {
        let (_, keys) = self.get("/v1/api-keys").await;
        let items = keys["items"].as_array().expect("keys");
        items
            .last()
            .and_then(|k| k["keyId"].as_str())
            .expect("key")
            .to_owned()
    }

    /// Sets the organization's request rate directly (no request counted).
    pub async fn set_org_rate(&self, per_minute: i64) {
        let org = OrgId::parse(&self.org.org_id).expect("org");
        let limits = tidechat_domain::Limits {
            requests_per_minute: Some(per_minute),
            ..Default::default()
        };
        self.engine
            .set_limits_for(&org, None, limits)
            .await
            .expect("limits");
    }

    /// Quota holds of running turns recorded for the test organization.
    pub async fn quota_holds(&self) -> i64 {
        let org = OrgId::parse(&self.org.org_id).expect("org");
        self._db.store.count_quota_holds(&org).await.expect("holds")
    }

    /// Breaks message storage on purpose (the table disappears).
    pub async fn break_message_storage(&self) {
        let sql = match self._db.store.backend() {
            tidechat_store::Backend::Postgres => "DROP TABLE messages CASCADE",
            tidechat_store::Backend::Sqlite => "DROP TABLE messages",
        };
        self._db.execute_sql(sql).await.expect("drop table");
    }

    /// A second organization on the same server.
    pub async fn other_org(&self) -> Org {
        let b = self.engine.create_org("Other").await.expect("org");
        Org {
            org_id: b.org.id.to_string(),
            workspace_id: b.workspace.id.to_string(),
            persona_id: b.persona.id.to_string(),
            api_key: b.api_key,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(&self.key)
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> (u16, Value) {
        let res = req.send().await.expect("request");
        let status = res.status().as_u16();
        let text = res.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(self.request(reqwest::Method::POST, path).json(&body))
            .await
    }

    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(self.request(reqwest::Method::PUT, path).json(&body))
            .await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(self.request(reqwest::Method::GET, path)).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.send(self.request(reqwest::Method::DELETE, path)).await
    }

    /// Creates a session with the default persona and returns its id.
    pub async fn session(&self) -> String {
        let (status, body) = self.post("/v1/chat/sessions", json!({})).await;
        assert_eq!(status, 201, "{body}");
        body["sessionId"].as_str().expect("id").to_owned()
    }

    /// Waits until the session's assistant reply is stored.
    pub async fn wait_for_reply(&self, session: &str) -> Value {
        for _ in 0..200 {
            let (_, page) = self
                .get(&format!("/v1/chat/sessions/{session}/messages"))
                .await;
            if let Some(reply) = page["items"]
                .as_array()
                .and_then(|i| i.iter().find(|m| m["role"] == "assistant"))
            {
                return reply.clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no reply stored for {session}");
    }

    pub async fn slow_model_dropped_within(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        while tokio::time::Instant::now() < deadline {
            if self.slow_dropped.load(Ordering::SeqCst) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    pub async fn wait_until_running(&self) {
        for _ in 0..500 {
            if self.engine.running_turns() > 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no turn started");
    }

    /// Stops the server the way SIGTERM does and waits for running replies.
    pub async fn shut_down(self, grace: Duration) -> Self {
        let stop = self.server.stop(true);
        let engine = self.engine.clone();
        stop.await;
        engine.shutdown(grace).await;
        self
    }

    pub async fn stored_messages(&self, session: &str) -> Vec<Message> {
        let org = OrgId::parse(&self.org.org_id).expect("org");
        let session = SessionId::parse(session).expect("session");
        let page = tidechat_store::MessagePage {
            limit: 100,
            order: tidechat_store::SortOrder::Asc,
            after_seq: None,
        };
        self.engine
            .store()
            .list_messages(&org, &session, &page)
            .await
            .expect("messages")
    }
}

/// The JSON `data:` payloads of an SSE body without event names (the FAQ
/// chat surface), with `[DONE]` as a string.
pub fn sse_data(body: &str) -> Vec<Value> {
    body.split("\n\n")
        .filter_map(|block| block.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap_or_else(|_| Value::String(d.to_owned())))
        .collect()
}

/// Parses an SSE body into (event, data) pairs, skipping comments.
pub fn sse_events(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter_map(|block| {
            let mut event = None;
            let mut data = String::new();
            for line in block.lines() {
                if let Some(e) = line.strip_prefix("event: ") {
                    event = Some(e.to_owned());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push_str(d);
                }
            }
            Some((event?, serde_json::from_str(&data).ok()?))
        })
        .collect()
}
