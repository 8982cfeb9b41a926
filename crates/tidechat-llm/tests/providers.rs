//! Providers and the reliability wrapper against the mock upstream
//! (`tidechat-mock-llm`), which speaks the real OpenAI and Anthropic wire
//! formats. Every scenario runs for both providers.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tidechat_llm::{
    tokens, AnthropicProvider, ApiKey, ChainLink, ChatMessage, ChatModel, LlmError, ModelEvent,
    ModelRegistry, ModelRequest, OpenAiProvider, Pricing, ProviderConfig, Resilient, RetryPolicy,
    ToolCall, ToolSpec, Usage,
};
use tidechat_mock_llm::{MockConfig, MockServer, ERROR_BODY_MARKER};

const KEY: &str = "sk-test-very-secret-key-123";
/// 5 + 6 words: the mock's exact input usage for [`request`].
const SYSTEM: &str = "You are a helpful assistant.";
const USER: &str = "How do I reset my password?";
const INPUT_WORDS: u64 = 11;

#[derive(Clone, Copy, Debug)]
enum Api {
    OpenAi,
    Anthropic,
}

const APIS: [Api; 2] = [Api::OpenAi, Api::Anthropic];

fn mock() -> MockServer {
    MockServer::start(MockConfig {
        api_key: Some(KEY.to_string()),
        ..MockConfig::default()
    })
    .unwrap()
}

fn provider(api: Api, mock: &MockServer, model: &str, stream: bool) -> Arc<dyn ChatModel> {
    provider_with_key(api, mock, model, stream, KEY)
}

fn provider_with_key(
    api: Api,
    mock: &MockServer,
    model: &str,
    stream: bool,
    key: &str,
) -> Arc<dyn ChatModel> {
    let base = match api {
        Api::OpenAi => mock.openai_base_url(),
        Api::Anthropic => mock.anthropic_base_url(),
    };
    let config = ProviderConfig::new(base, model)
        .with_api_key(ApiKey::new(key))
        .with_stream(stream)
        .with_connect_timeout(Duration::from_secs(2));
    match api {
        Api::OpenAi => Arc::new(OpenAiProvider::new(config).unwrap()),
        Api::Anthropic => Arc::new(AnthropicProvider::new(config).unwrap()),
    }
}

fn fast_policy() -> RetryPolicy {
    RetryPolicy {
        max_retries: 2,
        backoff_base: Duration::from_millis(10),
        backoff_max: Duration::from_millis(100),
        first_token_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(5),
    }
}

fn link(id: &str, model: Arc<dyn ChatModel>, policy: RetryPolicy) -> ChainLink {
    ChainLink {
        id: id.to_string(),
        model,
        pricing: Pricing::new(1.0, 2.0),
        max_output_tokens: 4096,
        policy,
    }
}

fn request() -> ModelRequest {
    ModelRequest::new(vec![ChatMessage::system(SYSTEM), ChatMessage::user(USER)])
        .with_max_output_tokens(256)
}

fn faq_tool() -> ToolSpec {
    ToolSpec {
        name: "faq_search".into(),
        description: "Search the FAQ".into(),
        parameters: serde_json::json!({"type": "object", "properties": {"q": {"type": "string"}}}),
    }
}

/// Everything a stream produced.
#[derive(Debug, Default)]
struct Run {
    events: Vec<ModelEvent>,
    error: Option<LlmError>,
}

impl Run {
    fn text(&self) -> String {
        self.events
            .iter()
            .filter_map(|e| match e {
                ModelEvent::Delta(d) => Some(d.as_str()),
                _ => None,
            })
            .collect()
    }

