//! One error kind for every surface, and each surface's table generated from
//! it.
//!
//! Every failure in this crate is an [`ApiError`]: an [`ErrorKind`] plus a
//! message (and, for some kinds, the field at fault, a limit, the seconds to
//! wait and the rate decision). Engine errors become kinds in exactly one
//! place (`From<EngineError>`). Each API surface is a [`Surface`]: an
//! exhaustive `match` from kind to its own status and code, and its own body
//! shape. Adding a kind fails to compile until every surface has decided what
//! it means there; there is no string mapping and no fall-through.
//!
//! Handlers return `Result<_, ApiError>` (the `/v1` shape) or
//! `Result<_, Failure<S>>` for another surface; both answer through
//! [`error_response`], the one writer of `Retry-After` and `RateLimit-*`.

use std::marker::PhantomData;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, HttpResponseBuilder, ResponseError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tidechat_engine::EngineError;
use tidechat_store::StoreError;
use utoipa::ToSchema;

/// Every way a request can fail, on any surface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    Unauthenticated,
    Forbidden,
    NotFound,
    /// A widget `site_key` that is not a site's.
    UnknownSite,
    MethodNotAllowed,
    SessionNotActive,
    Conflict,
    /// A retried request whose first attempt is still being answered.
    InProgress,
    PayloadTooLarge,
    /// The request body did not arrive within the body timeout.
    RequestTimeout,
    UnsupportedMediaType,
    InvalidJson,
    Validation,
    /// FAQ chat: `query` absent, not a string or blank.
    MissingQuery,
    /// FAQ chat: `query` over [`ApiError::max_length`] characters.
    QueryTooLong,
    /// FAQ chat history: no `userId`.
    MissingUserId,
    UnknownModel,
    UnknownTool,
    UnknownPersona,
    RateLimited,
    QuotaExceeded,
    Internal,
    Upstream,
    UpstreamTimeout,
    Unavailable,
}

impl ErrorKind {
    /// Every kind, for tests that check each surface's table.
    pub const ALL: [ErrorKind; 25] = [
        Self::Unauthenticated,
        Self::Forbidden,
        Self::NotFound,
        Self::UnknownSite,
        Self::MethodNotAllowed,
        Self::SessionNotActive,
        Self::Conflict,
        Self::InProgress,
        Self::PayloadTooLarge,
        Self::RequestTimeout,
        Self::UnsupportedMediaType,
        Self::InvalidJson,
        Self::Validation,
        Self::MissingQuery,
        Self::QueryTooLong,
        Self::MissingUserId,
        Self::UnknownModel,
        Self::UnknownTool,
        Self::UnknownPersona,
        Self::RateLimited,
        Self::QuotaExceeded,
        Self::Internal,
        Self::Upstream,
        Self::UpstreamTimeout,
        Self::Unavailable,
    ];
}

/// A failed request, whatever the surface.
#[derive(Debug)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
    /// The request field at fault (validation errors).
    pub field: Option<String>,
    /// The limit a value broke (e.g. the longest query).
    pub max_length: Option<usize>,
    /// Seconds for a `Retry-After` header (429, 503).
    pub retry_after: Option<u64>,
    /// The rate decision, for `RateLimit-*` headers on a 429.
    pub rate: Option<Box<tidechat_limits::RateDecision>>,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            field: None,
            max_length: None,
            retry_after: None,
            rate: None,
        }
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Validation, message)
    }

    /// A validation error naming its field.
    pub fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        let mut e = Self::validation(message);
        e.field = Some(field.into());
        e
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(%detail, "internal error");
        Self::new(ErrorKind::Internal, "internal error")
    }

    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// The `/v1` status.
    pub fn status(&self) -> StatusCode {
        V1::status(self.kind)
    }

    /// The `/v1` code.
    pub fn code(&self) -> &'static str {
        V1::code(self.kind)
    }

    /// The `/v1` body.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code().to_owned(),
                message: self.message.clone(),
            },
        }
    }

    /// This error in surface `S`'s shape.
    pub fn on<S: Surface>(self) -> Failure<S> {
        Failure(self, PhantomData)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.message)
    }
}

