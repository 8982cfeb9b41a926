//! [`OpenAiEmbedder`]: `POST {base_url}/embeddings` in the OpenAI wire
//! format, which OpenAI, Ollama, vLLM, text-embeddings-inference and LiteLLM
//! all speak.
//!
//! Request `{"model", "input": [...], "encoding_format": "float"}` (plus
//! `"dimensions"` when configured), response `data[].embedding` (ordered by
//! `data[].index` when present) and `usage.prompt_tokens`. Inputs are sent in
//! batches of `batch_size`, one batch after the other, so a large import does
//! not open many connections to a rate-limited provider. Each batch gets the
//! chat models' [`RetryPolicy`]: at most `first_token_timeout` for the whole
//! exchange, and jittered exponential retries on connect errors, 429 and 5xx
//! (a timeout is not retried, as for chat). Error bodies are never read.

use std::fmt;
use std::time::Duration;

use futures_util::future::{BoxFuture, FutureExt};
use serde::Deserialize;
use serde_json::json;

use super::{normalize, EmbedError, EmbedKind, Embedder, Embeddings};
use crate::model::LlmError;
use crate::pricing::Pricing;
use crate::providers::{parse_json, status_error, transport_error, ApiKey, MALFORMED};
use crate::resilient::RetryPolicy;
use crate::tokens;

const PROVIDER: &str = "openai-embeddings";

/// Default number of inputs per upstream request (OpenAI accepts 2048,
/// local servers are often slower with big batches).
pub const DEFAULT_BATCH_SIZE: usize = 64;

/// Where and how to reach one embedding model.
#[derive(Clone)]
pub struct OpenAiEmbedderConfig {
    /// [`Embedder::id`]; include the upstream model (and dimensions) so that
    /// a change of either is seen as a new embedder. The registry uses
    /// `"{table id}:{model}"`, with `"@{dimensions}"` appended when set.
    pub id: String,
    /// Up to and including the version, e.g. `https://api.openai.com/v1`;
    /// requests go to `{base_url}/embeddings`. A trailing `/` is ignored.
    pub base_url: String,
    /// `None` sends no credentials (Ollama, vLLM, TEI on a private network).
    pub api_key: Option<ApiKey>,
    /// The provider's model name, e.g. `text-embedding-3-small`.
    pub model: String,
    /// Inputs per request (at least 1).
    pub batch_size: usize,
    /// Asks the provider for vectors of this length (OpenAI `dimensions`;
    /// other servers may reject the field, so it is only sent when set).
    pub dimensions: Option<usize>,
    pub pricing: Pricing,
    /// TCP + TLS connect timeout.
    pub connect_timeout: Duration,
    /// Retries and the per-request timeout (`first_token_timeout`).
    pub policy: RetryPolicy,
}

impl OpenAiEmbedderConfig {
    pub fn new(
        id: impl Into<String>,
        base_url: impl Into<String>,
        model: impl Into<String>,
    ) -> Self {
        Self {
            id: id.into(),
            base_url: base_url.into(),
            api_key: None,
            model: model.into(),
            batch_size: DEFAULT_BATCH_SIZE,
            dimensions: None,
            pricing: Pricing::FREE,
            connect_timeout: Duration::from_secs(10),
            policy: RetryPolicy::default(),
        }
    }
}

impl fmt::Debug for OpenAiEmbedderConfig {
    // No base_url: some deployments put credentials in it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiEmbedderConfig")
            .field("id", &self.id)
            .field("model", &self.model)
            .field("api_key", &self.api_key)
            .field("batch_size", &self.batch_size)
            .field("dimensions", &self.dimensions)
            .field("pricing", &self.pricing)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// An embedding model behind an OpenAI-compatible `/embeddings` endpoint.
#[derive(Clone, Debug)]
pub struct OpenAiEmbedder {
    config: std::sync::Arc<OpenAiEmbedderConfig>,
    client: reqwest::Client,
}

impl OpenAiEmbedder {
    pub fn new(mut config: OpenAiEmbedderConfig) -> Result<Self, EmbedError> {
        config.batch_size = config.batch_size.max(1);
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|_| EmbedError::InvalidInput("the HTTP client could not be built".into()))?;
        Ok(Self {
            config: std::sync::Arc::new(config),
            client,
        })
    }
}

impl Embedder for OpenAiEmbedder {
    fn id(&self) -> &str {
        &self.config.id
    }

    fn dimensions(&self) -> Option<usize> {
        self.config.dimensions
    }

    fn pricing(&self) -> Pricing {
        self.config.pricing
    }

    fn embed(
        &self,
        texts: Vec<String>,
        _kind: EmbedKind,
    ) -> BoxFuture<'static, Result<Embeddings, EmbedError>> {
        let this = self.clone();
        async move {
            let mut out = Embeddings {
                vectors: Vec::with_capacity(texts.len()),
                input_tokens: 0,
                estimated: false,
                model: this.config.id.clone(),
            };
            for batch in texts.chunks(this.config.batch_size) {
                let (vectors, reported) = this.batch_with_retries(batch).await?;
                if let (Some(first), Some(dim)) = (out.vectors.first(), vectors.first()) {
                    if first.len() != dim.len() {
                        return Err(EmbedError::BadResponse(
                            "vectors of different lengths in one call",
                        ));
                    }
                }
                out.vectors.extend(vectors);
                match reported {
                    Some(n) => out.input_tokens += n,
                    None => {
                        out.estimated = true;
                        out.input_tokens += batch.iter().map(|t| tokens::count(t)).sum::<u64>();
                    }
                }
            }
            Ok(out)
        }
        .boxed()
    }
}

