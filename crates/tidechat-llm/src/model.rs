//! The model interface: requests, streamed events, errors and the
//! [`ChatModel`] trait every backend (built-in or remote provider) implements.

use futures_util::stream::BoxStream;
use tidechat_domain::Role;

use crate::faq::FaqHit;

/// One message of the conversation sent to a model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
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
#[derive(Clone, Debug)]
pub struct ModelRequest {
    /// System prompt first, then history, then the new user turn last.
    pub messages: Vec<ChatMessage>,
    pub temperature: f64,
    pub max_output_tokens: u32,
    pub retrieval: Option<Retrieval>,
    /// The persona's out-of-scope answer.
    pub fallback_reply: String,
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
/// A well-behaved stream yields any number of `Delta`s, at most one `Usage`
/// (providers may send it before or after the last delta) and finally one
/// `Done`. Errors end the stream.
#[derive(Clone, Debug, PartialEq)]
pub enum ModelEvent {
    /// A piece of output text; concatenating all deltas gives the full reply.
    Delta(String),
    Usage(Usage),
    /// Generation finished. `finish_reason` follows OpenAI's vocabulary:
    /// `"stop"`, `"length"`, `"content_filter"`, ...
    Done {
        finish_reason: String,
    },
}

/// Why a generation failed.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// The model backend failed (HTTP error, malformed stream, ...).
    #[error("upstream model error: {0}")]
    Upstream(String),
    /// The backend did not answer in time.
    #[error("model request timed out")]
    Timeout,
    /// Generation was cancelled (client gone, shutdown).
    #[error("model request cancelled")]
    Cancelled,
    /// The request cannot be served as given (e.g. too long for the context
    /// window, unsupported parameter).
    #[error("invalid model request: {0}")]
    InvalidRequest(String),
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
