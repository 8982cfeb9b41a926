use actix_web::http::header::CONTENT_TYPE;
use actix_web::{web, HttpRequest, HttpResponse};
use tidechat_engine::ImportFormat;

use crate::auth::Auth;
use crate::dto::{FaqDto, FaqImportResponse, FaqPage, FaqRequest};
use crate::error::{ApiError, ErrorBody};
use crate::extract::Json;
use crate::routes::personas::PageParams;
use crate::state::AppState;

type Result<T> = std::result::Result<T, ApiError>;

/// Add one FAQ entry.
#[utoipa::path(
    post, path = "/v1/faqs", tag = "faqs", operation_id = "createFaq",
    request_body = FaqRequest,
    responses(
        (status = 201, description = "Created", body = FaqDto),
        (status = 401, description = "Unauthenticated", body = ErrorBody),
        (status = 403, description = "API keys only", body = ErrorBody),
        (status = 422, description = "Validation error", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create_faq(
    state: web::Data<AppState>,
    Auth(who): Auth,
    Json(body): Json<FaqRequest>,
) -> Result<HttpResponse> {
    let entry = state
        .run(move |e| async move { e.create_faq(&who, body.into()).await })
        .await?;
    Ok(HttpResponse::Created().json(FaqDto::from(entry)))
}

/// Import many FAQ entries at once, all or nothing.
///
/// Send `application/json` (an array of `{question, answer, organizationId?, tags?}`,
/// or `{"entries": [...]}`) or `text/csv` (a header row with `question`,
/// `answer` and optionally `organizationId`, `tags` separated by `;`).
#[utoipa::path(
    post, path = "/v1/faqs/import", tag = "faqs", operation_id = "importFaqs",
    request_body(content(
        (Vec<FaqRequest> = "application/json"),
        (String = "text/csv", example = "question,answer,tags\nHow do I reset my password?,Use the reset link on the sign-in page.,account\n")
    )),
    responses(
        (status = 201, description = "Imported", body = FaqImportResponse),
        (status = 401, description = "Unauthenticated", body = ErrorBody),
        (status = 403, description = "API keys only", body = ErrorBody),
        (status = 413, description = "Body over the size limit", body = ErrorBody),
        (status = 422, description = "A bad entry (the message names it); nothing was imported", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn import_faqs(
    state: web::Data<AppState>,
    Auth(who): Auth,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let format = if content_type.contains("csv") {
        ImportFormat::Csv
    } else if content_type.contains("json") {
        ImportFormat::Json
    } else {
        ImportFormat::detect(None, &body)
    };
    let drafts = format.parse(&body)?;
    let entries = state
        .run(move |e| async move { e.import_faqs(&who, drafts).await })
        .await?;
    Ok(HttpResponse::Created().json(FaqImportResponse {
        imported: entries.len(),
        items: entries.into_iter().map(FaqDto::from).collect(),
    }))
}

/// List FAQ entries, newest first.
#[utoipa::path(
    get, path = "/v1/faqs", tag = "faqs", operation_id = "listFaqs",
    params(PageParams),
    responses(
        (status = 200, description = "A page of entries", body = FaqPage),
        (status = 401, description = "Unauthenticated", body = ErrorBody),
        (status = 403, description = "API keys only", body = ErrorBody),
        (status = 422, description = "Bad limit or cursor", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list_faqs(
    state: web::Data<AppState>,
    Auth(who): Auth,
    params: web::Query<PageParams>,
) -> Result<HttpResponse> {
    let page = state
        .run(move |e| async move { e.list_faqs(&who, &params.into_inner().into()).await })
        .await?;
    Ok(HttpResponse::Ok().json(FaqPage::from(page)))
}

/// Get an FAQ entry.
#[utoipa::path(
    get, path = "/v1/faqs/{id}", tag = "faqs", operation_id = "getFaq",
    params(("id" = String, Path, description = "FAQ entry id (`faq_*`)")),
    responses(
        (status = 200, description = "The entry", body = FaqDto),
        (status = 401, description = "Unauthenticated", body = ErrorBody),
        (status = 403, description = "API keys only", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_faq(
    state: web::Data<AppState>,
    Auth(who): Auth,
    id: web::Path<String>,
) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(FaqDto::from(
        state
            .run(move |e| async move { e.get_faq(&who, &id).await })
            .await?,
    )))
}

/// Replace an FAQ entry. Every server process answers from the new text at once.
#[utoipa::path(
    put, path = "/v1/faqs/{id}", tag = "faqs", operation_id = "updateFaq",
    params(("id" = String, Path, description = "FAQ entry id (`faq_*`)")),
    request_body = FaqRequest,
    responses(
        (status = 200, description = "The updated entry", body = FaqDto),
        (status = 401, description = "Unauthenticated", body = ErrorBody),
        (status = 403, description = "API keys only", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
        (status = 422, description = "Validation error", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn update_faq(
    state: web::Data<AppState>,
    Auth(who): Auth,
    id: web::Path<String>,
    Json(body): Json<FaqRequest>,
) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(FaqDto::from(
        state
            .run(move |e| async move { e.update_faq(&who, &id, body.into()).await })
            .await?,
    )))
}

/// Delete an FAQ entry.
#[utoipa::path(
    delete, path = "/v1/faqs/{id}", tag = "faqs", operation_id = "deleteFaq",
    params(("id" = String, Path, description = "FAQ entry id (`faq_*`)")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Unauthenticated", body = ErrorBody),
        (status = 403, description = "API keys only", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn delete_faq(
    state: web::Data<AppState>,
    Auth(who): Auth,
    id: web::Path<String>,
) -> Result<HttpResponse> {
    state
        .run(move |e| async move { e.delete_faq(&who, &id).await })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v1/faqs")
            .route(web::post().to(create_faq))
            .route(web::get().to(list_faqs)),
    )
    .service(web::resource("/v1/faqs/import").route(web::post().to(import_faqs)))
    .service(
        web::resource("/v1/faqs/{id}")
            .route(web::get().to(get_faq))
            .route(web::put().to(update_faq))
            .route(web::delete().to(delete_faq)),
    );
}
