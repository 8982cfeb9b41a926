//! `/v1/documents` (knowledge documents) and `/v1/knowledge/search` ("try a
//! question": the ranking a turn would see).

use actix_multipart::Multipart;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serde::Deserialize;
use tidechat_domain::{validate, DocumentFormat};
use tidechat_engine::{DocumentUpload, EngineError};
use utoipa::IntoParams;

use crate::auth::Auth;
use crate::dto::{
    DocumentChunkDto, DocumentDetailDto, DocumentDto, DocumentPage, DocumentRequest,
    KnowledgeHitDto, KnowledgeSearchRequest, KnowledgeSearchResponse,
};
use crate::error::{ApiError, ErrorBody};
use crate::extract::Json;
use crate::routes::personas::PageParams;
use crate::state::AppState;

type Result<T> = std::result::Result<T, ApiError>;

/// Request bodies of the document routes may be this large (the file limit
/// plus room for the multipart framing).
pub const DOCUMENT_BODY_LIMIT: usize = validate::DOCUMENT_FILE_MAX_BYTES + 64 * 1024;

/// Query parameters for a raw-bytes upload.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct UploadParams {
    /// Title (raw uploads; default: the document's own title, else the file name).
    pub title: Option<String>,
    /// File name (raw uploads; used to guess the format).
    pub file_name: Option<String>,
    /// Sub-organization (raw uploads).
    pub organization_id: Option<String>,
    /// `markdown`, `html`, `text` or `pdf` (raw uploads; default: from the content type).
    pub format: Option<String>,
}

fn invalid(field: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::from(EngineError::validation(field, message.into()))
}

fn too_large() -> ApiError {
    ApiError::new(
        crate::error::ErrorKind::PayloadTooLarge,
        format!(
            "documents are at most {} MiB",
            validate::DOCUMENT_FILE_MAX_BYTES / (1024 * 1024)
        ),
    )
}

fn parse_format(value: &str) -> Result<DocumentFormat> {
    DocumentFormat::parse(value.trim())
        .ok_or_else(|| invalid("format", "must be one of markdown, html, text, pdf"))
}

/// Reads one multipart text field (small).
fn field_text(name: &'static str, data: Vec<u8>) -> Result<String> {
    String::from_utf8(data)
        .map(|s| s.trim().to_owned())
        .map_err(|_| invalid(name, "must be UTF-8 text"))
}

async fn from_multipart(mut form: Multipart) -> Result<DocumentUpload> {
    let mut upload = DocumentUpload {
        title: None,
        format: None,
        file_name: None,
        content_type: None,
        organization_id: None,
        bytes: Vec::new(),
    };
    let mut has_file = false;
    let mut total = 0usize;
    while let Some(field) = form.next().await {
        let mut field =
            field.map_err(|e| ApiError::validation(format!("malformed multipart body: {e}")))?;
        let name = field.name().unwrap_or_default().to_owned();
        if name == "file" {
            upload.file_name = field
                .content_disposition()
                .and_then(|d| d.get_filename())
                .map(str::to_owned);
            upload.content_type = field.content_type().map(|m| m.essence_str().to_owned());
        }
        let mut data = Vec::new();
        while let Some(chunk) = field.next().await {
            let chunk = chunk
                .map_err(|e| ApiError::validation(format!("malformed multipart body: {e}")))?;
            total += chunk.len();
            if data.len() + chunk.len() > validate::DOCUMENT_FILE_MAX_BYTES
                || total > DOCUMENT_BODY_LIMIT
            {
                return Err(too_large());
            }
            data.extend_from_slice(&chunk);
        }
        match name.as_str() {
            "file" => {
                has_file = true;
                upload.bytes = data;
            }
            "title" => upload.title = Some(field_text("title", data)?),
            "organizationId" => {
                upload.organization_id =
                    Some(field_text("organizationId", data)?).filter(|o| !o.is_empty())
            }
            "format" => upload.format = Some(parse_format(&field_text("format", data)?)?),
            _ => {}
        }
    }
    if !has_file {
        return Err(invalid("file", "a multipart upload needs a `file` part"));
    }
    Ok(upload)
}

