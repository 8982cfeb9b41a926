//! Row structs and conversions between rows and domain entities.
//!
//! Timestamps are stored as UTC `TIMESTAMP` and truncated to microseconds on
//! write (PostgreSQL's precision; SQLite stores text), so both backends
//! round-trip identically. Conversions from rows never panic: a value that
//! cannot be a domain value yields [`StoreError::Corrupt`].

use chrono::{DateTime, NaiveDateTime, Timelike, Utc};
use diesel::prelude::*;
use serde_json::{Map, Value};
use tidechat_domain::{
    ApiKey, ApiKeyId, FaqEntry, FaqId, Message, MessageId, MessageStatus, OrgId, Organization,
    Persona, PersonaId, Role, Session, SessionId, SessionStatus, Workspace, WorkspaceId,
};

use crate::error::{corrupt, StoreError};
use crate::schema::*;

/// Domain timestamp -> stored value (UTC, truncated to microseconds).
pub(crate) fn to_db_ts(t: DateTime<Utc>) -> NaiveDateTime {
    let naive = t.naive_utc();
    let nanos = naive.nanosecond();
    naive
        .with_nanosecond(nanos - nanos % 1_000)
        .unwrap_or(naive)
}

/// Stored value -> domain timestamp.
pub(crate) fn from_db_ts(t: NaiveDateTime) -> DateTime<Utc> {
    t.and_utc()
}

/// Truncates a domain timestamp the way the store does on write; useful to
/// compare what was written with what is read back.
pub fn truncate_timestamp(t: DateTime<Utc>) -> DateTime<Utc> {
    from_db_ts(to_db_ts(t))
}

fn strings_to_json(v: &[String]) -> String {
    Value::Array(v.iter().cloned().map(Value::String).collect()).to_string()
}

fn json_to_strings(table: &str, id: &str, text: &str) -> Result<Vec<String>, StoreError> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| corrupt(table, id, format!("bad JSON: {e}")))?;
    let Value::Array(items) = value else {
        return Err(corrupt(table, id, "expected a JSON array"));
    };
    items
        .into_iter()
        .map(|item| match item {
            Value::String(s) => Ok(s),
            _ => Err(corrupt(table, id, "expected an array of strings")),
        })
        .collect()
}

fn json_to_object(table: &str, id: &str, text: &str) -> Result<Map<String, Value>, StoreError> {
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(corrupt(table, id, "expected a JSON object")),
        Err(e) => Err(corrupt(table, id, format!("bad JSON: {e}"))),
    }
}

// ---------------------------------------------------------------- orgs

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = organizations)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub(crate) struct OrgRow {
    pub id: String,
    pub name: String,
    pub created_at: NaiveDateTime,
}

impl OrgRow {
    pub fn from_domain(o: &Organization) -> Self {
        Self {
            id: o.id.as_str().to_owned(),
            name: o.name.clone(),
            created_at: to_db_ts(o.created_at),
        }
    }

    pub fn into_domain(self) -> Organization {
        Organization {
            id: OrgId::from_trusted(self.id),
            name: self.name,
            created_at: from_db_ts(self.created_at),
        }
    }
}

// ---------------------------------------------------------------- workspaces

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = workspaces)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub(crate) struct WorkspaceRow {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub default_persona_id: Option<String>,
    pub faq_version: i64,
    pub created_at: NaiveDateTime,
}

impl WorkspaceRow {
    pub fn from_domain(w: &Workspace) -> Self {
        Self {
            id: w.id.as_str().to_owned(),
            org_id: w.org_id.as_str().to_owned(),
            name: w.name.clone(),
            default_persona_id: w.default_persona_id.as_ref().map(|p| p.as_str().to_owned()),
            faq_version: w.faq_version,
            created_at: to_db_ts(w.created_at),
        }
    }

    pub fn into_domain(self) -> Workspace {
        Workspace {
            id: WorkspaceId::from_trusted(self.id),
            org_id: OrgId::from_trusted(self.org_id),
            name: self.name,
            default_persona_id: self.default_persona_id.map(PersonaId::from_trusted),
            faq_version: self.faq_version,
            created_at: from_db_ts(self.created_at),
        }
    }
}

// ---------------------------------------------------------------- personas

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = personas)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub(crate) struct PersonaRow {
    pub id: String,
    pub org_id: String,
    pub workspace_id: String,
    pub name: String,
    pub system_prompt: String,
    pub model_id: String,
    pub temperature: f64,
    pub max_output_tokens: i32,
    pub guardrails: String,
    pub fallback_reply: String,
    pub faq_threshold: f64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub redact_pii: bool,
    pub drift_threshold: Option<f64>,
}

