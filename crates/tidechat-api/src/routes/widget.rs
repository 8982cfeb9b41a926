//! The public widget API (`/api/v1/chat/…`, `/widget.js`, `/uploads/…`):
//! no credential, scoped by `site_key` + the widget's `session_id`, safe to
//! expose to the open internet. Answers follow the reference: `{"success":
//! true, …}`; errors are `{"success": false, "error": code, "message"}`.
//! Browsers get a CORS grant only from the site's allowed origins.

use actix_multipart::Multipart;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{json, Value};
use tidechat_domain::{ConversationMode, Message, Role, SessionId, Site};
use tidechat_engine::{TurnEvent, WidgetSend, OPERATOR_MODEL};

use crate::driver::{frames, sse_response, stream_turn, Step, TurnEncoder};
use crate::dto::timestamp;
use crate::error::{ApiError, ErrorKind, Failure, Widget};
use crate::site::{preflight, resolve_site, SiteCall};
use crate::sse::data_frame as frame;
use crate::state::AppState;

/// Largest image accepted.
pub const UPLOAD_MAX_BYTES: usize = 5 * 1024 * 1024;
/// Largest `site_key` / `session_id` form field.
const UPLOAD_TEXT_FIELD_MAX_BYTES: usize = 512;
/// Largest whole upload form: the image plus room for the other fields and
/// the multipart framing.
pub const UPLOAD_FORM_MAX_BYTES: usize = UPLOAD_MAX_BYTES + 64 * 1024;
/// The widget script.
const WIDGET_JS: &str = include_str!("../../assets/widget.js");

/// This surface's errors (see [`Widget`]).
pub type WidgetError = Failure<Widget>;
type Result<T> = std::result::Result<T, WidgetError>;

fn invalid(message: impl Into<String>) -> WidgetError {
    Failure::new(ErrorKind::Validation, message)
}

fn message_json(m: &Message) -> Value {
    let role = if m.model == OPERATOR_MODEL && m.role == Role::Assistant {
        "operator"
    } else {
        m.role.as_str()
    };
    json!({"id": m.id.as_str(), "role": role, "content": m.content, "created_at": timestamp(&m.created_at)})
}

fn ok(body: Value) -> HttpResponse {
    HttpResponse::Ok().json(body)
}

/// `GET /api/v1/chat/config?site_key=` — the widget's display settings.
pub async fn config(call: SiteCall) -> HttpResponse {
    let (site, s) = (&call.site, &call.site.settings);
    ok(json!({
        "success": true,
        "name": site.name,
        "greeting": s.greeting,
        "colors": {"primary": s.primary_color, "background": s.background_color, "text": s.text_color},
        "ask_email": s.ask_email,
    }))
}

/// `POST /api/v1/chat/stream` — a visitor message, answered over SSE.
pub async fn stream(
    state: web::Data<AppState>,
    req: HttpRequest,
    call: SiteCall,
) -> Result<HttpResponse> {
    let visitor = call.required("session_id")?;
    let message = call.required("message")?;
    let lang = call.field("lang");
    let message_id = call.field("message_id");
    call.admit(&state, &req, "message", 30).await?;
    let site = call.site;
    let sent = state
        .run(move |e| async move {
            e.widget_send(
                &site,
                &visitor,
                &message,
                lang.as_deref(),
                message_id.as_deref(),
            )
            .await
        })
        .await?;
    let response = HttpResponse::Ok();
    Ok(match sent {
        WidgetSend::Replay { text, conversation } => sse_response(
            response,
            frames(vec![
                frame(&json!({"type": "chunk", "content": text})),
                frame(
                    &json!({"type": "done", "meta": {"conversation_id": conversation.as_str(), "mode": "ai", "replayed": true}}),
                ),
            ]),
        ),
        WidgetSend::Queued {
            conversation,
            handed_off,
            message,
        } => {
            let mut out = Vec::new();
            if handed_off {
                out.push(frame(&json!({"type": "mode", "mode": "operator"})));
            }
            out.push(frame(&json!({"type": "done", "meta": {
                "conversation_id": conversation.as_str(),
                "mode": "operator",
                "message_id": message.id.as_str(),
            }})));
            sse_response(response, frames(out))
        }
        WidgetSend::Reply { turn, conversation } => {
            let encoder = WidgetChunks { conversation };
            sse_response(
                response,
                stream_turn(&state, None, turn, Vec::new(), encoder),
            )
        }
    })
}

/// The widget's encoding of an AI reply: `chunk`s, a `replace` when
/// moderation stopped it, then `done` with the stored reply's id or `error`.
struct WidgetChunks {
    conversation: SessionId,
}

impl TurnEncoder for WidgetChunks {
    type Frame = Bytes;

