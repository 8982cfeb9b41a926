//! The entities tidechat keeps. Storage rows and wire DTOs are converted to
//! and from these in their own crates.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::ids::*;

pub type Timestamp = DateTime<Utc>;

/// A tenant. Every other record belongs to exactly one organization.
#[derive(Debug, Clone, PartialEq)]
pub struct Organization {
    pub id: OrgId,
    pub name: String,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Workspace {
    pub id: WorkspaceId,
    pub org_id: OrgId,
    pub name: String,
    pub default_persona_id: Option<PersonaId>,
    /// Bumped on every FAQ change so every server process sees edits at once.
    pub faq_version: i64,
    pub created_at: Timestamp,
}

/// How an assistant behaves in a workspace.
#[derive(Debug, Clone, PartialEq)]
pub struct Persona {
    pub id: PersonaId,
    pub org_id: OrgId,
    pub workspace_id: WorkspaceId,
    pub name: String,
    pub system_prompt: String,
    pub model_id: String,
    pub temperature: f64,
    pub max_output_tokens: i32,
    pub guardrails: Vec<String>,
    pub fallback_reply: String,
    /// Minimum retrieval confidence (0–1) for the FAQ model to answer.
    pub faq_threshold: f64,
    /// Replace personal data (emails, phone numbers, cards, IBANs) in replies.
    pub redact_pii: bool,
    /// Replies whose drift score exceeds this are `flagged`.
    pub drift_threshold: Option<f64>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Fields a caller supplies to create or replace a persona.
#[derive(Debug, Clone, PartialEq)]
pub struct PersonaDraft {
    pub name: String,
    pub system_prompt: String,
    pub model_id: String,
    pub temperature: f64,
    pub max_output_tokens: i32,
    pub guardrails: Vec<String>,
    pub fallback_reply: String,
    pub faq_threshold: f64,
    pub redact_pii: bool,
    pub drift_threshold: Option<f64>,
}

impl PersonaDraft {
    pub const DEFAULT_FALLBACK: &'static str =
        "Sorry, I can't help with that. Could you rephrase, or ask about something else?";
    /// The confidence below which a question is out of scope; equal to
    /// `tidechat_llm::DEFAULT_CONFIDENCE_THRESHOLD` (a test checks it). It
    /// was 0.35 before the ranker's confidence was recalibrated; migration
    /// `000008_knowledge` moves personas still at 0.35 to this value.
    pub const DEFAULT_FAQ_THRESHOLD: f64 = 0.65;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStatus {
    Active,
    Ended,
    Archived,
}

impl SessionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Ended => "ended",
            Self::Archived => "archived",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "active" => Some(Self::Active),
            "ended" => Some(Self::Ended),
            "archived" => Some(Self::Archived),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub id: SessionId,
    pub org_id: OrgId,
    pub workspace_id: WorkspaceId,
    pub persona_id: PersonaId,
    pub user_id: Option<String>,
    pub title: Option<String>,
    pub status: SessionStatus,
    pub message_count: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_usd_micros: i64,
    pub metadata: Map<String, Value>,
    /// Exponentially weighted mean of the replies' drift scores (null before
    /// the first reply).
    pub drift_score: Option<f64>,
    /// The client's own id for the session (the FAQ chat surface's
    /// `sessionId`), unique per organization.
    pub external_id: Option<String>,
    pub started_at: Timestamp,
    pub last_active_at: Timestamp,
    pub ended_at: Option<Timestamp>,
}

impl Session {
    /// A new, empty, active session of a persona, started `now`; set the
    /// optional fields with struct-update syntax.
    pub fn new(
        org_id: OrgId,
        workspace_id: WorkspaceId,
        persona_id: PersonaId,
        now: Timestamp,
    ) -> Self {
        Self {
            id: SessionId::generate(),
            org_id,
            workspace_id,
            persona_id,
            user_id: None,
            title: None,
            status: SessionStatus::Active,
            message_count: 0,
            input_tokens: 0,
            output_tokens: 0,
            cost_usd_micros: 0,
            metadata: Map::new(),
            drift_score: None,
            external_id: None,
            started_at: now,
            last_active_at: now,
            ended_at: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Assistant,
    System,
    Tool,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Assistant => "assistant",
            Self::System => "system",
            Self::Tool => "tool",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "user" => Some(Self::User),
            "assistant" => Some(Self::Assistant),
            "system" => Some(Self::System),
            "tool" => Some(Self::Tool),
            _ => None,
        }
    }
}

/// Whether a message holds everything that was meant to be in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageStatus {
    Complete,
    /// Generation stopped early (client gone, shutdown, upstream cut); the
    /// text is what had been produced up to then.
    Partial,
    /// Generation failed before any text was produced.
    Failed,
}

impl MessageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Complete => "complete",
            Self::Partial => "partial",
            Self::Failed => "failed",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "complete" => Some(Self::Complete),
            "partial" => Some(Self::Partial),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub id: MessageId,
    pub session_id: SessionId,
    /// Position in the session, gap-free per session, assigned when the
    /// turn starts so concurrent turns keep their order.
    pub seq: i64,
    pub role: Role,
    pub content: String,
    pub input_tokens: i64,
    pub output_tokens: i64,
    /// True when token counts come from our tokenizer, not the provider.
    pub tokens_estimated: bool,
    pub model: String,
    pub latency_ms: i64,
    pub cost_usd_micros: i64,
    pub moderation_verdict: String,
    pub drift_score: f64,
    pub status: MessageStatus,
    /// Milliseconds from accepting the turn to the first reply text.
    pub first_token_ms: Option<i64>,
    /// For a reply replaced by moderation: what the model had written
    /// (audit; shown to API-key callers only).
    pub original_content: Option<String>,
    /// The knowledge a reply was grounded in (FAQ entries, document chunks),
    /// best first; empty for other messages.
    pub citations: Vec<Citation>,
    pub created_at: Timestamp,
}

