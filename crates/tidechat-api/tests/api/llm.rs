//! Real LLM providers through the public API, against the mock upstream
//! (`tidechat-mock-llm`, OpenAI and Anthropic wire formats): metering and
//! cost, retries, fallbacks, timeouts, broken streams, cancellation,
//! keep-alives, tools and how the prompt is built.
//!
//! The mock's reply is `token0 token1 … ` with exact usage (input = words of
//! all message text, output = pieces), so stored numbers can be compared
//! with what the upstream reported, not with tidechat's own estimate.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use futures_util::StreamExt;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use tidechat_engine::EngineConfig;
use tidechat_llm::{tokens, ChatMessage, ModelRegistry, FAQ_MODEL_ID};
use tidechat_mock_llm::{MockConfig, MockServer, StatsSnapshot, ERROR_BODY_MARKER};

use crate::support::{sse_events, TestApp};

backends!(
    replies_are_metered_as_the_provider_reported,
    transient_upstream_failures_are_retried,
    a_failing_model_falls_back_to_the_next,
    when_every_model_fails_the_client_gets_a_clean_502,
    a_model_silent_before_its_first_token_times_out,
    a_stream_broken_mid_reply_keeps_the_partial_reply,
    a_client_disconnect_cancels_the_upstream_request,
    a_slow_first_token_gets_keep_alives,
    faq_search_tool_results_reach_the_model,
    end_session_tool_ends_the_session,
    the_widget_persona_can_hand_off_to_an_operator,
    http_tools_are_signed_and_their_failures_go_to_the_model,
    tools_inside_the_network_and_unknown_tools_are_refused,
    request_options_reach_the_provider_within_model_limits,
    history_is_trimmed_to_fit_the_context_window,
);

/// The provider key tidechat is configured with (and the mock requires).
const PROVIDER_KEY: &str = "sk-mock-provider-key-4f9a1c";
const KEY_ENV: &str = "MOCK_LLM_KEY";
const TOOL_SECRET: &str = "tool-secret-0123456789abcdef";

/// Price in thousandths of a US dollar per million tokens (one token at
/// 1 USD/Mtok costs one micro-dollar), so expected costs are integer math.
#[derive(Clone, Copy, Debug)]
struct Price {
    input_milli: i64,
    output_milli: i64,
}

/// 2.5 / 10 USD per million tokens.
const PRIMARY: Price = Price {
    input_milli: 2_500,
    output_milli: 10_000,
};
/// 0.15 / 0.6 USD per million tokens: costs need rounding.
const CHEAP: Price = Price {
    input_milli: 150,
    output_milli: 600,
};

impl Price {
    /// Micro-dollars, rounded half up.
    fn cost(self, input: i64, output: i64) -> i64 {
        (input * self.input_milli + output * self.output_milli + 500) / 1_000
    }

