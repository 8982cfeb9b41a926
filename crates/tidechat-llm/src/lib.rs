//! tidechat LLM layer: the model interface, the model registry, token
//! counting, pricing, FAQ retrieval and the built-in `faq` model.
//!
//! # Model interface
//! A model is anything implementing [`ChatModel`]. The engine builds a
//! [`ModelRequest`] — the messages (system prompt first, then history, then
//! the new user turn last), sampling parameters, the FAQ [`Retrieval`] for
//! this turn (if any) and the persona's `fallback_reply` — and calls
//! [`ChatModel::stream`], which returns a `'static` stream of
//! [`ModelEvent`]s:
//!
//! * any number of [`ModelEvent::Delta`] text pieces (their concatenation is
//!   the reply),
//! * one [`ModelEvent::Usage`] with input/output token counts
//!   (`estimated: true` when the counts come from [`tokens`] rather than from
//!   the backend),
//! * a final [`ModelEvent::Done`] with a `finish_reason` (`"stop"`,
//!   `"length"`, ...).
//!
//! An `Err(LlmError)` ends the stream. Dropping the stream cancels the
//! generation, so the engine cancels a turn by dropping it. This shape fits
//! remote providers (OpenAI-compatible and Anthropic SSE streams map directly
//! onto deltas + usage + finish reason), which are added later.
//!
//! [`ModelRegistry`] maps model ids to a [`ModelEntry`] (the model, its
//! [`Pricing`], context window and output cap). [`ModelRegistry::builtin`]
//! holds only [`FAQ_MODEL_ID`].
//!
//! # The `faq` model and confidence
//! [`FaqIndex`] ranks FAQ entries for a query with BM25 over question (counted
//! twice) + answer text, using Unicode-aware analysis (NFKC, lowercase, UAX #29
//! words, CJK bigrams, emoji kept, English stop words dropped from queries).
//! Each hit carries a `confidence` in `0..=1`: the IDF-weighted fraction of
//! the query's distinct terms that the entry contains,
//! `Σ idf(matched terms) / Σ idf(query terms)`. A query is *out of scope* when
//! there is no hit or the best hit's confidence is below the threshold
//! (callers use [`DEFAULT_CONFIDENCE_THRESHOLD`], 0.35). See [`faq`] for
//! details.
//!
//! [`FaqModel`] (id `"faq"`, free) answers with the best hit's answer when
//! the request's retrieval is in scope and has hits, otherwise with the
//! request's `fallback_reply`, streamed word by word, followed by exact usage
//! and `Done { finish_reason: "stop" }`.

pub mod faq;
mod faq_model;
mod model;
mod pricing;
pub mod providers;
mod registry;
mod resilient;
pub mod tokens;

pub use faq::{FaqDoc, FaqHit, FaqIndex, DEFAULT_CONFIDENCE_THRESHOLD};
pub use faq_model::FaqModel;
pub use model::{
    ChatMessage, ChatModel, LlmError, ModelEvent, ModelRequest, Retrieval, ToolCall, ToolSpec,
    Usage,
};
pub use pricing::Pricing;
pub use providers::anthropic::AnthropicProvider;
pub use providers::openai::OpenAiProvider;
pub use providers::{ApiKey, ProviderConfig};
pub use registry::{ModelEntry, ModelRegistry, ProviderKind, RegistryError, FAQ_MODEL_ID};
pub use resilient::{ChainLink, Resilient, RetryPolicy};
