//! Remote model providers: the OpenAI-compatible Chat Completions API and
//! the Anthropic Messages API.
//!
//! Both share one driver ([`drive`]): it sends the request, turns an HTTP
//! error status into an [`LlmError`] *without reading the body*, feeds SSE
//! events (or the one JSON body of a non-streaming call) to a per-format
//! [`WireParser`], and turns the parser's [`Wire`] items into
//! [`ModelEvent`]s. The driver, not the parsers, owns usage: providers
//! report input and output tokens at different moments (OpenAI in a final
//! chunk, Anthropic split over `message_start` and `message_delta`), so the
//! driver collects them and sends one `Usage` just before `Done`, counting
//! with [`crate::tokens`] (and marking it `estimated`) whatever the provider
//! did not report.
//!
//! # Secrets
//! Error bodies are never read and API keys live in [`ApiKey`], whose
//! `Debug` is redacted. Logs carry the provider, the status code and a short
//! classification only.

use std::fmt;
use std::time::Duration;

use eventsource_stream::{EventStreamError, Eventsource};
use futures_util::stream::{BoxStream, StreamExt};
use reqwest::header::HeaderMap;
use reqwest::StatusCode;

use crate::model::{ChatMessage, LlmError, ModelEvent, ToolCall, ToolSpec, Usage};
use crate::tokens;

pub mod anthropic;
pub mod openai;

/// An API key. `Debug` prints `ApiKey(<redacted>)`; there is no `Display`.
#[derive(Clone)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// Where and how to reach one upstream model.
#[derive(Clone, Debug)]
pub struct ProviderConfig {
    /// OpenAI: up to and including the version, e.g.
    /// `https://api.openai.com/v1` (requests go to `{base_url}/chat/completions`).
    /// Anthropic: the host, e.g. `https://api.anthropic.com` (requests go to
    /// `{base_url}/v1/messages`). A trailing `/` is ignored.
    pub base_url: String,
    /// `None` sends no credentials (local OpenAI-compatible servers such as
    /// Ollama or vLLM).
    pub api_key: Option<ApiKey>,
    /// The provider's model name, e.g. `gpt-4o-mini`.
    pub upstream_model: String,
    /// Use the streaming API (SSE). With `false` the whole reply arrives as
    /// one JSON body and is then emitted as the same events.
    pub stream: bool,
    /// TCP + TLS connect timeout.
    pub connect_timeout: Duration,
}

impl ProviderConfig {
    pub fn new(base_url: impl Into<String>, upstream_model: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            api_key: None,
            upstream_model: upstream_model.into(),
            stream: true,
            connect_timeout: Duration::from_secs(10),
        }
    }

    pub fn with_api_key(mut self, key: ApiKey) -> Self {
        self.api_key = Some(key);
        self
    }

    pub fn with_stream(mut self, stream: bool) -> Self {
        self.stream = stream;
        self
    }

    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url.trim_end_matches('/'))
    }

    pub(crate) fn client(&self) -> Result<reqwest::Client, LlmError> {
        reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|_| LlmError::InvalidRequest("the HTTP client could not be built".into()))
    }
}

/// What a wire parser extracts from the provider's output.
#[derive(Debug, PartialEq)]
pub(crate) enum Wire {
    Delta(String),
    ToolCall(ToolCall),
    InputTokens(u64),
    OutputTokens(u64),
    /// The provider's stop reason, already in OpenAI vocabulary.
    Finish(String),
    /// The provider's end-of-stream marker (`[DONE]`, `message_stop`).
    End,
}

/// Turns one provider's wire format into [`Wire`] items.
pub(crate) trait WireParser: Send + 'static {
    /// One SSE event (`event:` field, `data:` field).
    fn event(&mut self, event: &str, data: &str, out: &mut Vec<Wire>) -> Result<(), LlmError>;
    /// The whole body of a non-streaming response.
    fn full(&mut self, body: &[u8], out: &mut Vec<Wire>) -> Result<(), LlmError>;
    /// Called at the end of the stream: emit anything still buffered
    /// (tool calls whose stop event never came).
    fn flush(&mut self, out: &mut Vec<Wire>);
}

