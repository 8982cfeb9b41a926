//! `POST /v1/embeddings` in the OpenAI wire format.
//!
//! Vectors are deterministic and meaningful enough for retrieval tests: the
//! bag of character trigrams of the lower-cased text (padded with a space at
//! each end), each trigram hashed (FNV-1a) to one of `dims` slots with a
//! hashed sign, then scaled to unit length. Texts sharing many trigrams
//! ("reset my password" / "password reset") are close; unrelated texts are
//! near 0. `usage.prompt_tokens` = whitespace-separated words of all inputs.
//!
//! The chat knobs apply: auth, `x-mock-*` headers and `model?knob=...`,
//! `fault=status:CODE` with `fail_first`/`key`, `ttft_ms` (delay before the
//! response), `stall`/`stall_after:N` (never answers), `drop_after:N` (closes
//! the connection), `usage=off` (no `usage` object) and `dims`.

use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use serde_json::{json, Value};

use super::{bump, check_auth, error_response, request_knobs, words, Api, AppState, Fault};

/// The mock's embedding of `text` with `dims` dimensions (unit length, or
/// all zeros for a text without characters).
pub fn embedding(text: &str, dims: usize) -> Vec<f32> {
    let dims = dims.max(1);
    let mut v = vec![0.0f32; dims];
    let chars: Vec<char> = std::iter::once(' ')
        .chain(text.to_lowercase().chars())
        .chain(std::iter::once(' '))
        .collect();
    if chars.len() > 2 {
        for tri in chars.windows(3) {
            let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
            for c in tri {
                for b in (*c as u32).to_le_bytes() {
                    hash ^= u64::from(b);
                    hash = hash.wrapping_mul(0x0100_0000_01b3);
                }
            }
            let slot = (hash % dims as u64) as usize;
            let sign = if hash >> 63 == 0 { 1.0 } else { -1.0 };
            v[slot] += sign;
        }
    }
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

fn inputs(body: &Value) -> Option<Vec<String>> {
    match body.get("input")? {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_string))
            .collect(),
        _ => None,
    }
}

pub(crate) async fn handler(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<Value>,
) -> HttpResponse {
    let body = body.into_inner();
    let stats = &state.stats;
    bump(&stats.embedding_requests);
    if let Ok(mut last) = stats.last_request.lock() {
        *last = Some(body.clone());
    }
    if let Some(denied) = check_auth(Api::OpenAi, &state, &req) {
        return denied;
    }
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let Some(texts) = inputs(&body) else {
        return error_response(
            Api::OpenAi,
            400,
            "input must be a string or an array of strings",
        );
    };
    stats
        .embedding_inputs
        .fetch_add(texts.len() as u64, std::sync::atomic::Ordering::SeqCst);
    if texts.is_empty() {
        return error_response(Api::OpenAi, 400, "input must not be empty");
    }
    match body.get("encoding_format").and_then(Value::as_str) {
        None | Some("float") => {}
        Some(_) => return error_response(Api::OpenAi, 400, "only encoding_format float"),
    }
    let (mut knobs, fault) = match request_knobs(Api::OpenAi, &state, &req, &model) {
        Ok(k) => k,
        Err(response) => return *response,
    };
    if let Some(d) = body.get("dimensions").and_then(Value::as_u64) {
        knobs.dims = (d as usize).clamp(1, 4096);
    }
    match fault {
        Fault::Status(code) => {
            bump(&stats.status_faults);
            return error_response(Api::OpenAi, code, "injected fault");
        }
        Fault::StallAfter(_) => {
            bump(&stats.stalled);
            futures_util::future::pending::<()>().await;
        }
        Fault::DropAfter(_) | Fault::None => {}
    }
    if knobs.ttft_ms > 0 {
        tokio::time::sleep(Duration::from_millis(knobs.ttft_ms)).await;
    }
    let data: Vec<Value> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| json!({"object": "embedding", "index": i, "embedding": embedding(t, knobs.dims)}))
        .collect();
    let tokens: u64 = texts.iter().map(|t| words(t)).sum();
    let mut reply = json!({"object": "list", "data": data, "model": model});
    if knobs.usage {
        reply["usage"] = json!({"prompt_tokens": tokens, "total_tokens": tokens});
    }
    if let Fault::DropAfter(_) = fault {
        bump(&stats.dropped);
        let bytes = Bytes::from(reply.to_string());
        let half = bytes.slice(..bytes.len() / 2);
        let stream = async_stream::stream! {
            yield Ok::<_, std::io::Error>(half);
            tokio::time::sleep(Duration::from_millis(50)).await;
            yield Err(std::io::Error::other("mock: dropping the connection"));
        };
        return HttpResponse::Ok()
            .content_type("application/json")
            .streaming(stream);
    }
    bump(&stats.completed);
    HttpResponse::Ok().json(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cos(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn similar_texts_are_close() {
        let a = embedding("How do I reset my password?", 256);
        let b = embedding("how can i reset the password", 256);
        let c = embedding("Opening hours on weekends", 256);
        assert!((cos(&a, &a) - 1.0).abs() < 1e-5);
        assert!(cos(&a, &b) > 0.5, "{}", cos(&a, &b));
        assert!(cos(&a, &c) < 0.3, "{}", cos(&a, &c));
        assert_eq!(embedding("X", 64), embedding("x", 64));
        assert_eq!(embedding("", 8), vec![0.0; 8]);
        assert_eq!(embedding("abc", 1).len(), 1);
    }
}
