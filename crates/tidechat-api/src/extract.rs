//! JSON body extractors with the `/v1` error mapping: malformed JSON is
//! `invalid_json`, wrong types or missing fields are `validation_error`
//! (both 422), an oversize body is 413. A `Content-Type` header is not
//! required, so plain `curl -d` works.

use std::future::Future;
use std::pin::Pin;

use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, HttpRequest};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A required JSON body.
pub struct Json<T>(pub T);

/// A JSON body that may be absent (empty body → `T::default()`).
pub struct OptionalJson<T>(pub T);

fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Syntax first, so a malformed body is always `invalid_json` whatever its shape.
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes).map_err(|e| {
        ApiError::new(
            crate::error::ErrorKind::InvalidJson,
            format!("the request body is not valid JSON: {e}"),
        )
    })?;
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::validation(format!("invalid request body: {e}")))
}

fn read(
    req: &HttpRequest,
    payload: &mut actix_web::dev::Payload,
) -> impl Future<Output = Result<web::Bytes, ApiError>> {
    let bytes = web::Bytes::from_request(req, payload);
    async move {
        bytes.await.map_err(|e| {
            let status = e.as_response_error().status_code();
            if status == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    crate::error::ErrorKind::PayloadTooLarge,
                    "the request body is over the size limit",
                )
            } else {
                ApiError::validation(format!("unreadable request body: {e}"))
            }
        })
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let body = read(req, payload);
        Box::pin(async move {
            let bytes = body.await?;
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Err(ApiError::new(
                    crate::error::ErrorKind::InvalidJson,
                    "a JSON request body is required",
                ));
            }
            parse(&bytes).map(Json)
        })
    }
}

impl<T: DeserializeOwned + Default + 'static> FromRequest for OptionalJson<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let body = read(req, payload);
        Box::pin(async move {
            let bytes = body.await?;
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(OptionalJson(T::default()));
            }
            parse(&bytes).map(OptionalJson)
        })
    }
}
