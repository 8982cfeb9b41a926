//! The widget's credential, the surface kit's part for the public widget
//! API: [`SiteCall`] (the site of a public `site_key` and the request's
//! fields) and the CORS grant for the site's allowed origins, on every
//! answer ([`site_cors`]) and on preflights ([`preflight`]).

use std::future::Future;
use std::pin::Pin;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue, ORIGIN, VARY};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest, HttpResponse};
use serde_json::{Map, Value};
use tidechat_domain::Site;

use crate::error::{ApiError, ErrorKind, Failure, Widget};
use crate::state::AppState;

type Result<T> = std::result::Result<T, Failure<Widget>>;

/// New visitor conversations per client address and site per minute.
pub const NEW_CONVERSATIONS_PER_MINUTE: u32 = 10;

fn invalid(message: impl Into<String>) -> Failure<Widget> {
    Failure::new(ErrorKind::Validation, message)
}

/// The origins a site lets browsers read answers from; put into the request
/// by [`SiteCall`] and turned into `Access-Control-Allow-Origin` by
/// [`site_cors`] on every answer, errors included.
#[derive(Clone)]
struct SiteOrigins(Vec<String>);

/// Adds the CORS grant to widget answers whose origin the site allows
/// (`Vary: Origin` on all of them).
pub async fn site_cors(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> std::result::Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let widget = req.path().starts_with("/api/v1/chat/") && req.method() != Method::OPTIONS;
    let origin = req.headers().get(ORIGIN).cloned();
    let mut res = next.call(req).await?;
    if !widget {
        return Ok(res);
    }
    let granted = res.request().extensions().get::<SiteOrigins>().cloned();
    if let (Some(origin), Some(SiteOrigins(allowed))) = (origin, granted) {
        // Scheme and host compare case-insensitively; the grant echoes the
        // browser's own spelling.
        if allowed
            .iter()
            .any(|o| o.as_bytes().eq_ignore_ascii_case(origin.as_bytes()))
        {
            res.headers_mut().insert(
                HeaderName::from_static("access-control-allow-origin"),
                origin,
            );
        }
    }
    res.headers_mut()
        .insert(VARY, HeaderValue::from_static("Origin"));
    Ok(res)
}

/// The public caller of a widget endpoint: the site of its `site_key`, and
/// the request's fields (the query string for `GET`, the JSON object body
/// for `POST`). There is no secret: the site key is public and the
/// visitor's `session_id` scopes what it reaches.
pub struct SiteCall {
    pub site: Site,
    fields: Map<String, Value>,
}

impl SiteCall {
    /// A field as it was sent (any JSON type).
    pub fn value(&self, name: &str) -> Option<&Value> {
        self.fields.get(name)
    }

    pub fn field(&self, name: &str) -> Option<String> {
        self.fields
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
    }

    pub fn required(&self, name: &str) -> Result<String> {
        self.field(name)
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| invalid(format!("`{name}` is required")))
    }

    /// Counts this call against the client address's abuse limits on the
    /// site: `per_minute` calls of this kind (`what`), and, when the call
    /// would create the visitor's conversation (every state-changing widget
    /// endpoint does for a new `session_id`), the 10 new conversations per
    /// minute. Call it before any state is written.
    pub async fn admit(
        &self,
        state: &AppState,
        req: &HttpRequest,
        what: &str,
        per_minute: u32,
    ) -> Result<()> {
        state
            .check_visitor_rate(req, &self.site.id, what, per_minute)
            .await?;
        let (site, visitor) = (self.site.clone(), self.visitor());
        let known = state
            .run(move |e| async move { e.visitor(&site, &visitor).await })
            .await?;
        if known.is_none() {
            state
                .check_visitor_rate(
                    req,
                    &self.site.id,
                    "conversation",
                    NEW_CONVERSATIONS_PER_MINUTE,
                )
                .await?;
        }
        Ok(())
    }

    /// The visitor's own id (`session_id`), as given (may be empty).
    pub fn visitor(&self) -> String {
        self.field("session_id").unwrap_or_default()
    }
}

/// The site of a public key, granting its origins to the answer.
pub async fn resolve_site(state: &AppState, req: &HttpRequest, key: String) -> Result<Site> {
    let site = state
        .run(move |e| async move { e.site_for_key(&key).await })
        .await?;
    req.extensions_mut()
        .insert(SiteOrigins(site.allowed_origins.clone()));
    Ok(site)
}

impl FromRequest for SiteCall {
    type Error = Failure<Widget>;
    type Future = Pin<Box<dyn Future<Output = Result<Self>>>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let request = req.clone();
        let body = (req.method() == Method::POST).then(|| web::Bytes::from_request(req, payload));
        Box::pin(async move {
            let fields = match body {
                Some(body) => {
                    let bytes = body.await.map_err(|e| {
                        if e.as_response_error().status_code() == StatusCode::PAYLOAD_TOO_LARGE {
                            Failure::new(
                                ErrorKind::PayloadTooLarge,
                                "the request body is over the size limit",
                            )
                        } else {
                            invalid("the body could not be read")
                        }
                    })?;
                    match serde_json::from_slice::<Value>(&bytes) {
                        Ok(Value::Object(map)) => map,
                        _ => return Err(invalid("the body must be a JSON object")),
                    }
                }
                None => web::Query::<std::collections::HashMap<String, String>>::from_query(
                    request.query_string(),
                )
                .map(|q| {
                    q.into_inner()
                        .into_iter()
                        .map(|(k, v)| (k, Value::String(v)))
                        .collect()
                })
                .unwrap_or_default(),
            };
            let key = fields
                .get("site_key")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let state = request
                .app_data::<web::Data<AppState>>()
                .cloned()
                .ok_or_else(|| ApiError::internal("no app state"))?;
            let site = resolve_site(&state, &request, key).await?;
            Ok(SiteCall { site, fields })
        })
    }
}

/// CORS preflight: granted to origins some site allows.
pub async fn preflight(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let origin = req
        .headers()
        .get(ORIGIN)
        .and_then(|o| o.to_str().ok())
        .map(str::to_owned);
    let allowed = match origin.clone() {
        Some(origin) => state
            .run(move |e| async move { e.origin_allowed_anywhere(&origin).await })
            .await
            .unwrap_or(false),
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