/// A piece of the organization's knowledge a reply used.
#[derive(Debug, Clone, PartialEq)]
pub enum Citation {
    Faq {
        id: FaqId,
    },
    Document {
        id: DocumentId,
        /// The chunk's position in the document (0-based).
        chunk: u32,
        /// Document title and heading path of the chunk.
        title: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub org_id: OrgId,
    pub workspace_id: WorkspaceId,
    pub name: String,
    /// The first characters of the key, safe to show in listings.
    pub prefix: String,
    pub scope: KeyScope,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FaqEntry {
    pub id: FaqId,
    pub org_id: OrgId,
    pub workspace_id: WorkspaceId,
    pub question: String,
    pub answer: String,
    /// Optional sub-organization inside the tenant (FAQ chat's `organizationId`).
    pub organization_id: Option<String>,
    pub tags: Vec<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FaqDraft {
    pub question: String,
    pub answer: String,
    pub organization_id: Option<String>,
    pub tags: Vec<String>,
}

/// An end user of a tenant (the `userId` a host site passes), recorded the
/// first time a surface that keeps user records sees them.
#[derive(Debug, Clone, PartialEq)]
pub struct EndUser {
    pub id: EndUserId,
    pub org_id: OrgId,
    pub user_id: String,
    pub created_at: Timestamp,
    pub last_seen_at: Timestamp,
}

/// What an API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyScope {
    /// Everything in the organization.
    #[default]
    Admin,
    /// Sessions and messages only.
    Chat,
}

impl KeyScope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Chat => "chat",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "admin" => Some(Self::Admin),
            "chat" => Some(Self::Chat),
            _ => None,
        }
    }
}

/// Limits and quotas of an organization or an API key. `None` means "not
/// set here": a key falls back to its organization, an organization to the
/// server defaults (quotas: unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    pub requests_per_minute: Option<i64>,
    /// Open streams and WebSocket connections (organizations only).
    pub max_concurrent_streams: Option<i64>,
    /// Input + output tokens per calendar month (UTC).
    pub monthly_tokens: Option<i64>,
    pub monthly_cost_usd_micros: Option<i64>,
}

/// The limits that apply to one caller: those set on its organization and
/// those set on its API key (all `None` for a key without its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LimitsPair {
    pub org: Limits,
    pub key: Limits,
}

/// A tool an organization exposes to its models: tidechat POSTs the call's
/// arguments, signed with `secret`, to `url`.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpTool {
    pub id: ToolId,
    pub org_id: OrgId,
    /// Unique per organization; what `toolNames` refers to.
    pub name: String,
    pub description: String,
    /// JSON schema of the arguments.
    pub parameters: Value,
    pub url: String,
    /// HMAC-SHA256 key for the `X-Tidechat-Signature` header; never shown again.
    pub secret: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Fields a caller supplies to create or replace a tool.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpToolDraft {
    pub name: String,
    pub description: String,
    pub parameters: Value,
    pub url: String,
    pub secret: String,
}