    fn event(&mut self, event: TurnEvent) -> Step<Bytes> {
        match event {
            TurnEvent::Delta(text) => {
                Step::more(vec![frame(&json!({"type": "chunk", "content": text}))])
            }
            TurnEvent::Replaced(text) => {
                Step::more(vec![frame(&json!({"type": "replace", "content": text}))])
            }
            TurnEvent::Completed(outcome) => {
                Step::last(vec![frame(&json!({"type": "done", "meta": {
                    "conversation_id": self.conversation.as_str(),
                    "mode": "ai",
                    "message_id": outcome.assistant_message.id.as_str(),
                }}))])
            }
            TurnEvent::Failed { error, .. } => {
                let api = ApiError::from(error);
                Step::last(vec![frame(
                    &json!({"type": "error", "message": api.message}),
                )])
            }
            TurnEvent::Unrecorded => Step::last(vec![frame(
                &json!({"type": "error", "message": "the reply could not be completed"}),
            )]),
            TurnEvent::Retrieval(_) | TurnEvent::UserStored(_) => Step::more(Vec::new()),
        }
    }

    fn end(&mut self, finished: bool) -> Vec<Bytes> {
        if finished {
            Vec::new()
        } else {
            vec![frame(
                &json!({"type": "error", "message": "the reply could not be completed"}),
            )]
        }
    }
}

/// `GET /api/v1/chat/history?site_key=&session_id=`
pub async fn history(state: web::Data<AppState>, call: SiteCall) -> Result<HttpResponse> {
    let (site, visitor) = (call.site.clone(), call.visitor());
    let messages = state
        .run(move |e| async move { e.widget_history(&site, &visitor).await })
        .await?;
    let messages: Vec<Value> = messages.iter().map(message_json).collect();
    Ok(ok(json!({"success": true, "messages": messages})))
}

/// `POST /api/v1/chat/email`
pub async fn email(
    state: web::Data<AppState>,
    req: HttpRequest,
    call: SiteCall,
) -> Result<HttpResponse> {
    contact_like(state, req, call, true).await
}

/// `POST /api/v1/chat/contact`
pub async fn contact(
    state: web::Data<AppState>,
    req: HttpRequest,
    call: SiteCall,
) -> Result<HttpResponse> {
    contact_like(state, req, call, false).await
}

async fn contact_like(
    state: web::Data<AppState>,
    req: HttpRequest,
    call: SiteCall,
    email_only: bool,
) -> Result<HttpResponse> {
    let visitor = call.required("session_id")?;
    call.admit(&state, &req, "contact", 10).await?;
    let (email, phone, name) = if email_only {
        (Some(call.required("email")?), None, None)
    } else {
        (call.field("email"), call.field("phone"), call.field("name"))
    };
    let site = call.site;
    state
        .run(move |e| async move { e.widget_contact(&site, &visitor, email, phone, name).await })
        .await?;
    let message = if email_only {
        "Email saved"
    } else {
        "Contact saved"
    };
    Ok(ok(json!({"success": true, "message": message})))
}

/// `GET /api/v1/chat/operator-messages?site_key=&session_id=`
pub async fn operator_messages(state: web::Data<AppState>, call: SiteCall) -> Result<HttpResponse> {
    let (site, visitor) = (call.site.clone(), call.visitor());
    let (messages, mode) = state
        .run(move |e| async move { e.widget_operator_messages(&site, &visitor).await })
        .await?;
    let messages: Vec<Value> = messages.iter().map(message_json).collect();
    let mode = match mode {
        ConversationMode::Ai => "ai",
        ConversationMode::Operator => "operator",
    };
    Ok(ok(
        json!({"success": true, "messages": messages, "mode": mode}),
    ))
}

/// `GET /api/v1/chat/block-status?site_key=&session_id=`
pub async fn block_status(state: web::Data<AppState>, call: SiteCall) -> Result<HttpResponse> {
    let (site, visitor) = (call.site.clone(), call.visitor());
    let blocked = state
        .run(move |e| async move { e.widget_blocked(&site, &visitor).await })
        .await?;
    Ok(ok(json!({"success": true, "blocked": blocked})))
}

/// `GET /api/v1/chat/pending-proactive?site_key=&session_id=&url=`
pub async fn pending_proactive(state: web::Data<AppState>, call: SiteCall) -> Result<HttpResponse> {
    let (site, visitor) = (call.site.clone(), call.visitor());
    let url = call.field("url").unwrap_or_default();
    let messages = state
        .run(move |e| async move { e.widget_proactive(&site, &visitor, &url).await })
        .await?;
    let messages: Vec<Value> = messages
        .iter()
        .map(|p| json!({"id": p.id.as_str(), "content": p.content, "delay_seconds": p.delay_seconds}))
        .collect();
    Ok(ok(json!({"success": true, "messages": messages})))
}

