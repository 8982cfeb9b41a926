//! tidechat LLM layer: the model interface, the model registry, token
//! counting, pricing, FAQ retrieval and the built-in `faq` model.
//!
//! # Model interface
//! A model is anything implementing [`ChatModel`]. The engine builds a
//! [`ModelRequest`] (with [`ModelRequest::new`] + `with_*`, or a literal
//! ending in `..ModelRequest::default()`) — the messages (system prompt
//! first, then history, then the new user turn last), sampling parameters,
//! the FAQ [`Retrieval`] for this turn (if any), the persona's
//! `fallback_reply` and the [`ToolSpec`]s the model may call — and calls
//! [`ChatModel::stream`], which returns a `'static` stream of
//! [`ModelEvent`]s, in this order:
//!
//! * zero or more [`ModelEvent::Fallback`] notices (informational),
//! * at most one [`ModelEvent::Model`]: the registry id and [`Pricing`] of
//!   the model that produces the rest. Models loaded from TOML always send
//!   it (they are [`Resilient`] chains); the `faq` model and bare providers
//!   do not, and then the answering model is the entry the caller picked,
//! * any number of [`ModelEvent::Delta`] text pieces (their concatenation is
//!   the reply) and [`ModelEvent::ToolCall`]s (each complete),
//! * one [`ModelEvent::Usage`] with input/output token counts
//!   (`estimated: true` when any count comes from [`tokens`] rather than
//!   from the backend),
//! * a final [`ModelEvent::Done`] with a `finish_reason` (`"stop"`,
//!   `"length"`, `"tool_calls"`, ...).
//!
//! An `Err(LlmError)` ends the stream; if output was already produced it is
//! preceded by a (usually estimated) `Usage`. Dropping the stream cancels
//! the generation (for a provider: closes the HTTP connection), so the
//! engine cancels a turn by dropping it.
//!
//! # Providers and reliability
//! [`OpenAiProvider`] (Chat Completions, also for OpenAI-compatible servers)
//! and [`AnthropicProvider`] (Messages API) speak SSE (or plain JSON with
//! `stream = false`); see [`providers`]. [`Resilient`] wraps a chain
//! `[primary, fallbacks...]` with first-token and idle timeouts, jittered
//! exponential retries on connect errors / 429 / 5xx before any output, and
//! fallback to the next model; once output has started nothing is retried.
//! [`LlmError`]'s `Display` never carries provider bodies, URLs or keys.
//!
//! [`ModelRegistry`] maps model ids to a [`ModelEntry`] (the model, its
//! [`Pricing`], context window and output cap). [`ModelRegistry::builtin`]
//! holds only [`FAQ_MODEL_ID`]; [`ModelRegistry::from_toml_file`] adds the
//! models of a `models.toml` (format and example there), each served
//! through a [`Resilient`] chain.
//!
//! # The `faq` model and confidence
//! [`FaqIndex`] ranks FAQ entries (and document chunks) for a query with BM25
//! over question (counted twice) + answer text, using Unicode-aware analysis
//! (NFKC, lowercase, UAX #29 words, CJK bigrams, Hangul particle split, a
//! support-vocabulary synonym lexicon), and, when entries and query carry
//! embeddings, their cosine. Each hit carries a calibrated `confidence` in
//! `0..=1` (an estimated probability, fitted on the evaluation set, the same
//! scale with or without embeddings). A query is *out of scope* when there is
//! no hit or the best hit's confidence is below the threshold (callers use
//! [`DEFAULT_CONFIDENCE_THRESHOLD`], 0.65). See [`faq`] for details and
//! [`faq::eval`] for the evaluation report.
//!
//! [`FaqModel`] (id `"faq"`, free) answers with the best hit's answer when
//! the request's retrieval is in scope and has hits, otherwise with the
//! request's `fallback_reply`, streamed word by word, followed by exact usage
//! and `Done { finish_reason: "stop" }`.

pub mod bpe;
pub mod embed;
pub mod faq;
mod faq_model;
mod model;
mod pricing;
pub mod providers;
mod registry;
mod resilient;
pub mod tokens;

pub use embed::{
    cosine, EmbedError, EmbedKind, Embedder, Embeddings, LocalEmbedder, OpenAiEmbedder,
    OpenAiEmbedderConfig,
};
pub use faq::{ChunkRef, FaqDoc, FaqHit, FaqIndex, Features, DEFAULT_CONFIDENCE_THRESHOLD};
pub use faq_model::FaqModel;
pub use model::{
    ChatMessage, ChatModel, LlmError, ModelEvent, ModelRequest, Retrieval, ToolCall, ToolSpec,
    Usage,
};
pub use pricing::Pricing;
pub use providers::anthropic::AnthropicProvider;
pub use providers::openai::OpenAiProvider;
pub use providers::{ApiKey, ProviderConfig};
pub use registry::{
    EmbedderConfig, ModelEntry, ModelRegistry, ProviderKind, RegistryError, FAQ_MODEL_ID,
    LOCAL_EMBEDDER_ID,
};
pub use resilient::{ChainLink, Resilient, RetryPolicy};
