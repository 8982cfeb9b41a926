//! Credentials as extractors, one per kind of caller. A handler that takes
//! one cannot run without that check having passed, and the check counts
//! the request against the caller's rate limits (the decision goes into the
//! request for the `RateLimit-*` headers).
//!
//! | extractor | surface | credential |
//! |---|---|---|
//! | [`Auth`] | `/v1` | API key or session token |
//! | [`AdminAuth`] | `/v1` management | API key with scope `admin` |
//! | [`KeyAuth<S>`] | FAQ chat, chats REST | API key (never a session token), in `S`'s error shape |
//! | [`crate::site::SiteCall`] | widget | site key + the visitor's session id (no secret) |
//! | [`ws_principal`] | WebSocket | API key or one-time ticket in the URL |

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;

use actix_web::http::header::{HeaderMap, AUTHORIZATION};
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use tidechat_engine::{EngineError, Principal};

use crate::error::{ApiError, ErrorKind, Failure, Surface};
use crate::state::AppState;

/// The credential of a request: `Authorization: Bearer …`, else `X-API-Key`.
pub fn credential(headers: &HeaderMap) -> Option<String> {
    if let Some(value) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let mut parts = value.trim().splitn(2, ' ');
        let scheme = parts.next().unwrap_or_default();
        let token = parts.next().unwrap_or_default().trim();
        return (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty())
            .then(|| token.to_owned());
    }
    header(headers, "x-api-key")
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// Where a surface's callers put their API key.
pub trait KeySource: Surface {
    /// What a session token gets on this surface.
    const SESSION_TOKEN: ErrorKind;

    fn credential(headers: &HeaderMap) -> Option<String> {
        credential(headers)
    }
}

impl KeySource for crate::error::Chats {
    const SESSION_TOKEN: ErrorKind = ErrorKind::Forbidden;
}

impl KeySource for crate::error::FaqChat {
    const SESSION_TOKEN: ErrorKind = ErrorKind::Unauthenticated;

    /// The reference's own header first, then the usual ones.
    fn credential(headers: &HeaderMap) -> Option<String> {
        header(headers, crate::routes::faq_chat::KEY_HEADER).or_else(|| credential(headers))
    }
}

fn state_of(req: &HttpRequest) -> Result<web::Data<AppState>, ApiError> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::internal("no app state"))
}

/// Authenticates a credential and counts the request against the caller's
/// rate limits.
async fn authenticate(
    state: &AppState,
    req: &HttpRequest,
    credential: Option<String>,
) -> Result<Principal, ApiError> {
    let credential = credential.ok_or_else(|| {
        ApiError::from(EngineError::Unauthenticated(
            "send `Authorization: Bearer <API key or session token>` or `X-API-Key`",
        ))
    })?;
    let who = state
        .run(move |e| async move { e.authenticate(&credential).await })
        .await?;
    let decision = state.check_rate(&who).await?;
    req.extensions_mut().insert(decision);
    Ok(who)
}

type Pending<T, E> = Pin<Box<dyn Future<Output = Result<T, E>>>>;

/// The authenticated `/v1` caller: an API key or a session token.
pub struct Auth(pub Principal);

impl FromRequest for Auth {
    type Error = ApiError;
    type Future = Pending<Self, ApiError>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let request = req.clone();
        let credential = credential(req.headers());
        Box::pin(async move {
            let state = state_of(&request)?;
            authenticate(&state, &request, credential).await.map(Auth)
        })
    }
}

/// A `/v1` caller with an admin-scoped API key (the engine's
/// `require_admin` rule, checked before the handler runs).
pub struct AdminAuth(pub Principal);

impl FromRequest for AdminAuth {
    type Error = ApiError;
    type Future = Pending<Self, ApiError>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let auth = Auth::from_request(req, payload);
        Box::pin(async move {
            let Auth(who) = auth.await?;
            who.require_admin()?;
            Ok(AdminAuth(who))
        })
    }
}

/// An API-key caller of surface `S` (session tokens are refused: they
/// belong to `/v1`), answered in `S`'s error shape.
pub struct KeyAuth<S: KeySource>(pub Principal, PhantomData<S>);

impl<S: KeySource> KeyAuth<S> {
    pub fn principal(self) -> Principal {
        self.0
    }
}

impl<S: KeySource> FromRequest for KeyAuth<S> {
    type Error = Failure<S>;
    type Future = Pending<Self, Failure<S>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let request = req.clone();
        let credential = S::credential(req.headers());
        Box::pin(async move {
            let state = state_of(&request)?;
            let who = authenticate(&state, &request, credential).await?;
            if !who.is_api_key() {
                return Err(Failure::new(
                    S::SESSION_TOKEN,
                    "this API takes API keys, not session tokens",
                ));
            }
            Ok(KeyAuth(who, PhantomData))
        })
    }
}

/// The WebSocket caller: a one-time ticket or an API key from the URL.
/// Session tokens are refused. (Frames are rate-counted one by one with
/// [`AppState::check_rate`].)
pub async fn ws_principal(
    state: &AppState,
    ticket: Option<String>,
    api_key: Option<String>,
) -> Result<Principal, ApiError> {
    let who = state
        .run(move |engine| async move {
            match (ticket, api_key) {
                (Some(ticket), _) => engine.authenticate_ticket(&ticket).await,
                (None, Some(key)) => engine.authenticate(&key).await,
                (None, None) => Err(EngineError::Unauthenticated(
                    "give `api_key` or `ticket` in the URL",
                )),
            }
        })
        .await?;
    if !who.is_api_key() {
        return Err(ApiError::from(EngineError::Unauthenticated(
            "use an API key or a WebSocket ticket",
        )));
    }
    Ok(who)
}
