use std::future::Future;
use std::time::Duration;

use actix_web::HttpRequest;
use tidechat_engine::{Engine, EngineError, Principal};
use tidechat_limits::{Permit, Rate, RateDecision, SlotDenied};
use tokio::runtime::Handle;

use crate::error::{ApiError, ErrorKind};

/// Shared by every handler. The engine is reachable only through
/// [`AppState::run`] (the hand-off to the main runtime) and the turn driver
/// ([`crate::driver`]).
pub struct AppState {
    engine: Engine,
    /// Interval of SSE keep-alive comments while a reply is slow to come.
    pub keep_alive: Duration,
    /// The multi-threaded runtime engine work runs on (see [`AppState::run`]).
    runtime: Handle,
    /// Request-rate and concurrent-stream limits (in process or Redis).
    pub limiter: tidechat_limits::Limiter,
    /// Per-connection WebSocket message rates (always in process).
    pub ws_limiter: tidechat_limits::Limiter,
    pub ws_messages_per_second: u32,
    /// Where widget image uploads are kept (local disk or S3).
    pub uploads: std::sync::Arc<dyn object_store::ObjectStore>,
    /// The base of links this server hands out (no trailing slash).
    pub public_url: String,
    /// Proxies whose `X-Forwarded-For` is believed (see [`Self::client_ip`]).
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

fn limit_store_unavailable() -> ApiError {
    ApiError::new(
        ErrorKind::Unavailable,
        "the rate limit store is unreachable; retry",
    )
    .with_retry_after(1)
}

impl AppState {
    pub fn new(
        engine: Engine,
        runtime: Handle,
        keep_alive: Duration,
        limiter: tidechat_limits::Limiter,
        ws_limiter: tidechat_limits::Limiter,
        ws_messages_per_second: u32,
        uploads: std::sync::Arc<dyn object_store::ObjectStore>,
    ) -> Self {
        Self {
            engine,
            keep_alive,
            runtime,
            limiter,
            ws_limiter,
            ws_messages_per_second,
            uploads,
            public_url: String::new(),
            trusted_proxies: Vec::new(),
        }
    }

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
            limit_store_unavailable()
        } else {
            ApiError::new(
                ErrorKind::RateLimited,
                format!(
                    "request rate limit reached: {} requests per minute",
                    decision.limit
                ),
            )
        };
        error.retry_after = decision.retry_after_secs();
        error.rate = Some(Box::new(decision));
        Err(error)
    }

    /// Counts a public (widget) request per site and client address, for
    /// abuse limits: `what` names the bucket (message, conversation, upload,
    /// contact).
    /// The client's address: the TCP peer, unless the peer is a trusted
    /// proxy; then the right-most `X-Forwarded-For` entry that is not itself
    /// a trusted proxy (entries left of it could be written by the client).
    pub fn client_ip(&self, req: &HttpRequest) -> Option<std::net::IpAddr> {
        let peer = req.peer_addr()?.ip();
        let trusted = |ip: &std::net::IpAddr| self.trusted_proxies.iter().any(|n| n.contains(ip));
        if !trusted(&peer) {
            return Some(peer);
        }
        let forwarded: Vec<&str> = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect();
        // From the right: each trusted hop vouches for the entry left of it.
        for entry in forwarded.into_iter().rev() {
            match entry.trim().parse::<std::net::IpAddr>() {
                Ok(ip) if trusted(&ip) => continue,
                Ok(ip) => return Some(ip),
                Err(_) => break,
            }
        }
        Some(peer)
    }

    pub async fn check_visitor_rate(
        &self,
        req: &HttpRequest,
        site: &tidechat_domain::SiteId,
        what: &str,
        per_minute: u32,
    ) -> Result<(), ApiError> {
        let ip = self
            .client_ip(req)
            .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
        let decision = self
            .limiter
            .check_rate(
                &format!("site:{site}:ip:{ip}:{what}"),
                Rate::per_minute(per_minute),
            )
            .await;
        if decision.allowed {
            return Ok(());
        }
        if decision.backend_unavailable {
            return Err(limit_store_unavailable());
        }
        let mut e = ApiError::new(
            ErrorKind::RateLimited,
            format!("too many {what} requests; slow down"),
        );
        e.retry_after = decision.retry_after_secs();
        Err(e)
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
        self.limiter
            .acquire_slot(&bucket, limits.max_concurrent_streams)
            .await
            .map_err(|denied| match denied {
                SlotDenied::Full { limit, .. } => ApiError::new(
                    ErrorKind::RateLimited,
                    format!(
                        "concurrent stream limit reached: {limit} open streams per organization"
                    ),
                )
                .with_retry_after(1),
                SlotDenied::Unavailable => limit_store_unavailable(),
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
            Err(e) => Err(ApiError::internal(format!("engine task failed: {e}"))),
        }
    }

    /// Runs non-engine I/O (object storage) on the main runtime.
    pub async fn run_io<T, Fut>(&self, work: Fut) -> Result<T, ApiError>
    where
        Fut: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        self.runtime
            .spawn(work)
            .await
            .map_err(|e| ApiError::internal(format!("task failed: {e}")))
    }

    /// Spawns a task on the main runtime (turn drivers).
    pub(crate) fn spawn<Fut>(&self, work: Fut) -> tokio::task::JoinHandle<Fut::Output>
    where
        Fut: Future + Send + 'static,
        Fut::Output: Send + 'static,
    {
        self.runtime.spawn(work)
    }
}
