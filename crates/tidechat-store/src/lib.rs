//! Persistence for tidechat: diesel schema, rows, pools and repository
//! operations over **PostgreSQL** and **SQLite**.
//!
//! # Design
//!
//! * One hand-written diesel [`schema`] serves both backends (the migrations
//!   in `migrations/{postgres,sqlite}` create the same tables; timestamps are
//!   UTC `TIMESTAMP`, truncated to microseconds on write so both backends
//!   round-trip identically; JSON-ish fields are `TEXT` holding JSON).
//! * [`Store`] holds an enum of `diesel-async` deadpool pools, one variant
//!   per backend. The [`repo`] modules (one per aggregate) hold query
//!   functions that take a [`repo::Conn`], so several compose in one
//!   [`Store::transaction`] (or run on one connection with [`Store::read`]);
//!   `Store` keeps a method per function for single calls. Queries are
//!   written once: the body is expanded once per backend with the concrete
//!   connection type. That is why there is no generic "any connection"
//!   trait: diesel checks every query per backend, and the bounds a generic
//!   version needs would be larger than the queries.
//! * SQLite allows a single writer. Every SQLite write transaction first
//!   takes an in-process `tokio::sync::Mutex` held by the `Store` (writers in
//!   one process queue instead of failing with `SQLITE_BUSY`) and then opens
//!   with `BEGIN IMMEDIATE`, so the file's write lock is taken up front and
//!   `busy_timeout` (10 s) arbitrates between processes. Connections use
//!   WAL, so readers never wait for the writer.
//! * Every read or write addressed by a caller-supplied organization filters
//!   on it: rows of other tenants are indistinguishable from missing rows.

pub mod bus;
pub mod error;
mod models;
mod pool;
pub mod repo;
pub mod schema;
#[cfg(feature = "test-support")]
pub mod testing;

use chrono::{DateTime, Utc};
use tidechat_domain::{ApiKeyId, MessageId, MessageStatus, OrgId, Role, SessionId, SessionStatus};

pub use bus::{Bus, BusEvent, Subscription};
pub use error::StoreError;
pub use models::truncate_timestamp;
pub use pool::{Backend, Store};
pub use repo::knowledge::{
    chunk_item_id, DocumentWrite, EmbeddingRecord, NewEmbedding, UsageEvent,
};
pub use repo::quotas::{QuotaClaim, QuotaDecision, QuotaKind, QuotaLimit};
pub use repo::widget::{ConversationFilter, OperatorUpdate, VisitorUpdate};
pub use repo::Conn;

/// Keyset pagination on ids, **newest first** (ids are time-sortable):
/// rows with `id < after_id`, ordered by id descending, at most `limit`.
/// Ask for `limit + 1` to learn whether there is a next page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: i64,
    pub after_id: Option<String>,
}

impl PageRequest {
    pub fn first(limit: i64) -> Self {
        Self {
            limit,
            after_id: None,
        }
    }

    pub fn after(limit: i64, after_id: impl Into<String>) -> Self {
        Self {
            limit,
            after_id: Some(after_id.into()),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionFilter {
    pub user_id: Option<String>,
    pub status: Option<SessionStatus>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortOrder {
    Asc,
    Desc,
}

/// Keyset pagination on `seq`: `Asc` => `seq > after_seq` ascending;
/// `Desc` => `seq < after_seq` descending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessagePage {
    pub limit: i64,
    pub order: SortOrder,
    pub after_seq: Option<i64>,
}

/// A message to append; the store assigns `seq`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMessage {
    pub id: MessageId,
    pub session_id: SessionId,
    pub org_id: OrgId,
    pub role: Role,
    pub content: String,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub tokens_estimated: bool,
    pub model: String,
    pub latency_ms: i64,
    pub cost_usd_micros: i64,
    pub moderation_verdict: String,
    pub drift_score: f64,
    pub status: MessageStatus,
    pub created_at: DateTime<Utc>,
    /// Whether the tokens and cost count towards the session's totals.
    pub billed: bool,
    /// The API key the turn is billed to (for session tokens, the key that
    /// minted them), for per-key quotas and usage.
    pub api_key_id: Option<ApiKeyId>,
    /// Milliseconds to the first reply text (assistant messages).
    pub first_token_ms: Option<i64>,
    /// What moderation replaced (audit).
    pub original_content: Option<String>,
    /// The knowledge the reply used (assistant messages).
    pub citations: Vec<tidechat_domain::Citation>,
    /// Findings stored with the message.
    pub moderation: Vec<tidechat_domain::ModerationRecord>,
    /// Folds `drift_score` into the session's drift aggregate with this
    /// weight (exponentially weighted mean); `None` leaves it alone.
    pub drift_alpha: Option<f64>,
    /// The id the client sent a user message with (unique in the session),
    /// so a retry finds it and its reply.
    pub client_message_id: Option<String>,
    /// The user message a reply answers.
    pub reply_to: Option<MessageId>,
}

/// How `Store::usage` groups billed messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageGroup {
    /// By UTC calendar day (`YYYY-MM-DD`).
    Day,
    Model,
    ApiKey,
}

/// Usage of one group: billed replies, their tokens and cost.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageRow {
    /// The day, model id or API key id (`None`: no key, e.g. operator CLI).
    pub key: Option<String>,
    pub requests: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_usd_micros: i64,
}
