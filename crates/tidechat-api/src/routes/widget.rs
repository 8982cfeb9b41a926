//! The public widget API (`/api/v1/chat/…`, `/widget.js`, `/uploads/…`):
//! no credential, scoped by `site_key` + the widget's `session_id`, safe to
//! expose to the open internet. Answers follow the reference: `{"success":
//! true, …}`; errors are `{"success": false, "error": code, "message"}`.
//! Browsers get a CORS grant only from the site's allowed origins.

use actix_multipart::Multipart;
use actix_web::http::header::{HeaderValue, ORIGIN};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, HttpResponseBuilder};
use bytes::Bytes;
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};
use tidechat_domain::{ConversationMode, Message, Role, Site};
use tidechat_engine::{EngineError, TurnEvent, WidgetSend, OPERATOR_MODEL};
use tidechat_limits::Rate;
use tokio::sync::mpsc;

use crate::dto::timestamp;
use crate::error::ApiError;
use crate::state::AppState;

/// Largest image accepted.
pub const UPLOAD_MAX_BYTES: usize = 5 * 1024 * 1024;
/// The widget script.
const WIDGET_JS: &str = include_str!("../../assets/widget.js");

/// A refusal in the widget API's shape.
pub struct WidgetError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<u64>,
}

impl WidgetError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }
}

impl From<EngineError> for WidgetError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::NotFound("site") => {
                Self::new(StatusCode::NOT_FOUND, "unknown_site", "unknown site_key")
            }
            EngineError::Forbidden(_) => Self::new(
                StatusCode::FORBIDDEN,
                "blocked",
                "You can no longer send messages in this chat.",
            ),
            other => {
                let api = ApiError::from(other);
                let mut e = Self::new(api.status, "error", api.message);
                e.code = match api.code {
                    "validation_error" | "invalid_json" => "invalid_request",
                    "rate_limited" => "rate_limited",
                    "quota_exceeded" => "quota_exceeded",
                    "conflict" => "in_progress",
                    "session_not_active" => "conversation_closed",
                    _ => "server_error",
                };
                if e.code == "invalid_request" {
                    e.status = StatusCode::BAD_REQUEST;
                }
                e.retry_after = api.retry_after;
                e
            }
        }
    }
}

impl From<ApiError> for WidgetError {
    fn from(api: ApiError) -> Self {
        let mut e = Self::new(
            api.status,
            if api.code == "rate_limited" {
                "rate_limited"
            } else {
                "server_error"
            },
            api.message,
        );
        e.retry_after = api.retry_after;
        e
    }
}

type Result<T> = std::result::Result<T, WidgetError>;

/// Adds the CORS grant when the request's origin is one of the site's.
fn cors(builder: &mut HttpResponseBuilder, req: &HttpRequest, site: Option<&Site>) {
    let Some(origin) = req.headers().get(ORIGIN).and_then(|o| o.to_str().ok()) else {
        return;
    };
    if site.is_some_and(|s| s.allowed_origins.iter().any(|o| o == origin)) {
        if let Ok(value) = HeaderValue::from_str(origin) {
            builder.insert_header(("Access-Control-Allow-Origin", value));
        }
    }
    builder.insert_header(("Vary", "Origin"));
}

fn error(req: &HttpRequest, site: Option<&Site>, e: WidgetError) -> HttpResponse {
    let mut builder = HttpResponse::build(e.status);
    cors(&mut builder, req, site);
    if let Some(secs) = e.retry_after {
        builder.insert_header(("Retry-After", secs.to_string()));
    }
    builder.json(json!({"success": false, "error": e.code, "message": e.message}))
}

fn ok(req: &HttpRequest, site: &Site, body: Value) -> HttpResponse {
    let mut builder = HttpResponse::Ok();
    cors(&mut builder, req, Some(site));
    builder.json(body)
}

/// Runs a widget handler body: resolves the site, applies CORS to every answer.
async fn respond<F, Fut>(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    site_key: &str,
    body: F,
) -> HttpResponse
where
    F: FnOnce(Site) -> Fut,
    Fut: std::future::Future<Output = Result<HttpResponse>>,
{
    let site = {
        let (engine, key) = (state.engine.clone(), site_key.to_owned());
        state
            .run(move |_| async move { engine.site_for_key(&key).await })
            .await
    };
    let site = match site {
        Ok(site) => site,
        Err(e) if e.status == StatusCode::NOT_FOUND => {
            return error(
                req,
                None,
                WidgetError::new(StatusCode::NOT_FOUND, "unknown_site", "unknown site_key"),
            )
        }
        Err(e) => return error(req, None, e.into()),
    };
    let for_errors = site.clone();
    match body(site).await {
        Ok(response) => response,
        Err(e) => error(req, Some(&for_errors), e),
    }
}

