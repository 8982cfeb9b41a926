//! The FAQ chat surface (`POST /chat`, `GET /config`, `GET /history/sessions`),
//! matching its reference: the API key in `mooni-api-key` (or
//! `Authorization: Bearer`, or `X-API-Key`), SSE frames with JSON in `data:`
//! lines closed by `data: [DONE]`, and errors as `{"error": "<code>"}`.

use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tidechat_engine::{FaqChatRequest, TurnEvent};
use tidechat_llm::FaqHit;
use utoipa::ToSchema;

use crate::auth::KeyAuth;
use crate::driver::{sse_response, stream_turn, Step, TurnEncoder};
use crate::dto::timestamp;
use crate::error::{ApiError, ErrorKind, Failure, FaqChat};
use crate::sse::data_frame as frame;
use crate::state::AppState;

/// Longest accepted `query`, after trimming.
pub const QUERY_MAX_CHARS: usize = 500;
/// The reference's own header for the key.
pub const KEY_HEADER: &str = "mooni-api-key";
/// FAQ suggestions sent in the `faq` event.
const SUGGESTIONS: usize = 3;

/// This surface's errors (`{"error": code}`; see [`FaqChat`]).
pub type FaqChatError = Failure<FaqChat>;
type Caller = KeyAuth<FaqChat>;

/// `POST /chat` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FaqChatBody {
    /// The user's question; trimmed; at most 500 characters.
    pub query: String,
    /// The conversation id (a UUID is recommended); turns are recorded only when given.
    pub session_id: Option<String>,
    /// The host site's user id; null or absent is an anonymous session.
    pub user_id: Option<String>,
    /// Restricts the FAQ search to this organization's entries.
    pub organization_id: Option<String>,
}

fn bad_request(kind: ErrorKind, message: &str) -> FaqChatError {
    Failure::new(kind, message)
}

/// Applies the reference's error table to a raw body.
fn parse_body(body: &[u8]) -> Result<FaqChatRequest, FaqChatError> {
    let not_json = || bad_request(ErrorKind::InvalidJson, "the body must be a JSON object");
    let value: Value = serde_json::from_slice(body).map_err(|_| not_json())?;
    let Value::Object(map) = value else {
        return Err(not_json());
    };
    let query = match map.get("query") {
        Some(Value::String(q)) if !q.trim().is_empty() => q.trim().to_owned(),
        _ => return Err(bad_request(ErrorKind::MissingQuery, "`query` is required")),
    };
    if query.chars().count() > QUERY_MAX_CHARS {
        let mut e = ApiError::new(ErrorKind::QueryTooLong, "`query` is too long");
        e.max_length = Some(QUERY_MAX_CHARS);
        return Err(e.on());
    }
    let optional = |field: &str| -> Result<Option<String>, FaqChatError> {
        match map.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.trim().to_owned())),
            Some(_) => Err(ApiError::invalid_field(
                field,
                format!("`{field}` must be a string or null"),
            )
            .on()),
        }
    };
    Ok(FaqChatRequest {
        query,
        session_key: optional("sessionId")?,
        user_id: optional("userId")?,
        organization_id: optional("organizationId")?,
    })
}

fn suggestions(hits: &[FaqHit]) -> Value {
    let results: Vec<Value> = hits
        .iter()
        .take(SUGGESTIONS)
        .map(|h| match &h.chunk {
            // A document passage: its id, and the document and chunk it cites.
            Some(c) => json!({
                "id": h.id, "title": h.question, "type": "document",
                "documentId": c.document_id, "chunk": c.index,
            }),
            None => json!({"id": h.id, "title": h.question, "type": "faq"}),
        })
        .collect();
    json!({"type": "faq", "results": results})
}

/// The FAQ chat encoding of a turn: `text` chunks, then the `faq`
/// suggestions and the final status, closed by `data: [DONE]`.
#[derive(Default)]
struct FaqChatFrames {
    hits: Vec<FaqHit>,
    out_of_scope: bool,
}

impl TurnEncoder for FaqChatFrames {
    type Frame = Bytes;

