//! [`Resilient`]: retries, timeouts and fallbacks around a chain of models.
//!
//! For each model of the chain `[primary, fallbacks...]` in order:
//!
//! 1. Start the model's stream and wait at most `first_token_timeout` for
//!    its first event (connect + request + time to first token; for a
//!    non-streaming provider this bounds the whole response).
//! 2. If that first event is a retryable error ([`LlmError::is_retryable`]:
//!    connect errors, 429, 5xx, a stream that broke off), wait a jittered
//!    exponential backoff and start again, at most `max_retries` times. A
//!    429 whose `Retry-After` exceeds `backoff_max` is not waited for.
//! 3. If the first event is a timeout, a non-retryable error, or retries are
//!    exhausted, send [`ModelEvent::Fallback`] and move on to the next model.
//! 4. Once the first event is a success, *commit*: send
//!    [`ModelEvent::Model`] (id and pricing of this link), then pass the
//!    model's events through. From here nothing is retried and nothing falls
//!    back: a later error is passed on (the caller keeps a partial reply).
//!    A gap longer than `idle_timeout` between events ends the stream with
//!    [`LlmError::Timeout`], preceded by an estimated `Usage` if output was
//!    produced and the model had not reported usage yet.
//!
//! When every model failed, the stream ends with the last model's error.
//! Failed attempts produce no output, so the only `Usage` is the committed
//! model's. Dropping the stream drops the inner stream, cancelling the
//! upstream request, and also cancels any backoff sleep.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{BoxStream, StreamExt};
use rand::Rng;

use crate::model::{ChatModel, LlmError, ModelEvent, ModelRequest};
use crate::pricing::Pricing;
use crate::tokens;

/// Timeouts and retries of one model in a chain.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Retries of the same model before falling back (0 = try once).
    pub max_retries: u32,
    /// The first retry waits between `backoff_base / 2` and `backoff_base`;
    /// each further retry doubles that, up to `backoff_max`.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Longest wait for the model's first event.
    pub first_token_timeout: Duration,
    /// Longest wait between two events once output has started.
    pub idle_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 2,
            backoff_base: Duration::from_millis(250),
            backoff_max: Duration::from_secs(4),
            first_token_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// How long to wait before retry number `retry` (0-based) after `error`,
    /// or `None` to give up on this model.
    pub(crate) fn delay(&self, retry: u32, error: &LlmError) -> Option<Duration> {
        if !error.is_retryable() || retry >= self.max_retries {
            return None;
        }
        let full = self
            .backoff_base
            .saturating_mul(2u32.saturating_pow(retry))
            .min(self.backoff_max);
        let millis = u64::try_from(full.as_millis()).unwrap_or(u64::MAX);
        let jittered = Duration::from_millis(rand::rng().random_range(millis / 2..=millis));
        match error {
            LlmError::RateLimited {
                retry_after: Some(after),
            } => (*after <= self.backoff_max).then(|| jittered.max(*after)),
            _ => Some(jittered),
        }
    }
}

/// One model of a [`Resilient`] chain.
#[derive(Clone)]
pub struct ChainLink {
    /// Registry id, reported in [`ModelEvent::Model`] / [`ModelEvent::Fallback`].
    pub id: String,
    pub model: Arc<dyn ChatModel>,
    pub pricing: Pricing,
    /// Requests to this model ask for at most this many output tokens.
    pub max_output_tokens: u32,
    pub policy: RetryPolicy,
}

impl fmt::Debug for ChainLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChainLink")
            .field("id", &self.id)
            .field("pricing", &self.pricing)
            .field("max_output_tokens", &self.max_output_tokens)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// A [`ChatModel`] that tries a chain of models; see the module docs.
#[derive(Clone, Debug)]
pub struct Resilient {
    chain: Arc<Vec<ChainLink>>,
}