    fn deltas(&self) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e, ModelEvent::Delta(_)))
            .count()
    }

    fn usage(&self) -> Option<&Usage> {
        self.events.iter().find_map(|e| match e {
            ModelEvent::Usage(u) => Some(u),
            _ => None,
        })
    }

    fn tool_calls(&self) -> Vec<&ToolCall> {
        self.events
            .iter()
            .filter_map(|e| match e {
                ModelEvent::ToolCall(c) => Some(c),
                _ => None,
            })
            .collect()
    }

    fn finish(&self) -> Option<&str> {
        match self.events.last() {
            Some(ModelEvent::Done { finish_reason }) => Some(finish_reason),
            _ => None,
        }
    }

    fn model(&self) -> Option<&str> {
        self.events.iter().find_map(|e| match e {
            ModelEvent::Model { id, .. } => Some(id.as_str()),
            _ => None,
        })
    }

    fn fallbacks(&self) -> Vec<(String, String, String)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                ModelEvent::Fallback { from, to, reason } => {
                    Some((from.clone(), to.clone(), reason.clone()))
                }
                _ => None,
            })
            .collect()
    }
}

async fn run(model: &dyn ChatModel, request: ModelRequest) -> Run {
    let mut stream = model.stream(request);
    let mut run = Run::default();
    while let Some(item) = tokio::time::timeout(Duration::from_secs(20), stream.next())
        .await
        .expect("stream hung")
    {
        match item {
            Ok(event) => run.events.push(event),
            Err(e) => {
                run.error = Some(e);
                assert!(stream.next().await.is_none(), "events after an error");
                break;
            }
        }
    }
    run
}

fn words(n: u32) -> String {
    (0..n).map(|i| format!("token{i} ")).collect()
}