/// `POST /api/v1/chat/rate` `{site_key, session_id, score}`
pub async fn rate(
    state: web::Data<AppState>,
    req: HttpRequest,
    call: SiteCall,
) -> Result<HttpResponse> {
    let visitor = call.required("session_id")?;
    let score = call
        .value("score")
        .and_then(Value::as_i64)
        .ok_or_else(|| invalid("`score` (1–5) is required"))?;
    call.admit(&state, &req, "rating", 30).await?;
    let site = call.site;
    state
        .run(move |e| async move { e.widget_rate(&site, &visitor, score).await })
        .await?;
    Ok(ok(json!({"success": true})))
}

/// `POST /api/v1/chat/rate/comment` `{site_key, session_id, comment}`
pub async fn rate_comment(
    state: web::Data<AppState>,
    req: HttpRequest,
    call: SiteCall,
) -> Result<HttpResponse> {
    let visitor = call.required("session_id")?;
    let comment = call.required("comment")?;
    call.admit(&state, &req, "comment", 30).await?;
    let site = call.site;
    state
        .run(move |e| async move { e.widget_rate_comment(&site, &visitor, &comment).await })
        .await?;
    Ok(ok(json!({"success": true})))
}

/// The image type of `bytes` by its signature; `None` for anything else.
pub fn sniff_image(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(&[0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a]) {
        Some("png")
    } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        Some("jpg")
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some("gif")
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some("webp")
    } else {
        None
    }
}

/// `POST /api/v1/chat/upload-image` (multipart: `site_key`, `session_id`, `image`).
pub async fn upload_image(
    state: web::Data<AppState>,
    req: HttpRequest,
    mut form: Multipart,
) -> Result<HttpResponse> {
    // The whole form is bounded (the image plus a little for the other
    // fields and the multipart framing), not only each field: reading stops
    // at the bound. The site key is checked, and the client's upload rate
    // counted, as soon as its field has arrived (the widget sends it first),
    // before the image is read.
    let mut site: Option<Site> = None;
    let form = read_upload_form(&mut form, async |key| {
        let found = resolve_site(&state, &req, key).await?;
        state
            .check_visitor_rate(&req, &found.id, "upload", 10)
            .await?;
        site = Some(found);
        Ok(())
    })
    .await?;
    let UploadForm {
        visitor,
        image,
        too_large,
        bad_form,
    } = form;
    if bad_form && site.is_none() {
        return Err(invalid("send multipart/form-data"));
    }
    let site = match site {
        Some(site) => site,
        None => resolve_site(&state, &req, String::new()).await?,
    };
    if too_large {
        return Err(Failure::new(
            ErrorKind::PayloadTooLarge,
            format!("images are at most {} MiB", UPLOAD_MAX_BYTES / 1024 / 1024),
        ));
    }
    if bad_form {
        return Err(invalid("send multipart/form-data"));
    }
    let blocked = {
        let (site, visitor) = (site.clone(), visitor.clone());
        state
            .run(move |e| async move { e.widget_blocked(&site, &visitor).await })
            .await?
    };
    if blocked {
        return Err(Failure::new(
            ErrorKind::Forbidden,
            "You can no longer send messages in this chat.",
        ));
    }
    if visitor.is_empty() {
        return Err(invalid("`session_id` is required"));
    }
    let image = image.ok_or_else(|| invalid("the `image` field is required"))?;
    let ext = sniff_image(&image).ok_or_else(|| {
        Failure::new(
            ErrorKind::UnsupportedMediaType,
            "only PNG, JPEG, GIF and WebP images are accepted",
        )
    })?;
    let name = format!(
        "{}.{ext}",
        ulid::Ulid::new().to_string().to_ascii_lowercase()
    );
    let location = object_store::path::Path::from(name.as_str());
    let uploads = state.uploads.clone();
    let stored = state
        .run_io(async move {
            uploads
                .put(&location, object_store::PutPayload::from(image))
                .await
        })
        .await?;
    if let Err(e) = stored {
        tracing::error!(error = %e, "could not store an upload");
        return Err(Failure::new(
            ErrorKind::Unavailable,
            "the image could not be stored; retry",
        ));
    }
    // From configuration, never from the request's Host / X-Forwarded-*.
    let url = format!("{}/uploads/{name}", state.public_url);
    Ok(ok(json!({"success": true, "url": url})))
}

/// What an upload form held, read with its bounds (see [`upload_image`]).
pub(crate) struct UploadForm {
    pub(crate) visitor: String,
    pub(crate) image: Option<Vec<u8>>,
    /// Reading stopped at the form's or the image's size bound.
    pub(crate) too_large: bool,
    /// The multipart framing was broken.
    pub(crate) bad_form: bool,
}