impl PersonaRow {
    pub fn from_domain(p: &Persona) -> Self {
        Self {
            id: p.id.as_str().to_owned(),
            org_id: p.org_id.as_str().to_owned(),
            workspace_id: p.workspace_id.as_str().to_owned(),
            name: p.name.clone(),
            system_prompt: p.system_prompt.clone(),
            model_id: p.model_id.clone(),
            temperature: p.temperature,
            max_output_tokens: p.max_output_tokens,
            guardrails: strings_to_json(&p.guardrails),
            fallback_reply: p.fallback_reply.clone(),
            faq_threshold: p.faq_threshold,
            created_at: to_db_ts(p.created_at),
            updated_at: to_db_ts(p.updated_at),
            redact_pii: p.redact_pii,
            drift_threshold: p.drift_threshold,
        }
    }

    pub fn into_domain(self) -> Result<Persona, StoreError> {
        let guardrails = json_to_strings("personas", &self.id, &self.guardrails)?;
        Ok(Persona {
            id: PersonaId::from_trusted(self.id),
            org_id: OrgId::from_trusted(self.org_id),
            workspace_id: WorkspaceId::from_trusted(self.workspace_id),
            name: self.name,
            system_prompt: self.system_prompt,
            model_id: self.model_id,
            temperature: self.temperature,
            max_output_tokens: self.max_output_tokens,
            guardrails,
            fallback_reply: self.fallback_reply,
            faq_threshold: self.faq_threshold,
            redact_pii: self.redact_pii,
            drift_threshold: self.drift_threshold,
            created_at: from_db_ts(self.created_at),
            updated_at: from_db_ts(self.updated_at),
        })
    }
}

#[derive(Debug, Clone, AsChangeset)]
#[diesel(table_name = personas)]
#[diesel(treat_none_as_null = true)]
pub(crate) struct PersonaChanges {
    pub name: String,
    pub system_prompt: String,
    pub model_id: String,
    pub temperature: f64,
    pub max_output_tokens: i32,
    pub guardrails: String,
    pub fallback_reply: String,
    pub faq_threshold: f64,
    pub updated_at: NaiveDateTime,
    pub redact_pii: bool,
    pub drift_threshold: Option<f64>,
}

impl PersonaChanges {
    pub fn new(d: &tidechat_domain::PersonaDraft, at: DateTime<Utc>) -> Self {
        Self {
            name: d.name.clone(),
            system_prompt: d.system_prompt.clone(),
            model_id: d.model_id.clone(),
            temperature: d.temperature,
            max_output_tokens: d.max_output_tokens,
            guardrails: strings_to_json(&d.guardrails),
            fallback_reply: d.fallback_reply.clone(),
            faq_threshold: d.faq_threshold,
            updated_at: to_db_ts(at),
            redact_pii: d.redact_pii,
            drift_threshold: d.drift_threshold,
        }
    }
}

// ---------------------------------------------------------------- api keys

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = api_keys)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub(crate) struct NewApiKeyRow {
    pub id: String,
    pub org_id: String,
    pub workspace_id: String,
    pub name: String,
    pub prefix: String,
    pub key_hash: String,
    pub created_at: NaiveDateTime,
    pub revoked_at: Option<NaiveDateTime>,
    pub scope: String,
}

impl NewApiKeyRow {
    pub fn from_domain(k: &ApiKey, key_hash: &str) -> Self {
        Self {
            id: k.id.as_str().to_owned(),
            org_id: k.org_id.as_str().to_owned(),
            workspace_id: k.workspace_id.as_str().to_owned(),
            name: k.name.clone(),
            prefix: k.prefix.clone(),
            key_hash: key_hash.to_owned(),
            created_at: to_db_ts(k.created_at),
            revoked_at: k.revoked_at.map(to_db_ts),
            scope: k.scope.as_str().to_owned(),
        }
    }
}

/// An API key as read back; the hash is never selected.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = api_keys)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub(crate) struct ApiKeyRow {
    pub id: String,
    pub org_id: String,
    pub workspace_id: String,
    pub name: String,
    pub prefix: String,
    pub created_at: NaiveDateTime,
    pub revoked_at: Option<NaiveDateTime>,
    pub scope: String,
}

