//! Text embeddings for semantic retrieval: the [`Embedder`] interface and
//! its two implementations, [`OpenAiEmbedder`] (any server speaking the
//! OpenAI `POST /v1/embeddings` wire format: OpenAI, Ollama, vLLM,
//! text-embeddings-inference, LiteLLM) and [`LocalEmbedder`] (the
//! Universal Sentence Encoder multilingual v3, run in process on the CPU).
//!
//! # Contract
//! [`Embedder::embed`] returns one vector per input text, in input order,
//! each L2-normalised, so [`cosine`] is a plain dot product. Vectors of
//! different embedders are not comparable: store [`Embedder::id`] next to
//! them and re-embed when it changes. [`Embeddings::input_tokens`] is what the
//! provider reported (`estimated: false`) or, when it reported nothing, a
//! count from [`crate::tokens`] (`estimated: true`); local models report their
//! own token count and are free ([`crate::Pricing::FREE`]).
//!
//! The future returned by `embed` is `'static` and never blocks the async
//! runtime: remote calls are plain I/O, local inference runs on
//! `tokio::task::spawn_blocking`. Code that is already synchronous (an
//! evaluation loop, a CLI) can call [`LocalEmbedder::embed_blocking`].
//!
//! [`EmbedError`]'s `Display` never carries API keys, provider bodies or URLs.

use std::path::PathBuf;

use futures_util::future::BoxFuture;

use crate::model::LlmError;
use crate::pricing::Pricing;

pub mod local;
pub mod openai;

pub use local::LocalEmbedder;
pub use openai::{OpenAiEmbedder, OpenAiEmbedderConfig};

/// What a text is used as. Some models embed a search query differently
/// from the passage it should find (prefixes, separate towers); models that
/// do not (USE-m3, most OpenAI models) ignore it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EmbedKind {
    Query,
    Passage,
}

/// The result of one [`Embedder::embed`] call.
#[derive(Clone, Debug, PartialEq)]
pub struct Embeddings {
    /// One vector per input, in input order, each of unit length (an input
    /// the model maps to the zero vector stays zero).
    pub vectors: Vec<Vec<f32>>,
    /// Input tokens, as reported by the provider, else counted.
    pub input_tokens: u64,
    /// True when `input_tokens` was counted here rather than reported.
    pub estimated: bool,
    /// [`Embedder::id`] of the embedder that produced the vectors.
    pub model: String,
}

/// Why texts could not be embedded or a model could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// The remote provider failed (connect, timeout, status, malformed
    /// body); the inner error is already free of bodies, URLs and keys.
    #[error("embedding provider: {0}")]
    Provider(#[from] LlmError),
    /// The provider answered, but not with one vector per input of the
    /// expected size.
    #[error("embedding provider returned an unusable result: {0}")]
    BadResponse(&'static str),
    /// A local model's files are missing, unreadable or inconsistent.
    #[error("cannot load the embedding model from {path}: {reason}")]
    Load { path: PathBuf, reason: String },
    /// The caller asked for something this embedder cannot do.
    #[error("invalid embedding request: {0}")]
    InvalidInput(String),
    /// Local inference did not finish (its worker task panicked or the
    /// runtime is shutting down).
    #[error("embedding inference failed: {0}")]
    Inference(&'static str),
}

impl EmbedError {
    /// Whether the same request may succeed later (provider connect errors,
    /// 429, 5xx, timeouts): callers may fall back to lexical retrieval for
    /// now and embed again later.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Provider(e) => e.is_retryable() || matches!(e, LlmError::Timeout),
            Self::Inference(_) => true,
            Self::BadResponse(_) | Self::Load { .. } | Self::InvalidInput(_) => false,
        }
    }
}

/// A text embedding model. Held as `Arc<dyn Embedder>` by the engine.
pub trait Embedder: Send + Sync + std::fmt::Debug {
    /// Stable id of the model *and* its configuration that affects vectors
    /// (e.g. `"openai:text-embedding-3-small"`, `"local:use-multilingual-v3"`);
    /// stored with vectors so that a model change is detected.
    fn id(&self) -> &str;

    /// Length of the vectors, when known before the first call.
    fn dimensions(&self) -> Option<usize>;

    /// Price of the input tokens (`output_usd_per_mtok` is unused);
    /// [`Pricing::FREE`] for local models.
    fn pricing(&self) -> Pricing;

    /// Embeds `texts` (see the module docs for the contract). An empty
    /// `texts` gives empty `vectors` without calling anything.
    fn embed(
        &self,
        texts: Vec<String>,
        kind: EmbedKind,
    ) -> BoxFuture<'static, Result<Embeddings, EmbedError>>;
}

/// Cosine similarity of two unit vectors (their dot product). Vectors of
/// different lengths (from different models) are unrelated: 0.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return 0.0;
    }
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Scales `v` to unit length in place; a zero (or non-finite) vector becomes
/// all zeros, so that it matches nothing instead of everything.
pub fn normalize(v: &mut [f32]) {
    let norm = v
        .iter()
        .map(|x| f64::from(*x) * f64::from(*x))
        .sum::<f64>()
        .sqrt();
    if norm.is_finite() && norm > 0.0 {
        for x in v.iter_mut() {
            *x = (f64::from(*x) / norm) as f32;
        }
    } else {
        v.iter_mut().for_each(|x| *x = 0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_of_unit_vectors_and_mismatched_lengths() {
        let mut a = vec![3.0, 4.0];
        normalize(&mut a);
        assert!((a[0] - 0.6).abs() < 1e-6 && (a[1] - 0.8).abs() < 1e-6);
        assert!((cosine(&a, &a) - 1.0).abs() < 1e-6);
        assert!((cosine(&a, &[0.8, -0.6])).abs() < 1e-6);
        assert_eq!(cosine(&a, &[1.0, 0.0, 0.0]), 0.0);
        assert_eq!(cosine(&[], &[]), 0.0);
        let mut zero = vec![0.0, 0.0];
        normalize(&mut zero);
        assert_eq!(zero, vec![0.0, 0.0]);
        let mut bad = vec![f32::NAN, 1.0];
        normalize(&mut bad);
        assert_eq!(bad, vec![0.0, 0.0]);
    }

    #[test]
    fn transient_errors() {
        assert!(EmbedError::Provider(LlmError::Timeout).is_transient());
        assert!(EmbedError::Provider(LlmError::Connect).is_transient());
        assert!(!EmbedError::BadResponse("x").is_transient());
        assert!(!EmbedError::InvalidInput("x".into()).is_transient());
    }
}
