use std::time::Duration;

use tidechat_engine::Engine;

/// Shared by every handler.
pub struct AppState {
    pub engine: Engine,
    /// Interval of SSE keep-alive comments while a reply is slow to come.
    pub keep_alive: Duration,
}
