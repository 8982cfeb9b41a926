use actix_web::{web, HttpResponse};

use crate::dto::Health;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// Liveness: the process is up.
#[utoipa::path(get, path = "/healthz", tag = "system", operation_id = "healthz",
    responses((status = 200, description = "Alive", body = Health)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health {
        status: "ok".to_owned(),
    })
}

/// Readiness: the database answers.
#[utoipa::path(get, path = "/readyz", tag = "system", operation_id = "readyz",
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "The database is unreachable", body = ErrorBody),
    ))]
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let ping = state
        .run(|engine| async move {
            engine
                .store()
                .ping()
                .await
                .map_err(tidechat_engine::EngineError::from)
        })
        .await;
    if ping.is_err() {
        tracing::warn!("readiness check failed: the database does not answer");
        return Err(ApiError::new(
            crate::error::ErrorKind::Unavailable,
            "the database is unreachable",
        ));
    }
    Ok(HttpResponse::Ok().json(Health {
        status: "ready".to_owned(),
    }))
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "system", operation_id = "getOpenApi",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json")))]
pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(crate::openapi::json())
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/openapi.json", web::get().to(openapi));
}
