//! The `/v1` error table: every failure leaves as `{"error":{"code","message"}}`
//! with one of the stable codes below. A 500 means a bug; it is logged with
//! context and says nothing about internals.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::{Deserialize, Serialize};
use tidechat_engine::EngineError;
use tidechat_store::StoreError;
use utoipa::ToSchema;

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

/// Every code this API returns, with its status. Documented in the OpenAPI
/// description from this same table.
pub const ERROR_CODES: &[(&str, u16, &str)] = &[
    ("unauthenticated", 401, "Missing, malformed, unknown, revoked or expired credentials."),
    ("forbidden", 403, "The credential is valid but may not do this (e.g. a session token used on another session or a management endpoint)."),
    ("not_found", 404, "No such resource in your organization (other organizations' ids are not found too)."),
    ("method_not_allowed", 405, "The path exists but not with this HTTP method."),
    ("session_not_active", 409, "The session is ended or archived and accepts no new messages."),
    ("conflict", 409, "The change conflicts with existing data (e.g. deleting a persona in use)."),
    ("payload_too_large", 413, "The request body is over the size limit."),
    ("invalid_json", 422, "The body is not well-formed JSON."),
    ("validation_error", 422, "A field is missing, has the wrong type or is out of range; the message names it."),
    ("unknown_model", 422, "`modelId` (or the persona's model) is not in the model registry."),
    ("unknown_tool", 422, "A `toolNames` entry is not a registered tool."),
    ("unknown_persona", 422, "`personaId` is not a persona of your organization."),
    ("rate_limited", 429, "Too many requests; retry after `Retry-After` seconds."),
    ("quota_exceeded", 429, "The token or cost quota is spent."),
    ("internal_error", 500, "A bug on our side; the request id in `X-Request-Id` helps us find it."),
    ("upstream_error", 502, "The model provider failed (after retries and fallbacks)."),
    ("upstream_timeout", 504, "The model provider did not answer in time."),
    ("service_unavailable", 503, "The server is shutting down or its database is unreachable."),
];

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds for a `Retry-After` header (429, 503).
    pub retry_after: Option<u64>,
    /// The rate decision, for `RateLimit-*` headers on a 429.
    pub rate: Option<tidechat_limits::RateDecision>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
            rate: None,
        }
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_error",
            message,
        )
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message.clone(),
            },
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl ResponseError for ApiError {
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
        response.json(self.body())
    }
}

impl From<EngineError> for ApiError {
    fn from(err: EngineError) -> Self {
        use StatusCode as S;
        match err {
            EngineError::Unauthenticated(m) => Self::new(S::UNAUTHORIZED, "unauthenticated", m),
            EngineError::Forbidden(m) => Self::new(S::FORBIDDEN, "forbidden", m),
            EngineError::NotFound(what) => Self::not_found(format!("{what} not found")),
            e @ EngineError::SessionNotActive(_) => {
                Self::new(S::CONFLICT, "session_not_active", e.to_string())
            }
            EngineError::Validation(v) => Self::validation(v.to_string()),
            e @ EngineError::UnknownModel(_) => {
                Self::new(S::UNPROCESSABLE_ENTITY, "unknown_model", e.to_string())
            }
            e @ EngineError::UnknownTool(_) => {
                Self::new(S::UNPROCESSABLE_ENTITY, "unknown_tool", e.to_string())
            }
            e @ EngineError::UnknownPersona(_) => {
                Self::new(S::UNPROCESSABLE_ENTITY, "unknown_persona", e.to_string())
            }
            EngineError::Conflict(m) => Self::new(S::CONFLICT, "conflict", m),
            EngineError::Upstream(detail) => {
                tracing::warn!(%detail, "upstream failure");
                Self::new(
                    S::BAD_GATEWAY,
                    "upstream_error",
                    "the model provider failed; try again",
                )
            }
            EngineError::UpstreamTimeout => Self::new(
                S::GATEWAY_TIMEOUT,
                "upstream_timeout",
                "the model provider did not answer in time; try again",
            ),
            EngineError::QuotaExceeded {
                message,
                retry_after_secs,
            } => {
                let mut e = Self::new(S::TOO_MANY_REQUESTS, "quota_exceeded", message);
                e.retry_after = Some(retry_after_secs);
                e
            }
            EngineError::ShuttingDown => Self::new(
                S::SERVICE_UNAVAILABLE,
                "service_unavailable",
                "the server is shutting down; retry",
            ),
            EngineError::Store(StoreError::NotFound) => Self::not_found("not found"),
            EngineError::Store(StoreError::Conflict(m)) => Self::new(S::CONFLICT, "conflict", m),
            EngineError::Store(e @ StoreError::Pool(_)) => {
                tracing::error!(error = ?e, "database unavailable");
                Self::new(
                    S::SERVICE_UNAVAILABLE,
                    "service_unavailable",
                    "the database is unavailable; retry",
                )
            }
            EngineError::Store(e) => {
                tracing::error!(error = ?e, "storage failure");
                Self::new(S::INTERNAL_SERVER_ERROR, "internal_error", "internal error")
            }
            EngineError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                Self::new(S::INTERNAL_SERVER_ERROR, "internal_error", "internal error")
            }
        }
    }
}

/// Markdown table of the codes, for the OpenAPI description.
pub fn error_table_markdown() -> String {
    let mut out = String::from("| code | status | meaning |\n|---|---|---|\n");
    for (code, status, meaning) in ERROR_CODES {
        out.push_str(&format!("| `{code}` | {status} | {meaning} |\n"));
    }
    out
}
