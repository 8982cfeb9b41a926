//! Entry points for the fuzz targets in `fuzz/` (hidden from the docs): the
//! decoders that read what clients send, run exactly as the handlers run
//! them. Any input must give a value or an error, never a panic.

use actix_multipart::Multipart;
use actix_web::http::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use futures_util::FutureExt;

/// A WebSocket text frame as `/ws/chat` decodes it.
pub fn ws_frame(text: &str) -> bool {
    crate::ws::parse_content(text).is_ok()
}

/// A widget upload form (`multipart/form-data` with `content_type`'s
/// boundary) read with the upload's bounds; `None` when the reader refused
/// it or did not finish on ready input.
pub fn upload_form(content_type: &str, body: &[u8]) -> Option<usize> {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_str(content_type).ok()?);
    let payload = futures_util::stream::iter([Ok::<_, actix_web::error::PayloadError>(
        actix_web::web::Bytes::copy_from_slice(body),
    )]);
    let mut form = Multipart::new(&headers, payload);
    let read = crate::routes::widget::read_upload_form(&mut form, async |_site_key| Ok(()));
    let form = read.now_or_never()?.ok()?;
    Some(form.image.map_or(0, |i| i.len()) + form.visitor.len())
}