/// Per site and client address: message, conversation, upload and contact rates.
async fn abuse_check(
    state: &AppState,
    req: &HttpRequest,
    site: &Site,
    what: &str,
    per_minute: u32,
) -> Result<()> {
    let ip = req
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|| "unknown".to_owned());
    let decision = state
        .limiter
        .check_rate(
            &format!("site:{}:ip:{ip}:{what}", site.id),
            Rate::per_minute(per_minute),
        )
        .await;
    if decision.allowed {
        return Ok(());
    }
    let mut e = WidgetError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!("too many {what} requests; slow down"),
    );
    e.retry_after = decision.retry_after_secs();
    Err(e)
}

fn message_json(m: &Message) -> Value {
    let role = if m.model == OPERATOR_MODEL && m.role == Role::Assistant {
        "operator"
    } else {
        m.role.as_str()
    };
    json!({"id": m.id.as_str(), "role": role, "content": m.content, "created_at": timestamp(&m.created_at)})
}

async fn engine_call<T: Send + 'static, Fut>(state: &AppState, fut: Fut) -> Result<T>
where
    Fut: std::future::Future<Output = std::result::Result<T, EngineError>> + Send + 'static,
{
    match state.runtime.spawn(fut).await {
        Ok(result) => result.map_err(WidgetError::from),
        Err(_) => Err(WidgetError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "internal error",
        )),
    }
}

#[derive(Deserialize)]
pub struct VisitorQuery {
    pub site_key: Option<String>,
    pub session_id: Option<String>,
    pub url: Option<String>,
}

fn query(req: &HttpRequest) -> VisitorQuery {
    web::Query::<VisitorQuery>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .unwrap_or(VisitorQuery {
            site_key: None,
            session_id: None,
            url: None,
        })
}

fn parse_body(body: &[u8]) -> std::result::Result<serde_json::Map<String, Value>, WidgetError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(WidgetError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body must be a JSON object",
        )),
    }
}

fn field(map: &serde_json::Map<String, Value>, name: &str) -> Option<String> {
    map.get(name).and_then(Value::as_str).map(str::to_owned)
}

fn required(map: &serde_json::Map<String, Value>, name: &str) -> Result<String> {
    field(map, name)
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| {
            WidgetError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!("`{name}` is required"),
            )
        })
}

/// CORS preflight: granted to origins some site allows.
pub async fn preflight(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let origin = req
        .headers()
        .get(ORIGIN)
        .and_then(|o| o.to_str().ok())
        .map(str::to_owned);
    let allowed = match origin.clone() {
        Some(origin) => {
            let engine = state.engine.clone();
            state
                .run(move |_| async move { engine.origin_allowed_anywhere(&origin).await })
                .await
                .unwrap_or(false)
        }
        None => false,
    };
    let mut builder = HttpResponse::NoContent();
    builder.insert_header(("Vary", "Origin"));
    if let (true, Some(origin)) = (allowed, origin) {
        if let Ok(value) = HeaderValue::from_str(&origin) {
            builder
                .insert_header(("Access-Control-Allow-Origin", value))
                .insert_header(("Access-Control-Allow-Methods", "GET, POST, OPTIONS"))
                .insert_header(("Access-Control-Allow-Headers", "Content-Type"))
                .insert_header(("Access-Control-Max-Age", "600"));
        }
    }
    builder.finish()
}

/// `GET /api/v1/chat/config?site_key=` — the widget's display settings.
pub async fn config(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let q = query(&req);
    let key = q.site_key.unwrap_or_default();
    let (state, req) = (&state, &req);
    respond(state, req, &key, |site| async move {
        let s = &site.settings;
        let body = json!({
            "success": true,
            "name": site.name,
            "greeting": s.greeting,
            "colors": {"primary": s.primary_color, "background": s.background_color, "text": s.text_color},
            "ask_email": s.ask_email,
        });
        Ok(ok(req, &site, body))
    })
    .await
}

