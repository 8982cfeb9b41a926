//! The load generator: one request of each kind, an open-loop runner at a
//! fixed arrival rate, a closed loop for "one stream", and HDR summaries.
//!
//! Open loop: request `i` is *scheduled* at `start + i / rate`, independently
//! of earlier completions, and every latency is measured from that scheduled
//! instant, so a slow server cannot slow the generator down and hide its own
//! queueing (coordinated omission). How late the generator itself started
//! requests is recorded as `lag` so an overloaded generator is visible.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::time::Instant;

/// Who is being measured and how to ask it for one turn.
#[derive(Clone, Debug)]
pub enum Target {
    /// An OpenAI Chat Completions server: the upstream directly (the floor)
    /// or the peer proxy. `model` is sent as is.
    OpenAi {
        base: String,
        /// Bearer key, if the server wants one (the peer's master key).
        key: Option<String>,
        model: String,
        stream: bool,
    },
    /// tidechat's `/v1` API: one turn in one of `sessions` (round robin).
    Tidechat {
        base: String,
        key: String,
        sessions: Arc<Vec<String>>,
        model: String,
        stream: bool,
    },
    /// A `GET` (the history pages); `paths` are used round robin.
    Get {
        base: String,
        key: String,
        paths: Arc<Vec<String>>,
    },
}

/// What the client checks beyond status codes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Expect {
    /// The reply must be exactly pieces `0..n` of the upstream, in order.
    pub chunks: Option<u32>,
    /// A gap between two content frames longer than this is a stall.
    pub stall_after: Option<Duration>,
}

#[derive(Debug, Default)]
pub struct Outcome {
    pub error: Option<String>,
    /// From the scheduled start to the first content byte.
    pub ttft: Option<Duration>,
    /// From the scheduled start to the end of the response.
    pub total: Duration,
    pub lost: bool,
    pub stalled: bool,
}

pub fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(usize::MAX)
        .connect_timeout(Duration::from_secs(10))
        .build()?)
}

fn error_kind(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_connect() {
        "connect".into()
    } else if e.is_body() || e.is_decode() {
        "body".into()
    } else {
        "request".into()
    }
}

