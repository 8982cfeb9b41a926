//! The HTTP transport: actix-web routes, auth extractors, the `/v1` error
//! table, SSE encoding and the OpenAPI document. Handlers decode requests,
//! call the engine and encode its results; they hold no business rules.
//!
//! This is the only crate that knows actix-web.

pub mod auth;
mod conn_cap;
mod deadline;
pub mod driver;
pub mod dto;
pub mod error;
pub mod extract;
#[doc(hidden)]
pub mod fuzzing;
pub mod openapi;
pub mod routes;
pub mod site;
pub mod sse;
pub mod state;
pub mod ws;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, App, HttpMessage, HttpResponse, HttpServer};
use tidechat_engine::Engine;
use utoipa_swagger_ui::{Config, SwaggerUi};

use crate::error::ApiError;
pub use crate::state::AppState;
pub use ipnet::IpNet;

/// Largest accepted request body (FAQ imports are the big ones).
pub const DEFAULT_BODY_LIMIT: usize = 2 * 1024 * 1024;

#[derive(Clone)]
pub struct ServerOptions {
    /// Request-rate and stream limits; in process when `None`.
    pub limiter: Option<tidechat_limits::Limiter>,
    pub body_limit: usize,
    pub workers: usize,
    /// How long in-flight HTTP requests (e.g. streaming replies) may take to
    /// finish after shutdown starts.
    pub shutdown_grace: Duration,
    pub keep_alive: Duration,
    /// WebSocket messages per second per connection (the reference's 10).
    pub ws_messages_per_second: u32,
    /// Where widget image uploads are stored on local disk (when not on S3).
    pub upload_dir: std::path::PathBuf,
    /// Store uploads in this S3-compatible bucket instead.
    pub upload_s3: Option<S3Uploads>,
    /// The address clients reach this server at (`https://chat.example.com`),
    /// for the links it hands out (uploaded images). Never taken from a
    /// request's `Host` or `X-Forwarded-*` headers; without it, the address
    /// the server listens on.
    pub public_url: Option<String>,
    /// Reverse proxies whose `X-Forwarded-For` is believed for the client
    /// address (abuse limits, logs). Empty: the TCP peer is the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// How long a client may take to send a request's head; slower ones are
    /// disconnected.
    pub header_timeout: Duration,
    /// How long a client may take to send a request's whole body (from the
    /// end of its head); slower ones get `408 request_timeout` and are
    /// disconnected. WebSocket upgrades are exempt.
    pub body_timeout: Duration,
    /// Connections one client address may hold open while calling the
    /// public routes (widget API, uploads); 0: no cap. Trusted proxies are
    /// not counted.
    pub max_connections_per_ip: usize,
}

/// An S3-compatible bucket for widget uploads. Credentials come from the
/// usual `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` environment variables.
#[derive(Debug, Clone)]
pub struct S3Uploads {
    pub bucket: String,
    /// For S3-compatible services (MinIO, R2, …): `https://host:port`.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// Overrides of the environment's credentials.
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
}

fn upload_store(
    options: &ServerOptions,
) -> std::io::Result<std::sync::Arc<dyn object_store::ObjectStore>> {
    let err = |e: object_store::Error| std::io::Error::other(format!("upload store: {e}"));
    match &options.upload_s3 {
        Some(s3) => {
            let mut builder =
                object_store::aws::AmazonS3Builder::from_env().with_bucket_name(&s3.bucket);
            if let Some(endpoint) = &s3.endpoint {
                builder = builder
                    .with_endpoint(endpoint)
                    .with_allow_http(endpoint.starts_with("http://"));
            }
            builder =
                builder.with_region(s3.region.clone().unwrap_or_else(|| "us-east-1".to_owned()));
            if let (Some(id), Some(secret)) = (&s3.access_key_id, &s3.secret_access_key) {
                builder = builder
                    .with_access_key_id(id)
                    .with_secret_access_key(secret);
            }
            Ok(std::sync::Arc::new(builder.build().map_err(err)?))
        }
        None => {
            std::fs::create_dir_all(&options.upload_dir)?;
            let local = object_store::local::LocalFileSystem::new_with_prefix(&options.upload_dir)
                .map_err(err)?;
            Ok(std::sync::Arc::new(local))
        }
    }
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            limiter: None,
            body_limit: DEFAULT_BODY_LIMIT,
            workers: 2,
            shutdown_grace: Duration::from_secs(30),
            keep_alive: Duration::from_secs(15),
            ws_messages_per_second: 10,
            upload_dir: std::path::PathBuf::from("./data/uploads"),
            upload_s3: None,
            public_url: None,
            trusted_proxies: Vec::new(),
            header_timeout: Duration::from_secs(5),
            body_timeout: Duration::from_secs(60),
            max_connections_per_ip: 64,
        }
    }
}