/// `POST /api/v1/chat/stream` — a visitor message, answered over SSE.
pub async fn stream(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let map = match parse_body(&body) {
        Ok(map) => map,
        Err(e) => return error(&req, None, e),
    };
    let key = field(&map, "site_key").unwrap_or_default();
    let st = state.clone();
    let r = req.clone();
    respond(&state, &req, &key, move |site| async move {
        let visitor = required(&map, "session_id")?;
        let message = required(&map, "message")?;
        let lang = field(&map, "lang");
        let message_id = field(&map, "message_id");
        abuse_check(&st, &r, &site, "message", 30).await?;
        let known = {
            let (engine, site, visitor) = (st.engine.clone(), site.clone(), visitor.clone());
            engine_call(&st, async move { engine.visitor(&site, &visitor).await }).await?
        };
        if known.is_none() {
            abuse_check(&st, &r, &site, "conversation", 10).await?;
        }
        let sent = {
            let (engine, site) = (st.engine.clone(), site.clone());
            engine_call(&st, async move {
                engine
                    .widget_send(
                        &site,
                        &visitor,
                        &message,
                        lang.as_deref(),
                        message_id.as_deref(),
                    )
                    .await
            })
            .await?
        };
        let (tx, rx) = mpsc::channel::<Bytes>(64);
        st.runtime.spawn(drive(sent, tx));
        let frames = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv()
                .await
                .map(|frame| (Ok::<_, actix_web::Error>(frame), rx))
        });
        let mut builder = HttpResponse::Ok();
        cors(&mut builder, &r, Some(&site));
        Ok(builder
            .content_type("text/event-stream")
            .insert_header(("Cache-Control", "no-cache"))
            .insert_header(("X-Accel-Buffering", "no"))
            .streaming(frames))
    })
    .await
}

fn frame(value: Value) -> Bytes {
    Bytes::from(format!("data: {value}\n\n"))
}

/// Encodes a send's outcome as the widget's SSE frames.
async fn drive(sent: WidgetSend, out: mpsc::Sender<Bytes>) {
    let send = |value: Value| {
        let out = out.clone();
        async move { out.send(frame(value)).await.is_ok() }
    };
    match sent {
        WidgetSend::Replay { text, conversation } => {
            send(json!({"type": "chunk", "content": text})).await;
            send(json!({"type": "done", "meta": {"conversation_id": conversation.as_str(), "mode": "ai", "replayed": true}})).await;
        }
        WidgetSend::Queued {
            conversation,
            handed_off,
        } => {
            if handed_off {
                send(json!({"type": "mode", "mode": "operator"})).await;
            }
            send(json!({"type": "done", "meta": {"conversation_id": conversation.as_str(), "mode": "operator"}})).await;
        }
        WidgetSend::Reply {
            mut turn,
            conversation,
        } => loop {
            let event = tokio::select! {
                event = turn.next() => event,
                _ = out.closed() => return,
            };
            match event {
                Some(TurnEvent::Delta(text)) => {
                    send(json!({"type": "chunk", "content": text})).await;
                }
                Some(TurnEvent::Replaced(text)) => {
                    send(json!({"type": "replace", "content": text})).await;
                }
                Some(TurnEvent::Completed(outcome)) => {
                    send(json!({"type": "done", "meta": {
                        "conversation_id": conversation.as_str(),
                        "mode": "ai",
                        "message_id": outcome.assistant_message.id.as_str(),
                    }}))
                    .await;
                    break;
                }
                Some(TurnEvent::Failed { error, .. }) => {
                    let api = ApiError::from(error);
                    send(json!({"type": "error", "message": api.message})).await;
                    break;
                }
                Some(TurnEvent::Unrecorded) | None => {
                    send(json!({"type": "error", "message": "the reply could not be completed"}))
                        .await;
                    break;
                }
                Some(TurnEvent::Retrieval(_)) | Some(TurnEvent::UserStored(_)) => {}
            }
        },
    }
}

