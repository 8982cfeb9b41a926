//! The FAQ chat surface (`POST /chat`, `GET /config`, `GET /history/sessions`),
//! matching its reference: the API key in `mooni-api-key` (or
//! `Authorization: Bearer`, or `X-API-Key`), SSE frames with JSON in `data:`
//! lines closed by `data: [DONE]`, and errors as `{"error": "<code>"}`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse, ResponseError};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tidechat_engine::{EngineError, FaqChatRequest, Principal, PrincipalKind, TurnEvent};
use tidechat_llm::FaqHit;
use tokio::sync::mpsc;
use utoipa::ToSchema;

use crate::auth::credential;
use crate::dto::timestamp;
use crate::error::ApiError;
use crate::state::AppState;

/// Longest accepted `query`, after trimming.
pub const QUERY_MAX_CHARS: usize = 500;
/// The reference's own header for the key.
pub const KEY_HEADER: &str = "mooni-api-key";
/// FAQ suggestions sent in the `faq` event.
const SUGGESTIONS: usize = 3;

/// An error of this surface: `{"error": code}` plus extra fields.
#[derive(Debug)]
pub struct FaqChatError {
    status: StatusCode,
    body: Value,
    retry_after: Option<u64>,
    rate: Option<tidechat_limits::RateDecision>,
}

impl FaqChatError {
    fn new(status: StatusCode, code: &str) -> Self {
        Self {
            status,
            body: json!({ "error": code }),
            retry_after: None,
            rate: None,
        }
    }

    fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized")
    }

    /// A limit refusal from the shared checks, in this surface's shape.
    fn from_api(e: ApiError) -> Self {
        let mut out = Self::new(e.status, e.code);
        out.body["message"] = json!(e.message);
        out.retry_after = e.retry_after;
        out.rate = e.rate;
        out
    }
}

impl std::fmt::Display for FaqChatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.body)
    }
}

impl ResponseError for FaqChatError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if let Some(secs) = self.retry_after {
            response.insert_header(("Retry-After", secs.to_string()));
        }
        if let Some(rate) = &self.rate {
            for (name, value) in crate::rate_headers(rate) {
                response.insert_header((name, value));
            }
        }
        response.json(&self.body)
    }
}

impl From<EngineError> for FaqChatError {
    fn from(err: EngineError) -> Self {
        match err {
            EngineError::Unauthenticated(_) | EngineError::Forbidden(_) => Self::unauthorized(),
            EngineError::Validation(v) => {
                let mut e = Self::new(StatusCode::BAD_REQUEST, "invalid_request");
                e.body["field"] = json!(v.field);
                e.body["message"] = json!(v.message);
                e
            }
            EngineError::ShuttingDown => Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            other => {
                tracing::error!(error = ?other, "faq chat request failed");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error")
            }
        }
    }
}

/// Authenticates with an API key from any of the accepted headers.
async fn authenticate(state: &AppState, req: &HttpRequest) -> Result<Principal, FaqChatError> {
    let key = req
        .headers()
        .get(KEY_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .or_else(|| credential(req.headers()))
        .ok_or_else(FaqChatError::unauthorized)?;
    let engine = state.engine.clone();
    let principal = state
        .runtime
        .spawn(async move { engine.authenticate(&key).await })
        .await
        .map_err(|_| FaqChatError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error"))??;
    // Session tokens belong to the /v1 API; this surface takes API keys.
    if let PrincipalKind::SessionToken(_) = principal.kind {
        return Err(FaqChatError::unauthorized());
    }
    let decision = state
        .check_rate(&principal)
        .await
        .map_err(FaqChatError::from_api)?;
    req.extensions_mut().insert(decision);
    Ok(principal)
}

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

fn bad_request(code: &str) -> FaqChatError {
    FaqChatError::new(StatusCode::BAD_REQUEST, code)
}

/// Applies the reference's error table to a raw body.
fn parse_body(body: &[u8]) -> Result<FaqChatRequest, FaqChatError> {
    let value: Value = serde_json::from_slice(body).map_err(|_| bad_request("invalid_json"))?;
    let Value::Object(map) = value else {
        return Err(bad_request("invalid_json"));
    };
    let query = match map.get("query") {
        Some(Value::String(q)) if !q.trim().is_empty() => q.trim().to_owned(),
        _ => return Err(bad_request("missing_query")),
    };
    if query.chars().count() > QUERY_MAX_CHARS {
        let mut e = bad_request("query_too_long");
        e.body["maxLength"] = json!(QUERY_MAX_CHARS);
        return Err(e);
    }
    let optional = |field: &str| -> Result<Option<String>, FaqChatError> {
        match map.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.trim().to_owned())),
            Some(_) => {
                let mut e = bad_request("invalid_request");
                e.body["field"] = json!(field);
                e.body["message"] = json!(format!("`{field}` must be a string or null"));
                Err(e)
            }
        }
    };
    Ok(FaqChatRequest {
        query,
        session_key: optional("sessionId")?,
        user_id: optional("userId")?,
        organization_id: optional("organizationId")?,
    })
}

