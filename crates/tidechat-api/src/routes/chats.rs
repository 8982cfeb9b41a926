//! The chats REST surface (`/api/v1/chats/…`, `/api/v1/ws-tickets`): snake_case
//! fields, offset pagination, and errors as
//! `{"error": {"code", "message", "details"}}` where `details` suggests a fix.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tidechat_domain::{Message, Session};
use tidechat_engine::sort_order;
use utoipa::{IntoParams, ToSchema};

use crate::auth::KeyAuth;
use crate::dto::timestamp;
use crate::error::{ApiError, Chats, Failure};
use crate::state::AppState;

pub use crate::error::{ChatsErrorBody, ChatsErrorDetail};

/// This surface's errors (see [`Chats`]).
pub type ChatsError = Failure<Chats>;
type Caller = KeyAuth<Chats>;

type Result<T> = std::result::Result<T, ChatsError>;

/// A chat (a tidechat session).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ChatDto {
    /// The chat id (also usable as a `/v1` session id).
    pub id: String,
    pub user_id: Option<String>,
    pub title: Option<String>,
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
    /// `active`, `ended` or `archived`.
    pub status: String,
    pub message_count: i64,
    pub created_at: String,
    pub updated_at: String,
}

impl From<Session> for ChatDto {
    fn from(s: Session) -> Self {
        Self {
            id: s.id.into_string(),
            user_id: s.user_id,
            title: s.title,
            metadata: s.metadata,
            status: s.status.as_str().to_owned(),
            message_count: s.message_count,
            created_at: timestamp(&s.started_at),
            updated_at: timestamp(&s.last_active_at),
        }
    }
}

/// A message of a chat.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ChatMessageDto {
    pub id: String,
    pub chat_id: String,
    /// `user`, `assistant` or `tool`.
    pub role: String,
    pub content: String,
    /// `complete`, `partial` or `failed`.
    pub status: String,
    pub model: String,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_usd_micros: i64,
    /// `allowed`, `flagged` or `blocked`.
    pub moderation_verdict: String,
    pub created_at: String,
}

impl From<Message> for ChatMessageDto {
    fn from(m: Message) -> Self {
        Self {
            id: m.id.into_string(),
            chat_id: m.session_id.into_string(),
            role: m.role.as_str().to_owned(),
            content: m.content,
            status: m.status.as_str().to_owned(),
            model: m.model,
            input_tokens: m.input_tokens,
            output_tokens: m.output_tokens,
            cost_usd_micros: m.cost_usd_micros,
            moderation_verdict: m.moderation_verdict,
            created_at: timestamp(&m.created_at),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateChatRequest {
    /// Required: your identifier of the end user.
    pub user_id: Option<String>,
    pub title: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ChatList {
    pub chats: Vec<ChatDto>,
}

/// `GET /api/v1/chats/{chat_id}/messages` response.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ChatMessagesPage {
    pub messages: Vec<ChatMessageDto>,
    pub total: i64,
    pub offset: i64,
    pub limit: i64,
    pub has_more: bool,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MessagesParams {
    /// Items to skip (default 0).
    pub offset: Option<String>,
    /// 1–200 (default 50).
    pub limit: Option<String>,
    /// `asc` (default) or `desc`.
    pub order: Option<String>,
}

/// A WebSocket ticket: use `ticket=…` instead of `api_key=…` in the WebSocket URL.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WsTicket {
    pub ticket: String,
    pub expires_at: String,
}

fn bad_parameter(name: &str, rule: &str) -> ChatsError {
    ApiError::invalid_field(name, format!("{name}: {rule}")).on()
}

/// Create a chat.
#[utoipa::path(
    post, path = "/api/v1/chats/", tag = "chats", operation_id = "createChat",
    request_body = CreateChatRequest,
    params(("X-API-Key" = Option<String>, Header, description = "Your tenant's API key (or Authorization: Bearer)")),
    responses(
        (status = 201, description = "The chat", body = ChatDto),
        (status = 400, description = "`invalid_parameter` (e.g. missing user_id)", body = ChatsErrorBody),
        (status = 401, description = "`unauthenticated`", body = ChatsErrorBody),
    )
)]
pub async fn create_chat(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let who = caller.principal();
    let body: CreateChatRequest = serde_json::from_slice(&body)
        .map_err(|e| bad_parameter("body", &format!("must be a JSON object with user_id ({e})")))?;
    let user_id = body
        .user_id
        .filter(|u| !u.trim().is_empty())
        .ok_or_else(|| bad_parameter("user_id", "is required"))?;
    let (title, metadata) = (body.title, body.metadata);
    let (chat, _) = state
        .run(move |e| async move { e.create_chat(&who, &user_id, title, metadata).await })
        .await?;
    Ok(HttpResponse::Created().json(ChatDto::from(chat)))
}

/// List a user's chats, newest first.
#[utoipa::path(
    get, path = "/api/v1/chats/user/{user_id}", tag = "chats", operation_id = "listUserChats",
    params(
        ("user_id" = String, Path, description = "Your identifier of the end user"),
        ("X-API-Key" = Option<String>, Header, description = "Your tenant's API key"),
    ),
    responses(
        (status = 200, description = "The chats (at most 200)", body = ChatList),
        (status = 401, description = "`unauthenticated`", body = ChatsErrorBody),
    )
)]
pub async fn user_chats(
    state: web::Data<AppState>,
    caller: Caller,
    user_id: web::Path<String>,
) -> Result<HttpResponse> {
    let who = caller.principal();
    let chats = state
        .run(move |e| async move { e.user_sessions(&who, &user_id).await })
        .await?;
    Ok(HttpResponse::Ok().json(ChatList {
        chats: chats.into_iter().map(ChatDto::from).collect(),
    }))
}

