//! `GET /ws/chat?api_key=…|ticket=…&user_id=…[&chat_id=…][&last_message_id=…]`:
//! real-time chat over WebSocket.
//!
//! Server → client frames are JSON objects with a `type`:
//! - `connection_established` `{chat_id, user_id, chat_created}` (a missing
//!   `chat_id` creates a chat for the user);
//! - `user_created` `{user_id}` when the user id was new to the tenant;
//! - `missed_messages` `{messages}` after a reconnect with `last_message_id`;
//! - `message_received` `{message}`: the stored user message, with its id;
//! - `message_stream_started` `{chat_id, reply_to}`, `message_stream_token`
//!   `{token}` per delta, `message_stream_replaced` `{content}` when moderation
//!   replaced the reply, `message_stream_ended` `{message}`: the stored reply
//!   with id, tokens, cost and verdict;
//! - `error` `{code, message, details}`; the connection stays open unless a
//!   close frame follows. A message over the tenant's request rate gets an
//!   `error` with `rate_limited` and is not answered (as a REST call would
//!   get 429).
//!
//! Client → server: `{"content": "…"}`. Messages sent while a reply streams
//! are queued (up to 16) and answered in order, never interleaved. Over 10
//! messages per second per connection (configurable), a message is refused
//! with an `error` (`rate_limited`). Close codes: 4000 bad request (no
//! `user_id`), 4001 unauthenticated, 4004 chat not found, 4009 chat not
//! active, 4029 too many connections for the tenant, 1011 server error.
//! A reply in progress when the connection drops is finished and stored, so
//! a reconnect with `last_message_id` receives it.

use std::time::{Duration, Instant};

use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{AggregatedMessage, CloseCode, CloseReason, Session};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};
use tidechat_domain::Message;
use tidechat_engine::{Principal, TurnEvent, TurnRequest};
use tidechat_limits::{Permit, Rate};
use tokio::sync::mpsc;

use crate::auth::ws_principal;
use crate::driver::{pump, Step, TurnEncoder, WhenGone};
use crate::error::{ApiError, Chats, ErrorKind, Surface};
use crate::routes::chats::{ChatDto, ChatMessageDto};
use crate::state::AppState;

/// Largest accepted client frame (a `content` is at most 16,000 characters).
const MAX_FRAME_BYTES: usize = 64 * 1024;
/// Messages waiting while a reply streams.
const QUEUE: usize = 16;
/// Ping interval, and how long a silent client is kept.
const PING_EVERY: Duration = Duration::from_secs(20);
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Deserialize)]
pub struct Params {
    pub api_key: Option<String>,
    pub ticket: Option<String>,
    pub user_id: Option<String>,
    pub chat_id: Option<String>,
    pub last_message_id: Option<String>,
}

fn error_frame(code: &str, message: &str, details: &str) -> String {
    json!({"type": "error", "code": code, "message": message, "details": details}).to_string()
}

fn api_error_frame(e: &ApiError) -> String {
    error_frame(Chats::code(e.kind), &e.message, Chats::details(e.kind))
}

async fn close_with(mut session: Session, frame: String, code: u16, description: &str) {
    let _ = session.text(frame).await;
    let _ = session
        .close(Some(CloseReason {
            code: CloseCode::Other(code),
            description: Some(description.to_owned()),
        }))
        .await;
}