#[tokio::test]
async fn streaming_and_non_streaming_text_with_exact_usage() {
    let mock = mock();
    for api in APIS {
        for stream in [true, false] {
            for model in ["mock?chunks=5", "mock?chunks=7&chunk_chars=3"] {
                let p = provider(api, &mock, model, stream);
                let r = run(p.as_ref(), request()).await;
                let n = if model.contains("chunks=5") { 5 } else { 7 };
                assert!(r.error.is_none(), "{api:?} {stream} {:?}", r.error);
                assert_eq!(r.text(), words(n), "{api:?} stream={stream} {model}");
                assert_eq!(
                    r.usage(),
                    Some(&Usage {
                        input_tokens: INPUT_WORDS,
                        output_tokens: u64::from(n),
                        estimated: false
                    }),
                    "{api:?} stream={stream}"
                );
                assert_eq!(r.finish(), Some("stop"));
                assert_eq!(r.model(), None, "bare providers do not name themselves");
                if stream && model.contains("chunk_chars") {
                    assert_eq!(r.deltas(), words(n).len().div_ceil(3));
                }
                if !stream {
                    assert_eq!(r.deltas(), 1);
                }
            }
        }
    }
    // The OpenAI request asked for usage in the stream; Anthropic got a
    // top-level system prompt.
    let p = provider(Api::OpenAi, &mock, "mock", true);
    run(p.as_ref(), request()).await;
    let body = mock.last_request().unwrap();
    assert_eq!(body["stream_options"]["include_usage"], true);
    assert_eq!(body["messages"][0]["role"], "system");
    assert_eq!(body["max_tokens"], 256);
    let p = provider(Api::Anthropic, &mock, "mock", true);
    run(p.as_ref(), request()).await;
    let body = mock.last_request().unwrap();
    assert_eq!(body["system"], SYSTEM);
    assert_eq!(body["messages"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn missing_usage_is_counted_and_marked_estimated() {
    let mock = mock();
    for api in APIS {
        for stream in [true, false] {
            let p = provider(api, &mock, "mock?chunks=4&usage=off", stream);
            let r = run(p.as_ref(), request()).await;
            let req = request();
            assert_eq!(
                r.usage(),
                Some(&Usage {
                    input_tokens: tokens::count_messages(&req.messages),
                    output_tokens: tokens::count(&words(4)),
                    estimated: true,
                }),
                "{api:?} stream={stream}"
            );
        }
    }
}

#[tokio::test]
async fn tool_call_streamed_in_pieces_then_answer_after_result() {
    let mock = mock();
    let args = r#"{"q":"reset password","limit":3}"#;
    let model = format!(
        "mock?tool=faq_search&arg_pieces=4&chunks=3&tool_args={}",
        urlencoding::encode(args)
    );
    for api in APIS {
        for stream in [true, false] {
            let p = provider(api, &mock, &model, stream);
            let req = request().with_tools(vec![faq_tool()]);
            let r = run(p.as_ref(), req.clone()).await;
            assert!(r.error.is_none(), "{:?}", r.error);
            let calls = r.tool_calls();
            assert_eq!(calls.len(), 1, "{api:?} stream={stream}: {:?}", r.events);
            let call = calls[0].clone();
            assert_eq!(call.name, "faq_search");
            assert!(!call.id.is_empty());
            let parsed: serde_json::Value = serde_json::from_str(&call.arguments).unwrap();
            assert_eq!(
                parsed,
                serde_json::from_str::<serde_json::Value>(args).unwrap()
            );
            assert_eq!(r.text(), "");
            assert_eq!(r.finish(), Some("tool_calls"));
            assert_eq!(r.usage().unwrap().output_tokens, 4);

            // Second turn: send the result back; the mock now answers in text.
            let mut messages = req.messages.clone();
            messages.push(ChatMessage::assistant_tool_calls("", vec![call.clone()]));
            messages.push(ChatMessage::tool_result(
                &call.id,
                "Open Settings then Security",
            ));
            let r2 = run(
                p.as_ref(),
                ModelRequest {
                    messages,
                    ..req.clone()
                },
            )
            .await;
            assert_eq!(r2.text(), words(3), "{api:?} stream={stream}");
            assert_eq!(r2.finish(), Some("stop"));
            assert_eq!(r2.usage().unwrap().input_tokens, INPUT_WORDS + 4);
            let body = mock.last_request().unwrap();
            match api {
                Api::OpenAi => {
                    assert_eq!(body["tools"][0]["function"]["name"], "faq_search");
                    assert_eq!(body["messages"][2]["tool_calls"][0]["id"], call.id.as_str());
                    assert_eq!(body["messages"][3]["tool_call_id"], call.id.as_str());
                }
                Api::Anthropic => {
                    assert_eq!(body["tools"][0]["input_schema"]["type"], "object");
                    assert_eq!(body["messages"][1]["content"][0]["type"], "tool_use");
                    assert_eq!(body["messages"][1]["content"][0]["input"]["limit"], 3);
                    assert_eq!(
                        body["messages"][2]["content"][0]["tool_use_id"],
                        call.id.as_str()
                    );
                }
            }
        }
    }
    // A tool the request does not offer is the mock's 400: not retryable.
    let p = provider(Api::OpenAi, &mock, &model, true);
    let r = run(p.as_ref(), request()).await;
    assert!(matches!(
        r.error,
        Some(LlmError::Upstream {
            status: Some(400),
            retryable: false,
            ..
        })
    ));
}

#[tokio::test]
async fn rate_limit_is_retried_until_success() {
    for api in APIS {
        let mock = mock();
        let p = provider(
            api,
            &mock,
            "mock?fault=status:429&fail_first=2&chunks=3",
            true,
        );
        let r = run(
            &Resilient::new(link("primary", p, fast_policy())),
            request(),
        )
        .await;
        assert!(r.error.is_none(), "{api:?}: {:?}", r.error);
        assert_eq!(r.text(), words(3));
        assert_eq!(r.model(), Some("primary"));
        assert!(
            matches!(r.events[0], ModelEvent::Model { .. }),
            "Model comes first"
        );
        assert!(r.fallbacks().is_empty());
        assert_eq!(mock.stats().requests, 3, "{api:?}");
        assert_eq!(mock.stats().status_faults, 2);
    }
}

#[tokio::test]
async fn server_errors_fall_back_to_the_next_model() {
    for api in APIS {
        let mock = mock();
        let primary = provider(api, &mock, "mock?fault=status:500", true);
        let backup = provider(api, &mock, "mock?chunks=2", true);
        let policy = RetryPolicy {
            max_retries: 1,
            ..fast_policy()
        };
        let chain = Resilient::new(link("primary", primary, policy)).with_fallback(ChainLink {
            pricing: Pricing::new(3.0, 4.0),
            ..link("backup", backup, fast_policy())
        });
        assert_eq!(chain.chain_ids(), vec!["primary", "backup"]);
        let r = run(&chain, request()).await;
        assert!(r.error.is_none(), "{:?}", r.error);
        assert_eq!(
            r.fallbacks(),
            vec![(
                "primary".to_string(),
                "backup".to_string(),
                "upstream model error (HTTP 500): the provider failed".to_string()
            )]
        );
        let model_event = r
            .events
            .iter()
            .find(|e| matches!(e, ModelEvent::Model { .. }));
        assert_eq!(
            model_event,
            Some(&ModelEvent::Model {
                id: "backup".into(),
                pricing: Pricing::new(3.0, 4.0)
            })
        );
        assert_eq!(r.text(), words(2));
        assert_eq!(r.usage().unwrap().output_tokens, 2);
        // 1 try + 1 retry on the primary, then the backup.
        assert_eq!(mock.stats().requests, 3, "{api:?}");

        // Every model failing ends with the last error, and nothing else.
        let failing = provider(api, &mock, "mock?fault=status:503", true);
        let chain = Resilient::new(link("a", failing.clone(), policy_no_retry()))
            .with_fallback(link("b", failing, policy_no_retry()));
        let r = run(&chain, request()).await;
        assert_eq!(
            r.error.as_ref().and_then(LlmError::upstream_status),
            Some(503)
        );
        assert_eq!(r.model(), None);
        assert_eq!(r.usage(), None);
    }
}

#[tokio::test]
async fn connection_refused_is_retried_then_falls_back() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let mock = mock();
    for api in APIS {
        let config = ProviderConfig::new(format!("{dead_url}/v1"), "mock")
            .with_api_key(ApiKey::new(KEY))
            .with_connect_timeout(Duration::from_millis(500));
        let dead: Arc<dyn ChatModel> = match api {
            Api::OpenAi => Arc::new(OpenAiProvider::new(config).unwrap()),
            Api::Anthropic => Arc::new(AnthropicProvider::new(config).unwrap()),
        };
        let r = run(dead.as_ref(), request()).await;
        assert_eq!(r.error, Some(LlmError::Connect), "{api:?}");
        let backup = provider(api, &mock, "mock?chunks=1", true);
        let chain = Resilient::new(link("dead", dead, fast_policy())).with_fallback(link(
            "backup",
            backup,
            fast_policy(),
        ));
        let r = run(&chain, request()).await;
        assert_eq!(
            r.fallbacks()[0].2,
            "could not connect to the model provider"
        );
        assert_eq!(r.model(), Some("backup"));
        assert_eq!(r.text(), words(1));
    }
}

fn policy_no_retry() -> RetryPolicy {
    RetryPolicy {
        max_retries: 0,
        ..fast_policy()
    }
}

#[tokio::test]
async fn a_drop_after_output_is_an_error_without_retry() {
    for api in APIS {
        let mock = mock();
        let p = provider(api, &mock, "mock?chunks=10&fault=drop_after:3", true);
        let backup = provider(api, &mock, "mock?chunks=2", true);
        let chain = Resilient::new(link("primary", p, fast_policy())).with_fallback(link(
            "backup",
            backup,
            fast_policy(),
        ));
        let r = run(&chain, request()).await;
        let error = r
            .error
            .clone()
            .unwrap_or_else(|| panic!("{api:?}: {:?}", r.events));
        assert_eq!(r.text(), words(3), "{api:?}");
        assert!(r.fallbacks().is_empty());
        assert_eq!(r.model(), Some("primary"));
        // A usage estimate precedes the error so a partial reply is billed.
        let usage = r.usage().unwrap();
        assert!(usage.estimated);
        let input = match api {
            // OpenAI reports usage only at the end: all of it is estimated.
            Api::OpenAi => tokens::count_messages(&request().messages),
            // Anthropic reported input tokens in message_start.
            Api::Anthropic => INPUT_WORDS,
        };
        assert_eq!(usage.input_tokens, input);
        assert_eq!(usage.output_tokens, tokens::count(&words(3)));
        assert!(matches!(r.events[r.events.len() - 1], ModelEvent::Usage(_)));
        assert!(
            error.is_retryable(),
            "a broken stream is retryable in principle"
        );
        let stats = mock.stats();
        assert_eq!(
            (stats.requests, stats.dropped),
            (1, 1),
            "{api:?}: no retry after output"
        );
    }
}

#[tokio::test]
async fn non_streaming_drop_before_output_retries_then_falls_back() {
    for api in APIS {
        let mock = mock();
        let p = provider(api, &mock, "mock?fault=drop_after:1", false);
        let backup = provider(api, &mock, "mock?chunks=2", false);
        let chain = Resilient::new(link("primary", p, fast_policy())).with_fallback(link(
            "backup",
            backup,
            fast_policy(),
        ));
        let r = run(&chain, request()).await;
        assert!(r.error.is_none(), "{:?}", r.error);
        assert_eq!(r.model(), Some("backup"));
        assert_eq!(r.text(), words(2));
        assert_eq!(mock.stats().dropped, 3, "{api:?}: 1 try + 2 retries");
    }
}

#[tokio::test]
async fn a_stall_before_the_first_token_times_out_and_falls_back() {
    for api in APIS {
        for stream in [true, false] {
            let mock = mock();
            let p = provider(api, &mock, "mock?fault=stall", stream);
            let backup = provider(api, &mock, "mock?chunks=2", stream);
            let policy = RetryPolicy {
                first_token_timeout: Duration::from_millis(500),
                ..fast_policy()
            };
            let chain = Resilient::new(link("primary", p, policy)).with_fallback(link(
                "backup",
                backup,
                fast_policy(),
            ));
            let started = Instant::now();
            let r = run(&chain, request()).await;
            assert!(r.error.is_none(), "{:?}", r.error);
            assert!(started.elapsed() < Duration::from_secs(3));
            assert_eq!(
                r.fallbacks(),
                vec![(
                    "primary".into(),
                    "backup".into(),
                    "model request timed out".into()
                )]
            );
            assert_eq!(r.model(), Some("backup"));
            assert_eq!(r.text(), words(2));
            assert_eq!(
                mock.stats().requests,
                2,
                "{api:?}: timeouts are not retried"
            );
        }
    }
}

#[tokio::test]
async fn a_stall_after_output_ends_with_a_timeout() {
    for api in APIS {
        let mock = mock();
        let p = provider(api, &mock, "mock?chunks=10&fault=stall_after:2", true);
        let policy = RetryPolicy {
            idle_timeout: Duration::from_millis(500),
            ..fast_policy()
        };
        let r = run(&Resilient::new(link("primary", p, policy)), request()).await;
        assert_eq!(r.text(), words(2));
        assert_eq!(r.error, Some(LlmError::Timeout));
        assert!(r.usage().unwrap().estimated);
        assert_eq!(mock.stats().requests, 1);
    }
}

async fn wait_for_cancel(mock: &MockServer) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(5);
    while mock.stats().cancelled == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    mock.stats().cancelled
}

#[tokio::test]
async fn dropping_the_stream_cancels_the_upstream_request() {
    for api in APIS {
        let mock = mock();
        let p = provider(api, &mock, "mock?chunks=100000&gap_ms=10", true);
        let chain = Resilient::new(link("primary", p, fast_policy()));
        let mut stream = chain.stream(request());
        let mut deltas = 0;
        while deltas < 3 {
            if let Some(Ok(ModelEvent::Delta(_))) = stream.next().await {
                deltas += 1;
            }
        }
        assert_eq!(mock.stats().cancelled, 0);
        drop(stream);
        assert_eq!(wait_for_cancel(&mock).await, 1, "{api:?}");
        assert_eq!(mock.stats().completed, 0);
    }
}

#[tokio::test]
async fn dropping_a_stalled_stream_cancels_the_upstream_request() {
    let mock = mock();
    let p = provider(
        Api::OpenAi,
        &mock,
        "mock?chunks=10&fault=stall_after:1",
        true,
    );
    let mut stream = p.stream(request());
    assert!(matches!(
        stream.next().await,
        Some(Ok(ModelEvent::Delta(_)))
    ));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(mock.stats().stalled, 1);
    drop(stream);
    assert_eq!(wait_for_cancel(&mock).await, 1);
}

/// Collects everything logged while it is the default subscriber.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn errors_and_logs_never_carry_keys_or_provider_bodies() {
    let logs = LogBuffer::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("tidechat_llm=trace")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let mock = mock();
    let mut errors = Vec::new();
    for api in APIS {
        for stream in [true, false] {
            // Wrong key: the mock answers 401 with a body quoting the key
            // situation; right key + injected faults: 500 and 429 bodies.
            let p = provider_with_key(api, &mock, "mock", stream, "sk-wrong-secret-key-456");
            errors.push(run(p.as_ref(), request()).await.error.unwrap());
            for fault in ["status:500", "status:429", "status:400", "drop_after:1"] {
                let p = provider(api, &mock, &format!("mock?fault={fault}"), stream);
                let chain = Resilient::new(link("m", p, policy_no_retry()));
                errors.push(run(&chain, request()).await.error.unwrap());
            }
        }
    }
    assert!(matches!(
        errors[0],
        LlmError::Upstream {
            status: Some(401),
            retryable: false,
            ..
        }
    ));
    assert!(errors
        .iter()
        .any(|e| matches!(e, LlmError::RateLimited { .. })));
    let config =
        ProviderConfig::new(mock.anthropic_base_url(), "mock").with_api_key(ApiKey::new(KEY));
    let debug = format!("{:?}", AnthropicProvider::new(config).unwrap());
    assert!(debug.contains("redacted"), "{debug}");
    let log = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(log.contains("status=500"), "status codes are logged: {log}");
    for text in errors
        .iter()
        .flat_map(|e| [e.to_string(), format!("{e:?}")])
        .chain([debug, log.clone()])
    {
        for secret in [KEY, "sk-wrong-secret-key-456", ERROR_BODY_MARKER] {
            assert!(!text.contains(secret), "{secret:?} leaked into {text:?}");
        }
    }
    // Errors and our logs carry no URL either (some providers put keys there).
    for text in errors.iter().map(ToString::to_string).chain([log]) {
        assert!(!text.contains("127.0.0.1"), "URL leaked into {text:?}");
    }
}