impl ApiKeyRow {
    pub fn into_domain(self) -> ApiKey {
        ApiKey {
            // An unknown scope reads as the narrowest one.
            scope: tidechat_domain::KeyScope::parse(&self.scope)
                .unwrap_or(tidechat_domain::KeyScope::Chat),
            id: ApiKeyId::from_trusted(self.id),
            org_id: OrgId::from_trusted(self.org_id),
            workspace_id: WorkspaceId::from_trusted(self.workspace_id),
            name: self.name,
            prefix: self.prefix,
            created_at: from_db_ts(self.created_at),
            revoked_at: self.revoked_at.map(from_db_ts),
        }
    }
}

// ---------------------------------------------------------------- sessions

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = sessions)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub(crate) struct SessionRow {
    pub id: String,
    pub org_id: String,
    pub workspace_id: String,
    pub persona_id: String,
    pub user_id: Option<String>,
    pub title: Option<String>,
    pub status: String,
    pub message_count: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_usd_micros: i64,
    pub next_seq: i64,
    pub metadata: String,
    pub started_at: NaiveDateTime,
    pub last_active_at: NaiveDateTime,
    pub ended_at: Option<NaiveDateTime>,
    pub external_id: Option<String>,
    pub drift_ewma: Option<f64>,
}

impl SessionRow {
    /// A new session row. `next_seq` starts at `message_count` so sequence
    /// numbers stay gap-free even for a session inserted with a count.
    pub fn from_domain(s: &Session) -> Self {
        Self {
            id: s.id.as_str().to_owned(),
            org_id: s.org_id.as_str().to_owned(),
            workspace_id: s.workspace_id.as_str().to_owned(),
            persona_id: s.persona_id.as_str().to_owned(),
            user_id: s.user_id.clone(),
            title: s.title.clone(),
            status: s.status.as_str().to_owned(),
            message_count: s.message_count,
            input_tokens: s.input_tokens,
            output_tokens: s.output_tokens,
            cost_usd_micros: s.cost_usd_micros,
            next_seq: s.message_count,
            metadata: Value::Object(s.metadata.clone()).to_string(),
            started_at: to_db_ts(s.started_at),
            last_active_at: to_db_ts(s.last_active_at),
            ended_at: s.ended_at.map(to_db_ts),
            external_id: s.external_id.clone(),
            drift_ewma: s.drift_score,
        }
    }

    pub fn into_domain(self) -> Result<Session, StoreError> {
        let status = SessionStatus::parse(&self.status)
            .ok_or_else(|| corrupt("sessions", &self.id, "unknown status"))?;
        let metadata = json_to_object("sessions", &self.id, &self.metadata)?;
        Ok(Session {
            id: SessionId::from_trusted(self.id),
            org_id: OrgId::from_trusted(self.org_id),
            workspace_id: WorkspaceId::from_trusted(self.workspace_id),
            persona_id: PersonaId::from_trusted(self.persona_id),
            user_id: self.user_id,
            title: self.title,
            status,
            message_count: self.message_count,
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            cost_usd_micros: self.cost_usd_micros,
            metadata,
            external_id: self.external_id,
            drift_score: self.drift_ewma,
            started_at: from_db_ts(self.started_at),
            last_active_at: from_db_ts(self.last_active_at),
            ended_at: self.ended_at.map(from_db_ts),
        })
    }
}

// ---------------------------------------------------------------- messages

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = messages)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub(crate) struct MessageRow {
    pub id: String,
    pub session_id: String,
    pub org_id: String,
    pub seq: i64,
    pub role: String,
    pub content: String,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub tokens_estimated: bool,
    pub model: String,
    pub latency_ms: i64,
    pub cost_usd_micros: i64,
    pub moderation_verdict: String,
    pub drift_score: f64,
    pub status: String,
    pub created_at: NaiveDateTime,
    pub api_key_id: Option<String>,
    pub first_token_ms: Option<i64>,
    pub original_content: Option<String>,
    pub citations: String,
    pub client_message_id: Option<String>,
    pub reply_to: Option<String>,
}

