//! The conversation engine: every API surface is a thin adapter over this
//! crate. It owns the rules (authentication, tenant scoping, validation, the
//! turn pipeline) and turns each user message into a transport-neutral stream
//! of [`TurnEvent`]s; transports only decode requests and encode events.
//!
//! Dependencies: domain types, the store, the guard and the model registry.
//! It knows nothing about HTTP.

mod auth;
mod chats;
mod error;
pub mod extract;
mod faq_cache;
mod faq_chat;
mod import;
mod knowledge;
mod limits;
pub mod moderation;
mod page;
mod plan;
mod sessions;
mod tenants;
mod tools;
mod turn;
mod widget;

use std::sync::Arc;
use std::time::Duration;

use tidechat_guard::Guard;
use tidechat_llm::ModelRegistry;
use tidechat_store::Store;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use auth::{generate_api_key, hash_api_key, Principal, PrincipalKind, API_KEY_PREFIX};
pub use chats::{sort_order, ChatMessages, OpenedChat, REPLAY_MAX, WS_TICKET_TTL_SECS};
pub use error::EngineError;
pub use faq_chat::{FaqChatRequest, SESSION_KEY_MAX_CHARS};
pub use import::{parse_faq_csv, parse_faq_json, ImportFormat};
pub use knowledge::{DocumentUpload, KnowledgeSearch, Progress, CHUNK_TARGET_CHARS};
pub use limits::{month_bounds, EffectiveLimits, LimitsPatch, UsageReport};
pub use page::{Cursor, Page};
pub use sessions::{MessageQuery, NewSession, SessionQuery, SessionToken};
pub use tenants::{CreatedKey, OrgBundle};
pub use tools::{is_private_address, END_SESSION, FAQ_SEARCH, HANDOFF};
pub use turn::{Turn, TurnEvent, TurnOutcome, TurnRequest};
pub use widget::{
    url_matches, ConversationFilter, ConversationView, SiteDraft, WidgetSend, OPERATOR_MODEL,
};

/// Engine settings that are not per-request.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Secret for HS256 session tokens; generated once and kept in the
    /// database when unset, so every process sharing it agrees.
    pub jwt_secret: Option<String>,
    pub session_token_ttl_default: Duration,
    pub session_token_ttl_max: Duration,
    /// Requests per minute per organization when none is set (the
    /// reference's 100).
    pub default_requests_per_minute: u32,
    /// Open streams and WebSocket connections per organization when none is set.
    pub default_max_concurrent_streams: u32,
    /// Let tools call loopback and private addresses (tests, on-premises tools).
    pub allow_private_tool_urls: bool,
    /// Time limit of one HTTP tool call.
    pub tool_timeout: Duration,
    /// Model calls per turn when tools are used.
    pub max_tool_steps: usize,
    /// An external moderation classifier checked after the built-in guard.
    pub classifier: Option<tidechat_guard::ExternalClassifier>,
    /// Embeds FAQ entries, document chunks and queries for semantic
    /// retrieval; `None`: retrieval is lexical (see `knowledge`).
    pub embedder: Option<Arc<dyn tidechat_llm::Embedder>>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            jwt_secret: None,
            session_token_ttl_default: Duration::from_secs(3600),
            session_token_ttl_max: Duration::from_secs(24 * 3600),
            default_requests_per_minute: 100,
            default_max_concurrent_streams: 50,
            allow_private_tool_urls: false,
            tool_timeout: Duration::from_secs(10),
            max_tool_steps: 5,
            classifier: None,
            embedder: None,
        }
    }
}

/// Cheap to clone; share one per process.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    /// `config.classifier`, kept at hand for the turn loop.
    classifier: Option<tidechat_guard::ExternalClassifier>,
    models: ModelRegistry,
    guard: Arc<dyn Guard>,
    tokens: auth::SessionTokens,
    config: EngineConfig,
    faqs: faq_cache::FaqCache,
    /// Turns being generated, so shutdown can wait for them.
    turns: TaskTracker,
    /// Cancelled when shutdown stops waiting: turns store what they have.
    stop: CancellationToken,
}

const JWT_SECRET_NAME: &str = "session_token_hs256";

impl Engine {
    pub async fn new(
        store: Store,
        models: ModelRegistry,
        guard: Arc<dyn Guard>,
        config: EngineConfig,
    ) -> Result<Self, EngineError> {
        let secret = match &config.jwt_secret {
            Some(secret) => secret.clone(),
            None => {
                store
                    .get_or_create_secret(JWT_SECRET_NAME, &auth::generate_signing_secret())
                    .await?
            }
        };
        Ok(Self {
            inner: Arc::new(Inner {
                tokens: auth::SessionTokens::new(secret.as_bytes()),
                classifier: config.classifier.clone(),
                store,
                models,
                guard,
                config,
                faqs: faq_cache::FaqCache::default(),
                turns: TaskTracker::new(),
                stop: CancellationToken::new(),
            }),
        })
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn models(&self) -> &ModelRegistry {
        &self.inner.models
    }

    /// Stops accepting turns, lets running ones finish for up to `grace`, then
    /// cancels the rest (they store what was generated as `partial`).
    pub async fn shutdown(&self, grace: Duration) {
        self.inner.turns.close();
        if tokio::time::timeout(grace, self.inner.turns.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                running = self.inner.turns.len(),
                "grace period over; cancelling running replies"
            );
            self.inner.stop.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(10), self.inner.turns.wait()).await;
        }
    }

    /// Number of replies being generated right now.
    pub fn running_turns(&self) -> usize {
        self.inner.turns.len()
    }
}