/// Decodes the three accepted bodies: JSON, multipart, or the raw file.
async fn read_upload(
    req: &HttpRequest,
    payload: web::Payload,
    params: UploadParams,
) -> Result<DocumentUpload> {
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if content_type.starts_with("multipart/form-data") {
        return from_multipart(Multipart::new(req.headers(), payload)).await;
    }
    let bytes = read_body(payload).await?;
    if content_type.starts_with("application/json") {
        let body: DocumentRequest = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::new(crate::error::ErrorKind::InvalidJson, e.to_string()))?;
        // JSON carries text: without a format or a telling file name it is
        // Markdown (which plain text is too).
        let format = body.format.map(DocumentFormat::from).unwrap_or_else(|| {
            tidechat_engine::extract::guess_format(
                body.file_name.as_deref(),
                None,
                body.content.as_bytes(),
            )
            .unwrap_or(DocumentFormat::Markdown)
        });
        return Ok(DocumentUpload {
            title: body.title,
            format: Some(format),
            file_name: body.file_name,
            content_type: None,
            organization_id: body.organization_id,
            bytes: body.content.into_bytes(),
        });
    }
    Ok(DocumentUpload {
        title: params.title,
        format: params.format.as_deref().map(parse_format).transpose()?,
        file_name: params.file_name,
        content_type: Some(content_type).filter(|c| !c.is_empty()),
        organization_id: params.organization_id,
        bytes: bytes.to_vec(),
    })
}