/// `GET /api/v1/chat/history?site_key=&session_id=`
pub async fn history(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let q = query(&req);
    let key = q.site_key.clone().unwrap_or_default();
    let (state, req) = (&state, &req);
    respond(state, req, &key, |site| async move {
        let visitor = q.session_id.clone().unwrap_or_default();
        let (engine, s) = (state.engine.clone(), site.clone());
        let messages = engine_call(
            state,
            async move { engine.widget_history(&s, &visitor).await },
        )
        .await?;
        let messages: Vec<Value> = messages.iter().map(message_json).collect();
        Ok(ok(
            req,
            &site,
            json!({"success": true, "messages": messages}),
        ))
    })
    .await
}

/// `POST /api/v1/chat/email`
pub async fn email(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    contact_like(state, req, body, true).await
}

/// `POST /api/v1/chat/contact`
pub async fn contact(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    contact_like(state, req, body, false).await
}

async fn contact_like(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
    email_only: bool,
) -> HttpResponse {
    let map = match parse_body(&body) {
        Ok(map) => map,
        Err(e) => return error(&req, None, e),
    };
    let key = field(&map, "site_key").unwrap_or_default();
    let (state, req) = (&state, &req);
    respond(state, req, &key, |site| async move {
        let visitor = required(&map, "session_id")?;
        abuse_check(state, req, &site, "contact", 10).await?;
        let email = if email_only {
            Some(required(&map, "email")?)
        } else {
            field(&map, "email")
        };
        let (phone, name) = if email_only {
            (None, None)
        } else {
            (field(&map, "phone"), field(&map, "name"))
        };
        let (engine, s) = (state.engine.clone(), site.clone());
        engine_call(state, async move {
            engine
                .widget_contact(&s, &visitor, email, phone, name)
                .await
        })
        .await?;
        let message = if email_only {
            "Email saved"
        } else {
            "Contact saved"
        };
        Ok(ok(req, &site, json!({"success": true, "message": message})))
    })
    .await
}

/// `GET /api/v1/chat/operator-messages?site_key=&session_id=`
pub async fn operator_messages(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let q = query(&req);
    let key = q.site_key.clone().unwrap_or_default();
    let (state, req) = (&state, &req);
    respond(state, req, &key, |site| async move {
        let visitor = q.session_id.clone().unwrap_or_default();
        let (engine, s) = (state.engine.clone(), site.clone());
        let (messages, mode) = engine_call(state, async move {
            engine.widget_operator_messages(&s, &visitor).await
        })
        .await?;
        let messages: Vec<Value> = messages.iter().map(message_json).collect();
        let mode = match mode {
            ConversationMode::Ai => "ai",
            ConversationMode::Operator => "operator",
        };
        Ok(ok(
            req,
            &site,
            json!({"success": true, "messages": messages, "mode": mode}),
        ))
    })
    .await
}

/// `GET /api/v1/chat/block-status?site_key=&session_id=`
pub async fn block_status(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let q = query(&req);
    let key = q.site_key.clone().unwrap_or_default();
    let (state, req) = (&state, &req);
    respond(state, req, &key, |site| async move {
        let visitor = q.session_id.clone().unwrap_or_default();
        let (engine, s) = (state.engine.clone(), site.clone());
        let blocked = engine_call(
            state,
            async move { engine.widget_blocked(&s, &visitor).await },
        )
        .await?;
        Ok(ok(req, &site, json!({"success": true, "blocked": blocked})))
    })
    .await
}

/// `GET /api/v1/chat/pending-proactive?site_key=&session_id=&url=`
pub async fn pending_proactive(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let q = query(&req);
    let key = q.site_key.clone().unwrap_or_default();
    let (state, req) = (&state, &req);
    respond(state, req, &key, |site| async move {
        let visitor = q.session_id.clone().unwrap_or_default();
        let url = q.url.clone().unwrap_or_default();
        let (engine, s) = (state.engine.clone(), site.clone());
        let messages = engine_call(state, async move { engine.widget_proactive(&s, &visitor, &url).await }).await?;
        let messages: Vec<Value> = messages
            .iter()
            .map(|p| json!({"id": p.id.as_str(), "content": p.content, "delay_seconds": p.delay_seconds}))
            .collect();
        Ok(ok(req, &site, json!({"success": true, "messages": messages})))
    })
    .await
}