impl From<EngineError> for ApiError {
    fn from(err: EngineError) -> Self {
        use ErrorKind as K;
        match err {
            EngineError::Unauthenticated(m) => Self::new(K::Unauthenticated, m),
            EngineError::Forbidden(m) => Self::new(K::Forbidden, m),
            EngineError::NotFound(what) => Self::not_found(format!("{what} not found")),
            EngineError::UnknownSite => Self::new(K::UnknownSite, "unknown site_key"),
            e @ EngineError::SessionNotActive(_) => Self::new(K::SessionNotActive, e.to_string()),
            EngineError::Validation(v) => {
                let mut e = Self::validation(v.to_string());
                e.field = Some(v.field.to_owned());
                e
            }
            e @ EngineError::UnknownModel(_) => Self::new(K::UnknownModel, e.to_string()),
            e @ EngineError::UnknownTool(_) => Self::new(K::UnknownTool, e.to_string()),
            e @ EngineError::UnknownPersona(_) => Self::new(K::UnknownPersona, e.to_string()),
            EngineError::Conflict(m) => Self::new(K::Conflict, m),
            EngineError::InProgress(m) => Self::new(K::InProgress, m),
            EngineError::Upstream(detail) => {
                tracing::warn!(%detail, "upstream failure");
                Self::new(K::Upstream, "the model provider failed; try again")
            }
            EngineError::UpstreamTimeout => Self::new(
                K::UpstreamTimeout,
                "the model provider did not answer in time; try again",
            ),
            EngineError::QuotaExceeded {
                message,
                retry_after_secs,
            } => Self::new(K::QuotaExceeded, message).with_retry_after(retry_after_secs),
            EngineError::ShuttingDown => {
                Self::new(K::Unavailable, "the server is shutting down; retry")
            }
            EngineError::Store(StoreError::NotFound) => Self::not_found("not found"),
            EngineError::Store(StoreError::Conflict(m)) => Self::new(K::Conflict, m),
            EngineError::Store(e) if e.is_unavailable() => {
                tracing::error!(error = ?e, "database unavailable");
                Self::new(K::Unavailable, "the database is unavailable; retry").with_retry_after(1)
            }
            EngineError::Store(e) => {
                tracing::error!(error = ?e, "storage failure");
                Self::new(K::Internal, "internal error")
            }
            EngineError::Internal(detail) => Self::internal(detail),
        }
    }
}

/// One API surface's error table and envelope.
pub trait Surface: 'static {
    fn status(kind: ErrorKind) -> StatusCode;
    fn code(kind: ErrorKind) -> &'static str;
    /// The JSON body of `error` on this surface.
    fn body(error: &ApiError) -> Value;
}

/// An [`ApiError`] answered in surface `S`'s shape.
pub struct Failure<S: Surface>(pub ApiError, PhantomData<S>);

impl<S: Surface> Failure<S> {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError::new(kind, message).on()
    }
}

impl<S: Surface> std::fmt::Debug for Failure<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl<S: Surface> std::fmt::Display for Failure<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl<S: Surface> From<ApiError> for Failure<S> {
    fn from(e: ApiError) -> Self {
        e.on()
    }
}

impl<S: Surface> From<EngineError> for Failure<S> {
    fn from(e: EngineError) -> Self {
        ApiError::from(e).on()
    }
}

impl<S: Surface> ResponseError for Failure<S> {
    fn status_code(&self) -> StatusCode {
        S::status(self.0.kind)
    }

    fn error_response(&self) -> HttpResponse {
        error_response::<S>(&self.0, HttpResponse::build(S::status(self.0.kind)))
    }
}

/// The response for `error` on surface `S`: its status, `Retry-After`, the
/// `RateLimit-*` headers, and the surface's body.
pub fn error_response<S: Surface>(
    error: &ApiError,
    mut builder: HttpResponseBuilder,
) -> HttpResponse {
    write_limit_headers(&mut builder, error.retry_after, error.rate.as_deref());
    builder.json(S::body(error))
}