/// The WebSocket endpoint.
pub async fn chat(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, actix_web::Error> {
    let params = web::Query::<Params>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .unwrap_or(Params {
            api_key: None,
            ticket: None,
            user_id: None,
            chat_id: None,
            last_message_id: None,
        });
    let (response, session, stream) = actix_ws::handle(&req, body)?;
    let stream = stream
        .max_frame_size(MAX_FRAME_BYTES)
        .aggregate_continuations()
        .max_continuation_size(MAX_FRAME_BYTES);
    actix_web::rt::spawn(connection(state, params, session, stream));
    Ok(response)
}

async fn connection(
    state: web::Data<AppState>,
    params: Params,
    mut session: Session,
    mut stream: actix_ws::AggregatedMessageStream,
) {
    let who = match ws_principal(&state, params.ticket.clone(), params.api_key.clone()).await {
        Ok(who) => who,
        Err(e) => return close_with(session, api_error_frame(&e), 4001, "unauthenticated").await,
    };
    let Some(user_id) = params.user_id.clone().filter(|u| !u.trim().is_empty()) else {
        let frame = error_frame(
            "missing_parameter",
            "user_id is required",
            "Add user_id=… to the WebSocket URL.",
        );
        return close_with(session, frame, 4000, "user_id is required").await;
    };
    let slot = match state.stream_slot(&who).await {
        Ok(slot) => slot,
        Err(e) => {
            let frame = error_frame(
                "too_many_connections",
                &e.message,
                "Close idle connections or raise maxConcurrentStreams.",
            );
            return close_with(session, frame, 4029, "too many connections").await;
        }
    };
    let opened = {
        let (who, user, chat) = (who.clone(), user_id.clone(), params.chat_id.clone());
        state
            .run(move |e| async move { e.open_chat(&who, &user, chat.as_deref()).await })
            .await
    };
    let opened = match opened {
        Ok(opened) => opened,
        Err(e) => {
            let code = match e.kind {
                ErrorKind::SessionNotActive => 4009,
                ErrorKind::NotFound => 4004,
                _ => 1011,
            };
            return close_with(session, api_error_frame(&e), code, "cannot open the chat").await;
        }
    };
    let chat = ChatDto::from(opened.session.clone());
    let hello = json!({
        "type": "connection_established",
        "chat_id": chat.id,
        "user_id": user_id,
        "chat_created": opened.chat_created,
        "chat": chat,
    });
    if session.text(hello.to_string()).await.is_err() {
        return;
    }
    if opened.user_created
        && session
            .text(json!({"type": "user_created", "user_id": user_id}).to_string())
            .await
            .is_err()
    {
        return;
    }
    if let Some(last) = params.last_message_id.as_deref().filter(|l| !l.is_empty()) {
        let (chat_session, last) = (opened.session.clone(), last.to_owned());
        let missed = state
            .run(move |e| async move { e.missed_messages(&chat_session, &last).await })
            .await;
        let frame = match missed {
            Ok(messages) => {
                let messages: Vec<ChatMessageDto> =
                    messages.into_iter().map(ChatMessageDto::from).collect();
                json!({"type": "missed_messages", "messages": messages}).to_string()
            }
            Err(e) => api_error_frame(&e),
        };
        if session.text(frame).await.is_err() {
            return;
        }
    }

    // Replies are produced one at a time by a worker on the engine runtime;
    // this task only reads frames.
    let (queue, inbox) = mpsc::channel::<String>(QUEUE);
    let worker = state.spawn(answer(
        state.clone(),
        who,
        opened.session.id.to_string(),
        session.clone(),
        inbox,
        slot,
    ));
    let connection_id = ulid::Ulid::new().to_string();
    let rate = Rate::new(state.ws_messages_per_second.max(1), Duration::from_secs(1));
    let mut ping = tokio::time::interval(PING_EVERY);
    let mut last_heard = Instant::now();
    loop {
        let frame = tokio::select! {
            frame = stream.next() => frame,
            _ = ping.tick() => {
                if last_heard.elapsed() > CLIENT_TIMEOUT {
                    let _ = session.clone().close(Some(CloseReason { code: CloseCode::Away, description: Some("no pong".into()) })).await;
                    break;
                }
                if session.ping(b"tidechat").await.is_err() { break; }
                continue;
            }
        };
        let Some(frame) = frame else { break };
        last_heard = Instant::now();
        let reply = match frame {
            Ok(AggregatedMessage::Text(text)) => match parse_content(&text) {
                Err(frame) => Some(frame),
                Ok(content) => {
                    let decision = state
                        .ws_limiter
                        .check_rate(&format!("ws:{connection_id}"), rate)
                        .await;
                    if !decision.allowed {
                        Some(error_frame(
                            "rate_limited",
                            &format!(
                                "at most {} messages per second per connection",
                                rate.limit()
                            ),
                            "Slow down; this message was not sent.",
                        ))
                    } else if queue.try_send(content).is_err() {
                        Some(error_frame(
                            "queue_full",
                            "too many messages are waiting for a reply",
                            "Wait for the current replies, then resend.",
                        ))
                    } else {
                        None
                    }
                }
            },
            Ok(AggregatedMessage::Binary(_)) => Some(error_frame(
                "invalid_message",
                "binary frames are not accepted",
                "Send text frames with JSON {\"content\": \"…\"}.",
            )),
            Ok(AggregatedMessage::Ping(bytes)) => {
                if session.pong(&bytes).await.is_err() {
                    break;
                }
                None
            }
            Ok(AggregatedMessage::Pong(_)) => None,
            Ok(AggregatedMessage::Close(_)) => break,
            Err(e) => {
                // Oversized or malformed frames: say so; the connection stays usable.
                tracing::debug!(error = %e, "websocket protocol error");
                Some(error_frame(
                    "invalid_message",
                    "the frame could not be read (too large or malformed)",
                    "Send text frames of at most 64 KiB with JSON {\"content\": \"…\"}.",
                ))
            }
        };
        if let Some(frame) = reply {
            if session.text(frame).await.is_err() {
                break;
            }
        }
    }
    // Closing the queue lets the worker finish (and store) what it has.
    drop(queue);
    let _ = worker.await;
}

pub(crate) fn parse_content(text: &str) -> Result<String, String> {
    let invalid = |message: &str| {
        error_frame(
            "invalid_message",
            message,
            "Send JSON {\"content\": \"your message\"}.",
        )
    };
    let value: Value = serde_json::from_str(text).map_err(|_| invalid("the frame is not JSON"))?;
    match value.get("content") {
        Some(Value::String(c)) if !c.trim().is_empty() => {
            if c.chars().count() > tidechat_domain::validate::USER_TEXT_MAX_CHARS {
                return Err(error_frame(
                    "message_too_large",
                    &format!(
                        "content is over {} characters",
                        tidechat_domain::validate::USER_TEXT_MAX_CHARS
                    ),
                    "Split the message.",
                ));
            }
            Ok(c.clone())
        }
        _ => Err(invalid("`content` (a non-empty string) is required")),
    }
}

/// Answers queued messages in order. Keeps going after the socket closes so
/// the reply in progress is finished and stored; the stream slot is held
/// until then. Each message counts against the tenant's request rate like
/// a REST call.
async fn answer(
    state: web::Data<AppState>,
    who: Principal,
    chat_id: String,
    session: Session,
    mut inbox: mpsc::Receiver<String>,
    _slot: Permit,
) {
    // One writer task per connection: frames leave in order.
    let (out, mut frames) = mpsc::channel::<String>(64);
    let writer = {
        let mut session = session.clone();
        tokio::spawn(async move {
            while let Some(frame) = frames.recv().await {
                if session.text(frame).await.is_err() {
                    break;
                }
            }
        })
    };
    let mut open = true;
    while let Some(content) = inbox.recv().await {
        let started = match state.check_rate(&who).await {
            Err(e) => Err(e),
            Ok(_) => {
                let (who, chat_id) = (who.clone(), chat_id.clone());
                let request = TurnRequest {
                    user_text: content,
                    ..TurnRequest::default()
                };
                state
                    .run(move |e| async move { e.start_turn(&who, &chat_id, request).await })
                    .await
            }
        };
        match started {
            Ok(turn) => {
                let mut encoder = WsFrames::new(&chat_id);
                let still_open = pump(turn, &mut encoder, &out, None, WhenGone::Finish).await;
                open = open && still_open;
            }
            Err(e) => {
                if open {
                    open = out.send(api_error_frame(&e)).await.is_ok();
                }
            }
        }
    }
    drop(out);
    let _ = writer.await;
    if open {
        let _ = session.close(None).await;
    }
}

/// The WebSocket encoding of a turn (see the module docs). The user message
/// is stored beside the model call, so frames that would overtake
/// `message_received` wait for it.
struct WsFrames {
    chat_id: String,
    received: bool,
    started: bool,
    pending: Vec<String>,
}

impl WsFrames {
    fn new(chat_id: &str) -> Self {
        Self {
            chat_id: chat_id.to_owned(),
            received: false,
            started: false,
            pending: Vec::new(),
        }
    }

    fn received(&mut self, message: Message) -> Vec<String> {
        self.received = true;
        let mut frames = vec![
            json!({"type": "message_received", "message": ChatMessageDto::from(message)})
                .to_string(),
        ];
        frames.append(&mut self.pending);
        frames
    }

    /// `frames` now, or after `message_received`.
    fn in_order(&mut self, frames: Vec<String>) -> Vec<String> {
        if self.received {
            frames
        } else {
            self.pending.extend(frames);
            Vec::new()
        }
    }

    fn stream_started(&mut self) -> Option<String> {
        (!std::mem::replace(&mut self.started, true))
            .then(|| json!({"type": "message_stream_started", "chat_id": self.chat_id}).to_string())
    }
}

impl TurnEncoder for WsFrames {
    type Frame = String;

    fn event(&mut self, event: TurnEvent) -> Step<String> {
        match event {
            TurnEvent::Retrieval(_) => Step::more(Vec::new()),
            TurnEvent::UserStored(message) => Step::more(self.received(*message)),
            TurnEvent::Delta(token) => {
                let mut frames: Vec<String> = self.stream_started().into_iter().collect();
                frames.push(json!({"type": "message_stream_token", "token": token}).to_string());
                Step::more(self.in_order(frames))
            }
            TurnEvent::Replaced(content) => {
                let frame = json!({"type": "message_stream_replaced", "content": content, "moderation_verdict": "blocked"}).to_string();
                Step::more(self.in_order(vec![frame]))
            }
            TurnEvent::Completed(outcome) => {
                let mut frames = Vec::new();
                if !self.received {
                    frames = self.received(outcome.user_message.clone());
                }
                frames.extend(self.stream_started());
                frames.push(json!({"type": "message_stream_ended", "message": ChatMessageDto::from(outcome.assistant_message)}).to_string());
                Step::last(frames)
            }
            TurnEvent::Unrecorded => Step::last(vec![error_frame(
                "internal_error",
                "the reply was not stored",
                "Retry.",
            )]),
            TurnEvent::Failed { error, outcome } => {
                let mut frames = std::mem::take(&mut self.pending);
                if let Some(outcome) = outcome {
                    frames.push(json!({"type": "message_stream_ended", "message": ChatMessageDto::from(outcome.assistant_message)}).to_string());
                }
                frames.push(api_error_frame(&ApiError::from(error)));
                Step::last(frames)
            }
        }
    }
}