pub(crate) const MALFORMED: LlmError = LlmError::Upstream {
    status: None,
    retryable: false,
    detail: "malformed response from the provider",
};

pub(crate) const BROKE_OFF: LlmError = LlmError::Upstream {
    status: None,
    retryable: true,
    detail: "the provider's stream ended unexpectedly",
};

/// Maps a transport error. The `reqwest::Error` itself is dropped: its
/// `Display` includes the URL, which some providers use for credentials.
pub(crate) fn transport_error(provider: &'static str, e: &reqwest::Error) -> LlmError {
    let error = if e.is_timeout() {
        LlmError::Timeout
    } else if e.is_connect() {
        LlmError::Connect
    } else {
        BROKE_OFF
    };
    tracing::warn!(provider, class = %error, "provider transport error");
    error
}

/// Maps an HTTP error status; the body is not read.
pub(crate) fn status_error(
    provider: &'static str,
    status: StatusCode,
    headers: &HeaderMap,
) -> LlmError {
    let code = status.as_u16();
    let error = match code {
        429 => LlmError::RateLimited {
            retry_after: headers
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs),
        },
        408 => LlmError::Upstream {
            status: Some(code),
            retryable: true,
            detail: "the provider timed out the request",
        },
        401 | 403 => LlmError::Upstream {
            status: Some(code),
            retryable: false,
            detail: "the provider rejected the credentials",
        },
        500..=599 => LlmError::Upstream {
            status: Some(code),
            retryable: true,
            detail: "the provider failed",
        },
        _ => LlmError::Upstream {
            status: Some(code),
            retryable: false,
            detail: "the provider rejected the request",
        },
    };
    tracing::warn!(provider, status = code, class = %error, "provider returned an error status");
    error
}

/// Tracks output and reported usage of one generation.
struct Tally {
    messages: Vec<ChatMessage>,
    tools: Vec<ToolSpec>,
    text: String,
    tool_text: String,
    input: Option<u64>,
    output: Option<u64>,
    finish: Option<String>,
}

impl Tally {
    fn has_output(&self) -> bool {
        !self.text.is_empty() || !self.tool_text.is_empty()
    }

    fn usage(&self) -> Usage {
        let input = self.input.unwrap_or_else(|| {
            let tools: u64 = self
                .tools
                .iter()
                .map(|t| {
                    tokens::count(&t.name)
                        + tokens::count(&t.description)
                        + tokens::count(&t.parameters.to_string())
                })
                .sum();
            tokens::count_messages(&self.messages) + tools
        });
        let output = self
            .output
            .unwrap_or_else(|| tokens::count(&self.text) + tokens::count(&self.tool_text));
        Usage {
            input_tokens: input,
            output_tokens: output,
            estimated: self.input.is_none() || self.output.is_none(),
        }
    }

    /// Records `item`; returns the event to yield, if any.
    fn observe(&mut self, item: Wire) -> Option<ModelEvent> {
        match item {
            Wire::Delta(text) if text.is_empty() => None,
            Wire::Delta(text) => {
                self.text.push_str(&text);
                Some(ModelEvent::Delta(text))
            }
            Wire::ToolCall(call) => {
                self.tool_text.push_str(&call.name);
                self.tool_text.push_str(&call.arguments);
                Some(ModelEvent::ToolCall(call))
            }
            Wire::InputTokens(n) => {
                self.input = Some(n);
                None
            }
            Wire::OutputTokens(n) => {
                self.output = Some(n);
                None
            }
            Wire::Finish(reason) => {
                self.finish = Some(reason);
                None
            }
            Wire::End => None,
        }
    }
}

