//! The turn driver: the one loop over a running turn's events, shared by
//! every surface. It owns the hand-off to the main runtime, the stream slot,
//! keep-alives and client-gone detection; each surface gives it an
//! [`TurnEncoder`] that turns events into its own frames (`/v1` SSE events,
//! FAQ chat `data:` frames, widget chunks, WebSocket JSON frames).

use std::time::Duration;

use actix_web::{HttpResponse, HttpResponseBuilder};
use bytes::Bytes;
use futures_util::Stream;
use tidechat_engine::{Turn, TurnEvent};
use tidechat_limits::Permit;
use tokio::sync::mpsc;

use crate::state::AppState;

/// Frames a step of the turn produced, and whether it was its last event.
pub struct Step<F> {
    pub frames: Vec<F>,
    pub last: bool,
}

impl<F> Step<F> {
    pub fn more(frames: Vec<F>) -> Self {
        Self {
            frames,
            last: false,
        }
    }

    pub fn last(frames: Vec<F>) -> Self {
        Self { frames, last: true }
    }
}

/// A surface's encoding of turn events.
pub trait TurnEncoder: Send + 'static {
    type Frame: Send + 'static;

    /// The frames for `event`.
    fn event(&mut self, event: TurnEvent) -> Step<Self::Frame>;

    /// Sent when the turn has been silent for the keep-alive interval.
    fn keep_alive(&self) -> Option<Self::Frame> {
        None
    }

    /// Frames after the end; `finished` is false when the turn stopped
    /// without its final event (an engine bug or shutdown).
    fn end(&mut self, finished: bool) -> Vec<Self::Frame> {
        let _ = finished;
        Vec::new()
    }
}

/// What happens to the turn when the client goes away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenGone {
    /// Drop the turn: generation stops and the partial reply is stored.
    Stop,
    /// Finish and store the reply (a WebSocket reconnect asks for it).
    Finish,
}

/// Feeds `turn`'s events through `encoder` into `out`. Returns whether the
/// client is still there.
pub async fn pump<E: TurnEncoder>(
    mut turn: Turn,
    encoder: &mut E,
    out: &mpsc::Sender<E::Frame>,
    keep_alive: Option<Duration>,
    when_gone: WhenGone,
) -> bool {
    let mut open = !out.is_closed();
    let finished = loop {
        let next = async {
            match keep_alive {
                Some(every) => tokio::time::timeout(every, turn.next()).await.ok(),
                None => Some(turn.next().await),
            }
        };
        let event = if open && when_gone == WhenGone::Stop {
            tokio::select! {
                event = next => event,
                _ = out.closed() => return false,
            }
        } else {
            next.await
        };
        let step = match event {
            // Silent for a while: keep proxies from closing the connection.
            None => Step::more(encoder.keep_alive().into_iter().collect()),
            Some(None) => break false,
            Some(Some(event)) => encoder.event(event),
        };
        for frame in step.frames {
            if open {
                open = out.send(frame).await.is_ok();
            }
        }
        if !open && when_gone == WhenGone::Stop {
            return false;
        }
        if step.last {
            break true;
        }
    };
    for frame in encoder.end(finished) {
        if open {
            open = out.send(frame).await.is_ok();
        }
    }
    open
}

/// A server-sent events response: headers that keep proxies from buffering,
/// and `frames` as the body.
pub fn sse_response(
    mut builder: HttpResponseBuilder,
    frames: impl Stream<Item = Result<Bytes, actix_web::Error>> + 'static,
) -> HttpResponse {
    builder
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(frames)
}

fn receiver_stream(
    rx: mpsc::Receiver<Bytes>,
) -> impl Stream<Item = Result<Bytes, actix_web::Error>> + 'static {
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|frame| (Ok::<_, actix_web::Error>(frame), rx))
    })
}

/// Streams a turn to an HTTP client: `first` frames, then the encoder's.
/// The turn runs on the main runtime, holds `slot` until it ends and stops
/// when the client goes.
pub fn stream_turn<E: TurnEncoder<Frame = Bytes>>(
    state: &AppState,
    slot: Option<Permit>,
    turn: Turn,
    first: Vec<Bytes>,
    mut encoder: E,
) -> impl Stream<Item = Result<Bytes, actix_web::Error>> + 'static {
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let keep_alive = Some(state.keep_alive);
    state.spawn(async move {
        let _slot = slot;
        for frame in first {
            if tx.send(frame).await.is_err() {
                return;
            }
        }
        pump(turn, &mut encoder, &tx, keep_alive, WhenGone::Stop).await;
    });
    receiver_stream(rx)
}

/// A fixed list of frames as a stream (answers that need no model: a
/// replayed reply, a message queued for an operator).
pub fn frames(frames: Vec<Bytes>) -> impl Stream<Item = Result<Bytes, actix_web::Error>> + 'static {
    futures_util::stream::iter(frames.into_iter().map(Ok::<_, actix_web::Error>))
}
