//! A mock LLM upstream that speaks the OpenAI Chat Completions and the
//! Anthropic Messages wire formats (streaming and not), with latency knobs,
//! scripted tool calls and injected faults. See `README.md` for the knobs.
//!
//! Replies are deterministic: the text is `"token0 token1 ... "` and usage
//! is exact (`input_tokens` = whitespace-separated words of all message and
//! system text, `output_tokens` = words of the reply, or argument pieces of
//! a tool call), so tests can compare stored usage and cost with it.
//!
//! Use it in-process with [`MockServer::start`], or as the
//! `tidechat-mock-llm` binary.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::http::StatusCode;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use bytes::Bytes;
use futures_util::stream::{BoxStream, StreamExt};
use serde::Serialize;
use serde_json::{json, Value};

mod embeddings;
mod knobs;

pub use embeddings::embedding;
pub use knobs::{Fault, Knobs};

/// Marker included in every error body the mock sends, so tests can check
/// that provider bodies do not leak into errors or logs.
pub const ERROR_BODY_MARKER: &str = "mock-provider-error-body";

/// Server-wide settings.
#[derive(Clone, Debug, Default)]
pub struct MockConfig {
    /// Defaults for every request (overridable per request).
    pub knobs: Knobs,
    /// When set, requests must carry it (`Authorization: Bearer` for OpenAI,
    /// `x-api-key` for Anthropic), else 401.
    pub api_key: Option<String>,
}

/// Counters, readable with `GET /__stats` or [`MockServer::stats`].
#[derive(Debug, Default)]
pub struct Stats {
    requests: AtomicU64,
    completed: AtomicU64,
    cancelled: AtomicU64,
    dropped: AtomicU64,
    stalled: AtomicU64,
    status_faults: AtomicU64,
    embedding_requests: AtomicU64,
    embedding_inputs: AtomicU64,
    /// Requests seen per fail_first key.
    per_key: Mutex<HashMap<String, u32>>,
    last_request: Mutex<Option<Value>>,
}

/// A copy of the counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StatsSnapshot {
    /// Completion requests received.
    pub requests: u64,
    /// Responses whose body was sent completely.
    pub completed: u64,
    /// Response bodies abandoned before the end because the client went
    /// away (dropped its stream / closed the connection).
    pub cancelled: u64,
    /// Connections aborted by the `drop_after` fault.
    pub dropped: u64,
    /// Responses that hit the `stall` fault.
    pub stalled: u64,
    /// Requests answered with an injected error status.
    pub status_faults: u64,
}

/// Counters of the embeddings endpoint (kept apart from [`StatsSnapshot`],
/// whose fields callers construct).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EmbeddingStats {
    /// `POST /v1/embeddings` requests received (including failed ones).
    pub requests: u64,
    /// Input texts in those requests.
    pub inputs: u64,
}

impl Stats {
    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::SeqCst);
        StatsSnapshot {
            requests: get(&self.requests),
            completed: get(&self.completed),
            cancelled: get(&self.cancelled),
            dropped: get(&self.dropped),
            stalled: get(&self.stalled),
            status_faults: get(&self.status_faults),
        }
    }

    /// Counters of `POST /v1/embeddings`.
    pub fn embedding_snapshot(&self) -> EmbeddingStats {
        EmbeddingStats {
            requests: self.embedding_requests.load(Ordering::SeqCst),
            inputs: self.embedding_inputs.load(Ordering::SeqCst),
        }
    }

    /// The JSON body of the most recent completion or embeddings request.
    pub fn last_request(&self) -> Option<Value> {
        self.last_request.lock().ok().and_then(|g| g.clone())
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::SeqCst);
}

struct AppState {
    config: MockConfig,
    stats: Arc<Stats>,
}

/// Builds the server on `listener` (one worker, no signal handling). Await
/// or spawn the returned [`Server`] inside a Tokio runtime.
pub fn server(listener: TcpListener, config: MockConfig) -> std::io::Result<(Server, Arc<Stats>)> {
    let stats = Arc::new(Stats::default());
    let state = web::Data::new(AppState {
        config,
        stats: Arc::clone(&stats),
    });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(web::JsonConfig::default().limit(16 << 20))
            .route("/v1/chat/completions", web::post().to(openai))
            .route("/v1/messages", web::post().to(anthropic))
            .route("/v1/embeddings", web::post().to(embeddings::handler))
            .route("/__stats", web::get().to(stats_handler))
            .route("/__last_request", web::get().to(last_request_handler))
    })
    .workers(1)
    // Abort as soon as the client closes its side, so a client that drops a
    // *stalled* stream (no writes that could fail) is still noticed and
    // counted as `cancelled`.
    .h1_allow_half_closed(false)
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)?
    .run();
    Ok((server, stats))
}