/// The one writer of `Retry-After` and `RateLimit-*` headers.
pub fn write_limit_headers(
    builder: &mut HttpResponseBuilder,
    retry_after: Option<u64>,
    rate: Option<&tidechat_limits::RateDecision>,
) {
    if let Some(secs) = retry_after {
        builder.insert_header(("Retry-After", secs.to_string()));
    }
    if let Some(rate) = rate {
        for (name, value) in crate::rate_headers(rate) {
            builder.insert_header((name, value));
        }
    }
}

// ------------------------------------------------------------------ /v1

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable code (see the table in the API description).
    #[schema(example = "session_not_found")]
    pub code: String,
    /// Human-readable explanation; wording may change.
    pub message: String,
}

/// The kinds that mean "the request itself is malformed" (body, field,
/// query): one pattern for every table, so that the tables stay exhaustive
/// matches without repeating the group.
macro_rules! request_mistake {
    () => {
        ErrorKind::InvalidJson
            | ErrorKind::Validation
            | ErrorKind::MissingQuery
            | ErrorKind::QueryTooLong
            | ErrorKind::MissingUserId
    };
}

/// The `/v1` sessions-and-messages API (and the management API beside it):
/// `{"error":{"code","message"}}`.
pub struct V1;

impl Surface for V1 {
    fn status(kind: ErrorKind) -> StatusCode {
        use ErrorKind as K;
        use StatusCode as S;
        match kind {
            K::Unauthenticated => S::UNAUTHORIZED,
            K::Forbidden => S::FORBIDDEN,
            K::NotFound | K::UnknownSite => S::NOT_FOUND,
            K::MethodNotAllowed => S::METHOD_NOT_ALLOWED,
            K::SessionNotActive | K::Conflict | K::InProgress => S::CONFLICT,
            K::PayloadTooLarge => S::PAYLOAD_TOO_LARGE,
            K::RequestTimeout => S::REQUEST_TIMEOUT,
            request_mistake!()
            | K::UnsupportedMediaType
            | K::UnknownModel
            | K::UnknownTool
            | K::UnknownPersona => S::UNPROCESSABLE_ENTITY,
            K::RateLimited | K::QuotaExceeded => S::TOO_MANY_REQUESTS,
            K::Internal => S::INTERNAL_SERVER_ERROR,
            K::Upstream => S::BAD_GATEWAY,
            K::UpstreamTimeout => S::GATEWAY_TIMEOUT,
            K::Unavailable => S::SERVICE_UNAVAILABLE,
        }
    }

    fn code(kind: ErrorKind) -> &'static str {
        use ErrorKind as K;
        match kind {
            K::Unauthenticated => "unauthenticated",
            K::Forbidden => "forbidden",
            K::NotFound | K::UnknownSite => "not_found",
            K::MethodNotAllowed => "method_not_allowed",
            K::SessionNotActive => "session_not_active",
            K::Conflict | K::InProgress => "conflict",
            K::PayloadTooLarge => "payload_too_large",
            K::RequestTimeout => "request_timeout",
            K::InvalidJson => "invalid_json",
            K::Validation
            | K::MissingQuery
            | K::QueryTooLong
            | K::MissingUserId
            | K::UnsupportedMediaType => "validation_error",
            K::UnknownModel => "unknown_model",
            K::UnknownTool => "unknown_tool",
            K::UnknownPersona => "unknown_persona",
            K::RateLimited => "rate_limited",
            K::QuotaExceeded => "quota_exceeded",
            K::Internal => "internal_error",
            K::Upstream => "upstream_error",
            K::UpstreamTimeout => "upstream_timeout",
            K::Unavailable => "service_unavailable",
        }
    }

    fn body(error: &ApiError) -> Value {
        json!(error.body())
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        error_response::<V1>(self, HttpResponse::build(self.status()))
    }
}