/// One moderation finding stored with a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModerationRecord {
    /// `input` or `output`.
    pub stage: String,
    pub category: String,
    pub rule: String,
    /// `block`, `redact`, `flag` or `note`.
    pub action: String,
    /// The matched text, shortened; personal data masked.
    pub excerpt: String,
}

/// A website that embeds the chat widget. `site_key` (`sk_…`) is public: it
/// appears in the site's HTML.
#[derive(Debug, Clone, PartialEq)]
pub struct Site {
    pub id: SiteId,
    pub org_id: OrgId,
    pub workspace_id: WorkspaceId,
    pub persona_id: PersonaId,
    pub site_key: String,
    pub name: String,
    /// Origins (`https://example.com`) allowed to call the public API from a browser.
    pub allowed_origins: Vec<String>,
    pub settings: SiteSettings,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// How the widget looks and behaves.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SiteSettings {
    pub greeting: Option<String>,
    pub primary_color: Option<String>,
    pub background_color: Option<String>,
    pub text_color: Option<String>,
    /// Ask the visitor for an email address.
    pub ask_email: bool,
    /// Visitor phrases that hand the conversation to a human operator.
    pub handoff_phrases: Vec<String>,
}

/// Who answers a widget conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConversationMode {
    Ai,
    Operator,
}

impl ConversationMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ai => "ai",
            Self::Operator => "operator",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "ai" => Some(Self::Ai),
            "operator" => Some(Self::Operator),
            _ => None,
        }
    }
}

/// The widget state of a session: one per site visitor (the widget's `session_id`).
#[derive(Debug, Clone, PartialEq)]
pub struct WidgetConversation {
    pub session_id: SessionId,
    pub org_id: OrgId,
    pub site_id: SiteId,
    /// The widget's `session_id`.
    pub visitor_key: String,
    pub mode: ConversationMode,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub name: Option<String>,
    pub rating: Option<i64>,
    pub rating_comment: Option<String>,
    pub blocked: bool,
    /// Operator messages up to this `seq` have been delivered to the visitor.
    pub operator_read_seq: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A message shown to visitors of matching pages, once per visitor.
#[derive(Debug, Clone, PartialEq)]
pub struct ProactiveMessage {
    pub id: ProactiveId,
    pub org_id: OrgId,
    pub site_id: SiteId,
    pub content: String,
    pub delay_seconds: i64,
    /// `*` matches any characters (`https://shop.example/*/checkout`).
    pub url_pattern: String,
    pub created_at: Timestamp,
}

/// The text formats a knowledge document can be uploaded in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentFormat {
    Markdown,
    Html,
    Text,
    Pdf,
}

impl DocumentFormat {
    pub const ALL: [DocumentFormat; 4] = [Self::Markdown, Self::Html, Self::Text, Self::Pdf];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Markdown => "markdown",
            Self::Html => "html",
            Self::Text => "text",
            Self::Pdf => "pdf",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == value)
    }
}

/// A knowledge document: its extracted text is split into chunks that are
/// searched together with the FAQ.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub id: DocumentId,
    pub org_id: OrgId,
    pub workspace_id: WorkspaceId,
    pub title: String,
    pub format: DocumentFormat,
    /// The uploaded file's name, if it came as a file.
    pub source_name: Option<String>,
    /// Optional sub-organization inside the tenant, as on FAQ entries.
    pub organization_id: Option<String>,
    /// Characters of extracted plain text (the text itself is read with
    /// the document's text, not with every listing).
    pub chars: i64,
    pub chunk_count: i32,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// One chunk of a [`Document`].
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentChunk {
    pub document_id: DocumentId,
    pub index: i32,
    /// Document title and the heading path of the chunk ("Guide › Returns").
    pub heading: String,
    pub content: String,
    pub organization_id: Option<String>,
}

/// A stored embedding of a FAQ entry or a document chunk, with the embedder
/// that made it (vectors of another model are never mixed in).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEmbedding {
    /// `faq_…` for an entry, `doc_…#N` for chunk N of a document.
    pub item_id: String,
    pub model: String,
    pub vector: Vec<f32>,
}