/// Reads an upload form: the whole form is bounded (the image plus a little
/// for the other fields and the framing), not only each field, and reading
/// stops at the bound; `site_key` is handed to `on_site_key` as soon as its
/// field has arrived (the widget sends it first), before the image is read.
/// Fields other than the three are read past, never kept.
pub(crate) async fn read_upload_form(
    form: &mut Multipart,
    mut on_site_key: impl AsyncFnMut(String) -> Result<()>,
) -> Result<UploadForm> {
    let mut out = UploadForm {
        visitor: String::new(),
        image: None,
        too_large: false,
        bad_form: false,
    };
    let mut total = 0usize;
    'fields: while let Some(field) = form.next().await {
        let Ok(mut field) = field else {
            out.bad_form = true;
            break;
        };
        let name = field.name().unwrap_or_default().to_owned();
        let keep = match name.as_str() {
            "image" => UPLOAD_MAX_BYTES,
            "site_key" | "session_id" => UPLOAD_TEXT_FIELD_MAX_BYTES,
            _ => 0,
        };
        let mut data = Vec::new();
        while let Some(chunk) = field.next().await {
            let Ok(chunk) = chunk else {
                out.bad_form = true;
                break 'fields;
            };
            total += chunk.len();
            if total > UPLOAD_FORM_MAX_BYTES || (name == "image" && data.len() + chunk.len() > keep)
            {
                out.too_large = true;
                break 'fields;
            }
            if data.len() + chunk.len() > keep {
                if keep > 0 {
                    return Err(invalid(format!("`{name}` is too long")));
                }
                continue;
            }
            data.extend_from_slice(&chunk);
        }
        match name.as_str() {
            "site_key" => on_site_key(String::from_utf8_lossy(&data).trim().to_owned()).await?,
            "session_id" => out.visitor = String::from_utf8_lossy(&data).trim().to_owned(),
            "image" => out.image = Some(data),
            _ => {}
        }
    }
    Ok(out)
}

fn upload_type(name: &str) -> Option<&'static str> {
    let (stem, ext) = name.rsplit_once('.')?;
    let content_type = match ext {
        "png" => "image/png",
        "jpg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        _ => return None,
    };
    (stem.len() == 26 && stem.chars().all(|c| c.is_ascii_alphanumeric())).then_some(content_type)
}

/// `GET /uploads/{name}` — uploaded images.
pub async fn uploaded(state: web::Data<AppState>, name: web::Path<String>) -> HttpResponse {
    let Some(content_type) = upload_type(&name) else {
        return HttpResponse::NotFound().json(json!({"success": false, "error": "not_found"}));
    };
    let uploads = state.uploads.clone();
    let location = object_store::path::Path::from(name.as_str());
    let read = state
        .run_io(async move { uploads.get(&location).await?.bytes().await })
        .await;
    match read {
        Ok(Ok(bytes)) => HttpResponse::Ok()
            .content_type(content_type)
            .insert_header(("Cache-Control", "public, max-age=31536000, immutable"))
            .insert_header(("X-Content-Type-Options", "nosniff"))
            .body(bytes),
        _ => HttpResponse::NotFound().json(json!({"success": false, "error": "not_found"})),
    }
}

/// `GET /widget.js`
pub async fn widget_js() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header(("Cache-Control", "public, max-age=300"))
        .insert_header(("Access-Control-Allow-Origin", "*"))
        .body(WIDGET_JS)
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    let options = || web::method(actix_web::http::Method::OPTIONS).to(preflight);
    cfg.service(
        web::resource("/api/v1/chat/stream")
            .route(web::post().to(stream))
            .route(options()),
    )
    .service(
        web::resource("/api/v1/chat/config")
            .route(web::get().to(config))
            .route(options()),
    )
    .service(
        web::resource("/api/v1/chat/history")
            .route(web::get().to(history))
            .route(options()),
    )
    .service(
        web::resource("/api/v1/chat/email")
            .route(web::post().to(email))
            .route(options()),
    )
    .service(
        web::resource("/api/v1/chat/contact")
            .route(web::post().to(contact))
            .route(options()),
    )
    .service(
        web::resource("/api/v1/chat/operator-messages")
            .route(web::get().to(operator_messages))
            .route(options()),
    )
    .service(
        web::resource("/api/v1/chat/block-status")
            .route(web::get().to(block_status))
            .route(options()),
    )
    .service(
        web::resource("/api/v1/chat/pending-proactive")
            .route(web::get().to(pending_proactive))
            .route(options()),
    )
    .service(
        web::resource("/api/v1/chat/upload-image")
            .route(web::post().to(upload_image))
            .route(options()),
    )
    .service(
        web::resource("/api/v1/chat/rate")
            .route(web::post().to(rate))
            .route(options()),
    )
    .service(
        web::resource("/api/v1/chat/rate/comment")
            .route(web::post().to(rate_comment))
            .route(options()),
    )
    .route("/widget.js", web::get().to(widget_js))
    .route("/uploads/{name}", web::get().to(uploaded));
}
