//! The model interface: requests, streamed events, errors and the
//! [`ChatModel`] trait every backend (built-in or remote provider) implements.

use futures_util::stream::BoxStream;
use tidechat_domain::Role;

use crate::faq::FaqHit;
use crate::pricing::Pricing;

/// One message of the conversation sent to a model.
///
/// Build it with the constructors, so fields added later get defaults:
/// [`ChatMessage::new`] / [`system`](Self::system) / [`user`](Self::user) /
/// [`assistant`](Self::assistant) for plain text,
/// [`assistant_tool_calls`](Self::assistant_tool_calls) for an assistant turn
/// that called tools and [`tool_result`](Self::tool_result) for the result of
/// one call (role [`Role::Tool`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
    /// Tools the assistant called in this turn (role `Assistant` only).
    pub tool_calls: Vec<ToolCall>,
    /// The call this message answers (role `Tool` only).
    pub tool_call_id: Option<String>,
}

impl ChatMessage {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }

    pub fn system(content: impl Into<String>) -> Self {
        Self::new(Role::System, content)
    }

    pub fn user(content: impl Into<String>) -> Self {
        Self::new(Role::User, content)
    }

    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new(Role::Assistant, content)
    }

    /// An assistant turn that called tools; `text` is whatever text the
    /// model produced alongside the calls (often empty).
    pub fn assistant_tool_calls(text: impl Into<String>, calls: Vec<ToolCall>) -> Self {
        Self {
            tool_calls: calls,
            ..Self::new(Role::Assistant, text)
        }
    }

    /// The result of the tool call `call_id`.
    pub fn tool_result(call_id: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            tool_call_id: Some(call_id.into()),
            ..Self::new(Role::Tool, content)
        }
    }
}

/// A tool the model may call.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// JSON Schema of the arguments object.
    pub parameters: serde_json::Value,
}

/// A complete tool call made by the model.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ToolCall {
    /// Provider-assigned id; echo it in [`ChatMessage::tool_result`].
    pub id: String,
    pub name: String,
    /// The arguments as JSON text, exactly as the model produced them (it
    /// may be invalid JSON if the model misbehaved; `"{}"` when empty).
    pub arguments: String,
}

/// What retrieval over the workspace FAQ found for this turn (computed by the
/// caller with [`crate::FaqIndex`]).
#[derive(Clone, Debug)]
pub struct Retrieval {
    /// Best first.
    pub hits: Vec<FaqHit>,
    /// True when there are no hits or the best hit's confidence is below the
    /// caller's threshold.
    pub out_of_scope: bool,
}

/// Everything a model needs for one turn.
///
/// Construct it with [`ModelRequest::new`] and the `with_*` methods, or a
/// struct literal ending in `..ModelRequest::default()`, so that fields added
/// later do not break callers.
#[derive(Clone, Debug)]
pub struct ModelRequest {
    /// System prompt first, then history, then the new user turn last.
    pub messages: Vec<ChatMessage>,
    pub temperature: f64,
    pub max_output_tokens: u32,
    pub retrieval: Option<Retrieval>,
    /// The persona's out-of-scope answer.
    pub fallback_reply: String,
    /// Tools the model may call; empty means no tool use.
    pub tools: Vec<ToolSpec>,
}

impl Default for ModelRequest {
    /// No messages, temperature 1.0, 1024 output tokens, no retrieval, no
    /// tools, empty fallback reply.
    fn default() -> Self {
        Self {
            messages: Vec::new(),
            temperature: 1.0,
            max_output_tokens: 1024,
            retrieval: None,
            fallback_reply: String::new(),
            tools: Vec::new(),
        }
    }
}

impl ModelRequest {
    pub fn new(messages: Vec<ChatMessage>) -> Self {
        Self {
            messages,
            ..Self::default()
        }
    }

    pub fn with_temperature(mut self, temperature: f64) -> Self {
        self.temperature = temperature;
        self
    }

    pub fn with_max_output_tokens(mut self, max_output_tokens: u32) -> Self {
        self.max_output_tokens = max_output_tokens;
        self
    }

    pub fn with_retrieval(mut self, retrieval: Retrieval) -> Self {
        self.retrieval = Some(retrieval);
        self
    }

    pub fn with_fallback_reply(mut self, fallback_reply: impl Into<String>) -> Self {
        self.fallback_reply = fallback_reply.into();
        self
    }

    pub fn with_tools(mut self, tools: Vec<ToolSpec>) -> Self {
        self.tools = tools;
        self
    }
}

/// Token usage of one generation.
#[derive(Clone, Debug, PartialEq)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// True when the numbers come from our own tokenizer rather than from the
    /// model/provider itself.
    pub estimated: bool,
}