    fn event(&mut self, event: TurnEvent) -> Step<Bytes> {
        match event {
            TurnEvent::Retrieval(r) => {
                self.out_of_scope = r.out_of_scope;
                self.hits = r.hits;
                Step::more(Vec::new())
            }
            TurnEvent::UserStored(_) => Step::more(Vec::new()),
            TurnEvent::Delta(text) => {
                Step::more(vec![frame(&json!({"type": "text", "content": text}))])
            }
            // Moderation stopped the answer: what was sent had passed; the
            // fallback follows it (this surface has no way to retract text).
            TurnEvent::Replaced(text) => Step::more(vec![frame(
                &json!({"type": "text", "content": format!("\n\n{text}")}),
            )]),
            TurnEvent::Completed(_) | TurnEvent::Unrecorded => {
                let mut frames = Vec::new();
                if !self.hits.is_empty() {
                    frames.push(frame(&suggestions(&self.hits)));
                }
                frames.push(frame(&if self.out_of_scope {
                    json!({"type": "status", "status": "out_of_scope", "level": "warning"})
                } else {
                    json!({"type": "status", "status": "done", "level": "success"})
                }));
                Step::last(frames)
            }
            TurnEvent::Failed { error, .. } => {
                tracing::warn!(error = ?error, "faq chat reply failed");
                Step::last(vec![search_failed()])
            }
        }
    }

    fn end(&mut self, finished: bool) -> Vec<Bytes> {
        let mut frames = Vec::new();
        if !finished {
            frames.push(search_failed());
        }
        frames.push(Bytes::from_static(b"data: [DONE]\n\n"));
        frames
    }
}

fn search_failed() -> Bytes {
    frame(&json!({"type": "error", "message": "search_failed"}))
}

/// Ask a question; the answer streams as server-sent events.
///
/// Frames are `data: {json}` lines: `{"type":"status","status":"searching","level":"loading"}`
/// first; `{"type":"text","content":"..."}` chunks; `{"type":"faq","results":[{"id","title"}]}`
/// when there are related entries; then `{"type":"status","status":"done","level":"success"}`,
/// or `{"type":"status","status":"out_of_scope","level":"warning"}` when no FAQ entry matched
/// well enough (the text chunks then carry the persona's fallback reply); or
/// `{"type":"error","message":"search_failed"}` on a server-side failure. Always closed by
/// `data: [DONE]`.
#[utoipa::path(
    post, path = "/chat", tag = "faq-chat", operation_id = "faqChat",
    request_body = FaqChatBody,
    params(("mooni-api-key" = Option<String>, Header, description = "The API key (or `Authorization: Bearer`, or `X-API-Key`)")),
    responses(
        (status = 200, description = "The answer stream: `data:` events only, each a JSON frame (`status`, `text`), then `data: [DONE]`", content_type = "text/event-stream", body = crate::sse::SseEvent),
        (status = 400, description = "`{\"error\":\"invalid_json\"}`, `{\"error\":\"missing_query\"}`, `{\"error\":\"query_too_long\",\"maxLength\":500}` or `{\"error\":\"invalid_request\",\"field\":…}`", body = Object),
        (status = 401, description = "Missing or invalid key: `{\"error\":\"unauthorized\"}`", body = Object),
    )
)]
pub async fn chat(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Bytes,
) -> Result<HttpResponse, FaqChatError> {
    let who = caller.principal();
    let request = parse_body(&body)?;
    // Refusals (stream limit, validation, quota) come before the 200.
    let slot = state.stream_slot(&who).await?;
    let turn = state
        .run(move |e| async move { e.start_faq_chat(&who, request).await })
        .await?;
    let searching = frame(&json!({"type": "status", "status": "searching", "level": "loading"}));
    let frames = stream_turn(
        &state,
        Some(slot),
        turn,
        vec![searching],
        FaqChatFrames::default(),
    );
    Ok(sse_response(HttpResponse::Ok(), frames))
}

/// Tenant-public configuration.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantConfig {
    /// The tenant's id.
    pub client_id: String,
    /// Display name.
    pub name: String,
}