impl MessageRow {
    pub fn from_new(m: &crate::NewMessage, seq: i64) -> Self {
        Self {
            id: m.id.as_str().to_owned(),
            session_id: m.session_id.as_str().to_owned(),
            org_id: m.org_id.as_str().to_owned(),
            seq,
            role: m.role.as_str().to_owned(),
            content: m.content.clone(),
            input_tokens: m.input_tokens,
            output_tokens: m.output_tokens,
            tokens_estimated: m.tokens_estimated,
            model: m.model.clone(),
            latency_ms: m.latency_ms,
            cost_usd_micros: m.cost_usd_micros,
            moderation_verdict: m.moderation_verdict.clone(),
            drift_score: m.drift_score,
            status: m.status.as_str().to_owned(),
            created_at: to_db_ts(m.created_at),
            api_key_id: m.api_key_id.as_ref().map(|k| k.as_str().to_owned()),
            first_token_ms: m.first_token_ms,
            original_content: m.original_content.clone(),
            citations: crate::repo::knowledge::citations_to_json(&m.citations),
            client_message_id: m.client_message_id.clone(),
            reply_to: m.reply_to.as_ref().map(|r| r.as_str().to_owned()),
        }
    }

    pub fn into_domain(self) -> Result<Message, StoreError> {
        let role =
            Role::parse(&self.role).ok_or_else(|| corrupt("messages", &self.id, "unknown role"))?;
        let status = MessageStatus::parse(&self.status)
            .ok_or_else(|| corrupt("messages", &self.id, "unknown status"))?;
        let citations = crate::repo::knowledge::citations_from_json(&self.id, &self.citations)?;
        Ok(Message {
            id: MessageId::from_trusted(self.id),
            session_id: SessionId::from_trusted(self.session_id),
            seq: self.seq,
            role,
            content: self.content,
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            tokens_estimated: self.tokens_estimated,
            model: self.model,
            latency_ms: self.latency_ms,
            cost_usd_micros: self.cost_usd_micros,
            moderation_verdict: self.moderation_verdict,
            drift_score: self.drift_score,
            status,
            first_token_ms: self.first_token_ms,
            original_content: self.original_content,
            citations,
            created_at: from_db_ts(self.created_at),
        })
    }
}

// ---------------------------------------------------------------- faq

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = faq_entries)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub(crate) struct FaqRow {
    pub id: String,
    pub org_id: String,
    pub workspace_id: String,
    pub question: String,
    pub answer: String,
    pub organization_id: Option<String>,
    pub tags: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl FaqRow {
    pub fn from_domain(f: &FaqEntry) -> Self {
        Self {
            id: f.id.as_str().to_owned(),
            org_id: f.org_id.as_str().to_owned(),
            workspace_id: f.workspace_id.as_str().to_owned(),
            question: f.question.clone(),
            answer: f.answer.clone(),
            organization_id: f.organization_id.clone(),
            tags: strings_to_json(&f.tags),
            created_at: to_db_ts(f.created_at),
            updated_at: to_db_ts(f.updated_at),
        }
    }

    pub fn into_domain(self) -> Result<FaqEntry, StoreError> {
        let tags = json_to_strings("faq_entries", &self.id, &self.tags)?;
        Ok(FaqEntry {
            id: FaqId::from_trusted(self.id),
            org_id: OrgId::from_trusted(self.org_id),
            workspace_id: WorkspaceId::from_trusted(self.workspace_id),
            question: self.question,
            answer: self.answer,
            organization_id: self.organization_id,
            tags,
            created_at: from_db_ts(self.created_at),
            updated_at: from_db_ts(self.updated_at),
        })
    }
}

#[derive(Debug, Clone, AsChangeset)]
#[diesel(table_name = faq_entries)]
#[diesel(treat_none_as_null = true)]
pub(crate) struct FaqChanges {
    pub question: String,
    pub answer: String,
    pub organization_id: Option<String>,
    pub tags: String,
    pub updated_at: NaiveDateTime,
}

impl FaqChanges {
    pub fn new(d: &tidechat_domain::FaqDraft, at: DateTime<Utc>) -> Self {
        Self {
            question: d.question.clone(),
            answer: d.answer.clone(),
            organization_id: d.organization_id.clone(),
            tags: strings_to_json(&d.tags),
            updated_at: to_db_ts(at),
        }
    }
}

// ---------------------------------------------------------------- secrets

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = server_secrets)]
pub(crate) struct SecretRow {
    pub name: String,
    pub value: String,
    pub created_at: NaiveDateTime,
}

// ---------------------------------------------------------------- end users

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = end_users)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub(crate) struct EndUserRow {
    pub id: String,
    pub org_id: String,
    pub user_id: String,
    pub created_at: NaiveDateTime,
    pub last_seen_at: NaiveDateTime,
}

