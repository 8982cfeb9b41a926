use actix_web::{web, HttpResponse};
use serde::Deserialize;
use tidechat_engine::{Cursor, MessageQuery, NewSession, SessionQuery, TurnRequest};
use utoipa::IntoParams;

use crate::auth::Auth;
use crate::driver::{sse_response, stream_turn};
use crate::dto::*;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Json, OptionalJson};
use crate::sse::{outcome_body, V1Events};
use crate::state::AppState;

type Result<T> = std::result::Result<T, ApiError>;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListSessionsParams {
    /// Only sessions of this end user.
    pub user_id: Option<String>,
    /// `active`, `ended` or `archived`.
    pub status: Option<String>,
    /// 1–200, default 50.
    pub limit: Option<i64>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListMessagesParams {
    /// `asc` (oldest first, default) or `desc`.
    pub order: Option<String>,
    /// 1–200, default 50.
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Start a chat session.
#[utoipa::path(
    post, path = "/v1/chat/sessions", tag = "chat", operation_id = "createChatSession",
    request_body = CreateSessionRequest,
    responses(
        (status = 201, description = "Created", body = SessionDto),
        (status = 401, description = "Unauthenticated", body = ErrorBody),
        (status = 403, description = "Session tokens cannot create sessions", body = ErrorBody),
        (status = 422, description = "Validation error (`validation_error`, `unknown_persona`, `invalid_json`)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create_session(
    state: web::Data<AppState>,
    Auth(who): Auth,
    OptionalJson(body): OptionalJson<CreateSessionRequest>,
) -> Result<HttpResponse> {
    let new = NewSession {
        persona_id: body.persona_id,
        user_id: body.user_id,
        title: body.title,
        metadata: body.metadata,
    };
    let session = state
        .run(move |e| async move { e.create_session(&who, new).await })
        .await?;
    Ok(HttpResponse::Created().json(SessionDto::from(session)))
}

/// List chat sessions, newest first.
#[utoipa::path(
    get, path = "/v1/chat/sessions", tag = "chat", operation_id = "listChatSessions",
    params(ListSessionsParams),
    responses(
        (status = 200, description = "A page of sessions", body = SessionPage),
        (status = 401, description = "Unauthenticated", body = ErrorBody),
        (status = 403, description = "Session tokens cannot list sessions", body = ErrorBody),
        (status = 422, description = "Bad filter, limit or cursor", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list_sessions(
    state: web::Data<AppState>,
    Auth(who): Auth,
    params: web::Query<ListSessionsParams>,
) -> Result<HttpResponse> {
    let p = params.into_inner();
    let query = SessionQuery {
        user_id: p.user_id,
        status: p.status,
        page: Cursor {
            limit: p.limit,
            cursor: p.cursor,
        },
    };
    let page = state
        .run(move |e| async move { e.list_sessions(&who, &query).await })
        .await?;
    Ok(HttpResponse::Ok().json(SessionPage::from(page)))
}

/// Get a chat session.
#[utoipa::path(
    get, path = "/v1/chat/sessions/{id}", tag = "chat", operation_id = "getChatSession",
    params(("id" = String, Path, description = "Chat session id (`chs_*`)")),
    responses(
        (status = 200, description = "The session", body = SessionDto),
        (status = 401, description = "Unauthenticated", body = ErrorBody),
        (status = 403, description = "Session token for another session", body = ErrorBody),
        (status = 404, description = "Session not found", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_session(
    state: web::Data<AppState>,
    Auth(who): Auth,
    id: web::Path<String>,
) -> Result<HttpResponse> {
    let session = state
        .run(move |e| async move { e.get_session(&who, &id).await })
        .await?;
    Ok(HttpResponse::Ok().json(SessionDto::from(session)))
}

/// End a chat session: it keeps its history but accepts no new messages.
#[utoipa::path(
    post, path = "/v1/chat/sessions/{id}/end", tag = "chat", operation_id = "endChatSession",
    params(("id" = String, Path, description = "Chat session id (`chs_*`)")),
    responses(
        (status = 200, description = "The ended session (ending twice is a no-op)", body = SessionDto),
        (status = 401, description = "Unauthenticated", body = ErrorBody),
        (status = 403, description = "Session tokens cannot end sessions", body = ErrorBody),
        (status = 404, description = "Session not found", body = ErrorBody),
        (status = 409, description = "The session is archived", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn end_session(
    state: web::Data<AppState>,
    Auth(who): Auth,
    id: web::Path<String>,
) -> Result<HttpResponse> {
    let session = state
        .run(move |e| async move { e.end_session(&who, &id).await })
        .await?;
    Ok(HttpResponse::Ok().json(SessionDto::from(session)))
}

/// Archive a chat session (ends it if active).
#[utoipa::path(
    post, path = "/v1/chat/sessions/{id}/archive", tag = "chat", operation_id = "archiveChatSession",
    params(("id" = String, Path, description = "Chat session id (`chs_*`)")),
    responses(
        (status = 200, description = "The archived session", body = SessionDto),
        (status = 401, description = "Unauthenticated", body = ErrorBody),
        (status = 403, description = "Session tokens cannot archive sessions", body = ErrorBody),
        (status = 404, description = "Session not found", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn archive_session(
    state: web::Data<AppState>,
    Auth(who): Auth,
    id: web::Path<String>,
) -> Result<HttpResponse> {
    let session = state
        .run(move |e| async move { e.archive_session(&who, &id).await })
        .await?;
    Ok(HttpResponse::Ok().json(SessionDto::from(session)))
}

/// Mint a session token: a JWT that may only read and post to this session
/// (for browsers and apps that must not hold your API key).
#[utoipa::path(
    post, path = "/v1/chat/sessions/{id}/token", tag = "chat", operation_id = "createSessionToken",
    params(("id" = String, Path, description = "Chat session id (`chs_*`)")),
    request_body(content = TokenRequest, description = "Optional", content_type = "application/json"),
    responses(
        (status = 201, description = "The token", body = TokenResponse),
        (status = 401, description = "Unauthenticated", body = ErrorBody),
        (status = 403, description = "Only API keys can mint tokens", body = ErrorBody),
        (status = 404, description = "Session not found", body = ErrorBody),
        (status = 422, description = "`ttlSeconds` out of range", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create_token(
    state: web::Data<AppState>,
    Auth(who): Auth,
    id: web::Path<String>,
    OptionalJson(body): OptionalJson<TokenRequest>,
) -> Result<HttpResponse> {
    let ttl = body.ttl_seconds;
    let token = state
        .run(move |e| async move { e.mint_session_token(&who, &id, ttl).await })
        .await?;
    Ok(HttpResponse::Created().json(TokenResponse {
        token: token.token,
        expires_at: timestamp(&token.expires_at),
    }))
}

/// Append a user turn and produce an assistant reply.
///
/// When `stream=true`, the response is `text/event-stream`: `delta` events
/// (`{"text"}`) as the reply is generated, then one `done` event carrying the
/// persisted `userMessage`, `assistantMessage` and `session` (the same body as
/// the non-streaming 200), or one `error` event (`{"error":{code,message}}`,
/// plus the stored messages when a partial reply was kept). Lines starting
/// with `:` are keep-alive comments. Errors found before generation starts
/// (401, 403, 404, 409, 422) are plain JSON responses even when streaming.
///
/// On rejection by moderation, the assistant reply is replaced with a safe
/// fallback and a 200 is still returned (verdict in body).
#[utoipa::path(
    post, path = "/v1/chat/sessions/{id}/messages", tag = "chat", operation_id = "sendChatMessage",
    params(("id" = String, Path, description = "Chat session id (e.g. `chs_*`).")),
    request_body = SendMessageRequest,
    responses(
        (status = 200, description = "OK", content(
            (SendMessageResponse = "application/json"),
            (crate::sse::SseEvent = "text/event-stream")
        )),
        (status = 401, description = "Unauthenticated", body = ErrorBody),
        (status = 403, description = "Session token for another session", body = ErrorBody),
        (status = 404, description = "Session not found", body = ErrorBody),
        (status = 409, description = "Session is not active", body = ErrorBody),
        (status = 413, description = "Body over the size limit", body = ErrorBody),
        (status = 422, description = "Validation error", body = ErrorBody),
        (status = 429, description = "Rate limit / quota exceeded", body = ErrorBody),
        (status = 502, description = "The model provider failed before replying", body = ErrorBody),
        (status = 503, description = "Shutting down or storage unavailable", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn send_message(
    state: web::Data<AppState>,
    Auth(who): Auth,
    id: web::Path<String>,
    Json(body): Json<SendMessageRequest>,
) -> Result<HttpResponse> {
    let stream = body.stream;
    let request = TurnRequest {
        user_text: body.user_text,
        model_id: body.model_id,
        history_limit: body.history_limit,
        temperature: body.temperature,
        max_output_tokens: body.max_output_tokens,
        tool_names: body.tool_names,
        memory_digest: body.memory_digest,
        extra_guardrails: body.extra_guardrails,
        offer_handoff: false,
        client_message_id: None,
    };
    // A stream holds one of the organization's concurrent-stream slots.
    let slot = if stream {
        Some(state.stream_slot(&who).await?)
    } else {
        None
    };
    let turn = state
        .run(move |e| async move { e.start_turn(&who, &id, request).await })
        .await?;
    if let Some(slot) = slot {
        let frames = stream_turn(&state, Some(slot), turn, Vec::new(), V1Events);
        return Ok(sse_response(HttpResponse::Ok(), frames));
    }
    let outcome = turn.finish().await?;
    Ok(HttpResponse::Ok().json(outcome_body(outcome)))
}

/// Read a session's messages.
#[utoipa::path(
    get, path = "/v1/chat/sessions/{id}/messages", tag = "chat", operation_id = "listChatMessages",
    params(("id" = String, Path, description = "Chat session id (`chs_*`)"), ListMessagesParams),
    responses(
        (status = 200, description = "A page of messages", body = MessagePage),
        (status = 401, description = "Unauthenticated", body = ErrorBody),
        (status = 403, description = "Session token for another session", body = ErrorBody),
        (status = 404, description = "Session not found", body = ErrorBody),
        (status = 422, description = "Bad order, limit or cursor", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list_messages(
    state: web::Data<AppState>,
    Auth(who): Auth,
    id: web::Path<String>,
    params: web::Query<ListMessagesParams>,
) -> Result<HttpResponse> {
    let p = params.into_inner();
    let audit = who.is_api_key();
    let query = MessageQuery {
        order: p.order,
        page: Cursor {
            limit: p.limit,
            cursor: p.cursor,
        },
    };
    let page = state
        .run(move |e| async move { e.list_messages(&who, &id, &query).await })
        .await?;
    Ok(HttpResponse::Ok().json(MessagePage {
        items: page
            .items
            .into_iter()
            .map(|m| MessageDto::for_caller(m, audit))
            .collect(),
        next_cursor: page.next_cursor,
        has_more: page.has_more,
    }))
}

/// A message's moderation record (API keys only, never session tokens).
#[utoipa::path(
    get, path = "/v1/chat/sessions/{id}/messages/{messageId}/moderation", tag = "chat",
    operation_id = "getMessageModeration",
    params(
        ("id" = String, Path, description = "Chat session id (`chs_*`)"),
        ("messageId" = String, Path, description = "Message id (`msg_*`)"),
    ),
    responses(
        (status = 200, description = "Findings and audit text", body = MessageModerationDto),
        (status = 401, description = "Unauthenticated", body = ErrorBody),
        (status = 403, description = "Session tokens may not read moderation records", body = ErrorBody),
        (status = 404, description = "No such message in this session", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn message_moderation(
    state: web::Data<AppState>,
    Auth(who): Auth,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse> {
    let (session, message) = path.into_inner();
    let (m, records) = state
        .run(move |e| async move { e.message_moderation(&who, &session, &message).await })
        .await?;
    Ok(HttpResponse::Ok().json(MessageModerationDto {
        message_id: m.id.into_string(),
        moderation_verdict: m.moderation_verdict,
        drift_score: m.drift_score,
        original_content: m.original_content,
        records: records
            .into_iter()
            .map(|r| ModerationRecordDto {
                stage: r.stage,
                category: r.category,
                rule: r.rule,
                action: r.action,
                excerpt: r.excerpt,
            })
            .collect(),
    }))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v1/chat/sessions")
            .route(web::post().to(create_session))
            .route(web::get().to(list_sessions)),
    )
    .service(web::resource("/v1/chat/sessions/{id}").route(web::get().to(get_session)))
    .service(web::resource("/v1/chat/sessions/{id}/end").route(web::post().to(end_session)))
    .service(web::resource("/v1/chat/sessions/{id}/archive").route(web::post().to(archive_session)))
    .service(web::resource("/v1/chat/sessions/{id}/token").route(web::post().to(create_token)))
    .service(
        web::resource("/v1/chat/sessions/{id}/messages")
            .route(web::post().to(send_message))
            .route(web::get().to(list_messages)),
    )
    .service(
        web::resource("/v1/chat/sessions/{id}/messages/{messageId}/moderation")
            .route(web::get().to(message_moderation)),
    );
}