/// Get a chat.
#[utoipa::path(
    get, path = "/api/v1/chats/{chat_id}", tag = "chats", operation_id = "getChat",
    params(
        ("chat_id" = String, Path, description = "The chat id"),
        ("X-API-Key" = Option<String>, Header, description = "Your tenant's API key"),
    ),
    responses(
        (status = 200, description = "The chat", body = ChatDto),
        (status = 401, description = "`unauthenticated`", body = ChatsErrorBody),
        (status = 404, description = "`chat_not_found`", body = ChatsErrorBody),
    )
)]
pub async fn get_chat(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse> {
    let who = caller.principal();
    let chat = state
        .run(move |e| async move { e.get_session(&who, &id).await })
        .await?;
    Ok(HttpResponse::Ok().json(ChatDto::from(chat)))
}

/// Delete a chat and its messages.
#[utoipa::path(
    delete, path = "/api/v1/chats/{chat_id}", tag = "chats", operation_id = "deleteChat",
    params(
        ("chat_id" = String, Path, description = "The chat id"),
        ("X-API-Key" = Option<String>, Header, description = "Your tenant's API key"),
    ),
    responses(
        (status = 204, description = "Deleted; later reads are 404"),
        (status = 401, description = "`unauthenticated`", body = ChatsErrorBody),
        (status = 404, description = "`chat_not_found`", body = ChatsErrorBody),
    )
)]
pub async fn delete_chat(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse> {
    let who = caller.principal();
    state
        .run(move |e| async move { e.delete_chat(&who, &id).await })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

fn integer(name: &str, value: Option<&str>, default: i64) -> Result<i64> {
    match value {
        None | Some("") => Ok(default),
        Some(v) => v
            .parse::<i64>()
            .map_err(|_| bad_parameter(name, "must be a whole number")),
    }
}

/// A chat's messages with offset pagination.
#[utoipa::path(
    get, path = "/api/v1/chats/{chat_id}/messages", tag = "chats", operation_id = "getChatMessages",
    params(
        ("chat_id" = String, Path, description = "The chat id"),
        MessagesParams,
        ("X-API-Key" = Option<String>, Header, description = "Your tenant's API key"),
    ),
    responses(
        (status = 200, description = "A page of messages", body = ChatMessagesPage),
        (status = 400, description = "`invalid_parameter` (offset < 0, limit outside 1–200, order not asc/desc)", body = ChatsErrorBody),
        (status = 401, description = "`unauthenticated`", body = ChatsErrorBody),
        (status = 404, description = "`chat_not_found`", body = ChatsErrorBody),
    )
)]
pub async fn chat_messages(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse> {
    let who = caller.principal();
    let params = web::Query::<MessagesParams>::from_query(req.query_string())
        .map_err(|e| bad_parameter("query", &e.to_string()))?
        .into_inner();
    let offset = integer("offset", params.offset.as_deref(), 0)?;
    let limit = integer("limit", params.limit.as_deref(), 50)?;
    let order = sort_order(params.order.as_deref())?;
    let page = state
        .run(move |e| async move { e.chat_messages(&who, &id, offset, limit, order).await })
        .await?;
    Ok(HttpResponse::Ok().json(ChatMessagesPage {
        messages: page
            .messages
            .into_iter()
            .map(ChatMessageDto::from)
            .collect(),
        total: page.total,
        offset: page.offset,
        limit: page.limit,
        has_more: page.has_more,
    }))
}

/// A single-use ticket (valid 60 s) that opens one WebSocket, so the API key
/// never has to appear in a URL.
#[utoipa::path(
    post, path = "/api/v1/ws-tickets", tag = "chats", operation_id = "createWsTicket",
    params(("X-API-Key" = Option<String>, Header, description = "Your tenant's API key")),
    responses(
        (status = 201, description = "The ticket", body = WsTicket),
        (status = 401, description = "`unauthenticated`", body = ChatsErrorBody),
    )
)]
pub async fn create_ticket(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse> {
    let who = caller.principal();
    let (ticket, expires_at) = state
        .run(move |e| async move { e.create_ws_ticket(&who).await })
        .await?;
    Ok(HttpResponse::Created().json(WsTicket {
        ticket,
        expires_at: timestamp(&expires_at),
    }))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource(["/api/v1/chats/", "/api/v1/chats"]).route(web::post().to(create_chat)),
    )
    .service(web::resource("/api/v1/chats/user/{user_id}").route(web::get().to(user_chats)))
    .service(
        web::resource("/api/v1/chats/{chat_id}")
            .route(web::get().to(get_chat))
            .route(web::delete().to(delete_chat)),
    )
    .service(web::resource("/api/v1/chats/{chat_id}/messages").route(web::get().to(chat_messages)))
    .service(web::resource("/api/v1/ws-tickets").route(web::post().to(create_ticket)))
    .service(web::resource("/ws/chat").route(web::get().to(crate::ws::chat)));
}