impl Resilient {
    pub fn new(primary: ChainLink) -> Self {
        Self {
            chain: Arc::new(vec![primary]),
        }
    }

    /// Appends a fallback, tried after everything before it failed.
    pub fn with_fallback(mut self, link: ChainLink) -> Self {
        Arc::make_mut(&mut self.chain).push(link);
        self
    }

    /// Ids of the chain, primary first.
    pub fn chain_ids(&self) -> Vec<String> {
        self.chain.iter().map(|l| l.id.clone()).collect()
    }
}

type EventStream = BoxStream<'static, Result<ModelEvent, LlmError>>;

/// Starts `link` (with retries); returns the stream and its first event.
async fn start(
    link: &ChainLink,
    request: &ModelRequest,
) -> Result<(EventStream, ModelEvent), LlmError> {
    let mut retry = 0;
    loop {
        let mut request = request.clone();
        request.max_output_tokens = request.max_output_tokens.min(link.max_output_tokens);
        let mut inner = link.model.stream(request);
        let error = match tokio::time::timeout(link.policy.first_token_timeout, inner.next()).await
        {
            Ok(Some(Ok(event))) => return Ok((inner, event)),
            Ok(Some(Err(e))) => e,
            Ok(None) => LlmError::Upstream {
                status: None,
                retryable: true,
                detail: "the model ended without output",
            },
            Err(_) => LlmError::Timeout,
        };
        drop(inner);
        match link.policy.delay(retry, &error) {
            Some(delay) => {
                tracing::warn!(model = %link.id, retry = retry + 1, delay_ms = delay.as_millis() as u64, error = %error, "retrying model");
                tokio::time::sleep(delay).await;
                retry += 1;
            }
            None => return Err(error),
        }
    }
}

impl ChatModel for Resilient {
    fn stream(&self, request: ModelRequest) -> EventStream {
        let chain = Arc::clone(&self.chain);
        async_stream::stream! {
            let mut last_error = LlmError::InvalidRequest("empty model chain".into());
            for (i, link) in chain.iter().enumerate() {
                let (mut inner, first) = match start(link, &request).await {
                    Ok(started) => started,
                    Err(error) => {
                        if let Some(next) = chain.get(i + 1) {
                            tracing::warn!(from = %link.id, to = %next.id, error = %error, "falling back to the next model");
                            yield Ok(ModelEvent::Fallback {
                                from: link.id.clone(),
                                to: next.id.clone(),
                                reason: error.to_string(),
                            });
                        }
                        last_error = error;
                        continue;
                    }
                };
                yield Ok(ModelEvent::Model { id: link.id.clone(), pricing: link.pricing });
                let mut output = String::new();
                let mut usage_sent = false;
                let mut next = Some(first);
                loop {
                    let event = match next.take() {
                        Some(event) => event,
                        None => match tokio::time::timeout(link.policy.idle_timeout, inner.next()).await {
                            Ok(None) => return,
                            Ok(Some(Ok(event))) => event,
                            Ok(Some(Err(error))) => {
                                yield Err(error);
                                return;
                            }
                            Err(_) => {
                                tracing::warn!(model = %link.id, "model stalled mid-stream");
                                if !output.is_empty() && !usage_sent {
                                    yield Ok(ModelEvent::Usage(crate::model::Usage {
                                        input_tokens: tokens::count_messages(&request.messages),
                                        output_tokens: tokens::count(&output),
                                        estimated: true,
                                    }));
                                }
                                yield Err(LlmError::Timeout);
                                return;
                            }
                        },
                    };
                    match &event {
                        ModelEvent::Delta(text) => output.push_str(text),
                        ModelEvent::ToolCall(call) => {
                            output.push_str(&call.name);
                            output.push_str(&call.arguments);
                        }
                        ModelEvent::Usage(_) => usage_sent = true,
                        _ => {}
                    }
                    yield Ok(event);
                }
            }
            yield Err(last_error);
        }
        .boxed()
    }
}