/// The `/v1` codes as documented in the OpenAPI description, in this order,
/// with what they mean (status and code come from [`V1`]).
const V1_DOCUMENTED: &[(ErrorKind, &str)] = &[
    (ErrorKind::Unauthenticated, "Missing, malformed, unknown, revoked or expired credentials."),
    (ErrorKind::Forbidden, "The credential is valid but may not do this (e.g. a session token used on another session or a management endpoint)."),
    (ErrorKind::NotFound, "No such resource in your organization (other organizations' ids are not found too)."),
    (ErrorKind::MethodNotAllowed, "The path exists but not with this HTTP method."),
    (ErrorKind::SessionNotActive, "The session is ended or archived and accepts no new messages."),
    (ErrorKind::Conflict, "The change conflicts with existing data (e.g. deleting a persona in use)."),
    (ErrorKind::PayloadTooLarge, "The request body is over the size limit."),
    (ErrorKind::RequestTimeout, "The request body did not arrive in time (`TIDECHAT_BODY_TIMEOUT_SECS`)."),
    (ErrorKind::InvalidJson, "The body is not well-formed JSON."),
    (ErrorKind::Validation, "A field is missing, has the wrong type or is out of range; the message names it."),
    (ErrorKind::UnknownModel, "`modelId` (or the persona's model) is not in the model registry."),
    (ErrorKind::UnknownTool, "A `toolNames` entry is not a registered tool."),
    (ErrorKind::UnknownPersona, "`personaId` is not a persona of your organization."),
    (ErrorKind::RateLimited, "Too many requests; retry after `Retry-After` seconds."),
    (ErrorKind::QuotaExceeded, "The token or cost quota is spent."),
    (ErrorKind::Internal, "A bug on our side; the request id in `X-Request-Id` helps us find it."),
    (ErrorKind::Upstream, "The model provider failed (after retries and fallbacks)."),
    (ErrorKind::UpstreamTimeout, "The model provider did not answer in time."),
    (ErrorKind::Unavailable, "The server is shutting down or its database is unreachable."),
];

/// Markdown table of the `/v1` codes, for the OpenAPI description.
pub fn error_table_markdown() -> String {
    let mut out = String::from("| code | status | meaning |\n|---|---|---|\n");
    for (kind, meaning) in V1_DOCUMENTED {
        out.push_str(&format!(
            "| `{}` | {} | {meaning} |\n",
            V1::code(*kind),
            V1::status(*kind).as_u16()
        ));
    }
    out
}

// ------------------------------------------------------------------ FAQ chat

/// The FAQ chat API (`/chat`, `/config`, `/history/sessions`):
/// `{"error": code}`, plus `field`/`message`, `maxLength` or `message` where
/// they say more.
pub struct FaqChat;

impl Surface for FaqChat {
    fn status(kind: ErrorKind) -> StatusCode {
        use ErrorKind as K;
        use StatusCode as S;
        match kind {
            K::Unauthenticated | K::Forbidden => S::UNAUTHORIZED,
            request_mistake!() => S::BAD_REQUEST,
            K::UnsupportedMediaType => S::UNSUPPORTED_MEDIA_TYPE,
            other => V1::status(other),
        }
    }

    fn code(kind: ErrorKind) -> &'static str {
        use ErrorKind as K;
        match kind {
            K::Unauthenticated | K::Forbidden => "unauthorized",
            K::InvalidJson => "invalid_json",
            K::MissingQuery => "missing_query",
            K::QueryTooLong => "query_too_long",
            K::MissingUserId => "missing_user_id",
            K::Validation | K::UnsupportedMediaType => "invalid_request",
            K::Unavailable => "unavailable",
            K::NotFound | K::UnknownSite => "not_found",
            K::MethodNotAllowed => "method_not_allowed",
            K::SessionNotActive => "session_not_active",
            K::Conflict | K::InProgress => "conflict",
            K::PayloadTooLarge => "payload_too_large",
            K::RequestTimeout => "request_timeout",
            K::UnknownModel => "unknown_model",
            K::UnknownTool => "unknown_tool",
            K::UnknownPersona => "unknown_persona",
            K::RateLimited => "rate_limited",
            K::QuotaExceeded => "quota_exceeded",
            K::Internal => "internal_error",
            K::Upstream => "upstream_error",
            K::UpstreamTimeout => "upstream_timeout",
        }
    }

    fn body(error: &ApiError) -> Value {
        use ErrorKind as K;
        let mut body = json!({ "error": Self::code(error.kind) });
        match error.kind {
            // The reference's own table: the code says it all.
            K::Unauthenticated
            | K::Forbidden
            | K::InvalidJson
            | K::MissingQuery
            | K::MissingUserId => {}
            K::QueryTooLong => body["maxLength"] = json!(error.max_length),
            K::Validation | K::UnsupportedMediaType => {
                body["field"] = json!(error.field);
                body["message"] = json!(error.message);
            }
            _ => body["message"] = json!(error.message),
        }
        body
    }
}