/// Sends `request` and streams the reply through `parser`; see the module
/// docs. Dropping the returned stream drops the response and so closes the
/// connection, which is how the upstream request is cancelled.
pub(crate) fn drive<P: WireParser>(
    provider: &'static str,
    request: reqwest::RequestBuilder,
    mut parser: P,
    streaming: bool,
    messages: Vec<ChatMessage>,
    tools: Vec<ToolSpec>,
) -> BoxStream<'static, Result<ModelEvent, LlmError>> {
    let mut tally = Tally {
        messages,
        tools,
        text: String::new(),
        tool_text: String::new(),
        input: None,
        output: None,
        finish: None,
    };
    async_stream::stream! {
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => {
                yield Err(transport_error(provider, &e));
                return;
            }
        };
        let status = response.status();
        if !status.is_success() {
            yield Err(status_error(provider, status, response.headers()));
            return;
        }
        let mut items = Vec::new();
        let mut failure = None;
        if streaming {
            let mut events = response.bytes_stream().eventsource();
            let mut ended = false;
            while !ended {
                let event = match events.next().await {
                    None => break,
                    Some(Ok(event)) => event,
                    Some(Err(EventStreamError::Transport(e))) => {
                        failure = Some(transport_error(provider, &e));
                        break;
                    }
                    Some(Err(_)) => {
                        failure = Some(MALFORMED);
                        break;
                    }
                };
                if let Err(e) = parser.event(&event.event, &event.data, &mut items) {
                    failure = Some(e);
                    break;
                }
                for item in items.drain(..) {
                    ended |= item == Wire::End;
                    if let Some(event) = tally.observe(item) {
                        yield Ok(event);
                    }
                }
            }
            if failure.is_none() && !ended && tally.finish.is_none() {
                tracing::warn!(provider, "provider stream ended without an end marker");
                failure = Some(BROKE_OFF);
            }
        } else {
            match response.bytes().await {
                Ok(body) => {
                    if let Err(e) = parser.full(&body, &mut items) {
                        failure = Some(e);
                    }
                }
                Err(e) => failure = Some(transport_error(provider, &e)),
            }
        }
        if let Some(error) = failure {
            if tally.has_output() {
                yield Ok(ModelEvent::Usage(tally.usage()));
            }
            yield Err(error);
            return;
        }
        parser.flush(&mut items);
        for item in items.drain(..) {
            if let Some(event) = tally.observe(item) {
                yield Ok(event);
            }
        }
        yield Ok(ModelEvent::Usage(tally.usage()));
        let finish_reason = tally.finish.take().unwrap_or_else(|| "stop".to_string());
        yield Ok(ModelEvent::Done { finish_reason });
    }
    .boxed()
}

/// Parses JSON from a provider, mapping failure to [`MALFORMED`] (the
/// serde error would quote the provider's text).
pub(crate) fn parse_json<'a, T: serde::Deserialize<'a>>(
    provider: &'static str,
    text: &'a [u8],
) -> Result<T, LlmError> {
    serde_json::from_slice(text).map_err(|_| {
        tracing::warn!(provider, "could not parse the provider's JSON");
        MALFORMED
    })
}

/// Decodes `bytes` as a provider's streamed reply would be — split into
/// network chunks at `cuts`, through the SSE decoder, then each event
/// through both providers' parsers — and as a non-streaming body; returns
/// how many items came out. For the fuzz targets (`fuzz/`): any input must
/// give an error or items, never a panic.
#[doc(hidden)]
pub fn decode_for_fuzzing(bytes: &[u8], cuts: &[u8]) -> usize {
    use futures_util::FutureExt;

    let mut chunks: Vec<&[u8]> = Vec::new();
    let mut rest = bytes;
    for &cut in cuts {
        if rest.is_empty() {
            break;
        }
        let (head, tail) = rest.split_at(usize::from(cut) % (rest.len() + 1));
        chunks.push(head);
        rest = tail;
    }
    chunks.push(rest);
    let stream = futures_util::stream::iter(
        chunks
            .into_iter()
            .map(Ok::<&[u8], std::convert::Infallible>),
    );
    // Every chunk is ready, so the decoder never waits.
    let Some(events) = stream.eventsource().collect::<Vec<_>>().now_or_never() else {
        return 0;
    };
    let mut out = Vec::new();
    let mut openai = openai::fuzz_parser();
    let mut anthropic = anthropic::fuzz_parser();
    for event in events.into_iter().flatten() {
        let _ = openai.event(&event.event, &event.data, &mut out);
        let _ = anthropic.event(&event.event, &event.data, &mut out);
    }
    openai.flush(&mut out);
    anthropic.flush(&mut out);
    let _ = openai::fuzz_parser().full(bytes, &mut out);
    let _ = anthropic::fuzz_parser().full(bytes, &mut out);
    out.len()
}