/// A mock running in the background on `127.0.0.1` and a free port.
pub struct MockServer {
    url: String,
    stats: Arc<Stats>,
    handle: ServerHandle,
}

impl MockServer {
    /// Starts a mock on a free loopback port; must be called inside a Tokio
    /// runtime.
    pub fn start(config: MockConfig) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let url = format!("http://{}", listener.local_addr()?);
        let (server, stats) = server(listener, config)?;
        let handle = server.handle();
        tokio::spawn(server);
        Ok(Self { url, stats, handle })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Base URL for an OpenAI-compatible client (`…/v1`).
    pub fn openai_base_url(&self) -> String {
        format!("{}/v1", self.url)
    }

    /// Base URL for an Anthropic client (the host).
    pub fn anthropic_base_url(&self) -> String {
        self.url.clone()
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    pub fn last_request(&self) -> Option<Value> {
        self.stats.last_request()
    }

    /// Counters of `POST /v1/embeddings`.
    pub fn embedding_stats(&self) -> EmbeddingStats {
        self.stats.embedding_snapshot()
    }

    /// Stops the server (in-flight responses are dropped).
    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}

async fn stats_handler(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(state.stats.snapshot())
}

async fn last_request_handler(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(state.stats.last_request().unwrap_or(Value::Null))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Api {
    OpenAi,
    Anthropic,
}

/// What the mock needs from a request, whatever its format.
struct Parsed {
    model: String,
    stream: bool,
    include_usage: bool,
    input_words: u64,
    tools: Vec<String>,
    ends_with_tool_result: bool,
}

fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// Words of a content value: a string, or an array of blocks with `text`
/// (or, for tool results, nested `content`).
fn content_words(content: &Value) -> u64 {
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

fn parse_request(api: Api, body: &Value) -> Parsed {
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let mut input_words: u64 = messages.iter().map(|m| content_words(&m["content"])).sum();
    let (tools, ends_with_tool_result) = match api {
        Api::OpenAi => (
            body["tools"]
                .as_array()
                .map(|t| {
                    t.iter()
                        .filter_map(|t| t["function"]["name"].as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            messages.last().is_some_and(|m| m["role"] == "tool"),
        ),
        Api::Anthropic => {
            input_words += content_words(&body["system"]);
            (
                body["tools"]
                    .as_array()
                    .map(|t| {
                        t.iter()
                            .filter_map(|t| t["name"].as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
                messages.last().is_some_and(|m| {
                    m["content"]
                        .as_array()
                        .is_some_and(|b| b.iter().any(|b| b["type"] == "tool_result"))
                }),
            )
        }
    };
    Parsed {
        model: body["model"].as_str().unwrap_or_default().to_string(),
        stream: body["stream"].as_bool().unwrap_or(false),
        include_usage: body["stream_options"]["include_usage"]
            .as_bool()
            .unwrap_or(false),
        input_words,
        tools,
        ends_with_tool_result,
    }
}

pub(crate) fn error_response(api: Api, status: u16, message: &str) -> HttpResponse {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let message = format!("{ERROR_BODY_MARKER}: {message}");
    let body = match api {
        Api::OpenAi => {
            json!({"error": {"message": message, "type": "mock_error", "code": status.as_u16()}})
        }
        Api::Anthropic => {
            json!({"type": "error", "error": {"type": "api_error", "message": message}})
        }
    };
    HttpResponse::build(status).json(body)
}

async fn openai(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<Value>,
) -> HttpResponse {
    handle(Api::OpenAi, &state, &req, body.into_inner())
}

async fn anthropic(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<Value>,
) -> HttpResponse {
    handle(Api::Anthropic, &state, &req, body.into_inner())
}

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

fn handle(api: Api, state: &AppState, req: &HttpRequest, body: Value) -> HttpResponse {
    let stats = &state.stats;
    bump(&stats.requests);
    if let Ok(mut last) = stats.last_request.lock() {
        *last = Some(body.clone());
    }

    if let Some(denied) = check_auth(api, state, req) {
        return denied;
    }
    if api == Api::Anthropic && header(req, "anthropic-version").is_none() {
        return error_response(api, 400, "anthropic-version header required");
    }

    let parsed = parse_request(api, &body);
    let (knobs, fault) = match request_knobs(api, state, req, &parsed.model) {
        Ok(k) => k,
        Err(response) => return *response,
    };
    if let Fault::Status(code) = fault {
        bump(&stats.status_faults);
        return error_response(api, code, "injected fault");
    }

    let reply = if !knobs.tool.is_empty() && !parsed.ends_with_tool_result {
        if !parsed.tools.contains(&knobs.tool) {
            return error_response(api, 400, "the scripted tool is not offered by the request");
        }
        Reply::tool(&knobs, api)
    } else {
        Reply::text(&knobs)
    };
    let usage = knobs.usage && (api == Api::Anthropic || !parsed.stream || parsed.include_usage);
    let script = Script {
        api,
        model: parsed.model.clone(),
        input_tokens: parsed.input_words,
        usage,
        reply,
    };
    let frames = if parsed.stream {
        script.stream_frames()
    } else {
        script.full_frames()
    };
    let body = body_stream(frames, knobs, fault, parsed.stream, Arc::clone(stats));
    let content_type = if parsed.stream {
        "text/event-stream"
    } else {
        "application/json"
    };
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(("cache-control", "no-cache"))
        .streaming(body)
}

/// Answers 401 unless the request carries the configured key (OpenAI:
/// `Authorization: Bearer`, Anthropic: `x-api-key`).
fn check_auth(api: Api, state: &AppState, req: &HttpRequest) -> Option<HttpResponse> {
    let key = state.config.api_key.as_ref()?;
    let ok = match api {
        Api::OpenAi => header(req, "authorization") == Some(format!("Bearer {key}").as_str()),
        Api::Anthropic => header(req, "x-api-key") == Some(key.as_str()),
    };
    (!ok).then(|| error_response(api, 401, "invalid api key (the mock's secret error body)"))
}

/// The knobs for one request (server defaults, then `x-mock-*` headers, then
/// the model name's query) and the fault to apply after `fail_first`.
fn request_knobs(
    api: Api,
    state: &AppState,
    req: &HttpRequest,
    model: &str,
) -> Result<(Knobs, Fault), Box<HttpResponse>> {
    let stats = &state.stats;
    let mut knobs = state.config.knobs.clone();
    let mut overrides: Vec<(String, String)> = req
        .headers()
        .iter()
        .filter_map(|(name, value)| {
            let knob = name.as_str().strip_prefix("x-mock-")?;
            Some((knob.to_string(), value.to_str().ok()?.to_string()))
        })
        .collect();
    overrides.sort();
    for (name, value) in &overrides {
        if let Err(e) = knobs.set(name, value) {
            return Err(Box::new(error_response(api, 400, &e)));
        }
    }
    if let Some((_, query)) = model.split_once('?') {
        if let Err(e) = knobs.apply_query(query) {
            return Err(Box::new(error_response(api, 400, &e)));
        }
    }

    let mut fault = knobs.fault;
    if fault != Fault::None && knobs.fail_first > 0 {
        let key = if knobs.key.is_empty() {
            model.to_string()
        } else {
            knobs.key.clone()
        };
        let seen = stats
            .per_key
            .lock()
            .map(|mut map| {
                let n = map.entry(key).or_default();
                *n += 1;
                *n
            })
            .unwrap_or(1);
        if seen > knobs.fail_first {
            fault = Fault::None;
        }
    }
    Ok((knobs, fault))
}

enum Reply {
    Text(Vec<String>, u64),
    Tool {
        id: String,
        name: String,
        pieces: Vec<String>,
    },
}

/// Splits `text` into pieces of `size` chars (the last may be shorter).
fn split_chars(text: &str, size: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars
        .chunks(size.max(1))
        .map(|c| c.iter().collect())
        .collect()
}

impl Reply {
    fn text(knobs: &Knobs) -> Self {
        let words: Vec<String> = (0..knobs.chunks).map(|i| format!("token{i} ")).collect();
        let pieces = if knobs.chunk_chars == 0 {
            words
        } else {
            split_chars(&words.concat(), knobs.chunk_chars)
        };
        Reply::Text(pieces, u64::from(knobs.chunks))
    }

    fn tool(knobs: &Knobs, api: Api) -> Self {
        let args = &knobs.tool_args;
        let n = (knobs.arg_pieces.max(1) as usize).min(args.chars().count().max(1));
        let size = args.chars().count().div_ceil(n);
        Reply::Tool {
            id: match api {
                Api::OpenAi => "call_mock_0".to_string(),
                Api::Anthropic => "toolu_mock_0".to_string(),
            },
            name: knobs.tool.clone(),
            pieces: split_chars(args, size),
        }
    }

    fn output_tokens(&self) -> u64 {
        match self {
            Reply::Text(_, n) => *n,
            Reply::Tool { pieces, .. } => pieces.len() as u64,
        }
    }
}

/// One unit of a response body. Faults and delays count `Content` frames.
enum Frame {
    Head(Bytes),
    Content(Bytes),
    Tail(Bytes),
}

struct Script {
    api: Api,
    model: String,
    input_tokens: u64,
    usage: bool,
    reply: Reply,
}

fn sse(event: Option<&str>, data: &Value) -> Bytes {
    match event {
        Some(event) => Bytes::from(format!("event: {event}\ndata: {data}\n\n")),
        None => Bytes::from(format!("data: {data}\n\n")),
    }
}

impl Script {
    fn stream_frames(&self) -> Vec<Frame> {
        match self.api {
            Api::OpenAi => self.openai_stream(),
            Api::Anthropic => self.anthropic_stream(),
        }
    }

    fn openai_chunk(&self, delta: Value, finish: Option<&str>) -> Bytes {
        sse(
            None,
            &json!({
                "id": "chatcmpl-mock",
                "object": "chat.completion.chunk",
                "model": self.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }),
        )
    }

    fn openai_stream(&self) -> Vec<Frame> {
        let mut frames = vec![Frame::Head(
            self.openai_chunk(json!({"role": "assistant", "content": ""}), None),
        )];
        let finish = match &self.reply {
            Reply::Text(pieces, _) => {
                frames.extend(
                    pieces
                        .iter()
                        .map(|p| Frame::Content(self.openai_chunk(json!({"content": p}), None))),
                );
                "stop"
            }
            Reply::Tool { id, name, pieces } => {
                for (i, piece) in pieces.iter().enumerate() {
                    let call = if i == 0 {
                        json!({"index": 0, "id": id, "type": "function", "function": {"name": name, "arguments": piece}})
                    } else {
                        json!({"index": 0, "function": {"arguments": piece}})
                    };
                    frames.push(Frame::Content(
                        self.openai_chunk(json!({"tool_calls": [call]}), None),
                    ));
                }
                "tool_calls"
            }
        };
        frames.push(Frame::Tail(self.openai_chunk(json!({}), Some(finish))));
        if self.usage {
            let out = self.reply.output_tokens();
            frames.push(Frame::Tail(sse(
                None,
                &json!({
                    "id": "chatcmpl-mock",
                    "object": "chat.completion.chunk",
                    "model": self.model,
                    "choices": [],
                    "usage": {"prompt_tokens": self.input_tokens, "completion_tokens": out, "total_tokens": self.input_tokens + out},
                }),
            )));
        }
        frames.push(Frame::Tail(Bytes::from_static(b"data: [DONE]\n\n")));
        frames
    }

    fn anthropic_stream(&self) -> Vec<Frame> {
        let mut message = json!({
            "id": "msg_mock", "type": "message", "role": "assistant", "model": self.model,
            "content": [], "stop_reason": null, "stop_sequence": null,
        });
        if self.usage {
            message["usage"] = json!({"input_tokens": self.input_tokens, "output_tokens": 1});
        }
        let mut frames = vec![
            Frame::Head(sse(
                Some("message_start"),
                &json!({"type": "message_start", "message": message}),
            )),
            Frame::Head(sse(Some("ping"), &json!({"type": "ping"}))),
        ];
        let delta = |d: Value| {
            sse(
                Some("content_block_delta"),
                &json!({"type": "content_block_delta", "index": 0, "delta": d}),
            )
        };
        let (block, stop_reason) = match &self.reply {
            Reply::Text(pieces, _) => {
                let block = json!({"type": "text", "text": ""});
                let deltas: Vec<Frame> = pieces
                    .iter()
                    .map(|p| Frame::Content(delta(json!({"type": "text_delta", "text": p}))))
                    .collect();
                ((block, deltas), "end_turn")
            }
            Reply::Tool { id, name, pieces } => {
                let block = json!({"type": "tool_use", "id": id, "name": name, "input": {}});
                let deltas: Vec<Frame> = pieces
                    .iter()
                    .map(|p| {
                        Frame::Content(delta(
                            json!({"type": "input_json_delta", "partial_json": p}),
                        ))
                    })
                    .collect();
                ((block, deltas), "tool_use")
            }
        };
        frames.push(Frame::Head(sse(
            Some("content_block_start"),
            &json!({"type": "content_block_start", "index": 0, "content_block": block.0}),
        )));
        frames.extend(block.1);
        frames.push(Frame::Tail(sse(
            Some("content_block_stop"),
            &json!({"type": "content_block_stop", "index": 0}),
        )));
        let mut message_delta = json!({
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": null},
        });
        if self.usage {
            message_delta["usage"] = json!({"output_tokens": self.reply.output_tokens()});
        }
        frames.push(Frame::Tail(sse(Some("message_delta"), &message_delta)));
        frames.push(Frame::Tail(sse(
            Some("message_stop"),
            &json!({"type": "message_stop"}),
        )));
        frames
    }

    /// A non-streaming response, cut in two `Content` halves so that
    /// `drop_after:1` / `stall_after:1` can break it in the middle.
    fn full_frames(&self) -> Vec<Frame> {
        let out = self.reply.output_tokens();
        let body = match (self.api, &self.reply) {
            (Api::OpenAi, reply) => {
                let message = match reply {
                    Reply::Text(pieces, _) => {
                        json!({"role": "assistant", "content": pieces.concat()})
                    }
                    Reply::Tool { id, name, pieces } => json!({
                        "role": "assistant", "content": null,
                        "tool_calls": [{"id": id, "type": "function", "function": {"name": name, "arguments": pieces.concat()}}],
                    }),
                };
                let finish = if matches!(reply, Reply::Tool { .. }) {
                    "tool_calls"
                } else {
                    "stop"
                };
                let mut body = json!({
                    "id": "chatcmpl-mock", "object": "chat.completion", "model": self.model,
                    "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                });
                if self.usage {
                    body["usage"] = json!({"prompt_tokens": self.input_tokens, "completion_tokens": out, "total_tokens": self.input_tokens + out});
                }
                body
            }
            (Api::Anthropic, reply) => {
                let (content, stop) = match reply {
                    Reply::Text(pieces, _) => (
                        json!([{"type": "text", "text": pieces.concat()}]),
                        "end_turn",
                    ),
                    Reply::Tool { id, name, pieces } => {
                        let input: Value =
                            serde_json::from_str(&pieces.concat()).unwrap_or_else(|_| json!({}));
                        (
                            json!([{"type": "tool_use", "id": id, "name": name, "input": input}]),
                            "tool_use",
                        )
                    }
                };
                let mut body = json!({
                    "id": "msg_mock", "type": "message", "role": "assistant", "model": self.model,
                    "content": content, "stop_reason": stop, "stop_sequence": null,
                });
                if self.usage {
                    body["usage"] =
                        json!({"input_tokens": self.input_tokens, "output_tokens": out});
                }
                body
            }
        };
        let text = body.to_string();
        let (a, b) = text.split_at(text.len() / 2);
        vec![
            Frame::Content(Bytes::from(a.to_string())),
            Frame::Content(Bytes::from(b.to_string())),
        ]
    }
}

/// Counts a response body as cancelled if it is dropped before its end.
struct CancelGuard {
    stats: Arc<Stats>,
    done: bool,
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        if !self.done {
            bump(&self.stats.cancelled);
        }
    }
}

/// Plays `frames` with the knobs' timing and `fault`.
fn body_stream(
    frames: Vec<Frame>,
    knobs: Knobs,
    fault: Fault,
    streaming: bool,
    stats: Arc<Stats>,
) -> BoxStream<'static, Result<Bytes, std::io::Error>> {
    async_stream::stream! {
        let mut guard = CancelGuard { stats: Arc::clone(&stats), done: false };
        let mut sent = 0u32;
        let mut first_content = true;
        if !streaming {
            // Non-streaming: the whole "generation" happens before the body.
            tokio::time::sleep(Duration::from_millis(knobs.ttft_ms)).await;
            first_content = false;
        }
        for frame in frames {
            let bytes = match frame {
                Frame::Head(bytes) | Frame::Tail(bytes) => bytes,
                Frame::Content(bytes) => {
                    match fault {
                        Fault::DropAfter(n) if sent >= n => {
                            // actix flushes its write buffer only when the body is
                            // pending; without this pause the pieces already "sent"
                            // would be discarded together with the connection.
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            bump(&stats.dropped);
                            guard.done = true;
                            yield Err(std::io::Error::other("mock: dropping the connection"));
                            return;
                        }
                        Fault::StallAfter(n) if sent >= n => {
                            bump(&stats.stalled);
                            futures_util::future::pending::<()>().await;
                        }
                        _ => {}
                    }
                    let delay = if first_content { knobs.ttft_ms } else if streaming { knobs.gap_ms } else { 0 };
                    first_content = false;
                    if delay > 0 {
                        tokio::time::sleep(Duration::from_millis(delay)).await;
                    }
                    sent += 1;
                    bytes
                }
            };
            yield Ok(bytes);
        }
        guard.done = true;
        bump(&stats.completed);
    }
    .boxed()
}
