use actix_web::{web, HttpResponse};
use serde::Deserialize;
use tidechat_engine::Cursor;
use utoipa::IntoParams;

use crate::auth::Auth;
use crate::dto::{PersonaDto, PersonaPage, PersonaRequest};
use crate::error::{ApiError, ErrorBody};
use crate::extract::Json;
use crate::state::AppState;

type Result<T> = std::result::Result<T, ApiError>;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// 1–200, default 50.
    pub limit: Option<i64>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

impl From<PageParams> for Cursor {
    fn from(p: PageParams) -> Self {
        Cursor {
            limit: p.limit,
            cursor: p.cursor,
        }
    }
}

/// Create a persona.
#[utoipa::path(
    post, path = "/v1/personas", tag = "personas", operation_id = "createPersona",
    request_body = PersonaRequest,
    responses(
        (status = 201, description = "Created", body = PersonaDto),
        (status = 401, description = "Unauthenticated", body = ErrorBody),
        (status = 403, description = "API keys only", body = ErrorBody),
        (status = 422, description = "Validation error or `unknown_model`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create_persona(
    state: web::Data<AppState>,
    Auth(who): Auth,
    Json(body): Json<PersonaRequest>,
) -> Result<HttpResponse> {
    let persona = state
        .run(move |e| async move { e.create_persona(&who, body.into()).await })
        .await?;
    Ok(HttpResponse::Created().json(PersonaDto::from(persona)))
}

/// List personas, newest first.
#[utoipa::path(
    get, path = "/v1/personas", tag = "personas", operation_id = "listPersonas",
    params(PageParams),
    responses(
        (status = 200, description = "A page of personas", body = PersonaPage),
        (status = 401, description = "Unauthenticated", body = ErrorBody),
        (status = 403, description = "API keys only", body = ErrorBody),
        (status = 422, description = "Bad limit or cursor", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list_personas(
    state: web::Data<AppState>,
    Auth(who): Auth,
    params: web::Query<PageParams>,
) -> Result<HttpResponse> {
    let page = state
        .run(move |e| async move { e.list_personas(&who, &params.into_inner().into()).await })
        .await?;
    Ok(HttpResponse::Ok().json(PersonaPage::from(page)))
}

/// Get a persona.
#[utoipa::path(
    get, path = "/v1/personas/{id}", tag = "personas", operation_id = "getPersona",
    params(("id" = String, Path, description = "Persona id (`per_*`)")),
    responses(
        (status = 200, description = "The persona", body = PersonaDto),
        (status = 401, description = "Unauthenticated", body = ErrorBody),
        (status = 403, description = "API keys only", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_persona(
    state: web::Data<AppState>,
    Auth(who): Auth,
    id: web::Path<String>,
) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(PersonaDto::from(
        state
            .run(move |e| async move { e.get_persona(&who, &id).await })
            .await?,
    )))
}

/// Replace a persona.
#[utoipa::path(
    put, path = "/v1/personas/{id}", tag = "personas", operation_id = "updatePersona",
    params(("id" = String, Path, description = "Persona id (`per_*`)")),
    request_body = PersonaRequest,
    responses(
        (status = 200, description = "The updated persona", body = PersonaDto),
        (status = 401, description = "Unauthenticated", body = ErrorBody),
        (status = 403, description = "API keys only", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
        (status = 422, description = "Validation error or `unknown_model`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn update_persona(
    state: web::Data<AppState>,
    Auth(who): Auth,
    id: web::Path<String>,
    Json(body): Json<PersonaRequest>,
) -> Result<HttpResponse> {
    let persona = state
        .run(move |e| async move { e.update_persona(&who, &id, body.into()).await })
        .await?;
    Ok(HttpResponse::Ok().json(PersonaDto::from(persona)))
}

/// Delete a persona that no session uses and that is not the default.
#[utoipa::path(
    delete, path = "/v1/personas/{id}", tag = "personas", operation_id = "deletePersona",
    params(("id" = String, Path, description = "Persona id (`per_*`)")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Unauthenticated", body = ErrorBody),
        (status = 403, description = "API keys only", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
        (status = 409, description = "In use by sessions or the workspace default", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn delete_persona(
    state: web::Data<AppState>,
    Auth(who): Auth,
    id: web::Path<String>,
) -> Result<HttpResponse> {
    state
        .run(move |e| async move { e.delete_persona(&who, &id).await })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v1/personas")
            .route(web::post().to(create_persona))
            .route(web::get().to(list_personas)),
    )
    .service(
        web::resource("/v1/personas/{id}")
            .route(web::get().to(get_persona))
            .route(web::put().to(update_persona))
            .route(web::delete().to(delete_persona)),
    );
}