impl EndUserRow {
    pub fn into_domain(self) -> tidechat_domain::EndUser {
        tidechat_domain::EndUser {
            id: tidechat_domain::EndUserId::from_trusted(self.id),
            org_id: OrgId::from_trusted(self.org_id),
            user_id: self.user_id,
            created_at: from_db_ts(self.created_at),
            last_seen_at: from_db_ts(self.last_seen_at),
        }
    }
}

// ---------------------------------------------------------------- limits

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = limits)]
#[diesel(treat_none_as_null = true)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub(crate) struct LimitsRow {
    pub org_id: String,
    pub api_key_id: String,
    pub requests_per_minute: Option<i64>,
    pub max_concurrent_streams: Option<i64>,
    pub monthly_tokens: Option<i64>,
    pub monthly_cost_usd_micros: Option<i64>,
    pub updated_at: NaiveDateTime,
}

impl LimitsRow {
    pub fn into_domain(self) -> tidechat_domain::Limits {
        tidechat_domain::Limits {
            requests_per_minute: self.requests_per_minute,
            max_concurrent_streams: self.max_concurrent_streams,
            monthly_tokens: self.monthly_tokens,
            monthly_cost_usd_micros: self.monthly_cost_usd_micros,
        }
    }
}

// ---------------------------------------------------------------- tools

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = tools)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub(crate) struct ToolRow {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub description: String,
    pub parameters: String,
    pub url: String,
    pub secret: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl ToolRow {
    pub fn from_domain(t: &tidechat_domain::HttpTool) -> Self {
        Self {
            id: t.id.as_str().to_owned(),
            org_id: t.org_id.as_str().to_owned(),
            name: t.name.clone(),
            description: t.description.clone(),
            parameters: t.parameters.to_string(),
            url: t.url.clone(),
            secret: t.secret.clone(),
            created_at: to_db_ts(t.created_at),
            updated_at: to_db_ts(t.updated_at),
        }
    }

    pub fn into_domain(self) -> Result<tidechat_domain::HttpTool, StoreError> {
        let parameters = serde_json::from_str(&self.parameters)
            .map_err(|e| corrupt("tools", &self.id, format!("bad JSON: {e}")))?;
        Ok(tidechat_domain::HttpTool {
            id: tidechat_domain::ToolId::from_trusted(self.id),
            org_id: OrgId::from_trusted(self.org_id),
            name: self.name,
            description: self.description,
            parameters,
            url: self.url,
            secret: self.secret,
            created_at: from_db_ts(self.created_at),
            updated_at: from_db_ts(self.updated_at),
        })
    }
}

// ---------------------------------------------------------------- moderation

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = moderation_records)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub(crate) struct ModerationRow {
    pub id: i64,
    pub message_id: String,
    pub org_id: String,
    pub stage: String,
    pub category: String,
    pub rule: String,
    pub action: String,
    pub excerpt: String,
}

impl ModerationRow {
    pub fn into_domain(self) -> tidechat_domain::ModerationRecord {
        tidechat_domain::ModerationRecord {
            stage: self.stage,
            category: self.category,
            rule: self.rule,
            action: self.action,
            excerpt: self.excerpt,
        }
    }
}