    fn usd(milli: i64) -> String {
        format!("{}.{:03}", milli / 1_000, milli % 1_000)
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Provider {
    OpenAi,
    Anthropic,
}

/// One `[[models]]` entry served by the mock.
struct Model {
    id: &'static str,
    provider: Provider,
    knobs: String,
    price: Price,
    context_window: u32,
    max_output_tokens: u32,
    extra: String,
}

impl Model {
    fn new(id: &'static str, provider: Provider) -> Self {
        Self {
            id,
            provider,
            knobs: String::new(),
            price: PRIMARY,
            context_window: 8_000,
            max_output_tokens: 1_000,
            extra: String::new(),
        }
    }

    /// Mock knobs, as the query of the upstream model name.
    fn knobs(mut self, knobs: &str) -> Self {
        self.knobs = knobs.to_owned();
        self
    }

    fn price(mut self, price: Price) -> Self {
        self.price = price;
        self
    }

    fn window(mut self, context_window: u32, max_output_tokens: u32) -> Self {
        self.context_window = context_window;
        self.max_output_tokens = max_output_tokens;
        self
    }

    /// More TOML lines for this model.
    fn extra(mut self, line: &str) -> Self {
        self.extra.push_str(line);
        self.extra.push('\n');
        self
    }

    fn upstream_name(&self) -> String {
        if self.knobs.is_empty() {
            "mock".to_owned()
        } else {
            format!("mock?{}", self.knobs)
        }
    }

    fn toml(&self, mock: &MockServer) -> String {
        let (provider, base_url) = match self.provider {
            Provider::OpenAi => ("openai", mock.openai_base_url()),
            Provider::Anthropic => ("anthropic", mock.anthropic_base_url()),
        };
        format!(
            "[[models]]\nid = \"{}\"\nprovider = \"{provider}\"\nbase_url = \"{base_url}\"\n\
             api_key_env = \"{KEY_ENV}\"\nupstream_model = \"{}\"\ncontext_window = {}\n\
             max_output_tokens = {}\ninput_usd_per_mtok = {}\noutput_usd_per_mtok = {}\n\
             retry_base_ms = 10\nretry_max_ms = 50\n{}\n",
            self.id,
            self.upstream_name(),
            self.context_window,
            self.max_output_tokens,
            Price::usd(self.price.input_milli),
            Price::usd(self.price.output_milli),
            self.extra,
        )
    }
}

fn start_mock() -> MockServer {
    MockServer::start(MockConfig {
        api_key: Some(PROVIDER_KEY.to_owned()),
        ..MockConfig::default()
    })
    .expect("mock")
}

/// Restarts `app` with `models` (served by `mock`) added to its registry.
async fn with_models(
    app: TestApp,
    mock: &MockServer,
    models: &[Model],
    configure: impl FnOnce(&mut EngineConfig),
) -> TestApp {
    let toml: String = models.iter().map(|m| m.toml(mock)).collect();
    let registry = ModelRegistry::from_toml_str_with_env(&toml, |name| {
        (name == KEY_ENV).then(|| PROVIDER_KEY.to_owned())
    })
    .expect("models.toml");
    app.reconfigure(move |models, config| {
        for id in registry.ids() {
            if id != FAQ_MODEL_ID {
                models.insert(registry.get(&id).unwrap().clone());
            }
        }
        configure(config);
    })
    .await
}

/// The mock's reply of `n` words.
fn mock_text(n: usize) -> String {
    (0..n).map(|i| format!("token{i} ")).collect()
}

fn words(text: &str) -> i64 {
    text.split_whitespace().count() as i64
}

/// Words of a message content: a string or blocks (text, tool results).
fn content_words(content: &Value) -> i64 {
    match content {
        Value::String(s) => words(s),
        Value::Array(blocks) => blocks
            .iter()
            .map(|b| {
                b.get("text").and_then(Value::as_str).map_or(0, words)
                    + b.get("content").map_or(0, content_words)
            })
            .sum(),
        _ => 0,
    }
}

/// The input tokens the mock reports for an upstream request body.
fn upstream_input(request: &Value) -> i64 {
    let messages: i64 = request["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| content_words(&m["content"]))
        .sum();
    messages + content_words(&request["system"])
}

/// Pieces the mock streams tool arguments in (its `arg_pieces` split).
fn arg_pieces(args: &str, pieces: usize) -> i64 {
    let len = args.chars().count();
    let n = pieces.min(len).max(1);
    len.div_ceil(len.div_ceil(n)) as i64
}

/// Percent-encodes a knob value (e.g. JSON tool arguments).
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn path(session: &str) -> String {
    format!("/v1/chat/sessions/{session}/messages")
}

/// Sends a streaming turn; returns the raw body and its events.
async fn stream(app: &TestApp, session: &str, mut body: Value) -> (String, Vec<(String, Value)>) {
    body["stream"] = json!(true);
    let res = app
        .request(reqwest::Method::POST, &path(session))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let raw = res.text().await.unwrap();
    let events = sse_events(&raw);
    (raw, events)
}

/// The concatenated `delta` texts.
fn deltas(events: &[(String, Value)]) -> String {
    events
        .iter()
        .filter(|(e, _)| e == "delta")
        .map(|(_, d)| d["text"].as_str().unwrap())
        .collect()
}

/// Asserts the stream is deltas then exactly one final `last` event, and
/// returns that event's data.
fn final_event<'a>(events: &'a [(String, Value)], last: &str) -> &'a Value {
    let (name, data) = events.last().expect("no events");
    assert_eq!(name, last, "{events:?}");
    assert!(
        events[..events.len() - 1].iter().all(|(e, _)| e == "delta"),
        "only deltas before `{last}`: {events:?}"
    );
    data
}

/// A turn, streamed or not; returns the assistant message the client got
/// (for a stream, checking that the deltas add up to it).
async fn ask(app: &TestApp, session: &str, body: Value, streaming: bool) -> Value {
    if streaming {
        let (_, events) = stream(app, session, body).await;
        let done = final_event(&events, "done");
        assert_eq!(
            deltas(&events),
            done["assistantMessage"]["content"].as_str().unwrap()
        );
        done["assistantMessage"].clone()
    } else {
        let (status, reply) = app.post(&path(session), body).await;
        assert_eq!(status, 200, "{reply}");
        reply["assistantMessage"].clone()
    }
}

async fn stored(app: &TestApp, session: &str) -> Vec<Value> {
    let (status, page) = app.get(&path(session)).await;
    assert_eq!(status, 200, "{page}");
    page["items"].as_array().unwrap().clone()
}

fn roles(messages: &[Value]) -> Vec<&str> {
    messages
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect()
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or_else(|| panic!("not an integer: {v}"))
}

/// Stats accumulated since `before`.
fn since(mock: &MockServer, before: &StatsSnapshot) -> StatsSnapshot {
    let now = mock.stats();
    StatsSnapshot {
        requests: now.requests - before.requests,
        completed: now.completed - before.completed,
        cancelled: now.cancelled - before.cancelled,
        dropped: now.dropped - before.dropped,
        stalled: now.stalled - before.stalled,
        status_faults: now.status_faults - before.status_faults,
    }
}

async fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "{what} within {limit:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    started.elapsed()
}

/// Checks a complete reply's bookkeeping against the upstream's usage.
fn assert_metered(reply: &Value, model: &str, input: i64, output: i64, price: Price) {
    assert_eq!(reply["status"], "complete", "{reply}");
    assert_eq!(reply["model"], model, "{reply}");
    assert_eq!(int(&reply["inputTokens"]), input, "{reply}");
    assert_eq!(int(&reply["outputTokens"]), output, "{reply}");
    assert_eq!(
        int(&reply["costUsdMicros"]),
        price.cost(input, output),
        "{reply}"
    );
    let ttft = int(&reply["timeToFirstTokenMs"]);
    assert!(ttft <= int(&reply["latencyMs"]), "{reply}");
}

