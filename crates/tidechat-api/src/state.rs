use std::future::Future;
use std::time::Duration;

use tidechat_engine::{Engine, EngineError};
use tokio::runtime::Handle;

use crate::error::ApiError;

/// Shared by every handler.
pub struct AppState {
    pub engine: Engine,
    /// Interval of SSE keep-alive comments while a reply is slow to come.
    pub keep_alive: Duration,
    /// The multi-threaded runtime engine work runs on (see [`AppState::run`]).
    pub runtime: Handle,
}

impl AppState {
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
