//! The local moderation classifier's encoder: USE-m3, the same
//! [`LocalEmbedder`] instance retrieval uses, behind the guard's
//! [`SentenceEncoder`] trait (the guard does not depend on tidechat-llm).

use std::sync::Arc;

use tidechat_guard::{EncodeError, LocalClassifier, Moderator, SentenceEncoder};
use tidechat_llm::embed::{EmbedKind, LocalEmbedder};

/// USE-m3 as a [`SentenceEncoder`]; clones share the loaded weights.
#[derive(Debug, Clone)]
pub struct UseSentenceEncoder(pub LocalEmbedder);

impl SentenceEncoder for UseSentenceEncoder {
    fn encode(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EncodeError> {
        self.0
            .embed_blocking(texts, EmbedKind::Query)
            .map(|e| e.vectors)
            .map_err(|e| EncodeError(e.to_string()))
    }
}

/// The built-in guard with the local classifier over `embedder` (fits the
/// classifier: CPU work, call it off the async workers).
pub fn moderator_with_local_classifier(embedder: LocalEmbedder) -> Result<Moderator, EncodeError> {
    let classifier = LocalClassifier::fit(Arc::new(UseSentenceEncoder(embedder)))?;
    Ok(Moderator::with_classifier(Some(classifier)))
}