async fn replies_are_metered_as_the_provider_reported(app: TestApp) {
    let mock = start_mock();
    let knobs = "chunks=12&ttft_ms=40";
    let models = [
        Model::new("oa-sse", Provider::OpenAi).knobs(knobs),
        Model::new("oa-json", Provider::OpenAi)
            .knobs(knobs)
            .extra("stream = false"),
        Model::new("an-sse", Provider::Anthropic).knobs(knobs),
        Model::new("an-json", Provider::Anthropic)
            .knobs(knobs)
            .extra("stream = false"),
    ];
    let app = with_models(app, &mock, &models, |_| {}).await;
    for model in &models {
        let id = model.id;
        let session = app.session().await;
        let mut replies = Vec::new();
        // A JSON turn, then a streamed one that also carries the history.
        for (text, streaming) in [
            ("Tell me about your opening hours", false),
            ("And on weekends?", true),
        ] {
            let reply = ask(
                &app,
                &session,
                json!({"userText": text, "modelId": id}),
                streaming,
            )
            .await;
            assert_eq!(reply["content"], mock_text(12), "{id}");
            let upstream = mock.last_request().unwrap();
            assert_eq!(upstream["model"], model.upstream_name());
            assert_metered(&reply, id, upstream_input(&upstream), 12, PRIMARY);
            assert!(
                int(&reply["timeToFirstTokenMs"]) >= 40,
                "the mock waits 40 ms: {reply}"
            );
            replies.push(reply);
        }
        let messages = stored(&app, &session).await;
        assert_eq!(
            roles(&messages),
            ["user", "assistant", "user", "assistant"],
            "{id}"
        );
        for (seen, kept) in replies.iter().zip([&messages[1], &messages[3]]) {
            for field in [
                "messageId",
                "content",
                "inputTokens",
                "outputTokens",
                "costUsdMicros",
                "model",
                "status",
                "timeToFirstTokenMs",
                "latencyMs",
            ] {
                assert_eq!(seen[field], kept[field], "{id} {field}");
            }
        }
        let (_, totals) = app.get(&format!("/v1/chat/sessions/{session}")).await;
        let sum = |field: &str| replies.iter().map(|r| int(&r[field])).sum::<i64>();
        assert_eq!(int(&totals["inputTokens"]), sum("inputTokens"), "{id}");
        assert_eq!(int(&totals["outputTokens"]), 24, "{id}");
        assert_eq!(int(&totals["costUsdMicros"]), sum("costUsdMicros"), "{id}");
        assert_eq!(totals["messageCount"], 4, "{id}");
    }
    assert_eq!(mock.stats().requests, 8, "one upstream call per turn");
}

async fn transient_upstream_failures_are_retried(app: TestApp) {
    let mock = start_mock();
    let models = [
        Model::new("flaky-429", Provider::OpenAi).knobs("fault=status:429&fail_first=2&chunks=6"),
        Model::new("flaky-500", Provider::Anthropic)
            .knobs("fault=status:500&fail_first=2&chunks=6"),
    ];
    let app = with_models(app, &mock, &models, |_| {}).await;
    for (id, streaming) in [("flaky-429", true), ("flaky-500", false)] {
        let session = app.session().await;
        let before = mock.stats();
        let reply = ask(
            &app,
            &session,
            json!({"userText": "hello there", "modelId": id}),
            streaming,
        )
        .await;
        let stats = since(&mock, &before);
        assert_eq!(
            (stats.requests, stats.status_faults, stats.completed),
            (3, 2, 1),
            "{id}: {stats:?}"
        );
        assert_eq!(reply["content"], mock_text(6));
        // Only the attempt that answered is billed.
        let input = upstream_input(&mock.last_request().unwrap());
        assert_metered(&reply, id, input, 6, PRIMARY);
        let messages = stored(&app, &session).await;
        assert_eq!(messages[1]["status"], "complete");
        assert_eq!(messages[1]["content"], mock_text(6));
    }
}

async fn a_failing_model_falls_back_to_the_next(app: TestApp) {
    let mock = start_mock();
    let backup = Model::new("backup", Provider::Anthropic)
        .knobs("chunks=5")
        .price(CHEAP);
    let backup_upstream = backup.upstream_name();
    let models = [
        Model::new("primary", Provider::OpenAi)
            .knobs("fault=status:500")
            .extra("max_retries = 1\nfallbacks = [\"backup\"]"),
        backup,
    ];
    let app = with_models(app, &mock, &models, |_| {}).await;
    let session = app.session().await;
    let mut costs = 0;
    for streaming in [false, true] {
        let before = mock.stats();
        let reply = ask(
            &app,
            &session,
            json!({"userText": "hello there", "modelId": "primary"}),
            streaming,
        )
        .await;
        let stats = since(&mock, &before);
        assert_eq!(
            (stats.requests, stats.status_faults),
            (3, 2),
            "two tries of the primary, one of the backup: {stats:?}"
        );
        let upstream = mock.last_request().unwrap();
        assert_eq!(upstream["model"], backup_upstream);
        assert_eq!(reply["content"], mock_text(5));
        // The answering model is stored, and billed at its own prices.
        assert_metered(&reply, "backup", upstream_input(&upstream), 5, CHEAP);
        costs += int(&reply["costUsdMicros"]);
    }
    let messages = stored(&app, &session).await;
    assert_eq!(messages[3]["model"], "backup");
    let (_, totals) = app.get(&format!("/v1/chat/sessions/{session}")).await;
    assert_eq!(int(&totals["costUsdMicros"]), costs);
}

async fn when_every_model_fails_the_client_gets_a_clean_502(app: TestApp) {
    let mock = start_mock();
    let models = [
        Model::new("down", Provider::OpenAi)
            .knobs("fault=status:503")
            .extra("max_retries = 0\nfallbacks = [\"down-too\"]"),
        Model::new("down-too", Provider::Anthropic)
            .knobs("fault=status:500")
            .extra("max_retries = 0"),
    ];
    let app = with_models(app, &mock, &models, |_| {}).await;
    let port = mock.url().rsplit(':').next().unwrap().to_owned();
    let leaks = |body: &str| {
        for secret in [
            PROVIDER_KEY,
            ERROR_BODY_MARKER,
            "injected fault",
            mock.url(),
            &format!(":{port}"),
            "mock?",
        ] {
            assert!(!body.contains(secret), "`{secret}` leaked: {body}");
        }
    };
    let session = app.session().await;
    let body = json!({"userText": "hello there", "modelId": "down"});

    let res = app
        .request(reqwest::Method::POST, &path(&session))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 502);
    let text = res.text().await.unwrap();
    leaks(&text);
    let error: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(error["error"]["code"], "upstream_error", "{error}");

    let (raw, events) = stream(&app, &session, body).await;
    leaks(&raw);
    assert_eq!(deltas(&events), "");
    let error = final_event(&events, "error");
    assert_eq!(error["error"]["code"], "upstream_error", "{error}");

    let stats = mock.stats();
    assert_eq!((stats.requests, stats.status_faults), (4, 4), "{stats:?}");
    // The user's messages are kept; the failed replies are empty and free.
    let messages = stored(&app, &session).await;
    assert_eq!(roles(&messages), ["user", "assistant", "user", "assistant"]);
    for failed in [&messages[1], &messages[3]] {
        leaks(&failed.to_string());
        assert_eq!(failed["status"], "failed", "{failed}");
        assert_eq!(failed["content"], "", "{failed}");
        assert_eq!(failed["outputTokens"], 0, "{failed}");
        assert_eq!(
            failed["costUsdMicros"], 0,
            "nothing was generated, nothing is charged: {failed}"
        );
    }
    let (_, totals) = app.get(&format!("/v1/chat/sessions/{session}")).await;
    assert_eq!(totals["costUsdMicros"], 0, "{totals}");
}