/// Sends one request of `target` and reads the whole response.
pub async fn one(
    client: &reqwest::Client,
    target: &Target,
    i: usize,
    scheduled: Instant,
    timeout: Duration,
    expect: Expect,
) -> Outcome {
    let (req, stream, openai) = match target {
        Target::OpenAi {
            base,
            key,
            model,
            stream,
        } => (
            match key {
                Some(k) => client
                    .post(format!("{base}/chat/completions"))
                    .bearer_auth(k),
                None => client.post(format!("{base}/chat/completions")),
            }
            .json(&json!({
                "model": model, "stream": stream,
                "messages": [{"role": "user", "content": "hello there"}],
                "stream_options": {"include_usage": true},
            })),
            *stream,
            true,
        ),
        Target::Tidechat {
            base,
            key,
            sessions,
            model,
            stream,
        } => {
            let sid = &sessions[i % sessions.len()];
            (
                client
                    .post(format!("{base}/v1/chat/sessions/{sid}/messages"))
                    .bearer_auth(key)
                    .json(&json!({"userText": "hello there", "modelId": model, "stream": stream})),
                *stream,
                false,
            )
        }
        Target::Get { base, key, paths } => (
            client
                .get(format!("{base}{}", paths[i % paths.len()]))
                .bearer_auth(key),
            false,
            false,
        ),
    };
    let mut out = Outcome::default();
    let resp = match req.timeout(timeout).send().await {
        Ok(r) => r,
        Err(e) => {
            out.error = Some(error_kind(&e));
            out.total = scheduled.elapsed();
            return out;
        }
    };
    let status = resp.status();
    if !status.is_success() {
        out.error = Some(format!("http_{}", status.as_u16()));
        let _ = resp.bytes().await;
        out.total = scheduled.elapsed();
        return out;
    }
    if !stream {
        match resp.bytes().await {
            Ok(body) => {
                out.ttft = Some(scheduled.elapsed());
                if let Some(n) = expect.chunks {
                    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let text = if openai {
                        v["choices"][0]["message"]["content"].as_str()
                    } else {
                        v["assistantMessage"]["content"].as_str()
                    };
                    out.lost = text != Some(expected_text(n).as_str());
                }
            }
            Err(e) => out.error = Some(error_kind(&e)),
        }
        out.total = scheduled.elapsed();
        return out;
    }
    let mut body = resp.bytes_stream();
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let mut text = String::new();
    let mut last_frame: Option<Instant> = None;
    let mut finished = false;
    'read: while let Some(piece) = body.next().await {
        let piece = match piece {
            Ok(p) => p,
            Err(e) => {
                out.error = Some(error_kind(&e));
                break;
            }
        };
        let now = Instant::now();
        buf.extend_from_slice(&piece);
        while let Some(end) = find(&buf, b"\n\n") {
            let event: Vec<u8> = buf.drain(..end + 2).collect();
            let event = String::from_utf8_lossy(&event);
            let mut name = "message";
            let mut data = String::new();
            for line in event.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    name = v.trim();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
            let content: Option<String> = if openai {
                if data == "[DONE]" {
                    finished = true;
                    break 'read;
                }
                let v: Value = serde_json::from_str(&data).unwrap_or(Value::Null);
                v["choices"][0]["delta"]["content"]
                    .as_str()
                    .filter(|c| !c.is_empty())
                    .map(str::to_owned)
            } else {
                match name {
                    "delta" => {
                        let v: Value = serde_json::from_str(&data).unwrap_or(Value::Null);
                        v["text"].as_str().map(str::to_owned)
                    }
                    "done" => {
                        finished = true;
                        break 'read;
                    }
                    "error" => {
                        out.error = Some("error_event".into());
                        break 'read;
                    }
                    "replace" => {
                        out.error = Some("replaced".into());
                        break 'read;
                    }
                    _ => None,
                }
            };
            if let Some(c) = content {
                on_content(&mut out, &mut last_frame, now, scheduled, expect);
                if expect.chunks.is_some() {
                    text.push_str(&c);
                }
            }
        }
    }
    if !finished && out.error.is_none() {
        out.error = Some("truncated".into());
    }
    if let Some(n) = expect.chunks {
        out.lost = text != expected_text(n);
    }
    out.total = scheduled.elapsed();
    out
}

/// Records a content frame arriving at `now`: the first one is the time to
/// first token; a gap over `expect.stall_after` since the previous one marks
/// the reply stalled.
fn on_content(
    out: &mut Outcome,
    last_frame: &mut Option<Instant>,
    now: Instant,
    scheduled: Instant,
    expect: Expect,
) {
    if out.ttft.is_none() {
        out.ttft = Some(now - scheduled);
    }
    if let (Some(prev), Some(limit)) = (*last_frame, expect.stall_after) {
        if now - prev > limit {
            out.stalled = true;
        }
    }
    *last_frame = Some(now);
}

