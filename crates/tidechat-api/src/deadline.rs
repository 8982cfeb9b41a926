//! The request-body deadline: a client that sends its body too slowly
//! (slowloris on bodies) gets `408 request_timeout` in its surface's shape
//! and the connection is closed, instead of holding it open for ever.
//! Request heads have actix-web's own timeout (`client_request_timeout`).

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::header::{
    HeaderValue, CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING, UPGRADE,
};
use actix_web::middleware::Next;
use actix_web::HttpMessage;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use crate::error::{framework_error, ApiError, ErrorKind};

type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>>;

pub async fn body_deadline(
    timeout: Duration,
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    // A WebSocket's payload is the connection itself; a request without a
    // body (most GETs) has nothing to wait for.
    let headers = req.headers();
    let no_body = !headers.contains_key(TRANSFER_ENCODING)
        && headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_none_or(|v| v.trim() == "0");
    if no_body || headers.contains_key(UPGRADE) {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    let path = req.path().to_owned();
    let timed_out = Arc::new(AtomicBool::new(false));
    let deadline = tokio::time::Instant::now() + timeout;
    let flag = timed_out.clone();
    // Fused: body readers (multipart) may poll again after the end.
    let body: BodyStream = Box::pin(
        futures_util::stream::unfold(Some(req.take_payload()), move |payload| {
            let flag = flag.clone();
            async move {
                let mut payload = payload?;
                match tokio::time::timeout_at(deadline, payload.next()).await {
                    Ok(Some(item)) => Some((item, Some(payload))),
                    Ok(None) => None,
                    Err(_) => {
                        flag.store(true, Ordering::Relaxed);
                        let late = std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "the request body did not arrive in time",
                        );
                        Some((Err(PayloadError::Io(late)), None))
                    }
                }
            }
        })
        .fuse(),
    );
    req.set_payload(Payload::from(body));
    let res = next.call(req).await?.map_into_boxed_body();
    if !timed_out.load(Ordering::Relaxed) {
        return Ok(res);
    }
    let error = ApiError::new(
        ErrorKind::RequestTimeout,
        format!(
            "the request body did not arrive within {} s",
            timeout.as_secs()
        ),
    );
    let mut response = framework_error(&path, &error);
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    Ok(res.into_response(response))
}