async fn a_model_silent_before_its_first_token_times_out(app: TestApp) {
    let mock = start_mock();
    let models = [
        Model::new("stuck", Provider::OpenAi)
            .knobs("fault=stall")
            .extra("first_token_timeout_ms = 400"),
        Model::new("stuck-json", Provider::Anthropic)
            .knobs("fault=stall")
            .extra("stream = false\nfirst_token_timeout_ms = 400"),
    ];
    let app = with_models(app, &mock, &models, |_| {}).await;
    for id in ["stuck", "stuck-json"] {
        let session = app.session().await;
        let body = json!({"userText": "hello there", "modelId": id});
        let before = mock.stats();
        let started = Instant::now();
        let (status, error) = app.post(&path(&session), body.clone()).await;
        let took = started.elapsed();
        assert_eq!(status, 504, "{id}: {error}");
        assert_eq!(error["error"]["code"], "upstream_timeout");
        assert!(
            took >= Duration::from_millis(400) && took < Duration::from_secs(3),
            "{id}: {took:?}"
        );

        let (_, events) = stream(&app, &session, body).await;
        let error = final_event(&events, "error");
        assert_eq!(error["error"]["code"], "upstream_timeout", "{id}");
        assert_eq!(deltas(&events), "");

        // A timeout is not retried, and the stalled requests are abandoned.
        let stats = since(&mock, &before);
        assert_eq!((stats.requests, stats.stalled), (2, 2), "{id}: {stats:?}");
        wait_for(
            "stalled upstream requests closed",
            Duration::from_secs(3),
            || since(&mock, &before).cancelled == 2,
        )
        .await;
        let messages = stored(&app, &session).await;
        assert_eq!(roles(&messages), ["user", "assistant", "user", "assistant"]);
        assert_eq!(messages[1]["status"], "failed");
    }
}

async fn a_stream_broken_mid_reply_keeps_the_partial_reply(app: TestApp) {
    // The moderator releases text a window at a time (the mock's words have
    // no sentence ends, so 1 KiB windows); a broken reply keeps exactly the
    // text that had passed: what a streaming client received.
    let mock = start_mock();
    let knobs = "chunks=400&fault=drop_after:300";
    let models = [
        Model::new("breaks", Provider::OpenAi).knobs(knobs),
        Model::new("breaks-an", Provider::Anthropic).knobs(knobs),
    ];
    let app = with_models(app, &mock, &models, |_| {}).await;
    let produced = mock_text(300);
    for (id, streaming) in [("breaks", true), ("breaks-an", false)] {
        let session = app.session().await;
        let body = json!({"userText": "tell me a long story", "modelId": id});
        let before = mock.stats();
        let delivered = if streaming {
            let (_, events) = stream(&app, &session, body).await;
            let error = final_event(&events, "error");
            assert_eq!(error["error"]["code"], "upstream_error", "{error}");
            assert_eq!(error["assistantMessage"]["status"], "partial", "{error}");
            let delivered = deltas(&events);
            assert_eq!(error["assistantMessage"]["content"], delivered.as_str());
            delivered
        } else {
            let (status, error) = app.post(&path(&session), body).await;
            assert_eq!(status, 502, "{error}");
            assert_eq!(error["error"]["code"], "upstream_error", "{error}");
            // A JSON client receives nothing; what had passed is stored.
            let messages = stored(&app, &session).await;
            messages[1]["content"].as_str().unwrap().to_owned()
        };
        assert!(
            !delivered.is_empty(),
            "{id}: released windows before the break"
        );
        assert!(produced.starts_with(&delivered), "{id}: {delivered}");

        let stats = since(&mock, &before);
        assert_eq!(
            (stats.requests, stats.dropped),
            (1, 1),
            "{id}: output had started, so no retry: {stats:?}"
        );
        let messages = stored(&app, &session).await;
        assert_eq!(roles(&messages), ["user", "assistant"]);
        let reply = &messages[1];
        assert_eq!(reply["status"], "partial", "{reply}");
        assert_eq!(reply["content"], delivered.as_str(), "{reply}");
        assert_eq!(reply["model"], id);
        // Everything the model produced is metered (counted locally, as the
        // provider's usage never came).
        let output = tokens::count(&produced) as i64;
        assert_eq!(int(&reply["outputTokens"]), output, "{reply}");
        let input = int(&reply["inputTokens"]);
        if id == "breaks-an" {
            // Anthropic reports input tokens up front, in `message_start`.
            assert_eq!(input, upstream_input(&mock.last_request().unwrap()));
        } else {
            assert!(input > 0, "{reply}");
        }
        assert_eq!(int(&reply["costUsdMicros"]), PRIMARY.cost(input, output));
    }
}