/// One chat over tidechat's WebSocket (`/ws/chat`): connects (a new chat for
/// `user`), sends one message and reads the reply to `message_stream_ended`.
/// Time to first token = to the first `message_stream_token`.
pub async fn ws_one(
    base: &str,
    key: &str,
    user: &str,
    scheduled: Instant,
    timeout: Duration,
    expect: Expect,
) -> Outcome {
    use tokio_tungstenite::tungstenite::Message as Frame;
    let mut out = Outcome::default();
    let url = format!(
        "{}/ws/chat?api_key={key}&user_id={user}",
        base.replacen("http://", "ws://", 1)
    );
    let run = async {
        let (mut socket, _) = tokio_tungstenite::connect_async_with_config(url, None, true)
            .await
            .map_err(|_| "connect")?;
        futures_util::SinkExt::send(
            &mut socket,
            Frame::Text(json!({"content": "hello there"}).to_string().into()),
        )
        .await
        .map_err(|_| "send")?;
        let mut text = String::new();
        let mut last_frame: Option<Instant> = None;
        while let Some(frame) = socket.next().await {
            let Ok(frame) = frame else {
                return Err("read");
            };
            let Frame::Text(raw) = frame else {
                if matches!(frame, Frame::Close(_)) {
                    return Err("closed");
                }
                continue;
            };
            let now = Instant::now();
            let v: Value = serde_json::from_str(&raw).unwrap_or(Value::Null);
            match v["type"].as_str() {
                Some("message_stream_token") => {
                    on_content(&mut out, &mut last_frame, now, scheduled, expect);
                    text.push_str(v["token"].as_str().unwrap_or_default());
                }
                Some("message_stream_ended") => {
                    let _ = futures_util::SinkExt::close(&mut socket).await;
                    // A failed turn stores what it has and ends the stream,
                    // then sends an `error` frame: count it as an error.
                    return match v["message"]["status"].as_str() {
                        Some("complete") => Ok(text),
                        _ => Err("reply_not_complete"),
                    };
                }
                Some("error") => return Err("error_event"),
                Some("message_stream_replaced") => return Err("replaced"),
                _ => {}
            }
        }
        Err("truncated")
    };
    match tokio::time::timeout(timeout, run).await {
        Ok(Ok(text)) => {
            if let Some(n) = expect.chunks {
                out.lost = text != expected_text(n);
            }
        }
        Ok(Err(kind)) => {
            out.error = Some(kind.into());
            out.lost = expect.chunks.is_some();
        }
        Err(_) => {
            out.error = Some("timeout".into());
            out.lost = expect.chunks.is_some();
        }
    }
    out.total = scheduled.elapsed();
    out
}

pub fn expected_text(n: u32) -> String {
    (0..n).map(crate::upstream::piece).collect()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Percentiles of one set of samples, in milliseconds.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct Summary {
    pub n: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

pub fn summarize(samples_us: &[u64]) -> Summary {
    let mut h = match Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3) {
        Ok(h) => h,
        Err(_) => return Summary::default(),
    };
    for &s in samples_us {
        h.saturating_record(s.max(1));
    }
    if h.is_empty() {
        return Summary::default();
    }
    let ms = |us: u64| us as f64 / 1000.0;
    Summary {
        n: h.len(),
        p50_ms: ms(h.value_at_quantile(0.50)),
        p90_ms: ms(h.value_at_quantile(0.90)),
        p99_ms: ms(h.value_at_quantile(0.99)),
        p999_ms: ms(h.value_at_quantile(0.999)),
        max_ms: ms(h.max()),
        mean_ms: h.mean() / 1000.0,
    }
}

/// Everything measured for one target at one load.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct StepResult {
    pub target: String,
    /// New requests per second (0 for the closed loop).
    pub rate: f64,
    pub seconds: f64,
    pub sent: u64,
    pub ok: u64,
    pub errors: u64,
    pub error_kinds: BTreeMap<String, u64>,
    pub lost: u64,
    pub stalled: u64,
    /// Time to first content byte (streams) or to the whole body.
    pub ttft: Summary,
    pub total: Summary,
    /// How late the generator started requests (its own overload).
    pub lag: Summary,
    /// CPU seconds per process group during the step.
    pub cpu_s: BTreeMap<String, f64>,
}

impl StepResult {
    pub fn error_rate(&self) -> f64 {
        if self.sent == 0 {
            0.0
        } else {
            self.errors as f64 / self.sent as f64
        }
    }
}

/// Raw samples, merged across interleaved rounds before summarising.
#[derive(Debug, Default)]
pub struct Samples {
    pub sent: u64,
    pub ok: u64,
    pub error_kinds: BTreeMap<String, u64>,
    pub lost: u64,
    pub stalled: u64,
    pub ttft_us: Vec<u64>,
    pub total_us: Vec<u64>,
    pub lag_us: Vec<u64>,
    pub seconds: f64,
    pub cpu_s: BTreeMap<String, f64>,
}

