use actix_web::{web, HttpResponse};

use crate::auth::Auth;
use crate::dto::{timestamp, ApiKeyDto, ApiKeyList, CreateKeyRequest, CreatedKeyDto};
use crate::error::{ApiError, ErrorBody};
use crate::extract::OptionalJson;
use crate::state::AppState;

type Result<T> = std::result::Result<T, ApiError>;

/// Create an API key. The full key is in this response only.
#[utoipa::path(
    post, path = "/v1/api-keys", tag = "api-keys", operation_id = "createApiKey",
    request_body(content = CreateKeyRequest, description = "Optional", content_type = "application/json"),
    responses(
        (status = 201, description = "Created; `key` is shown once", body = CreatedKeyDto),
        (status = 401, description = "Unauthenticated", body = ErrorBody),
        (status = 403, description = "API keys only", body = ErrorBody),
        (status = 422, description = "Validation error", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create_key(
    state: web::Data<AppState>,
    Auth(who): Auth,
    OptionalJson(body): OptionalJson<CreateKeyRequest>,
) -> Result<HttpResponse> {
    let created = state
        .run(move |e| async move {
            e.create_key(&who, body.name.as_deref(), body.scope.as_deref())
                .await
        })
        .await?;
    let k = created.key;
    Ok(HttpResponse::Created().json(CreatedKeyDto {
        key_id: k.id.into_string(),
        name: k.name,
        prefix: k.prefix,
        scope: k.scope.as_str().to_owned(),
        created_at: timestamp(&k.created_at),
        revoked_at: None,
        key: created.secret,
    }))
}

/// List the organization's API keys (prefixes only), newest first.
#[utoipa::path(
    get, path = "/v1/api-keys", tag = "api-keys", operation_id = "listApiKeys",
    responses(
        (status = 200, description = "The keys", body = ApiKeyList),
        (status = 401, description = "Unauthenticated", body = ErrorBody),
        (status = 403, description = "API keys only", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list_keys(state: web::Data<AppState>, Auth(who): Auth) -> Result<HttpResponse> {
    let keys = state
        .run(move |e| async move { e.list_keys(&who).await })
        .await?;
    Ok(HttpResponse::Ok().json(ApiKeyList {
        items: keys.into_iter().map(ApiKeyDto::from).collect(),
    }))
}

/// Revoke an API key: it is refused (401) from the next request on.
#[utoipa::path(
    delete, path = "/v1/api-keys/{id}", tag = "api-keys", operation_id = "revokeApiKey",
    params(("id" = String, Path, description = "API key id (`key_*`)")),
    responses(
        (status = 200, description = "The revoked key (revoking twice is a no-op)", body = ApiKeyDto),
        (status = 401, description = "Unauthenticated", body = ErrorBody),
        (status = 403, description = "API keys only", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn revoke_key(
    state: web::Data<AppState>,
    Auth(who): Auth,
    id: web::Path<String>,
) -> Result<HttpResponse> {
    let key = state
        .run(move |e| async move { e.revoke_key(&who, &id).await })
        .await?;
    Ok(HttpResponse::Ok().json(ApiKeyDto::from(key)))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v1/api-keys")
            .route(web::post().to(create_key))
            .route(web::get().to(list_keys)),
    )
    .service(web::resource("/v1/api-keys/{id}").route(web::delete().to(revoke_key)));
}