/// Registers every route and the app-wide extractor settings.
pub fn configure(
    state: web::Data<AppState>,
    body_limit: usize,
) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(state)
            .app_data(web::PayloadConfig::new(body_limit))
            .app_data(
                web::QueryConfig::default()
                    .error_handler(|e, _| ApiError::validation(e.to_string()).into()),
            )
            .app_data(
                web::PathConfig::default()
                    .error_handler(|e, _| ApiError::not_found(e.to_string()).into()),
            );
        routes::sessions::configure(cfg);
        routes::personas::configure(cfg);
        routes::faqs::configure(cfg);
        routes::documents::configure(cfg);
        routes::keys::configure(cfg);
        routes::system::configure(cfg);
        routes::faq_chat::configure(cfg);
        routes::tools::configure(cfg);
        routes::limits::configure(cfg);
        routes::chats::configure(cfg);
        routes::widget::configure(cfg);
        routes::sites::configure(cfg);
        cfg.route(
            "/docs",
            web::get().to(|| async {
                HttpResponse::PermanentRedirect()
                    .insert_header(("Location", "/docs/"))
                    .finish()
            }),
        )
        .service(SwaggerUi::new("/docs/{_:.*}").config(Config::new(["/openapi.json"])));
    }
}

/// Builds the HTTP server on `listener`. Await the returned [`Server`] to run
/// it; it stops on SIGTERM/SIGINT after letting requests finish.
pub async fn server(
    engine: Engine,
    listener: TcpListener,
    options: ServerOptions,
) -> std::io::Result<Server> {
    // Called on the main (multi-threaded) runtime; engine work runs there.
    let runtime = tokio::runtime::Handle::try_current().map_err(|e| {
        std::io::Error::other(format!(
            "tidechat must be started inside a Tokio runtime: {e}"
        ))
    })?;
    let uploads = upload_store(&options)?;
    let limiter = match options.limiter {
        Some(limiter) => limiter,
        None => tidechat_limits::Limiter::new(tidechat_limits::Backend::InProcess)
            .await
            .map_err(|e| std::io::Error::other(format!("rate limiter: {e}")))?,
    };
    let ws_limiter = tidechat_limits::Limiter::new(tidechat_limits::Backend::InProcess)
        .await
        .map_err(|e| std::io::Error::other(format!("rate limiter: {e}")))?;
    let public_url = match &options.public_url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => {
            let mut addr = listener.local_addr()?;
            if addr.ip().is_unspecified() {
                addr.set_ip(match addr {
                    std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                    std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                });
            }
            format!("http://{addr}")
        }
    };
    let mut app_state = AppState::new(
        engine,
        runtime,
        options.keep_alive,
        limiter,
        ws_limiter,
        options.ws_messages_per_second,
        uploads,
    );
    app_state.public_url = public_url;
    let trusted_proxies = options.trusted_proxies.clone();
    app_state.trusted_proxies = options.trusted_proxies;
    let state = web::Data::new(app_state);
    let body_limit = options.body_limit;
    let body_timeout = options.body_timeout;
    let connection_cap = options.max_connections_per_ip;
    let connections = std::sync::Arc::new(conn_cap::Counts::default());
    let server = HttpServer::new(move || {
        App::new()
            .configure(configure(state.clone(), body_limit))
            .default_service(web::to(|req: actix_web::HttpRequest| async move {
                crate::error::framework_error(
                    req.path(),
                    &ApiError::not_found("no such endpoint; see /openapi.json"),
                )
            }))
            .wrap(from_fn(site::site_cors))
            .wrap(from_fn(error_envelope))
            .wrap(from_fn(move |req, next| {
                deadline::body_deadline(body_timeout, req, next)
            }))
            .wrap(from_fn(move |req, next| {
                conn_cap::cap_connections(connection_cap, req, next)
            }))
            .wrap(from_fn(request_id))
    })
    .on_connect(move |conn, data| {
        if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
            // Small SSE frames must leave at once (Nagle + delayed ACKs add
            // ~40 ms).
            let _ = tcp.set_nodelay(true);
            if let Ok(peer) = tcp.peer_addr() {
                let ip = peer.ip();
                if !trusted_proxies.iter().any(|n| n.contains(&ip)) {
                    data.insert(connections.open(ip));
                }
            }
        }
    })
    .workers(options.workers.max(1))
    .client_request_timeout(options.header_timeout)
    .shutdown_timeout(options.shutdown_grace.as_secs())
    .listen(listener)?
    .run();
    Ok(server)
}

