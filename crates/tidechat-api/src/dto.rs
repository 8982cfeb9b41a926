//! Wire types of the `/v1` API: what clients send and receive. Converted
//! from domain entities here so storage and domain types never reach the wire.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tidechat_domain::{ApiKey, FaqDraft, FaqEntry, Message, Persona, PersonaDraft, Session};
use tidechat_engine::Page;
use utoipa::ToSchema;

pub fn timestamp(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A conversation between one end user and the assistant.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionDto {
    #[schema(example = "chs_01jd3x8y6q1v0w2r7k9m4n5p6t")]
    pub session_id: String,
    pub org_id: String,
    pub workspace_id: String,
    pub persona_id: String,
    /// Your identifier for the end user; null when the session is anonymous.
    pub user_id: Option<String>,
    pub title: Option<String>,
    #[schema(example = "active")]
    pub status: SessionStatusDto,
    pub message_count: i64,
    /// Sum of billed input tokens of the session's assistant replies.
    pub input_tokens: i64,
    pub output_tokens: i64,
    /// Sum of the replies' cost in millionths of a US dollar.
    pub cost_usd_micros: i64,
    /// Exponentially weighted mean (α = 0.3) of the replies' drift scores; null before the first reply.
    pub drift_score: Option<f64>,
    /// Free-form JSON object given at creation.
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub last_active_at: String,
    /// Null while the session is active.
    pub ended_at: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SessionStatusDto {
    Active,
    Ended,
    Archived,
}

impl From<Session> for SessionDto {
    fn from(s: Session) -> Self {
        Self {
            session_id: s.id.into_string(),
            org_id: s.org_id.into_string(),
            workspace_id: s.workspace_id.into_string(),
            persona_id: s.persona_id.into_string(),
            user_id: s.user_id,
            title: s.title,
            status: match s.status {
                tidechat_domain::SessionStatus::Active => SessionStatusDto::Active,
                tidechat_domain::SessionStatus::Ended => SessionStatusDto::Ended,
                tidechat_domain::SessionStatus::Archived => SessionStatusDto::Archived,
            },
            message_count: s.message_count,
            input_tokens: s.input_tokens,
            output_tokens: s.output_tokens,
            cost_usd_micros: s.cost_usd_micros,
            drift_score: s.drift_score,
            metadata: s.metadata,
            started_at: timestamp(&s.started_at),
            last_active_at: timestamp(&s.last_active_at),
            ended_at: s.ended_at.as_ref().map(timestamp),
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RoleDto {
    User,
    Assistant,
    System,
    Tool,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MessageStatusDto {
    /// The whole reply.
    Complete,
    /// Cut short (client disconnected, shutdown, provider failure mid-reply).
    Partial,
    /// Failed before any text was produced.
    Failed,
}

/// One message of a session.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageDto {
    #[schema(example = "msg_01jd3x8y6q1v0w2r7k9m4n5p6t")]
    pub message_id: String,
    pub session_id: String,
    pub role: RoleDto,
    pub content: String,
    /// For the user message: tokens of its text. For the reply: billed prompt tokens.
    pub input_tokens: i64,
    pub output_tokens: i64,
    /// Model id that produced (or received) the message.
    pub model: String,
    /// Time from accepting the turn to the end of the reply, in ms (0 for user messages).
    pub latency_ms: i64,
    pub cost_usd_micros: i64,
    /// `allowed`, `flagged` (delivered, something noted or redacted) or `blocked` (replaced by the fallback).
    #[schema(example = "allowed")]
    pub moderation_verdict: String,
    /// 0 = on topic for the persona, 1 = unrelated.
    pub drift_score: f64,
    pub status: MessageStatusDto,
    /// Position in the session, starting at 0.
    pub seq: i64,
    /// For replies: milliseconds from accepting the turn to the first text.
    pub time_to_first_token_ms: Option<i64>,
    /// For replies replaced by moderation: what the model had written.
    /// Only shown to API-key callers, never to session tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original_content: Option<String>,
    /// For replies: the FAQ entries and document passages the reply was
    /// grounded in, best first (empty for fallbacks and other messages).
    pub citations: Vec<CitationDto>,
    pub created_at: String,
}

impl MessageDto {
    /// The message with its audit fields, for API-key callers.
    pub fn with_audit(m: Message) -> Self {
        let original = m.original_content.clone();
        Self {
            original_content: original,
            ..Self::from(m)
        }
    }

    pub fn for_caller(m: Message, api_key: bool) -> Self {
        if api_key {
            Self::with_audit(m)
        } else {
            Self::from(m)
        }
    }
}

impl From<Message> for MessageDto {
    fn from(m: Message) -> Self {
        use tidechat_domain::{MessageStatus, Role};
        Self {
            message_id: m.id.into_string(),
            session_id: m.session_id.into_string(),
            role: match m.role {
                Role::User => RoleDto::User,
                Role::Assistant => RoleDto::Assistant,
                Role::System => RoleDto::System,
                Role::Tool => RoleDto::Tool,
            },
            content: m.content,
            input_tokens: m.input_tokens,
            output_tokens: m.output_tokens,
            model: m.model,
            latency_ms: m.latency_ms,
            cost_usd_micros: m.cost_usd_micros,
            moderation_verdict: m.moderation_verdict,
            drift_score: m.drift_score,
            status: match m.status {
                MessageStatus::Complete => MessageStatusDto::Complete,
                MessageStatus::Partial => MessageStatusDto::Partial,
                MessageStatus::Failed => MessageStatusDto::Failed,
            },
            seq: m.seq,
            time_to_first_token_ms: m.first_token_ms,
            original_content: None,
            citations: m.citations.into_iter().map(CitationDto::from).collect(),
            created_at: timestamp(&m.created_at),
        }
    }
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateSessionRequest {
    /// Defaults to the workspace's default persona.
    pub persona_id: Option<String>,
    pub user_id: Option<String>,
    pub title: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SendMessageRequest {
    /// The user's message: not empty, at most 16000 characters.
    pub user_text: String,
    /// Overrides the persona's model.
    pub model_id: Option<String>,
    /// Earlier messages given to the model as context (1–200, default 20).
    pub history_limit: Option<i64>,
    /// 0–2; defaults to the persona's.
    pub temperature: Option<f64>,
    /// Positive; at most the model's limit.
    pub max_output_tokens: Option<i64>,
    /// Tools the model may call: `faq_search`, `end_session` or the organization's `/v1/tools`
    /// names; anything else is `unknown_tool`.
    #[serde(default)]
    pub tool_names: Vec<String>,
    /// A summary of earlier conversation added to the instructions.
    pub memory_digest: Option<String>,
    /// Extra rules for this turn, added to the persona's guardrails.
    #[serde(default)]
    pub extra_guardrails: Vec<String>,
    /// `true` for a `text/event-stream` response.
    #[serde(default)]
    pub stream: bool,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SendMessageResponse {
    pub user_message: MessageDto,
    pub assistant_message: MessageDto,
    pub session: SessionDto,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionPage {
    pub items: Vec<SessionDto>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
    pub has_more: bool,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessagePage {
    pub items: Vec<MessageDto>,
    pub next_cursor: Option<String>,
    pub has_more: bool,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PersonaPage {
    pub items: Vec<PersonaDto>,
    pub next_cursor: Option<String>,
    pub has_more: bool,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FaqPage {
    pub items: Vec<FaqDto>,
    pub next_cursor: Option<String>,
    pub has_more: bool,
}

macro_rules! page_from {
    ($page:ty, $dto:ty, $entity:ty) => {
        impl From<Page<$entity>> for $page {
            fn from(p: Page<$entity>) -> Self {
                Self {
                    items: p.items.into_iter().map(<$dto>::from).collect(),
                    next_cursor: p.next_cursor,
                    has_more: p.has_more,
                }
            }
        }
    };
}
page_from!(SessionPage, SessionDto, Session);
page_from!(MessagePage, MessageDto, Message);
page_from!(PersonaPage, PersonaDto, Persona);
page_from!(FaqPage, FaqDto, FaqEntry);

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenRequest {
    /// Lifetime in seconds (default 3600, at most 86400).
    pub ttl_seconds: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenResponse {
    /// A JWT to send as `Authorization: Bearer <token>`; it may only read and post to this session.
    pub token: String,
    pub expires_at: String,
}

/// An assistant persona.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PersonaDto {
    pub persona_id: String,
    pub workspace_id: String,
    pub name: String,
    pub system_prompt: String,
    /// Default model id (`faq` is the built-in FAQ model).
    pub model_id: String,
    pub temperature: f64,
    pub max_output_tokens: i32,
    pub guardrails: Vec<String>,
    /// Sent when the request is out of scope or blocked.
    pub fallback_reply: String,
    /// Minimum FAQ retrieval confidence (0–1) to answer from the FAQ.
    pub faq_threshold: f64,
    /// Replace personal data (emails, phone numbers, cards, IBANs) in replies (verdict `flagged`).
    pub redact_pii: bool,
    /// Replies drifting more than this (0–1) are `flagged`; null: never.
    pub drift_threshold: Option<f64>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<Persona> for PersonaDto {
    fn from(p: Persona) -> Self {
        Self {
            persona_id: p.id.into_string(),
            workspace_id: p.workspace_id.into_string(),
            name: p.name,
            system_prompt: p.system_prompt,
            model_id: p.model_id,
            temperature: p.temperature,
            max_output_tokens: p.max_output_tokens,
            guardrails: p.guardrails,
            fallback_reply: p.fallback_reply,
            faq_threshold: p.faq_threshold,
            redact_pii: p.redact_pii,
            drift_threshold: p.drift_threshold,
            created_at: timestamp(&p.created_at),
            updated_at: timestamp(&p.updated_at),
        }
    }
}

/// Create or replace a persona. Omitted fields take the defaults shown.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PersonaRequest {
    pub name: String,
    #[serde(default)]
    pub system_prompt: String,
    #[schema(default = "faq")]
    pub model_id: Option<String>,
    #[schema(default = 0.7)]
    pub temperature: Option<f64>,
    #[schema(default = 1024)]
    pub max_output_tokens: Option<i32>,
    #[serde(default)]
    pub guardrails: Vec<String>,
    pub fallback_reply: Option<String>,
    #[schema(default = 0.35)]
    pub faq_threshold: Option<f64>,
    #[schema(default = false)]
    pub redact_pii: Option<bool>,
    pub drift_threshold: Option<f64>,
}

impl From<PersonaRequest> for PersonaDraft {
    fn from(r: PersonaRequest) -> Self {
        Self {
            name: r.name,
            system_prompt: r.system_prompt,
            model_id: r
                .model_id
                .unwrap_or_else(|| tidechat_llm::FAQ_MODEL_ID.to_owned()),
            temperature: r.temperature.unwrap_or(0.7),
            max_output_tokens: r.max_output_tokens.unwrap_or(1024),
            guardrails: r.guardrails,
            fallback_reply: r
                .fallback_reply
                .unwrap_or_else(|| PersonaDraft::DEFAULT_FALLBACK.to_owned()),
            redact_pii: r.redact_pii.unwrap_or(false),
            drift_threshold: r.drift_threshold,
            faq_threshold: r
                .faq_threshold
                .unwrap_or(PersonaDraft::DEFAULT_FAQ_THRESHOLD),
        }
    }
}

/// A question and its answer in the workspace's FAQ.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FaqDto {
    pub faq_id: String,
    pub workspace_id: String,
    pub question: String,
    pub answer: String,
    /// Optional sub-organization inside your tenant (narrows FAQ chat searches).
    pub organization_id: Option<String>,
    pub tags: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<FaqEntry> for FaqDto {
    fn from(f: FaqEntry) -> Self {
        Self {
            faq_id: f.id.into_string(),
            workspace_id: f.workspace_id.into_string(),
            question: f.question,
            answer: f.answer,
            organization_id: f.organization_id,
            tags: f.tags,
            created_at: timestamp(&f.created_at),
            updated_at: timestamp(&f.updated_at),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FaqRequest {
    pub question: String,
    pub answer: String,
    pub organization_id: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
}

impl From<FaqRequest> for FaqDraft {
    fn from(r: FaqRequest) -> Self {
        Self {
            question: r.question,
            answer: r.answer,
            organization_id: r.organization_id,
            tags: r.tags,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FaqImportResponse {
    pub imported: usize,
    pub items: Vec<FaqDto>,
}

/// An API key as listed: the secret is never shown again.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyDto {
    pub key_id: String,
    pub name: String,
    /// The first characters of the key, to recognise it.
    #[schema(example = "tc_Xa81bQ9z")]
    pub prefix: String,
    /// `admin` or `chat`.
    pub scope: String,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

impl From<ApiKey> for ApiKeyDto {
    fn from(k: ApiKey) -> Self {
        Self {
            key_id: k.id.into_string(),
            name: k.name,
            prefix: k.prefix,
            scope: k.scope.as_str().to_owned(),
            created_at: timestamp(&k.created_at),
            revoked_at: k.revoked_at.as_ref().map(timestamp),
        }
    }
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateKeyRequest {
    pub name: Option<String>,
    /// `admin` (default: everything in the organization) or `chat` (sessions and messages only).
    pub scope: Option<String>,
}

/// A new key. `key` is shown only in this response.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedKeyDto {
    pub key_id: String,
    pub name: String,
    pub prefix: String,
    pub scope: String,
    pub created_at: String,
    pub revoked_at: Option<String>,
    /// The full secret; store it now.
    pub key: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyList {
    pub items: Vec<ApiKeyDto>,
}

/// The SSE `replace` event: moderation stopped the reply mid-stream.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplaceEvent {
    /// The persona's fallback reply, to show instead of the text received so far.
    pub text: String,
    #[schema(example = "blocked")]
    pub moderation_verdict: String,
}

/// The SSE `delta` event.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeltaEvent {
    pub text: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: String,
}

/// One moderation finding.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModerationRecordDto {
    /// `input` (the user's text) or `output` (the reply).
    pub stage: String,
    /// `violence`, `self_harm`, `sexual_minors`, `hate`, `harassment`, `prompt_injection`,
    /// `guardrail`, `pii.email`, `pii.phone`, `pii.card`, `pii.iban`, `drift`, `classifier.<name>`, ...
    pub category: String,
    /// What matched: the phrase, pattern, guardrail or score.
    pub rule: String,
    /// `block`, `redact`, `flag` or `note`.
    pub action: String,
    /// The matched text, shortened; personal data masked.
    pub excerpt: String,
}

/// A message's moderation: verdict, findings and (for replaced replies) the original text.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageModerationDto {
    pub message_id: String,
    pub moderation_verdict: String,
    pub drift_score: f64,
    /// What the model wrote before moderation replaced it; null otherwise.
    pub original_content: Option<String>,
    pub records: Vec<ModerationRecordDto>,
}

// ---------------------------------------------------------------- knowledge

/// What a reply was grounded in: a FAQ entry, or a passage (chunk) of a
/// document.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum CitationDto {
    /// A FAQ entry (`GET /v1/faqs/{faqId}`).
    #[serde(rename_all = "camelCase")]
    Faq { faq_id: String },
    /// Chunk `chunk` (0-based) of a document (`GET /v1/documents/{documentId}`).
    #[serde(rename_all = "camelCase")]
    Document {
        document_id: String,
        chunk: u32,
        /// Document title and heading path of the passage.
        title: String,
    },
}

impl From<tidechat_domain::Citation> for CitationDto {
    fn from(c: tidechat_domain::Citation) -> Self {
        match c {
            tidechat_domain::Citation::Faq { id } => Self::Faq {
                faq_id: id.into_string(),
            },
            tidechat_domain::Citation::Document { id, chunk, title } => Self::Document {
                document_id: id.into_string(),
                chunk,
                title,
            },
        }
    }
}

/// The formats a document can be uploaded in.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DocumentFormatDto {
    Markdown,
    Html,
    Text,
    Pdf,
}

impl From<tidechat_domain::DocumentFormat> for DocumentFormatDto {
    fn from(f: tidechat_domain::DocumentFormat) -> Self {
        use tidechat_domain::DocumentFormat as F;
        match f {
            F::Markdown => Self::Markdown,
            F::Html => Self::Html,
            F::Text => Self::Text,
            F::Pdf => Self::Pdf,
        }
    }
}

impl From<DocumentFormatDto> for tidechat_domain::DocumentFormat {
    fn from(f: DocumentFormatDto) -> Self {
        match f {
            DocumentFormatDto::Markdown => Self::Markdown,
            DocumentFormatDto::Html => Self::Html,
            DocumentFormatDto::Text => Self::Text,
            DocumentFormatDto::Pdf => Self::Pdf,
        }
    }
}

/// A knowledge document: its text is split into chunks that are searched
/// together with the FAQ.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DocumentDto {
    #[schema(example = "doc_01jd3x8y6q1v0w2r7k9m4n5p6t")]
    pub document_id: String,
    pub workspace_id: String,
    pub title: String,
    pub format: DocumentFormatDto,
    /// The uploaded file's name, when it came as a file.
    pub file_name: Option<String>,
    /// Optional sub-organization inside your tenant (as on FAQ entries).
    pub organization_id: Option<String>,
    /// Characters of extracted text.
    pub chars: i64,
    pub chunk_count: i32,
    pub created_at: String,
    pub updated_at: String,
}

impl From<tidechat_domain::Document> for DocumentDto {
    fn from(d: tidechat_domain::Document) -> Self {
        Self {
            document_id: d.id.into_string(),
            workspace_id: d.workspace_id.into_string(),
            title: d.title,
            format: d.format.into(),
            file_name: d.source_name,
            organization_id: d.organization_id,
            chars: d.chars,
            chunk_count: d.chunk_count,
            created_at: timestamp(&d.created_at),
            updated_at: timestamp(&d.updated_at),
        }
    }
}

/// One chunk of a document.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DocumentChunkDto {
    pub index: i32,
    /// Document title and heading path ("Guide › Returns").
    pub heading: String,
    pub content: String,
}

/// A document with its extracted text and chunks.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DocumentDetailDto {
    #[serde(flatten)]
    pub document: DocumentDto,
    pub text: String,
    pub chunks: Vec<DocumentChunkDto>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DocumentPage {
    pub items: Vec<DocumentDto>,
    pub next_cursor: Option<String>,
    pub has_more: bool,
}
page_from!(DocumentPage, DocumentDto, tidechat_domain::Document);

/// A document given as JSON (files: send `multipart/form-data` with a
/// `file` part, or the raw bytes with their `Content-Type`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"title": "Returns guide", "format": "markdown", "content": "# Returns\n\nYou can return any item within 30 days."}))]
pub struct DocumentRequest {
    /// Default: the document's own title (first heading, `<title>`), else the file name.
    pub title: Option<String>,
    /// Default: guessed from `fileName` and the content.
    pub format: Option<DocumentFormatDto>,
    /// The document's text (Markdown, HTML or plain text).
    pub content: String,
    pub file_name: Option<String>,
    pub organization_id: Option<String>,
}

/// A question to rank the knowledge for, as a turn would.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"query": "How do I return a broken tablet?"}))]
pub struct KnowledgeSearchRequest {
    pub query: String,
    /// Search only entries and documents of this sub-organization.
    pub organization_id: Option<String>,
    /// Hits to return (1–50, default 5).
    pub limit: Option<usize>,
    /// Confidence below which the question is out of scope (default: the
    /// built-in default, what personas use unless they set `faqThreshold`).
    pub threshold: Option<f64>,
}

/// One ranked FAQ entry or document passage.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KnowledgeHitDto {
    /// What the hit is, with its id.
    pub source: CitationDto,
    /// The entry's question, or the passage's title and heading path.
    pub title: String,
    /// The entry's answer, or the passage's text.
    pub text: String,
    /// How sure the ranker is that this answers the question (0–1; compare
    /// with `threshold`).
    pub confidence: f64,
    /// Ranking score (only comparable within one search).
    pub score: f64,
    /// The lexical part of the ranking.
    pub lexical: f64,
    /// Cosine similarity of the question and the passage (`null` without an
    /// embedding model).
    pub semantic: Option<f64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KnowledgeSearchResponse {
    /// `hybrid` (lexical + embeddings) or `lexical` (no embedding model, or it failed).
    pub mode: String,
    pub threshold: f64,
    /// True when no hit reaches `threshold`: the `faq` model would send the fallback reply.
    pub out_of_scope: bool,
    pub hits: Vec<KnowledgeHitDto>,
}

impl KnowledgeHitDto {
    pub fn from_hit(hit: tidechat_llm::FaqHit) -> Self {
        let source = match &hit.chunk {
            Some(c) => CitationDto::Document {
                document_id: c.document_id.clone(),
                chunk: c.index,
                title: hit.question.clone(),
            },
            None => CitationDto::Faq {
                faq_id: hit.id.clone(),
            },
        };
        Self {
            source,
            title: hit.question,
            text: hit.answer,
            confidence: hit.confidence,
            score: hit.score,
            lexical: hit.lexical,
            semantic: hit.semantic,
        }
    }
}
