use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tidechat_domain::{HttpTool, HttpToolDraft};
use utoipa::ToSchema;

use crate::auth::Auth;
use crate::dto::timestamp;
use crate::error::{ApiError, ErrorBody};
use crate::extract::Json;
use crate::state::AppState;

type Result<T> = std::result::Result<T, ApiError>;

/// An HTTP tool the organization's models may call (name it in `toolNames`).
///
/// tidechat calls `url` with `POST` and a JSON body `{"tool", "callId",
/// "arguments", "sessionId", "organizationId"}`, headers
/// `X-Tidechat-Timestamp: <unix seconds>` and
/// `X-Tidechat-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`,
/// and a 10 s timeout. The response body (≤ 16 KiB) is the result the model sees.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ToolDto {
    pub tool_id: String,
    pub name: String,
    pub description: String,
    /// JSON schema of the arguments.
    #[schema(value_type = Object)]
    pub parameters: Value,
    pub url: String,
    /// The secret is write-only; this says one is set.
    pub has_secret: bool,
    pub created_at: String,
    pub updated_at: String,
}

impl From<HttpTool> for ToolDto {
    fn from(t: HttpTool) -> Self {
        Self {
            tool_id: t.id.into_string(),
            name: t.name,
            description: t.description,
            parameters: t.parameters,
            url: t.url,
            has_secret: !t.secret.is_empty(),
            created_at: timestamp(&t.created_at),
            updated_at: timestamp(&t.updated_at),
        }
    }
}

/// Create or replace a tool.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ToolRequest {
    /// Letters, digits, `_` and `-`, starting with a letter; unique in the organization;
    /// not `faq_search` or `end_session` (built in).
    pub name: String,
    pub description: String,
    /// JSON schema of the arguments (an object).
    #[schema(value_type = Object)]
    pub parameters: Value,
    /// `http(s)://…`; loopback, private and link-local addresses are refused unless the
    /// server sets `TIDECHAT_TOOLS_ALLOW_PRIVATE_URLS`.
    pub url: String,
    /// At least 16 characters; signs every call.
    pub secret: String,
}

impl From<ToolRequest> for HttpToolDraft {
    fn from(r: ToolRequest) -> Self {
        Self {
            name: r.name,
            description: r.description,
            parameters: r.parameters,
            url: r.url,
            secret: r.secret,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ToolList {
    pub items: Vec<ToolDto>,
}

/// Create an HTTP tool.
#[utoipa::path(
    post, path = "/v1/tools", tag = "tools", operation_id = "createTool",
    request_body = ToolRequest,
    responses(
        (status = 201, description = "Created", body = ToolDto),
        (status = 401, description = "Unauthenticated", body = ErrorBody),
        (status = 403, description = "Admin API keys only", body = ErrorBody),
        (status = 409, description = "A tool with this name exists", body = ErrorBody),
        (status = 422, description = "Validation error (including a refused URL)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create_tool(
    state: web::Data<AppState>,
    Auth(who): Auth,
    Json(body): Json<ToolRequest>,
) -> Result<HttpResponse> {
    let tool = state
        .run(move |e| async move { e.create_tool(&who, body.into()).await })
        .await?;
    Ok(HttpResponse::Created().json(ToolDto::from(tool)))
}

/// List the organization's tools, by name.
#[utoipa::path(
    get, path = "/v1/tools", tag = "tools", operation_id = "listTools",
    responses(
        (status = 200, description = "The tools", body = ToolList),
        (status = 401, description = "Unauthenticated", body = ErrorBody),
        (status = 403, description = "Admin API keys only", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list_tools(state: web::Data<AppState>, Auth(who): Auth) -> Result<HttpResponse> {
    let tools = state
        .run(move |e| async move { e.list_tools(&who).await })
        .await?;
    Ok(HttpResponse::Ok().json(ToolList {
        items: tools.into_iter().map(ToolDto::from).collect(),
    }))
}

/// Get a tool.
#[utoipa::path(
    get, path = "/v1/tools/{id}", tag = "tools", operation_id = "getTool",
    params(("id" = String, Path, description = "Tool id (`tol_*`)")),
    responses(
        (status = 200, description = "The tool", body = ToolDto),
        (status = 401, description = "Unauthenticated", body = ErrorBody),
        (status = 403, description = "Admin API keys only", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_tool(
    state: web::Data<AppState>,
    Auth(who): Auth,
    id: web::Path<String>,
) -> Result<HttpResponse> {
    let tool = state
        .run(move |e| async move { e.get_tool(&who, &id).await })
        .await?;
    Ok(HttpResponse::Ok().json(ToolDto::from(tool)))
}

/// Replace a tool.
#[utoipa::path(
    put, path = "/v1/tools/{id}", tag = "tools", operation_id = "updateTool",
    params(("id" = String, Path, description = "Tool id (`tol_*`)")),
    request_body = ToolRequest,
    responses(
        (status = 200, description = "The updated tool", body = ToolDto),
        (status = 401, description = "Unauthenticated", body = ErrorBody),
        (status = 403, description = "Admin API keys only", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
        (status = 409, description = "A tool with this name exists", body = ErrorBody),
        (status = 422, description = "Validation error", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn update_tool(
    state: web::Data<AppState>,
    Auth(who): Auth,
    id: web::Path<String>,
    Json(body): Json<ToolRequest>,
) -> Result<HttpResponse> {
    let tool = state
        .run(move |e| async move { e.update_tool(&who, &id, body.into()).await })
        .await?;
    Ok(HttpResponse::Ok().json(ToolDto::from(tool)))
}

/// Delete a tool.
#[utoipa::path(
    delete, path = "/v1/tools/{id}", tag = "tools", operation_id = "deleteTool",
    params(("id" = String, Path, description = "Tool id (`tol_*`)")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Unauthenticated", body = ErrorBody),
        (status = 403, description = "Admin API keys only", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn delete_tool(
    state: web::Data<AppState>,
    Auth(who): Auth,
    id: web::Path<String>,
) -> Result<HttpResponse> {
    state
        .run(move |e| async move { e.delete_tool(&who, &id).await })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v1/tools")
            .route(web::post().to(create_tool))
            .route(web::get().to(list_tools)),
    )
    .service(
        web::resource("/v1/tools/{id}")
            .route(web::get().to(get_tool))
            .route(web::put().to(update_tool))
            .route(web::delete().to(delete_tool)),
    );
}