/// `POST /api/v1/chat/rate` `{site_key, session_id, score}`
pub async fn rate(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let map = match parse_body(&body) {
        Ok(map) => map,
        Err(e) => return error(&req, None, e),
    };
    let key = field(&map, "site_key").unwrap_or_default();
    let (state, req) = (&state, &req);
    respond(state, req, &key, |site| async move {
        let visitor = required(&map, "session_id")?;
        let score = map.get("score").and_then(Value::as_i64).ok_or_else(|| {
            WidgetError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "`score` (1–5) is required",
            )
        })?;
        let (engine, s) = (state.engine.clone(), site.clone());
        engine_call(state, async move {
            engine.widget_rate(&s, &visitor, score).await
        })
        .await?;
        Ok(ok(req, &site, json!({"success": true})))
    })
    .await
}

/// `POST /api/v1/chat/rate/comment` `{site_key, session_id, comment}`
pub async fn rate_comment(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let map = match parse_body(&body) {
        Ok(map) => map,
        Err(e) => return error(&req, None, e),
    };
    let key = field(&map, "site_key").unwrap_or_default();
    let (state, req) = (&state, &req);
    respond(state, req, &key, |site| async move {
        let visitor = required(&map, "session_id")?;
        let comment = required(&map, "comment")?;
        let (engine, s) = (state.engine.clone(), site.clone());
        engine_call(state, async move {
            engine.widget_rate_comment(&s, &visitor, &comment).await
        })
        .await?;
        Ok(ok(req, &site, json!({"success": true})))
    })
    .await
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
) -> HttpResponse {
    let mut site_key = String::new();
    let mut visitor = String::new();
    let mut image: Option<Vec<u8>> = None;
    let mut too_large = false;
    let mut bad_form = false;
    while let Some(field) = form.next().await {
        let Ok(mut field) = field else {
            bad_form = true;
            break;
        };
        let name = field.name().unwrap_or_default().to_owned();
        let mut data = Vec::new();
        while let Some(chunk) = field.next().await {
            let Ok(chunk) = chunk else {
                bad_form = true;
                break;
            };
            if data.len() + chunk.len() > UPLOAD_MAX_BYTES {
                too_large = true;
                break;
            }
            data.extend_from_slice(&chunk);
        }
        if too_large || bad_form {
            break;
        }
        match name.as_str() {
            "site_key" => site_key = String::from_utf8_lossy(&data).trim().to_owned(),
            "session_id" => visitor = String::from_utf8_lossy(&data).trim().to_owned(),
            "image" => image = Some(data),
            _ => {}
        }
    }
    if bad_form {
        return error(
            &req,
            None,
            WidgetError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "send multipart/form-data",
            ),
        );
    }
    let uploads = state.uploads.clone();
    let (state, req) = (&state, &req);
    respond(state, req, &site_key, |site| async move {
        if too_large {
            return Err(WidgetError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "file_too_large",
                format!("images are at most {} MiB", UPLOAD_MAX_BYTES / 1024 / 1024),
            ));
        }
        let (engine, s, v) = (state.engine.clone(), site.clone(), visitor.clone());
        if engine_call(state, async move { engine.widget_blocked(&s, &v).await }).await? {
            return Err(WidgetError::new(
                StatusCode::FORBIDDEN,
                "blocked",
                "You can no longer send messages in this chat.",
            ));
        }
        if visitor.is_empty() {
            return Err(WidgetError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "`session_id` is required",
            ));
        }
        abuse_check(state, req, &site, "upload", 10).await?;
        let image = image.ok_or_else(|| {
            WidgetError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "the `image` field is required",
            )
        })?;
        let ext = sniff_image(&image).ok_or_else(|| {
            WidgetError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "not_an_image",
                "only PNG, JPEG, GIF and WebP images are accepted",
            )
        })?;
        let name = format!(
            "{}.{ext}",
            ulid::Ulid::new().to_string().to_ascii_lowercase()
        );
        let location = object_store::path::Path::from(name.as_str());
        let put = async move {
            uploads
                .put(&location, object_store::PutPayload::from(image))
                .await
        };
        let stored = state.runtime.spawn(put).await;
        if let Some(e) = match stored {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(e) => Some(e.to_string()),
        } {
            tracing::error!(error = %e, "could not store an upload");
            return Err(WidgetError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "the image could not be stored",
            ));
        }
        let info = req.connection_info();
        let url = format!("{}://{}/uploads/{name}", info.scheme(), info.host());
        Ok(ok(req, &site, json!({"success": true, "url": url})))
    })
    .await
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
        .runtime
        .spawn(async move { uploads.get(&location).await?.bytes().await });
    match read.await {
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