#[tokio::test]
async fn registry_from_toml_serves_models_through_the_chain() {
    let mock = mock();
    let toml = format!(
        r#"
[[models]]
id = "gpt-mock"
provider = "openai"
base_url = "{openai}"
api_key_env = "MOCK_KEY"
upstream_model = "mock?fault=status:500"
context_window = 8000
max_output_tokens = 1000
input_usd_per_mtok = 0.15
output_usd_per_mtok = 0.6
max_retries = 0
fallbacks = ["claude-mock"]

[[models]]
id = "claude-mock"
provider = "anthropic"
base_url = "{anthropic}"
api_key_env = "MOCK_KEY"
upstream_model = "mock?chunks=6"
context_window = 8000
max_output_tokens = 1000
input_usd_per_mtok = 3.0
output_usd_per_mtok = 15.0
stream = false
retry_base_ms = 10
"#,
        openai = mock.openai_base_url(),
        anthropic = mock.anthropic_base_url()
    );
    let registry = ModelRegistry::from_toml_str_with_env(&toml, |name| {
        (name == "MOCK_KEY").then(|| KEY.to_string())
    })
    .unwrap();
    assert_eq!(registry.ids(), vec!["claude-mock", "faq", "gpt-mock"]);
    let entry = registry.get("gpt-mock").unwrap();
    let r = run(entry.model.as_ref(), request()).await;
    assert!(r.error.is_none(), "{:?}", r.error);
    assert_eq!(r.model(), Some("claude-mock"));
    let pricing = r.events.iter().find_map(|e| match e {
        ModelEvent::Model { pricing, .. } => Some(*pricing),
        _ => None,
    });
    assert_eq!(pricing, Some(Pricing::new(3.0, 15.0)));
    let usage = r.usage().unwrap();
    assert_eq!((usage.input_tokens, usage.output_tokens), (INPUT_WORDS, 6));
    // Priced with the model that answered: 11 * 3 + 6 * 15 = 123 micro-dollars.
    assert_eq!(pricing.unwrap().cost_usd_micros(usage), 123);
    assert_eq!(mock.stats().requests, 2);
}
