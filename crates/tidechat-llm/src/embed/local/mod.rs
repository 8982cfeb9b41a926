//! [`LocalEmbedder`]: the Universal Sentence Encoder multilingual v3, in
//! process. (Loader and forward pass land in the next commit.)

use std::path::Path;

use futures_util::future::{BoxFuture, FutureExt};

use super::{EmbedError, EmbedKind, Embedder, Embeddings};
use crate::pricing::Pricing;

/// [`Embedder::id`] of the built-in model.
pub const LOCAL_USE_M3_ID: &str = "local:use-multilingual-v3";

/// The built-in multilingual sentence encoder.
#[derive(Debug)]
pub struct LocalEmbedder {
    _private: (),
}

impl LocalEmbedder {
    /// Loads `sp.model` and `weights.npz` from `dir`.
    pub fn load(dir: &Path) -> Result<Self, EmbedError> {
        Err(EmbedError::Load {
            path: dir.to_path_buf(),
            reason: "the local model is not implemented yet".into(),
        })
    }

    /// Embeds on the calling thread.
    pub fn embed_blocking<S: AsRef<str>>(
        &self,
        _texts: &[S],
        _kind: EmbedKind,
    ) -> Result<Embeddings, EmbedError> {
        Err(EmbedError::Inference("not implemented yet"))
    }
}

impl Embedder for LocalEmbedder {
    fn id(&self) -> &str {
        LOCAL_USE_M3_ID
    }

    fn dimensions(&self) -> Option<usize> {
        None
    }

    fn pricing(&self) -> Pricing {
        Pricing::FREE
    }

    fn embed(
        &self,
        _texts: Vec<String>,
        _kind: EmbedKind,
    ) -> BoxFuture<'static, Result<Embeddings, EmbedError>> {
        async { Err(EmbedError::Inference("not implemented yet")) }.boxed()
    }
}