/// A request id: the caller's `X-Request-Id` when it is sane, else a new one.
#[derive(Clone)]
pub struct RequestId(pub String);

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

async fn request_id(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.chars().all(|c| c.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| ulid::Ulid::new().to_string().to_ascii_lowercase());
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = req.method().clone();
    let path = req.path().to_owned();
    let started = Instant::now();
    let span = tracing::info_span!("request", request_id = %id, %method, %path);
    let mut res = tracing::Instrument::instrument(next.call(req), span.clone()).await?;
    let status = res.status().as_u16();
    span.in_scope(|| {
        tracing::info!(
            status,
            elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "handled"
        );
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID, value);
    }
    let decision = res
        .request()
        .extensions()
        .get::<tidechat_limits::RateDecision>()
        .cloned();
    if let Some(decision) = decision {
        for (name, value) in rate_headers(&decision) {
            if let Ok(value) = HeaderValue::from_str(&value) {
                res.headers_mut()
                    .insert(HeaderName::from_static(name), value);
            }
        }
    }
    Ok(res)
}

/// Turns framework errors that are not already in our shape (404 for an
/// unknown route, 405, 413 from the payload reader, ...) into the error
/// envelope of the surface the path belongs to.
async fn error_envelope(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let path = req.path().to_owned();
    let res = next.call(req).await?.map_into_boxed_body();
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return Ok(res);
    }
    let is_json = res
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return Ok(res);
    }
    use crate::error::ErrorKind as K;
    let (kind, message) = match status.as_u16() {
        404 => (K::NotFound, "no such endpoint; see /openapi.json"),
        405 => (
            K::MethodNotAllowed,
            "this path does not accept this HTTP method",
        ),
        413 => (
            K::PayloadTooLarge,
            "the request body is over the size limit",
        ),
        415 => (K::UnsupportedMediaType, "unsupported content type"),
        s if s >= 500 => (K::Internal, "internal error"),
        _ => (K::Validation, "the request could not be read"),
    };
    let error = ApiError::new(kind, message);
    let mut response = crate::error::framework_error(&path, &error);
    // Keep the framework's status (e.g. 400 for an unreadable header).
    *response.status_mut() = status;
    Ok(res.into_response(response))
}

/// `RateLimit-*` headers (IETF draft spellings and the `X-RateLimit-*` ones
/// SDKs expect) for a rate decision: the limit per minute, the requests left
/// right now, and the seconds until the bucket is full again.
pub fn rate_headers(decision: &tidechat_limits::RateDecision) -> [(&'static str, String); 6] {
    let limit = decision.limit.to_string();
    let remaining = decision.remaining.to_string();
    let reset = decision.reset_after_secs().to_string();
    [
        ("ratelimit-limit", limit.clone()),
        ("ratelimit-remaining", remaining.clone()),
        ("ratelimit-reset", reset.clone()),
        ("x-ratelimit-limit", limit),
        ("x-ratelimit-remaining", remaining),
        ("x-ratelimit-reset", reset),
    ]
}
