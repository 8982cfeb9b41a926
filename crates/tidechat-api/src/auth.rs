//! Authentication as an extractor: a handler that takes [`Auth`] cannot run
//! without a valid credential.

use std::future::Future;
use std::pin::Pin;

use actix_web::http::header::{HeaderMap, AUTHORIZATION};
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use tidechat_engine::{EngineError, Principal};

use crate::error::ApiError;
use crate::state::AppState;

/// The authenticated caller: an API key or a session token.
pub struct Auth(pub Principal);

/// The credential of a request: `Authorization: Bearer …`, else `X-API-Key`.
pub fn credential(headers: &HeaderMap) -> Option<String> {
    if let Some(value) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let mut parts = value.trim().splitn(2, ' ');
        let scheme = parts.next().unwrap_or_default();
        let token = parts.next().unwrap_or_default().trim();
        return (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty())
            .then(|| token.to_owned());
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// Authenticates a credential and counts the request against the caller's
/// rate limits (the decision goes into the request for the headers).
pub async fn authenticate_request(
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

impl FromRequest for Auth {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let request = req.clone();
        let credential = credential(req.headers());
        Box::pin(async move {
            let state = state
                .ok_or_else(|| ApiError::from(EngineError::Internal("no app state".to_owned())))?;
            authenticate_request(&state, &request, credential)
                .await
                .map(Auth)
        })
    }
}
