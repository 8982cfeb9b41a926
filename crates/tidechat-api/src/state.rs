use std::future::Future;
use std::time::Duration;

use tidechat_engine::{Engine, EngineError, Principal};
use tidechat_limits::{Permit, Rate, RateDecision, SlotDenied};
use tokio::runtime::Handle;

use crate::error::ApiError;

/// Shared by every handler.
pub struct AppState {
    pub engine: Engine,
    /// Interval of SSE keep-alive comments while a reply is slow to come.
    pub keep_alive: Duration,
    /// The multi-threaded runtime engine work runs on (see [`AppState::run`]).
    pub runtime: Handle,
    /// Request-rate and concurrent-stream limits (in process or Redis).
    pub limiter: tidechat_limits::Limiter,
    /// Per-connection WebSocket message rates (always in process).
    pub ws_limiter: tidechat_limits::Limiter,
    pub ws_messages_per_second: u32,
    /// Where widget image uploads are kept (local disk or S3).
    pub uploads: std::sync::Arc<dyn object_store::ObjectStore>,
}

impl AppState {
    /// Counts one request of the caller against its key's and organization's
    /// rates. The decision is returned for the `RateLimit-*` headers; a
    /// denial is `rate_limited` (429) or `service_unavailable` (503) when the
    /// shared limit store cannot be asked and the server fails closed.
    pub async fn check_rate(&self, who: &Principal) -> Result<RateDecision, ApiError> {
        // Keys carry their limits (read with the key); tokens read them.
        let limits = match who.limits {
            Some(pair) => self.engine.effective_limits_of(pair),
            None => {
                let who = who.clone();
                self.run(move |e| async move { e.effective_limits(&who).await })
                    .await?
            }
        };
        let org_bucket = format!("org:{}", who.org_id);
        let key_bucket = who.billing_key.as_ref().map(|k| format!("key:{k}"));
        let mut buckets: Vec<(&str, Rate)> = Vec::with_capacity(2);
        if let (Some(bucket), Some(rpm)) = (&key_bucket, limits.key_requests_per_minute) {
            buckets.push((bucket.as_str(), Rate::per_minute(rpm)));
        }
        buckets.push((
            org_bucket.as_str(),
            Rate::per_minute(limits.org_requests_per_minute),
        ));
        let decision = self.limiter.check_rates(&buckets).await;
        if decision.allowed {
            return Ok(decision);
        }
        let mut error = if decision.backend_unavailable {
            ApiError::new(
                actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
                "service_unavailable",
                "the rate limit store is unreachable; retry",
            )
        } else {
            ApiError::new(
                actix_web::http::StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "request rate limit reached: {} requests per minute",
                    decision.limit
                ),
            )
        };
        error.retry_after = decision.retry_after_secs();
        error.rate = Some(decision);
        Err(error)
    }

    /// Takes one of the organization's concurrent-stream slots; the permit
    /// must live as long as the stream.
    pub async fn stream_slot(&self, who: &Principal) -> Result<Permit, ApiError> {
        let limits = {
            let who = who.clone();
            self.run(move |e| async move { e.effective_limits(&who).await })
                .await?
        };
        let bucket = format!("streams:{}", who.org_id);
        self.limiter.acquire_slot(&bucket, limits.max_concurrent_streams).await.map_err(|denied| match denied {
            SlotDenied::Full { limit, .. } => {
                let mut e = ApiError::new(
                    actix_web::http::StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    format!("concurrent stream limit reached: {limit} open streams per organization"),
                );
                e.retry_after = Some(1);
                e
            }
            SlotDenied::Unavailable => ApiError::new(
                actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
                "service_unavailable",
                "the rate limit store is unreachable; retry",
            ),
        })
    }

    /// Runs engine work as a task on the main multi-threaded runtime, not on
    /// the HTTP worker's single-threaded one. A client that disconnects drops
    /// the handler, but never a database operation half-way: the task runs to
    /// completion on its own (and SQLite's blocking connections must not be
    /// cancelled on a single-threaded runtime).
    pub async fn run<T, F, Fut>(&self, work: F) -> Result<T, ApiError>
    where
        F: FnOnce(Engine) -> Fut,
        Fut: Future<Output = Result<T, EngineError>> + Send + 'static,
        T: Send + 'static,
    {
        let task = self.runtime.spawn(work(self.engine.clone()));
        match task.await {
            Ok(result) => result.map_err(ApiError::from),
            Err(e) => Err(ApiError::from(EngineError::Internal(format!(
                "engine task failed: {e}"
            )))),
        }
    }
}