async fn read_body(mut payload: web::Payload) -> Result<web::BytesMut> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::validation(format!("reading the body: {e}")))?;
        if body.len() + chunk.len() > DOCUMENT_BODY_LIMIT {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Upload a knowledge document.
///
/// Its text is extracted (Markdown, HTML, plain text or PDF), split into
/// chunks of about 800 characters under their heading path, embedded when an
/// embedding model is configured, and from then on searched together with
/// the FAQ: the `faq` model can answer with a passage, LLM personas get the
/// best passages as context, and replies cite them (`citations`).
///
/// Send `application/json` (`{content, title?, format?, fileName?,
/// organizationId?}`), `multipart/form-data` (a `file` part plus optional
/// `title`, `format`, `organizationId` parts), or the raw file with its
/// `Content-Type` (`text/markdown`, `text/html`, `text/plain`,
/// `application/pdf`) and the query parameters. At most 16 MiB.
#[utoipa::path(
    post, path = "/v1/documents", tag = "knowledge", operation_id = "createDocument",
    params(UploadParams),
    request_body(content(
        (DocumentRequest = "application/json"),
        (String = "text/markdown", example = "# Returns\n\nYou can return any item within 30 days of delivery."),
    )),
    responses(
        (status = 201, description = "Created", body = DocumentDto),
            (status = 401, description = "Unauthenticated", body = ErrorBody),
        (status = 403, description = "Admin-scoped API keys only", body = ErrorBody),
        (status = 413, description = "Over 16 MiB", body = ErrorBody),
        (status = 422, description = "Unknown format, no text, or a bad field", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create_document(
    state: web::Data<AppState>,
    Auth(who): Auth,
    req: HttpRequest,
    payload: web::Payload,
    params: web::Query<UploadParams>,
) -> Result<HttpResponse> {
    who.require_admin().map_err(ApiError::from)?;
    let upload = read_upload(&req, payload, params.into_inner()).await?;
    let document = state
        .run(move |e| async move { e.create_document(&who, upload).await })
        .await?;
    Ok(HttpResponse::Created().json(DocumentDto::from(document)))
}

/// Replace a document's content (and title); its chunks and embeddings are
/// rebuilt and every server process searches the new text at once.
#[utoipa::path(
    put, path = "/v1/documents/{id}", tag = "knowledge", operation_id = "replaceDocument",
    params(("id" = String, Path, description = "Document id (`doc_*`)"), UploadParams),
    request_body(content(
        (DocumentRequest = "application/json"),
        (String = "text/markdown"),
    )),
    responses(
        (status = 200, description = "The updated document", body = DocumentDto),
            (status = 401, description = "Unauthenticated", body = ErrorBody),
        (status = 403, description = "Admin-scoped API keys only", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
        (status = 413, description = "Over 16 MiB", body = ErrorBody),
        (status = 422, description = "Unknown format, no text, or a bad field", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn replace_document(
    state: web::Data<AppState>,
    Auth(who): Auth,
    id: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
    params: web::Query<UploadParams>,
) -> Result<HttpResponse> {
    who.require_admin().map_err(ApiError::from)?;
    let upload = read_upload(&req, payload, params.into_inner()).await?;
    let document = state
        .run(move |e| async move { e.replace_document(&who, &id, upload).await })
        .await?;
    Ok(HttpResponse::Ok().json(DocumentDto::from(document)))
}

/// List documents, newest first.
#[utoipa::path(
    get, path = "/v1/documents", tag = "knowledge", operation_id = "listDocuments",
    params(PageParams),
    responses(
        (status = 200, description = "A page of documents", body = DocumentPage),
        (status = 401, description = "Unauthenticated", body = ErrorBody),
        (status = 403, description = "Admin-scoped API keys only", body = ErrorBody),
        (status = 422, description = "Bad limit or cursor", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list_documents(
    state: web::Data<AppState>,
    Auth(who): Auth,
    params: web::Query<PageParams>,
) -> Result<HttpResponse> {
    let page = state
        .run(move |e| async move { e.list_documents(&who, &params.into_inner().into()).await })
        .await?;
    Ok(HttpResponse::Ok().json(DocumentPage::from(page)))
}

/// Get a document with its extracted text and chunks.
#[utoipa::path(
    get, path = "/v1/documents/{id}", tag = "knowledge", operation_id = "getDocument",
    params(("id" = String, Path, description = "Document id (`doc_*`)")),
    responses(
        (status = 200, description = "The document", body = DocumentDetailDto),
        (status = 401, description = "Unauthenticated", body = ErrorBody),
        (status = 403, description = "Admin-scoped API keys only", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_document(
    state: web::Data<AppState>,
    Auth(who): Auth,
    id: web::Path<String>,
) -> Result<HttpResponse> {
    let (document, text, chunks) = state
        .run(move |e| async move { e.document_content(&who, &id).await })
        .await?;
    Ok(HttpResponse::Ok().json(DocumentDetailDto {
        document: DocumentDto::from(document),
        text,
        chunks: chunks
            .into_iter()
            .map(|c| DocumentChunkDto {
                index: c.index,
                heading: c.heading,
                content: c.content,
            })
            .collect(),
    }))
}

/// Delete a document; it is no longer searched, by any server process.
#[utoipa::path(
    delete, path = "/v1/documents/{id}", tag = "knowledge", operation_id = "deleteDocument",
    params(("id" = String, Path, description = "Document id (`doc_*`)")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Unauthenticated", body = ErrorBody),
        (status = 403, description = "Admin-scoped API keys only", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn delete_document(
    state: web::Data<AppState>,
    Auth(who): Auth,
    id: web::Path<String>,
) -> Result<HttpResponse> {
    state
        .run(move |e| async move { e.delete_document(&who, &id).await })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Rank the FAQ and documents for a question, as a turn would ("try a
/// question"): the hits with their confidence and the out-of-scope verdict.
#[utoipa::path(
    post, path = "/v1/knowledge/search", tag = "knowledge", operation_id = "searchKnowledge",
    request_body = KnowledgeSearchRequest,
    responses(
        (status = 200, description = "The ranking", body = KnowledgeSearchResponse),
        (status = 401, description = "Unauthenticated", body = ErrorBody),
        (status = 403, description = "Admin-scoped API keys only", body = ErrorBody),
        (status = 422, description = "Empty query or a bad field", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn search_knowledge(
    state: web::Data<AppState>,
    Auth(who): Auth,
    Json(body): Json<KnowledgeSearchRequest>,
) -> Result<HttpResponse> {
    let limit = body.limit.unwrap_or(5);
    let result = state
        .run(move |e| async move {
            e.search_knowledge(
                &who,
                &body.query,
                body.organization_id.as_deref(),
                limit,
                body.threshold,
            )
            .await
        })
        .await?;
    Ok(HttpResponse::Ok().json(KnowledgeSearchResponse {
        mode: result.mode.to_owned(),
        threshold: result.threshold,
        out_of_scope: result.retrieval.out_of_scope,
        hits: result
            .retrieval
            .hits
            .into_iter()
            .map(KnowledgeHitDto::from_hit)
            .collect(),
    }))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v1/documents")
            .route(web::post().to(create_document))
            .route(web::get().to(list_documents)),
    )
    .service(
        web::resource("/v1/documents/{id}")
            .route(web::get().to(get_document))
            .route(web::put().to(replace_document))
            .route(web::delete().to(delete_document)),
    )
    .service(web::resource("/v1/knowledge/search").route(web::post().to(search_knowledge)));
}