// ------------------------------------------------------------------ widget

/// The public widget API: `{"success": false, "error": code, "message"}`.
pub struct Widget;

impl Surface for Widget {
    fn status(kind: ErrorKind) -> StatusCode {
        use ErrorKind as K;
        use StatusCode as S;
        match kind {
            request_mistake!() | K::UnknownModel | K::UnknownTool | K::UnknownPersona => {
                S::BAD_REQUEST
            }
            K::UnsupportedMediaType => S::UNSUPPORTED_MEDIA_TYPE,
            other => V1::status(other),
        }
    }

    fn code(kind: ErrorKind) -> &'static str {
        use ErrorKind as K;
        match kind {
            K::UnknownSite => "unknown_site",
            // A visitor's credential is the site key + session id; the only
            // refusal of a valid one is a block.
            K::Unauthenticated | K::Forbidden => "blocked",
            K::NotFound => "not_found",
            K::MethodNotAllowed => "method_not_allowed",
            request_mistake!() | K::UnknownModel | K::UnknownTool | K::UnknownPersona => {
                "invalid_request"
            }
            K::UnsupportedMediaType => "not_an_image",
            K::PayloadTooLarge => "file_too_large",
            K::RequestTimeout => "request_timeout",
            K::SessionNotActive => "conversation_closed",
            K::Conflict | K::InProgress => "in_progress",
            K::RateLimited => "rate_limited",
            K::QuotaExceeded => "quota_exceeded",
            K::Unavailable => "unavailable",
            K::Internal | K::Upstream | K::UpstreamTimeout => "server_error",
        }
    }

    fn body(error: &ApiError) -> Value {
        json!({"success": false, "error": Self::code(error.kind), "message": error.message})
    }
}

// ------------------------------------------------------------------ chats REST + WebSocket

/// An error of this surface.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ChatsErrorBody {
    pub error: ChatsErrorDetail,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ChatsErrorDetail {
    /// Stable code, e.g. `chat_not_found`, `invalid_parameter`, `unauthenticated`, `rate_limited`.
    pub code: String,
    pub message: String,
    /// What to do about it.
    pub details: String,
}

/// The chats REST API and its WebSocket:
/// `{"error": {"code", "message", "details"}}` where `details` suggests a fix.
pub struct Chats;

impl Chats {
    /// What to do about an error of this kind.
    pub fn details(kind: ErrorKind) -> &'static str {
        use ErrorKind as K;
        match kind {
            K::NotFound | K::UnknownSite => "Check the chat_id: chats of other users or tenants, and deleted chats, are not visible.",
            K::Unauthenticated => "Send a valid API key in X-API-Key (or Authorization: Bearer).",
            K::Forbidden => "Use an API key of the tenant; session tokens cannot use this API.",
            request_mistake!()
            | K::UnsupportedMediaType
            | K::UnknownModel
            | K::UnknownTool
            | K::UnknownPersona => "Fix the named parameter and retry.",
            K::RateLimited => "Wait Retry-After seconds; the REST limit is 100 requests per minute per tenant by default.",
            K::QuotaExceeded => "The tenant's monthly quota is spent; raise it with PATCH /v1/limits.",
            K::SessionNotActive => "The chat was ended or archived; create a new chat.",
            K::PayloadTooLarge => "Send a smaller body.",
            K::RequestTimeout => "Send the whole body promptly; slow uploads are cut off.",
            K::Unavailable => "Retry in a moment.",
            K::Upstream | K::UpstreamTimeout => "The model provider failed; retry.",
            K::Conflict | K::InProgress => "Retry once the current operation has finished.",
            K::MethodNotAllowed => "Check the HTTP method against the API reference.",
            K::Internal => "Retry; if it persists, report the X-Request-Id.",
        }
    }
}

