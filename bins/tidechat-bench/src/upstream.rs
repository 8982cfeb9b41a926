//! The benchmark upstream: an OpenAI Chat Completions server whose streamed
//! pieces each end a sentence.
//!
//! Why not `tidechat-mock-llm`: its reply is `token0 token1 …` with no sentence
//! boundary, and tidechat's output guard releases text a sentence (or 1 KiB) at
//! a time, so through tidechat the first delta of a 64-piece mock reply only
//! arrives when the reply ends. Measuring time to first token needs pieces
//! that the guard can release one by one. This server keeps the mock's knob
//! syntax (`ttft_ms`, `chunks`, `gap_ms` in the model name after `?`) and wire
//! format (role chunk at once, content pieces, finish chunk, usage chunk when
//! `stream_options.include_usage`, `[DONE]`), but each piece is `tokenN\n`.
//! It is deliberately small (hyper, no framework) so the floor it sets is low.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy)]
struct Knobs {
    ttft_ms: u64,
    chunks: u32,
    gap_ms: u64,
}

impl Knobs {
    fn from_model(model: &str) -> Result<Self, String> {
        let mut k = Knobs {
            ttft_ms: 0,
            chunks: 8,
            gap_ms: 0,
        };
        let query = model.split_once('?').map(|(_, q)| q).unwrap_or("");
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let bad = || format!("bad value {value:?} for knob {name}");
            match name {
                "ttft_ms" => k.ttft_ms = value.parse().map_err(|_| bad())?,
                "chunks" => k.chunks = value.parse().map_err(|_| bad())?,
                "gap_ms" => k.gap_ms = value.parse().map_err(|_| bad())?,
                _ => return Err(format!("unknown knob {name:?}")),
            }
        }
        Ok(k)
    }
}

/// The text of piece `i`: one short sentence, so the guard releases it alone.
pub fn piece(i: u32) -> String {
    format!("token{i}\n")
}

type Body = BoxBody<Bytes, Infallible>;

fn full(status: StatusCode, body: Value) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())).boxed());
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    resp
}

fn chunk(delta: Value, finish: Option<&str>) -> Bytes {
    let v = json!({
        "id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 0, "model": "bench",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    });
    Bytes::from(format!("data: {v}\n\n"))
}

fn input_words(body: &Value) -> u64 {
    body["messages"]
        .as_array()
        .map(|ms| {
            ms.iter()
                .filter_map(|m| m["content"].as_str())
                .map(|c| c.split_whitespace().count() as u64)
                .sum()
        })
        .unwrap_or(0)
}

async fn handle(req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    if req.method() == hyper::Method::GET {
        return Ok(full(StatusCode::OK, json!({"ok": true, "path": path})));
    }
    if path != "/v1/chat/completions" && path != "/chat/completions" {
        return Ok(full(
            StatusCode::NOT_FOUND,
            json!({"error": {"message": "not found"}}),
        ));
    }
    let bytes = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return Ok(full(
                StatusCode::BAD_REQUEST,
                json!({"error": {"message": "body"}}),
            ))
        }
    };
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let knobs = match Knobs::from_model(body["model"].as_str().unwrap_or("")) {
        Ok(k) => k,
        Err(e) => {
            return Ok(full(
                StatusCode::BAD_REQUEST,
                json!({"error": {"message": e}}),
            ))
        }
    };
    let usage = json!({
        "prompt_tokens": input_words(&body),
        "completion_tokens": knobs.chunks,
        "total_tokens": input_words(&body) + u64::from(knobs.chunks),
    });
    if !body["stream"].as_bool().unwrap_or(false) {
        if knobs.ttft_ms > 0 {
            tokio::time::sleep(Duration::from_millis(knobs.ttft_ms)).await;
        }
        let text: String = (0..knobs.chunks).map(piece).collect();
        return Ok(full(
            StatusCode::OK,
            json!({
                "id": "chatcmpl-bench", "object": "chat.completion", "created": 0, "model": "bench",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": usage,
            }),
        ));
    }
    let include_usage = body["stream_options"]["include_usage"]
        .as_bool()
        .unwrap_or(false);
    let stream = async_stream::stream! {
        yield Ok::<_, Infallible>(Frame::data(chunk(json!({"role": "assistant", "content": ""}), None)));
        if knobs.ttft_ms > 0 {
            tokio::time::sleep(Duration::from_millis(knobs.ttft_ms)).await;
        }
        for i in 0..knobs.chunks {
            if i > 0 && knobs.gap_ms > 0 {
                tokio::time::sleep(Duration::from_millis(knobs.gap_ms)).await;
            }
            yield Ok(Frame::data(chunk(json!({"content": piece(i)}), None)));
        }
        yield Ok(Frame::data(chunk(json!({}), Some("stop"))));
        if include_usage {
            let v = json!({
                "id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 0,
                "model": "bench", "choices": [], "usage": usage,
            });
            yield Ok(Frame::data(Bytes::from(format!("data: {v}\n\n"))));
        }
        yield Ok(Frame::data(Bytes::from_static(b"data: [DONE]\n\n")));
    };
    let mut resp = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    let h = resp.headers_mut();
    h.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/event-stream"),
    );
    h.insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-cache"),
    );
    Ok(resp)
}

/// Serves until the process is killed.
pub async fn serve(bind: SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(bind).await?;
    eprintln!(
        "tidechat-bench upstream listening on http://{}",
        listener.local_addr()?
    );
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // EMFILE under connection-scale tests: back off instead of spinning.
                eprintln!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, hyper::service::service_fn(handle))
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knobs_come_from_the_model_name() {
        let k = Knobs::from_model("bench?chunks=64&gap_ms=20").expect("knobs");
        assert_eq!((k.ttft_ms, k.chunks, k.gap_ms), (0, 64, 20));
        assert!(Knobs::from_model("bench?nope=1").is_err());
    }
}