/// One item of a generation stream.
///
/// A well-behaved stream yields, in this order:
///
/// 1. zero or more [`Fallback`](Self::Fallback) notices (only from
///    [`crate::Resilient`]: an earlier model in the chain failed before
///    producing output),
/// 2. at most one [`Model`](Self::Model) naming the model that produces
///    everything that follows (always sent by [`crate::Resilient`], hence by
///    every registry model loaded from TOML; a bare provider or the `faq`
///    model does not send it, and then the answering model is the registry
///    entry the caller picked),
/// 3. any number of [`Delta`](Self::Delta)s and [`ToolCall`](Self::ToolCall)s,
/// 4. at most one [`Usage`](Self::Usage) (may also come before the last
///    delta),
/// 5. one [`Done`](Self::Done).
///
/// An `Err` ends the stream. When an error follows output, the stream sends
/// a `Usage` (usually `estimated`) just before the error so a partial reply
/// can still be billed.
#[derive(Clone, Debug, PartialEq)]
pub enum ModelEvent {
    /// A piece of output text; concatenating all deltas gives the full reply.
    Delta(String),
    /// A complete tool call (arguments fully accumulated). A turn that ends
    /// with `Done { finish_reason: "tool_calls" }` expects the caller to run
    /// the calls and send the results back with [`ChatMessage::tool_result`].
    ToolCall(ToolCall),
    Usage(Usage),
    /// The registry model (`id`, and its `pricing`) producing the output
    /// that follows. Price the turn's `Usage` with this `pricing`, and record
    /// this `id` as the model that answered.
    Model {
        id: String,
        pricing: Pricing,
    },
    /// Informational: model `from` failed before producing output and the
    /// chain moves on to `to`. `reason` is a short, secret-free
    /// classification (the failed error's `Display`).
    Fallback {
        from: String,
        to: String,
        reason: String,
    },
    /// Generation finished. `finish_reason` follows OpenAI's vocabulary:
    /// `"stop"`, `"length"`, `"tool_calls"`, `"content_filter"`, ...
    Done {
        finish_reason: String,
    },
}

/// Why a generation failed.
///
/// `Display` never contains a provider's response body, a URL or an API
/// key: the variants only hold status codes and `&'static str`
/// classifications, so nothing the provider sent can end up in a message.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum LlmError {
    /// The provider could not be reached (DNS, refused, TLS, connect
    /// timeout). Retryable.
    #[error("could not connect to the model provider")]
    Connect,
    /// The provider (or we, waiting for its first token or its next chunk)
    /// gave up on time. Not retried; the chain falls back.
    #[error("model request timed out")]
    Timeout,
    /// HTTP 429 (or a rate-limit error event). Retryable, honouring
    /// `retry_after` when the provider sent one.
    #[error("model provider rate limited the request")]
    RateLimited {
        retry_after: Option<std::time::Duration>,
    },
    /// The provider failed: an HTTP error status (`status`), a stream that
    /// broke off or could not be parsed (`status: None`), an error event.
    /// `retryable` is true for 5xx / overloaded / broken connections.
    #[error("upstream model error{}: {detail}", status.map(|s| format!(" (HTTP {s})")).unwrap_or_default())]
    Upstream {
        status: Option<u16>,
        retryable: bool,
        detail: &'static str,
    },
    /// Generation was cancelled (client gone, shutdown).
    #[error("model request cancelled")]
    Cancelled,
    /// The request cannot be served as given (e.g. too long for the context
    /// window, unsupported parameter). Detected on our side; the text is ours.
    #[error("invalid model request: {0}")]
    InvalidRequest(String),
}

impl LlmError {
    /// Whether trying the same model again (before any output) may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Connect | Self::RateLimited { .. } => true,
            Self::Upstream { retryable, .. } => *retryable,
            Self::Timeout | Self::Cancelled | Self::InvalidRequest(_) => false,
        }
    }

    /// The HTTP status the provider answered with, if the error came from one.
    pub fn upstream_status(&self) -> Option<u16> {
        match self {
            Self::RateLimited { .. } => Some(429),
            Self::Upstream { status, .. } => *status,
            _ => None,
        }
    }
}

/// A chat model backend.
///
/// Implementations return a `'static` stream that owns everything it needs,
/// so the caller can drive it from any task. The work behind the stream must
/// be tied to the stream's lifetime: dropping the stream cancels it (for a
/// remote provider, dropping the in-flight HTTP response body does that).
pub trait ChatModel: Send + Sync + 'static {
    /// Starts generation. Dropping the stream must cancel the work.
    fn stream(&self, request: ModelRequest) -> BoxStream<'static, Result<ModelEvent, LlmError>>;
}