#[derive(Deserialize)]
struct Response {
    data: Vec<Item>,
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct Item {
    embedding: Vec<f32>,
    index: Option<usize>,
}

#[derive(Deserialize)]
struct WireUsage {
    prompt_tokens: Option<u64>,
}

type Batch = (Vec<Vec<f32>>, Option<u64>);

impl OpenAiEmbedder {
    async fn batch_with_retries(&self, batch: &[String]) -> Result<Batch, EmbedError> {
        let policy = &self.config.policy;
        let mut retry = 0;
        loop {
            let error =
                match tokio::time::timeout(policy.first_token_timeout, self.batch(batch)).await {
                    Ok(Ok(result)) => return Ok(result),
                    Ok(Err(EmbedError::Provider(e))) => e,
                    Ok(Err(other)) => return Err(other),
                    Err(_) => LlmError::Timeout,
                };
            match policy.delay(retry, &error) {
                Some(delay) => {
                    tracing::warn!(embedder = %self.config.id, retry = retry + 1, delay_ms = delay.as_millis() as u64, error = %error, "retrying embeddings");
                    tokio::time::sleep(delay).await;
                    retry += 1;
                }
                None => return Err(error.into()),
            }
        }
    }

    async fn batch(&self, batch: &[String]) -> Result<Batch, EmbedError> {
        let config = &self.config;
        let mut body = json!({
            "model": config.model,
            "input": batch,
            "encoding_format": "float",
        });
        if let Some(dimensions) = config.dimensions {
            body["dimensions"] = json!(dimensions);
        }
        let url = format!("{}/embeddings", config.base_url.trim_end_matches('/'));
        let mut request = self.client.post(url).json(&body);
        if let Some(key) = &config.api_key {
            request = request.bearer_auth(key.expose());
        }
        let response = request
            .send()
            .await
            .map_err(|e| transport_error(PROVIDER, &e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(status_error(PROVIDER, status, response.headers()).into());
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| transport_error(PROVIDER, &e))?;
        let parsed: Response = parse_json(PROVIDER, &bytes)?;
        let vectors = order(parsed.data, batch.len())?;
        if let Some(want) = config.dimensions {
            if vectors.iter().any(|v| v.len() != want) {
                return Err(EmbedError::BadResponse(
                    "vectors do not have the configured dimensions",
                ));
            }
        }
        Ok((vectors, parsed.usage.and_then(|u| u.prompt_tokens)))
    }
}

/// Puts the provider's items in input order (by `index` when every item has
/// one, else as sent) and normalises them; checks there is exactly one
/// non-empty vector per input, all of one length.
fn order(items: Vec<Item>, expected: usize) -> Result<Vec<Vec<f32>>, EmbedError> {
    if items.len() != expected {
        tracing::warn!(
            provider = PROVIDER,
            expected,
            got = items.len(),
            "wrong number of embeddings"
        );
        return Err(EmbedError::BadResponse("not one vector per input"));
    }
    let mut slots: Vec<Option<Vec<f32>>> = vec![None; expected];
    let indexed = items.iter().all(|i| i.index.is_some());
    for (position, item) in items.into_iter().enumerate() {
        let at = if indexed {
            item.index.unwrap_or(position)
        } else {
            position
        };
        match slots.get_mut(at) {
            Some(slot @ None) => *slot = Some(item.embedding),
            _ => return Err(EmbedError::BadResponse("duplicate or out-of-range index")),
        }
    }
    let mut vectors: Vec<Vec<f32>> = slots.into_iter().flatten().collect();
    let dim = vectors.first().map_or(0, Vec::len);
    if vectors.len() != expected || dim == 0 || vectors.iter().any(|v| v.len() != dim) {
        return Err(EmbedError::BadResponse("empty or uneven vectors"));
    }
    for v in &mut vectors {
        if v.iter().any(|x| !x.is_finite()) {
            return Err(EmbedError::Provider(MALFORMED));
        }
        normalize(v);
    }
    Ok(vectors)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn item(embedding: Vec<f32>, index: Option<usize>) -> Item {
        Item { embedding, index }
    }

    #[test]
    fn orders_by_index_and_normalises() {
        let v = order(
            vec![item(vec![0.0, 2.0], Some(1)), item(vec![3.0, 4.0], Some(0))],
            2,
        )
        .unwrap();
        assert_eq!(v, vec![vec![0.6, 0.8], vec![0.0, 1.0]]);
        let v = order(vec![item(vec![1.0], None), item(vec![-2.0], None)], 2).unwrap();
        assert_eq!(v, vec![vec![1.0], vec![-1.0]]);
    }

    #[test]
    fn rejects_inconsistent_items() {
        assert!(order(vec![item(vec![1.0], Some(0))], 2).is_err());
        let dup = vec![item(vec![1.0], Some(0)), item(vec![1.0], Some(0))];
        assert!(order(dup, 2).is_err());
        let uneven = vec![item(vec![1.0], Some(0)), item(vec![1.0, 2.0], Some(1))];
        assert!(order(uneven, 2).is_err());
        assert!(order(vec![item(vec![], Some(0))], 1).is_err());
        assert!(order(vec![item(vec![1.0], Some(5))], 1).is_err());
    }
}