/// The tenant's public display configuration.
#[utoipa::path(
    get, path = "/config", tag = "faq-chat", operation_id = "faqChatConfig",
    params(("mooni-api-key" = Option<String>, Header, description = "The API key")),
    responses(
        (status = 200, description = "The configuration", body = TenantConfig),
        (status = 401, description = "Missing or invalid key", body = Object),
    )
)]
pub async fn config(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<HttpResponse, FaqChatError> {
    let who = caller.principal();
    let org = state
        .run(move |e| async move { e.tenant(&who).await })
        .await?;
    Ok(HttpResponse::Ok().json(TenantConfig {
        client_id: org.id.into_string(),
        name: org.name,
    }))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryParams {
    pub user_id: Option<String>,
}

/// One of a user's sessions.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistorySession {
    /// The `sessionId` the client chose (for sessions started elsewhere, tidechat's `chs_…` id).
    pub id: String,
    /// tidechat's id for the session (usable with `/v1/chat/sessions/{id}`).
    pub chat_session_id: String,
    pub title: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub message_count: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryResponse {
    pub items: Vec<HistorySession>,
}

/// A user's past sessions in the tenant, newest first.
#[utoipa::path(
    get, path = "/history/sessions", tag = "faq-chat", operation_id = "faqChatHistory",
    params(
        ("userId" = String, Query, description = "The user whose sessions to fetch (required)"),
        ("mooni-api-key" = Option<String>, Header, description = "The API key"),
    ),
    responses(
        (status = 200, description = "The sessions", body = HistoryResponse),
        (status = 400, description = "`{\"error\":\"missing_user_id\"}`", body = Object),
        (status = 401, description = "Missing or invalid key", body = Object),
    )
)]
pub async fn history(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, FaqChatError> {
    let who = caller.principal();
    let missing = || bad_request(ErrorKind::MissingUserId, "`userId` is required");
    let params = web::Query::<HistoryParams>::from_query(req.query_string())
        .map_err(|_| missing())?
        .into_inner();
    let user_id = params
        .user_id
        .map(|u| u.trim().to_owned())
        .filter(|u| !u.is_empty())
        .ok_or_else(missing)?;
    let sessions = state
        .run(move |e| async move { e.user_sessions(&who, &user_id).await })
        .await?;
    let items = sessions
        .into_iter()
        .map(|s| HistorySession {
            id: s.external_id.clone().unwrap_or_else(|| s.id.to_string()),
            chat_session_id: s.id.into_string(),
            title: s.title,
            created_at: timestamp(&s.started_at),
            updated_at: timestamp(&s.last_active_at),
            message_count: s.message_count,
        })
        .collect();
    Ok(HttpResponse::Ok().json(HistoryResponse { items }))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/chat").route(web::post().to(chat)))
        .service(web::resource("/config").route(web::get().to(config)))
        .service(web::resource("/history/sessions").route(web::get().to(history)));
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::error::Surface;

    fn code(body: &str) -> Value {
        FaqChat::body(&parse_body(body.as_bytes()).unwrap_err().0)
    }

    #[test]
    fn the_reference_error_table() {
        assert_eq!(code("{"), json!({"error": "invalid_json"}));
        assert_eq!(code("[1]"), json!({"error": "invalid_json"}));
        assert_eq!(code("{}"), json!({"error": "missing_query"}));
        assert_eq!(
            code(r#"{"query": "   "}"#),
            json!({"error": "missing_query"})
        );
        assert_eq!(code(r#"{"query": 5}"#), json!({"error": "missing_query"}));
        let long = format!(r#"{{"query": "{}"}}"#, "a".repeat(501));
        assert_eq!(
            code(&long),
            json!({"error": "query_too_long", "maxLength": 500})
        );
        let ok = format!(r#"{{"query": "  {}  ", "userId": null}}"#, "a".repeat(500));
        let parsed = parse_body(ok.as_bytes()).unwrap();
        assert_eq!(parsed.query.len(), 500);
        assert!(parsed.user_id.is_none());
        assert_eq!(
            code(r#"{"query": "hi", "sessionId": 5}"#)["field"],
            "sessionId"
        );
    }
}