async fn a_client_disconnect_cancels_the_upstream_request(app: TestApp) {
    // 5000 words at 2 ms: ten seconds of generation.
    let mock = start_mock();
    let models = [Model::new("endless", Provider::OpenAi).knobs("chunks=5000&gap_ms=2")];
    let app = with_models(app, &mock, &models, |_| {}).await;
    let session = app.session().await;
    let res = app
        .request(reqwest::Method::POST, &path(&session))
        .json(&json!({"userText": "tell me a long story", "modelId": "endless", "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // Wait for the first released window: the reply is well under way.
    let mut body = res.bytes_stream();
    let mut received = String::new();
    while !received.contains("event: delta") {
        received.push_str(&String::from_utf8_lossy(
            &body.next().await.unwrap().unwrap(),
        ));
    }
    assert_eq!(mock.stats().requests, 1);
    drop(body);
    // actix notices a gone client when a write fails: at the next released
    // window (or keep-alive, 1 s here).
    wait_for(
        "the upstream request cancelled",
        Duration::from_secs(3),
        || mock.stats().cancelled == 1,
    )
    .await;

    let reply = app.wait_for_reply(&session).await;
    assert_eq!(reply["status"], "partial", "{reply}");
    // Stored: everything released, which starts with what this client read
    // (more may have been in flight when it left).
    let delivered = deltas(&sse_events(&received));
    assert!(!delivered.is_empty());
    assert!(
        reply["content"]
            .as_str()
            .unwrap()
            .starts_with(delivered.as_str()),
        "{reply}"
    );
    let output = int(&reply["outputTokens"]);
    assert!(
        output > tokens::count(&delivered) as i64,
        "what the model produced is metered, seen or not: {reply}"
    );
    assert!(
        output < tokens::count(&mock_text(5000)) as i64,
        "generation stopped early: {reply}"
    );
    assert_eq!(
        int(&reply["costUsdMicros"]),
        PRIMARY.cost(int(&reply["inputTokens"]), output)
    );
    let stats = mock.stats();
    assert_eq!((stats.requests, stats.completed), (1, 0), "{stats:?}");
}

async fn a_slow_first_token_gets_keep_alives(app: TestApp) {
    let mock = start_mock();
    let models = [Model::new("sleepy", Provider::Anthropic).knobs("ttft_ms=2500&chunks=4")];
    let app = with_models(app, &mock, &models, |_| {}).await;
    let session = app.session().await;
    let (raw, events) = stream(
        &app,
        &session,
        json!({"userText": "hello there", "modelId": "sleepy"}),
    )
    .await;
    let keep_alive = raw.find(": keep-alive").expect("a keep-alive comment");
    let first_delta = raw.find("event: delta").expect("a delta");
    assert!(keep_alive < first_delta, "{raw}");
    let done = final_event(&events, "done");
    assert_eq!(deltas(&events), mock_text(4));
    assert!(int(&done["assistantMessage"]["timeToFirstTokenMs"]) >= 2500);
}

/// The tool result the last upstream request carried: (call id, content).
fn tool_result_sent(request: &Value, provider: Provider) -> (String, String) {
    let last = request["messages"].as_array().unwrap().last().unwrap();
    match provider {
        Provider::OpenAi => {
            assert_eq!(last["role"], "tool", "{request}");
            (
                last["tool_call_id"].as_str().unwrap().to_owned(),
                last["content"].as_str().unwrap().to_owned(),
            )
        }
        Provider::Anthropic => {
            let block = &last["content"][0];
            assert_eq!(block["type"], "tool_result", "{request}");
            let content = match &block["content"] {
                Value::String(s) => s.clone(),
                blocks => blocks[0]["text"].as_str().unwrap().to_owned(),
            };
            (block["tool_use_id"].as_str().unwrap().to_owned(), content)
        }
    }
}

/// The upstream request without the tool exchange: what the first model
/// call of a fresh session's turn sent.
fn before_tools(request: &Value) -> Value {
    let mut first = request.clone();
    let messages: Vec<Value> = request["messages"]
        .as_array()
        .unwrap()
        .iter()
        .take_while(|m| m["role"] != "assistant")
        .cloned()
        .collect();
    first["messages"] = Value::Array(messages);
    first
}

fn tool_message(message: &Value) -> Value {
    assert_eq!(message["role"], "tool", "{message}");
    serde_json::from_str(message["content"].as_str().unwrap()).unwrap()
}

async fn faq_search_tool_results_reach_the_model(app: TestApp) {
    let mock = start_mock();
    let args = r#"{"query":"reset my password"}"#;
    let knobs = format!("tool=faq_search&tool_args={}&arg_pieces=4", encode(args));
    let models = [
        Model::new("tool-oa", Provider::OpenAi).knobs(&knobs),
        Model::new("tool-an", Provider::Anthropic).knobs(&knobs),
    ];
    let app = with_models(app, &mock, &models, |_| {}).await;
    for (id, provider, streaming) in [
        ("tool-oa", Provider::OpenAi, true),
        ("tool-an", Provider::Anthropic, false),
    ] {
        let session = app.session().await;
        let before = mock.stats();
        let reply = ask(
            &app,
            &session,
            json!({"userText": "I can't sign in", "modelId": id, "toolNames": ["faq_search"]}),
            streaming,
        )
        .await;
        assert_eq!(reply["content"], mock_text(8), "{id}");
        assert_eq!(since(&mock, &before).requests, 2, "{id}: two model calls");

        let messages = stored(&app, &session).await;
        assert_eq!(roles(&messages), ["user", "tool", "assistant"], "{id}");
        let tool = tool_message(&messages[1]);
        assert_eq!(tool["tool"], "faq_search");
        assert_eq!(
            tool["arguments"],
            json!({"query": "reset my password"}),
            "arguments streamed in pieces are joined"
        );
        assert_eq!(tool["isError"], false);
        assert!(
            tool["result"]["results"][0]["answer"]
                .as_str()
                .unwrap()
                .contains("reset link"),
            "{tool}"
        );
        assert_eq!(messages[1]["status"], "complete");

        // The result went back to the model with the call's id.
        let upstream = mock.last_request().unwrap();
        let (call_id, content) = tool_result_sent(&upstream, provider);
        assert_eq!(tool["callId"], call_id.as_str());
        assert!(content.contains("reset link"), "{content}");

        // Usage is the sum over both model calls.
        let input = upstream_input(&before_tools(&upstream)) + upstream_input(&upstream);
        let output = arg_pieces(args, 4) + 8;
        assert_metered(&messages[2], id, input, output, PRIMARY);
        assert_eq!(messages[2]["messageId"], reply["messageId"]);
    }
}

/// A widget whose persona is an LLM can hand the chat to a person itself.
async fn the_widget_persona_can_hand_off_to_an_operator(app: TestApp) {
    let mock = start_mock();
    let models =
        [Model::new("helper", Provider::OpenAi).knobs("tool=handoff_to_operator&chunks=3")];
    let app = with_models(app, &mock, &models, |_| {}).await;
    let (status, _) = app
        .put(
            &format!("/v1/personas/{}", app.org.persona_id),
            json!({"name": "Support", "modelId": "helper"}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, site) = app.post("/v1/sites", json!({"name": "Shop"})).await;
    assert_eq!(status, 201);
    let key = site["siteKey"].as_str().unwrap();
    let res = app
        .client
        .post(app.url("/api/v1/chat/stream"))
        .json(&json!({"site_key": key, "session_id": "sess_h", "message": "I need a person", "message_id": "x1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    assert!(
        text.contains("\"type\":\"done\""),
        "{text} {:?} {:?}",
        mock.stats(),
        mock.last_request()
    );
    let res = app
        .client
        .get(app.url(&format!(
            "/api/v1/chat/operator-messages?site_key={key}&session_id=sess_h"
        )))
        .send()
        .await
        .unwrap();
    let poll: Value = res.json().await.unwrap();
    assert_eq!(
        poll["mode"], "operator",
        "the tool switched the conversation: {poll}"
    );
}

async fn end_session_tool_ends_the_session(app: TestApp) {
    let mock = start_mock();
    let models = [Model::new("closer", Provider::OpenAi).knobs("tool=end_session&chunks=3")];
    let app = with_models(app, &mock, &models, |_| {}).await;
    let session = app.session().await;
    let reply = ask(
        &app,
        &session,
        json!({"userText": "thanks, that's all", "modelId": "closer", "toolNames": ["end_session"]}),
        true,
    )
    .await;
    assert_eq!(reply["content"], mock_text(3));
    assert_eq!(reply["status"], "complete");
    let (_, s) = app.get(&format!("/v1/chat/sessions/{session}")).await;
    assert_eq!(s["status"], "ended", "{s}");
    assert!(s["endedAt"].is_string(), "{s}");
    let messages = stored(&app, &session).await;
    assert_eq!(roles(&messages), ["user", "tool", "assistant"]);
    let tool = tool_message(&messages[1]);
    assert_eq!(tool["tool"], "end_session");
    assert_eq!(tool["result"], json!({"ended": true}));
    let (status, error) = app
        .post(&path(&session), json!({"userText": "one more thing"}))
        .await;
    assert_eq!(
        (status, &error["error"]["code"]),
        (409, &json!("session_not_active"))
    );
}

/// A call received by [`ToolServer`].
#[derive(Clone, Debug)]
struct ToolHit {
    path: String,
    signature_valid: bool,
    timestamp: i64,
    body: Value,
}

/// An HTTP tool endpoint on loopback: `/ok` answers a forecast, `/fail`
/// a 500, `/slow` after 5 s. Every call is recorded with whether its
/// signature checks out.
struct ToolServer {
    url: String,
    hits: Arc<Mutex<Vec<ToolHit>>>,
}

const FORECAST: &str = r#"{"forecast":"sunny and 21 degrees"}"#;

impl ToolServer {
    fn start() -> Self {
        let hits: Arc<Mutex<Vec<ToolHit>>> = Arc::default();
        let log = web::Data::new(hits.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(log.clone())
                .default_service(web::to(Self::handle))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        Self { url, hits }
    }

    async fn handle(
        req: HttpRequest,
        body: web::Bytes,
        log: web::Data<Arc<Mutex<Vec<ToolHit>>>>,
    ) -> HttpResponse {
        let header = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let timestamp = header("x-tidechat-timestamp");
        let mut mac = Hmac::<Sha256>::new_from_slice(TOOL_SECRET.as_bytes()).unwrap();
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(&body);
        let signature_valid = header("x-tidechat-signature")
            .strip_prefix("sha256=")
            .and_then(|h| hex::decode(h).ok())
            .is_some_and(|sig| mac.verify_slice(&sig).is_ok());
        log.lock().unwrap().push(ToolHit {
            path: req.path().to_owned(),
            signature_valid,
            timestamp: timestamp.parse().unwrap_or_default(),
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        });
        if !signature_valid {
            return HttpResponse::Unauthorized().finish();
        }
        match req.path() {
            "/ok" => HttpResponse::Ok()
                .content_type("application/json")
                .body(FORECAST),
            "/slow" => {
                tokio::time::sleep(Duration::from_secs(5)).await;
                HttpResponse::Ok().body(FORECAST)
            }
            _ => HttpResponse::InternalServerError().body("tool-internal-failure-detail"),
        }
    }

    fn hits(&self) -> Vec<ToolHit> {
        self.hits.lock().unwrap().clone()
    }
}

async fn http_tools_are_signed_and_their_failures_go_to_the_model(app: TestApp) {
    let mock = start_mock();
    let tools = ToolServer::start();
    let args = encode(r#"{"city":"Oslo"}"#);
    let models = || {
        [
            ("weather", "get_weather"),
            ("broken", "broken_tool"),
            ("slowtool", "slow_tool"),
        ]
        .map(|(id, tool)| {
            Model::new(id, Provider::OpenAi).knobs(&format!("tool={tool}&tool_args={args}"))
        })
    };
    let app = with_models(app, &mock, &models(), |config| {
        config.allow_private_tool_urls = true;
        config.tool_timeout = Duration::from_millis(500);
    })
    .await;
    for (name, endpoint) in [
        ("get_weather", "/ok"),
        ("broken_tool", "/fail"),
        ("slow_tool", "/slow"),
    ] {
        let (status, tool) = app
            .post(
                "/v1/tools",
                json!({
                    "name": name,
                    "description": "Weather by city",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
                    "url": format!("{}{endpoint}", tools.url),
                    "secret": TOOL_SECRET,
                }),
            )
            .await;
        assert_eq!(status, 201, "{tool}");
        assert!(!tool.to_string().contains(TOOL_SECRET), "{tool}");
    }

    // A working tool: signed call, result handed to the model.
    let session = app.session().await;
    let reply = ask(
        &app,
        &session,
        json!({"userText": "weather in Oslo?", "modelId": "weather", "toolNames": ["get_weather"]}),
        false,
    )
    .await;
    assert_eq!(reply["content"], mock_text(8));
    let hits = tools.hits();
    assert_eq!(hits.len(), 1, "{hits:?}");
    let hit = &hits[0];
    assert!(hit.signature_valid, "{hit:?}");
    assert_eq!(hit.path, "/ok");
    assert!((chrono::Utc::now().timestamp() - hit.timestamp).abs() < 60);
    assert_eq!(
        hit.body,
        json!({
            "tool": "get_weather",
            "callId": "call_mock_0",
            "arguments": {"city": "Oslo"},
            "sessionId": session,
            "organizationId": app.org.org_id,
        })
    );
    let (call_id, content) = tool_result_sent(&mock.last_request().unwrap(), Provider::OpenAi);
    assert_eq!(
        (call_id.as_str(), content.as_str()),
        ("call_mock_0", FORECAST)
    );
    let messages = stored(&app, &session).await;
    let tool = tool_message(&messages[1]);
    assert_eq!(
        tool["result"],
        serde_json::from_str::<Value>(FORECAST).unwrap()
    );
    assert_eq!(tool["isError"], false);

    // Failing tools are error results for the model, not failed turns.
    for (model, tool_name, expect) in [
        ("broken", "broken_tool", "500"),
        ("slowtool", "slow_tool", "timed out"),
    ] {
        let session = app.session().await;
        let started = Instant::now();
        let reply = ask(
            &app,
            &session,
            json!({"userText": "weather in Oslo?", "modelId": model, "toolNames": [tool_name]}),
            true,
        )
        .await;
        assert!(started.elapsed() < Duration::from_secs(4), "{model}");
        assert_eq!(reply["content"], mock_text(8), "{model}");
        assert_eq!(reply["status"], "complete");
        let (_, content) = tool_result_sent(&mock.last_request().unwrap(), Provider::OpenAi);
        let sent: Value = serde_json::from_str(&content).unwrap();
        assert!(
            sent["error"].as_str().unwrap().contains(expect),
            "{model}: {content}"
        );
        assert!(!content.contains("tool-internal-failure-detail"));
        let messages = stored(&app, &session).await;
        assert_eq!(roles(&messages), ["user", "tool", "assistant"]);
        let tool = tool_message(&messages[1]);
        assert_eq!(tool["isError"], true, "{tool}");
        assert_eq!(messages[1]["status"], "failed");
    }
    assert_eq!(tools.hits().len(), 3);

    // Private addresses are checked again at call time: with private URLs
    // no longer allowed, the stored loopback tool is not called.
    let app = with_models(app, &mock, &models(), |_| {}).await;
    let session = app.session().await;
    let reply = ask(
        &app,
        &session,
        json!({"userText": "weather in Oslo?", "modelId": "weather", "toolNames": ["get_weather"]}),
        false,
    )
    .await;
    assert_eq!(reply["status"], "complete");
    assert_eq!(tools.hits().len(), 3, "the tool was not called");
    let tool = tool_message(&stored(&app, &session).await[1]);
    assert_eq!(tool["isError"], true, "{tool}");
    assert!(
        tool["result"]["error"]
            .as_str()
            .unwrap()
            .contains("not allowed"),
        "{tool}"
    );
}

async fn tools_inside_the_network_and_unknown_tools_are_refused(app: TestApp) {
    let mock = start_mock();
    let models = [Model::new("plain", Provider::OpenAi)];
    let app = with_models(app, &mock, &models, |_| {}).await;
    let tool = |url: &str| {
        json!({
            "name": "lookup",
            "description": "Looks things up",
            "parameters": {"type": "object", "properties": {}},
            "url": url,
            "secret": TOOL_SECRET,
        })
    };
    for url in [
        "http://127.0.0.1:9/x",
        "http://169.254.169.254/",
        "http://169.254.169.254/latest/meta-data/",
        "http://localhost:8080/x",
        "http://[::1]:9/x",
        "http://10.0.0.7/x",
        "http://[::ffff:127.0.0.1]/x",
        // IPv6 forms that embed a private IPv4 address.
        "http://[::127.0.0.1]/x",
        "http://[64:ff9b::7f00:1]/x",
        "http://[64:ff9b::169.254.169.254]/x",
        "http://[2002:a9fe:a9fe::1]/x",
        "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/x",
    ] {
        let (status, error) = app.post("/v1/tools", tool(url)).await;
        assert_eq!(status, 422, "{url}: {error}");
        assert_eq!(error["error"]["code"], "validation_error", "{url}");
    }
    let (_, list) = app.get("/v1/tools").await;
    assert_eq!(list["items"], json!([]), "{list}");
    // A public address is accepted (the refusals are about the address).
    let (status, created) = app
        .post("/v1/tools", tool("https://tools.example.com/x"))
        .await;
    assert_eq!(status, 201, "{created}");

    let session = app.session().await;
    let (status, error) = app
        .post(
            &path(&session),
            json!({"userText": "hi", "modelId": "plain", "toolNames": ["lookup", "web_search"]}),
        )
        .await;
    assert_eq!(status, 422, "{error}");
    assert_eq!(error["error"]["code"], "unknown_tool");
    assert!(error["error"]["message"]
        .as_str()
        .unwrap()
        .contains("web_search"));
    assert_eq!(mock.stats().requests, 0);
    assert!(stored(&app, &session).await.is_empty());
}

async fn request_options_reach_the_provider_within_model_limits(app: TestApp) {
    let mock = start_mock();
    let models = [
        Model::new("ctx-oa", Provider::OpenAi).window(8_000, 300),
        Model::new("ctx-an", Provider::Anthropic).window(8_000, 300),
    ];
    let app = with_models(app, &mock, &models, |_| {}).await;
    for (id, provider) in [
        ("ctx-oa", Provider::OpenAi),
        ("ctx-an", Provider::Anthropic),
    ] {
        let session = app.session().await;
        let messages_path = path(&session);
        let send = |body: Value| {
            let mut body = body;
            body["modelId"] = json!(id);
            app.post(&messages_path, body)
        };
        for text in ["first about apples", "second about pears"] {
            let (status, body) = send(json!({"userText": text})).await;
            assert_eq!(status, 200, "{body}");
        }
        let upstream = mock.last_request().unwrap();
        // Default output cap: the persona's 1024, capped by the model's 300.
        assert_eq!(upstream["max_tokens"], 300, "{id}");
        let system = |request: &Value| match provider {
            Provider::OpenAi => {
                assert_eq!(request["messages"][0]["role"], "system");
                request["messages"][0]["content"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            }
            Provider::Anthropic => request["system"].as_str().unwrap().to_owned(),
        };
        let conversation = |request: &Value| -> Vec<(String, String)> {
            request["messages"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|m| m["role"] != "system")
                .map(|m| {
                    let content = match &m["content"] {
                        Value::String(s) => s.clone(),
                        blocks => blocks[0]["text"].as_str().unwrap().to_owned(),
                    };
                    (m["role"].as_str().unwrap().to_owned(), content)
                })
                .collect()
        };
        assert_eq!(conversation(&upstream).len(), 3, "{upstream}");

        let digest = "The customer prefers short answers in German.";
        let (status, body) = send(json!({
            "userText": "third about plums",
            "historyLimit": 1,
            "memoryDigest": digest,
            "temperature": 0.9,
            "maxOutputTokens": 300,
        }))
        .await;
        assert_eq!(status, 200, "{body}");
        let upstream = mock.last_request().unwrap();
        assert!(system(&upstream).contains(digest), "{id}: {upstream}");
        assert_eq!(
            conversation(&upstream),
            [
                ("assistant".to_owned(), mock_text(8)),
                ("user".to_owned(), "third about plums".to_owned())
            ],
            "{id}: only the newest stored message as history"
        );
        assert_eq!(upstream["temperature"], 0.9);
        assert_eq!(upstream["max_tokens"], 300);

        // Over the model's limits: refused before anything is sent.
        let before = mock.stats().requests;
        let (status, error) = send(json!({"userText": "more", "maxOutputTokens": 301})).await;
        assert_eq!(
            (status, &error["error"]["code"]),
            (422, &json!("validation_error")),
            "{id}: {error}"
        );
        assert!(error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("maxOutputTokens"));
        let (status, error) = send(json!({"userText": "more", "temperature": 1.5})).await;
        match provider {
            Provider::Anthropic => {
                assert_eq!(
                    (status, &error["error"]["code"]),
                    (422, &json!("validation_error")),
                    "{error}"
                );
                assert!(error["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("temperature"));
                assert_eq!(mock.stats().requests, before);
            }
            Provider::OpenAi => {
                assert_eq!(status, 200, "OpenAI accepts up to 2: {error}");
                assert_eq!(mock.last_request().unwrap()["temperature"], 1.5);
            }
        }
    }
}

async fn history_is_trimmed_to_fit_the_context_window(app: TestApp) {
    let mock = start_mock();
    let roomy = [Model::new("roomy", Provider::OpenAi)];
    let app = with_models(app, &mock, &roomy, |_| {}).await;
    let session = app.session().await;
    for i in 0..6 {
        let text: String = (0..30).map(|j| format!("zeta{i}q{j} ")).collect();
        let (status, body) = app
            .post(
                &path(&session),
                json!({"userText": text.trim_end(), "modelId": "roomy"}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let system = mock.last_request().unwrap()["messages"][0]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    let history: Vec<ChatMessage> = stored(&app, &session)
        .await
        .iter()
        .map(|m| {
            let content = m["content"].as_str().unwrap();
            match m["role"].as_str().unwrap() {
                "user" => ChatMessage::user(content),
                _ => ChatMessage::assistant(content),
            }
        })
        .collect();
    assert_eq!(history.len(), 12);
    let question = "final question zeta";
    let prompt = |kept: usize| {
        let mut messages = vec![ChatMessage::system(system.clone())];
        messages.extend(history[history.len() - kept..].iter().cloned());
        messages.push(ChatMessage::user(question));
        tokens::count_messages(&messages)
    };
    // A window one token too small for the three newest messages.
    let max_output = 32;
    let window = max_output + prompt(3) - 1;
    let tiny = [Model::new("tiny", Provider::OpenAi).window(window as u32, max_output as u32)];
    let app = with_models(app, &mock, &tiny, |_| {}).await;
    let (status, body) = app
        .post(
            &path(&session),
            json!({"userText": question, "modelId": "tiny"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["assistantMessage"]["status"], "complete");
    let upstream = mock.last_request().unwrap();
    assert_eq!(upstream["max_tokens"], max_output);
    let sent: Vec<(String, String)> = upstream["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap().to_owned(),
                m["content"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let mut expected = vec![("system".to_owned(), system.clone())];
    expected.extend(
        history[history.len() - 2..]
            .iter()
            .map(|m| (m.role.as_str().to_owned(), m.content.clone())),
    );
    expected.push(("user".to_owned(), question.to_owned()));
    assert_eq!(
        sent,
        expected,
        "the two newest messages fit, the third does not (prompt {} + {max_output} output > {window}; \
         two newest: {})",
        prompt(3),
        prompt(2),
    );
}