fn frame(value: &Value) -> Bytes {
    Bytes::from(format!("data: {value}\n\n"))
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

/// Drives one chat turn into SSE frames. Runs on the engine's runtime; stops
/// (dropping the turn, which stores the partial reply) when the client goes.
async fn drive(
    state: web::Data<AppState>,
    who: Principal,
    request: FaqChatRequest,
    out: mpsc::Sender<Bytes>,
) {
    let send = |value: Value| {
        let out = out.clone();
        async move { out.send(frame(&value)).await.is_ok() }
    };
    if !send(json!({"type": "status", "status": "searching", "level": "loading"})).await {
        return;
    }
    let mut turn = match state.engine.start_faq_chat(&who, request).await {
        Ok(turn) => turn,
        Err(e) => {
            tracing::error!(error = ?e, "faq chat could not start");
            let _ = send(json!({"type": "error", "message": "search_failed"})).await;
            let _ = out.send(Bytes::from_static(b"data: [DONE]\n\n")).await;
            return;
        }
    };
    let mut hits = Vec::new();
    let mut out_of_scope = false;
    loop {
        let event = tokio::select! {
            event = turn.next() => event,
            _ = out.closed() => return,
        };
        let keep_going = match event {
            Some(TurnEvent::Retrieval(r)) => {
                out_of_scope = r.out_of_scope;
                hits = r.hits;
                true
            }
            Some(TurnEvent::UserStored(_)) => true,
            Some(TurnEvent::Delta(text)) => send(json!({"type": "text", "content": text})).await,
            // Moderation stopped the answer: what was sent had passed; the
            // fallback follows it (this surface has no way to retract text).
            Some(TurnEvent::Replaced(text)) => {
                send(json!({"type": "text", "content": format!("\n\n{text}")})).await
            }
            Some(TurnEvent::Completed(_)) | Some(TurnEvent::Unrecorded) => {
                if !hits.is_empty() {
                    send(suggestions(&hits)).await;
                }
                let status = if out_of_scope {
                    json!({"type": "status", "status": "out_of_scope", "level": "warning"})
                } else {
                    json!({"type": "status", "status": "done", "level": "success"})
                };
                send(status).await;
                false
            }
            Some(TurnEvent::Failed { error, .. }) => {
                tracing::warn!(error = ?error, "faq chat reply failed");
                send(json!({"type": "error", "message": "search_failed"})).await;
                false
            }
            None => {
                send(json!({"type": "error", "message": "search_failed"})).await;
                false
            }
        };
        if !keep_going {
            break;
        }
    }
    let _ = out.send(Bytes::from_static(b"data: [DONE]\n\n")).await;
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
        (status = 200, description = "The answer stream", content_type = "text/event-stream", body = String),
        (status = 400, description = "`{\"error\":\"invalid_json\"}`, `{\"error\":\"missing_query\"}`, `{\"error\":\"query_too_long\",\"maxLength\":500}` or `{\"error\":\"invalid_request\",\"field\":…}`", body = Object),
        (status = 401, description = "Missing or invalid key: `{\"error\":\"unauthorized\"}`", body = Object),
    )
)]
pub async fn chat(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, FaqChatError> {
    let who = authenticate(&state, &req).await?;
    let request = parse_body(&body)?;
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    state.runtime.spawn(drive(state.clone(), who, request, tx));
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|frame| (Ok::<_, actix_web::Error>(frame), rx))
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(stream))
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
    req: HttpRequest,
) -> Result<HttpResponse, FaqChatError> {
    let who = authenticate(&state, &req).await?;
    let engine = state.engine.clone();
    let org = state
        .runtime
        .spawn(async move { engine.tenant(&who).await })
        .await
        .map_err(|_| FaqChatError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error"))??;
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
    req: HttpRequest,
) -> Result<HttpResponse, FaqChatError> {
    let who = authenticate(&state, &req).await?;
    let params = web::Query::<HistoryParams>::from_query(req.query_string())
        .map_err(|_| bad_request("missing_user_id"))?
        .into_inner();
    let user_id = params
        .user_id
        .map(|u| u.trim().to_owned())
        .filter(|u| !u.is_empty())
        .ok_or_else(|| bad_request("missing_user_id"))?;
    let engine = state.engine.clone();
    let sessions = state
        .runtime
        .spawn(async move { engine.user_sessions(&who, &user_id).await })
        .await
        .map_err(|_| FaqChatError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error"))??;
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

    fn code(body: &str) -> Value {
        parse_body(body.as_bytes()).unwrap_err().body
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