impl Surface for Chats {
    fn status(kind: ErrorKind) -> StatusCode {
        match kind {
            // Parameter mistakes are 400 on this surface.
            request_mistake!() => StatusCode::BAD_REQUEST,
            other => V1::status(other),
        }
    }

    fn code(kind: ErrorKind) -> &'static str {
        use ErrorKind as K;
        match kind {
            K::NotFound | K::UnknownSite => "chat_not_found",
            K::Unauthenticated => "unauthenticated",
            K::Forbidden => "forbidden",
            request_mistake!() | K::UnsupportedMediaType => "invalid_parameter",
            K::UnknownModel => "unknown_model",
            K::UnknownTool => "unknown_tool",
            K::UnknownPersona => "unknown_persona",
            K::RateLimited => "rate_limited",
            K::QuotaExceeded => "quota_exceeded",
            K::SessionNotActive => "chat_not_active",
            K::PayloadTooLarge => "payload_too_large",
            K::RequestTimeout => "request_timeout",
            K::Unavailable => "service_unavailable",
            K::Upstream | K::UpstreamTimeout => "upstream_error",
            K::Conflict | K::InProgress => "conflict",
            K::MethodNotAllowed => "method_not_allowed",
            K::Internal => "internal_error",
        }
    }

    fn body(error: &ApiError) -> Value {
        json!(ChatsErrorBody {
            error: ChatsErrorDetail {
                code: Self::code(error.kind).to_owned(),
                message: error.message.clone(),
                details: Self::details(error.kind).to_owned(),
            },
        })
    }
}

/// Which surface a request path belongs to, for errors the framework
/// raises before any handler runs (unknown route, wrong method, unreadable
/// body).
pub fn framework_error(path: &str, error: &ApiError) -> HttpResponse {
    let builder = |status| HttpResponse::build(status);
    if path.starts_with("/api/v1/chats")
        || path.starts_with("/api/v1/ws-tickets")
        || path.starts_with("/ws/")
    {
        error_response::<Chats>(error, builder(Chats::status(error.kind)))
    } else if path.starts_with("/api/v1/chat/") || path.starts_with("/uploads/") {
        error_response::<Widget>(error, builder(Widget::status(error.kind)))
    } else if path == "/chat" || path == "/config" || path.starts_with("/history/") {
        error_response::<FaqChat>(error, builder(FaqChat::status(error.kind)))
    } else {
        error_response::<V1>(error, builder(V1::status(error.kind)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_v1_code_is_documented() {
        let documented: Vec<&str> = V1_DOCUMENTED.iter().map(|(k, _)| V1::code(*k)).collect();
        for kind in ErrorKind::ALL {
            assert!(
                documented.contains(&V1::code(kind)),
                "{kind:?} answers `{}`, which the table does not list",
                V1::code(kind)
            );
        }
    }

    #[test]
    fn client_mistakes_are_4xx_on_every_surface() {
        use ErrorKind as K;
        for kind in ErrorKind::ALL {
            let server_side = matches!(
                kind,
                K::Internal | K::Upstream | K::UpstreamTimeout | K::Unavailable
            );
            for status in [
                V1::status(kind),
                FaqChat::status(kind),
                Widget::status(kind),
                Chats::status(kind),
            ] {
                assert_eq!(status.is_server_error(), server_side, "{kind:?}: {status}");
            }
        }
    }

    #[test]
    fn faq_chat_bodies_follow_the_reference() {
        let mut long = ApiError::new(ErrorKind::QueryTooLong, "too long");
        long.max_length = Some(500);
        assert_eq!(
            FaqChat::body(&long),
            json!({"error": "query_too_long", "maxLength": 500})
        );
        let missing = ApiError::new(ErrorKind::MissingQuery, "x");
        assert_eq!(FaqChat::body(&missing), json!({"error": "missing_query"}));
        let field = ApiError::invalid_field("sessionId", "must be a string");
        assert_eq!(
            FaqChat::body(&field),
            json!({"error": "invalid_request", "field": "sessionId", "message": "must be a string"})
        );
    }
}