impl Samples {
    pub fn push(&mut self, o: Outcome) {
        self.sent += 1;
        match o.error {
            Some(kind) => *self.error_kinds.entry(kind).or_default() += 1,
            None => {
                self.ok += 1;
                if let Some(t) = o.ttft {
                    self.ttft_us.push(t.as_micros() as u64);
                }
                self.total_us.push(o.total.as_micros() as u64);
            }
        }
        self.lost += u64::from(o.lost);
        self.stalled += u64::from(o.stalled);
    }

    pub fn merge(&mut self, other: Samples) {
        self.sent += other.sent;
        self.ok += other.ok;
        for (k, v) in other.error_kinds {
            *self.error_kinds.entry(k).or_default() += v;
        }
        self.lost += other.lost;
        self.stalled += other.stalled;
        self.ttft_us.extend(other.ttft_us);
        self.total_us.extend(other.total_us);
        self.lag_us.extend(other.lag_us);
        self.seconds += other.seconds;
        for (k, v) in other.cpu_s {
            *self.cpu_s.entry(k).or_default() += v;
        }
    }

    pub fn result(&self, target: &str, rate: f64) -> StepResult {
        StepResult {
            target: target.to_owned(),
            rate,
            seconds: self.seconds,
            sent: self.sent,
            ok: self.ok,
            errors: self.sent - self.ok,
            error_kinds: self.error_kinds.clone(),
            lost: self.lost,
            stalled: self.stalled,
            ttft: summarize(&self.ttft_us),
            total: summarize(&self.total_us),
            lag: summarize(&self.lag_us),
            cpu_s: self.cpu_s.clone(),
        }
    }
}

/// Sends `rate` new requests per second for `duration`, open loop, and waits
/// for all of them. More than `max_inflight` outstanding requests count as
/// `generator_overload` errors instead of being sent.
pub async fn open_loop(
    client: &reqwest::Client,
    target: &Target,
    rate: f64,
    duration: Duration,
    timeout: Duration,
    expect: Expect,
    max_inflight: usize,
) -> Samples {
    let n = (rate * duration.as_secs_f64()).round().max(1.0) as usize;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Outcome>();
    let inflight = Arc::new(AtomicUsize::new(0));
    let mut samples = Samples::default();
    let wall = std::time::Instant::now();
    // The schedule is kept by a thread sleeping with the OS's high-resolution
    // timer: tokio's timer wheel has 1 ms granularity, which would add up to
    // a millisecond of generator lag to every request (and to its latency,
    // measured from the scheduled instant).
    let (tick_tx, mut ticks) = tokio::sync::mpsc::unbounded_channel::<(usize, Instant)>();
    let start = std::time::Instant::now() + Duration::from_millis(20);
    std::thread::spawn(move || {
        for i in 0..n {
            let at = start + Duration::from_secs_f64(i as f64 / rate);
            if let Some(wait) = at.checked_duration_since(std::time::Instant::now()) {
                std::thread::sleep(wait);
            }
            if tick_tx.send((i, Instant::from_std(at))).is_err() {
                return;
            }
        }
    });
    while let Some((i, at)) = ticks.recv().await {
        samples
            .lag_us
            .push(Instant::now().saturating_duration_since(at).as_micros() as u64);
        if inflight.load(Ordering::Relaxed) >= max_inflight {
            samples.push(Outcome {
                error: Some("generator_overload".into()),
                ..Outcome::default()
            });
            continue;
        }
        inflight.fetch_add(1, Ordering::Relaxed);
        let (client, target, tx, inflight) =
            (client.clone(), target.clone(), tx.clone(), inflight.clone());
        tokio::spawn(async move {
            let o = one(&client, &target, i, at, timeout, expect).await;
            inflight.fetch_sub(1, Ordering::Relaxed);
            let _ = tx.send(o);
        });
    }
    drop(tx);
    while let Some(o) = rx.recv().await {
        samples.push(o);
    }
    samples.seconds = wall.elapsed().as_secs_f64();
    samples
}