// ---------------------------------------------------------------- widget

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = sites)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub(crate) struct SiteRow {
    pub id: String,
    pub org_id: String,
    pub workspace_id: String,
    pub persona_id: String,
    pub site_key: String,
    pub name: String,
    pub allowed_origins: String,
    pub settings: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

fn settings_to_json(s: &tidechat_domain::SiteSettings) -> String {
    serde_json::json!({
        "greeting": s.greeting,
        "primary_color": s.primary_color,
        "background_color": s.background_color,
        "text_color": s.text_color,
        "ask_email": s.ask_email,
        "handoff_phrases": s.handoff_phrases,
    })
    .to_string()
}

fn settings_from_json(id: &str, text: &str) -> Result<tidechat_domain::SiteSettings, StoreError> {
    let v: Value = serde_json::from_str(text)
        .map_err(|e| corrupt("sites", id, format!("bad settings JSON: {e}")))?;
    let string = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    Ok(tidechat_domain::SiteSettings {
        greeting: string("greeting"),
        primary_color: string("primary_color"),
        background_color: string("background_color"),
        text_color: string("text_color"),
        ask_email: v.get("ask_email").and_then(Value::as_bool).unwrap_or(false),
        handoff_phrases: v
            .get("handoff_phrases")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
    })
}

impl SiteRow {
    pub fn from_domain(s: &tidechat_domain::Site) -> Self {
        Self {
            id: s.id.as_str().to_owned(),
            org_id: s.org_id.as_str().to_owned(),
            workspace_id: s.workspace_id.as_str().to_owned(),
            persona_id: s.persona_id.as_str().to_owned(),
            site_key: s.site_key.clone(),
            name: s.name.clone(),
            allowed_origins: strings_to_json(&s.allowed_origins),
            settings: settings_to_json(&s.settings),
            created_at: to_db_ts(s.created_at),
            updated_at: to_db_ts(s.updated_at),
        }
    }

    pub fn into_domain(self) -> Result<tidechat_domain::Site, StoreError> {
        let allowed_origins = json_to_strings("sites", &self.id, &self.allowed_origins)?;
        let settings = settings_from_json(&self.id, &self.settings)?;
        Ok(tidechat_domain::Site {
            id: tidechat_domain::SiteId::from_trusted(self.id),
            org_id: OrgId::from_trusted(self.org_id),
            workspace_id: WorkspaceId::from_trusted(self.workspace_id),
            persona_id: PersonaId::from_trusted(self.persona_id),
            site_key: self.site_key,
            name: self.name,
            allowed_origins,
            settings,
            created_at: from_db_ts(self.created_at),
            updated_at: from_db_ts(self.updated_at),
        })
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = widget_conversations)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub(crate) struct ConversationRow {
    pub session_id: String,
    pub org_id: String,
    pub site_id: String,
    pub visitor_key: String,
    pub mode: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub name: Option<String>,
    pub rating: Option<i64>,
    pub rating_comment: Option<String>,
    pub blocked: bool,
    pub operator_read_seq: i64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl ConversationRow {
    pub fn from_domain(c: &tidechat_domain::WidgetConversation) -> Self {
        Self {
            session_id: c.session_id.as_str().to_owned(),
            org_id: c.org_id.as_str().to_owned(),
            site_id: c.site_id.as_str().to_owned(),
            visitor_key: c.visitor_key.clone(),
            mode: c.mode.as_str().to_owned(),
            email: c.email.clone(),
            phone: c.phone.clone(),
            name: c.name.clone(),
            rating: c.rating,
            rating_comment: c.rating_comment.clone(),
            blocked: c.blocked,
            operator_read_seq: c.operator_read_seq,
            created_at: to_db_ts(c.created_at),
            updated_at: to_db_ts(c.updated_at),
        }
    }

    pub fn into_domain(self) -> Result<tidechat_domain::WidgetConversation, StoreError> {
        let mode = tidechat_domain::ConversationMode::parse(&self.mode)
            .ok_or_else(|| corrupt("widget_conversations", &self.session_id, "unknown mode"))?;
        Ok(tidechat_domain::WidgetConversation {
            session_id: SessionId::from_trusted(self.session_id),
            org_id: OrgId::from_trusted(self.org_id),
            site_id: tidechat_domain::SiteId::from_trusted(self.site_id),
            visitor_key: self.visitor_key,
            mode,
            email: self.email,
            phone: self.phone,
            name: self.name,
            rating: self.rating,
            rating_comment: self.rating_comment,
            blocked: self.blocked,
            operator_read_seq: self.operator_read_seq,
            created_at: from_db_ts(self.created_at),
            updated_at: from_db_ts(self.updated_at),
        })
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = proactive_messages)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub(crate) struct ProactiveRow {
    pub id: String,
    pub org_id: String,
    pub site_id: String,
    pub content: String,
    pub delay_seconds: i64,
    pub url_pattern: String,
    pub created_at: NaiveDateTime,
}

impl ProactiveRow {
    pub fn from_domain(p: &tidechat_domain::ProactiveMessage) -> Self {
        Self {
            id: p.id.as_str().to_owned(),
            org_id: p.org_id.as_str().to_owned(),
            site_id: p.site_id.as_str().to_owned(),
            content: p.content.clone(),
            delay_seconds: p.delay_seconds,
            url_pattern: p.url_pattern.clone(),
            created_at: to_db_ts(p.created_at),
        }
    }

    pub fn into_domain(self) -> tidechat_domain::ProactiveMessage {
        tidechat_domain::ProactiveMessage {
            id: tidechat_domain::ProactiveId::from_trusted(self.id),
            org_id: OrgId::from_trusted(self.org_id),
            site_id: tidechat_domain::SiteId::from_trusted(self.site_id),
            content: self.content,
            delay_seconds: self.delay_seconds,
            url_pattern: self.url_pattern,
            created_at: from_db_ts(self.created_at),
        }
    }
}
