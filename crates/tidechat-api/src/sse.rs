//! Encodes a turn's events as the `/v1` server-sent events stream.
//!
//! Events, in order:
//! - `delta`: `{"text": "..."}` for each piece of reply text as it is released
//!   (text is released only after its window has passed moderation);
//! - `replace`: `{"text", "moderationVerdict": "blocked"}` when moderation
//!   stopped the reply: show this text (the persona's fallback) instead of
//!   the deltas received so far;
//! - then exactly one of
//!   - `done`: `{userMessage, assistantMessage, session}` as persisted, or
//!   - `error`: `{"error": {code, message}}` plus `userMessage`, `assistantMessage`
//!     and `session` when something was stored (e.g. a partial reply).
//!
//! Comment lines (`: keep-alive`) are sent while the model is slow so proxies
//! with idle timeouts keep the connection open.

use bytes::Bytes;
use serde::Serialize;
use serde_json::json;
use tidechat_engine::{TurnEvent, TurnOutcome};

use crate::driver::{Step, TurnEncoder};

use crate::dto::{DeltaEvent, MessageDto, ReplaceEvent, SendMessageResponse, SessionDto};
use crate::error::ApiError;

/// A data-only SSE frame (`data: {json}`), the framing of the FAQ chat and
/// widget streams.
pub fn data_frame(value: &serde_json::Value) -> Bytes {
    Bytes::from(format!("data: {value}\n\n"))
}

/// A named SSE frame (`event: name` + `data: {json}`), the `/v1` framing.
pub fn frame(event: &str, data: &impl Serialize) -> Bytes {
    let data = serde_json::to_string(data).unwrap_or_else(|_| "{}".to_owned());
    Bytes::from(format!("event: {event}\ndata: {data}\n\n"))
}

/// The persisted turn. Never carries moderation audit text (what a replaced
/// reply said): replies may be relayed to end users. API keys read it from
/// the message listing or the moderation endpoint.
pub fn outcome_body(outcome: TurnOutcome) -> SendMessageResponse {
    SendMessageResponse {
        user_message: MessageDto::from(outcome.user_message),
        assistant_message: MessageDto::from(outcome.assistant_message),
        session: SessionDto::from(outcome.session),
    }
}

/// The `/v1` encoding of a turn (see the module docs).
pub struct V1Events;

impl TurnEncoder for V1Events {
    type Frame = Bytes;

    fn event(&mut self, event: TurnEvent) -> Step<Bytes> {
        match event {
            // Retrieval details are not part of the /v1 stream.
            TurnEvent::Retrieval(_) | TurnEvent::UserStored(_) => Step::more(Vec::new()),
            TurnEvent::Delta(text) => Step::more(vec![frame("delta", &DeltaEvent { text })]),
            TurnEvent::Replaced(text) => {
                let body = ReplaceEvent {
                    text,
                    moderation_verdict: "blocked".to_owned(),
                };
                Step::more(vec![frame("replace", &body)])
            }
            TurnEvent::Completed(outcome) => {
                Step::last(vec![frame("done", &outcome_body(*outcome))])
            }
            TurnEvent::Unrecorded => {
                let error = ApiError::internal("a /v1 turn was not recorded");
                Step::last(vec![frame("error", &error.body())])
            }
            TurnEvent::Failed { error, outcome } => {
                let mut body = json!(ApiError::from(error).body());
                if let (Some(outcome), Some(map)) = (outcome, body.as_object_mut()) {
                    if let Ok(serde_json::Value::Object(extra)) =
                        serde_json::to_value(outcome_body(*outcome))
                    {
                        map.extend(extra);
                    }
                }
                Step::last(vec![frame("error", &body)])
            }
        }
    }

    fn keep_alive(&self) -> Option<Bytes> {
        Some(Bytes::from_static(b": keep-alive\n\n"))
    }
}

/// One server-sent event as an SSE client parses it; a stream is a
/// sequence of these (for OpenAPI: the schema of a `text/event-stream`
/// response describes each event).
#[derive(utoipa::ToSchema)]
pub struct SseEvent {
    /// The event type (`delta`, `replace`, `done`, `error`); absent on
    /// data-only streams (FAQ chat, widget), where clients see `message`.
    #[schema(example = "delta")]
    pub event: Option<String>,
    /// The payload: a JSON document (or `[DONE]` on the FAQ chat stream).
    #[schema(example = "{\"text\":\"Hello\"}")]
    pub data: String,
    /// The event's id, when the stream has them.
    pub id: Option<String>,
}
