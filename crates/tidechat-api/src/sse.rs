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

use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use serde::Serialize;
use serde_json::json;
use tidechat_engine::{EngineError, Turn, TurnEvent, TurnOutcome};
use tidechat_limits::Permit;

use crate::dto::{DeltaEvent, MessageDto, ReplaceEvent, SendMessageResponse, SessionDto};
use crate::error::ApiError;

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

/// The SSE byte stream of one turn. Dropping it drops the turn, which stops
/// generation and stores the partial reply.
pub fn turn_stream(
    turn: Turn,
    keep_alive: Duration,
    slot: Permit,
) -> impl Stream<Item = Result<Bytes, actix_web::Error>> {
    // The slot is released when the stream ends or is dropped.
    futures_util::stream::unfold(Some((turn, slot)), move |state| async move {
        let (mut turn, slot) = state?;
        let frame = loop {
            match tokio::time::timeout(keep_alive, turn.next()).await {
                Err(_) => {
                    return Some((
                        Ok(Bytes::from_static(b": keep-alive\n\n")),
                        Some((turn, slot)),
                    ))
                }
                Ok(None) => return None,
                // Retrieval details are not part of the /v1 stream.
                Ok(Some(TurnEvent::Retrieval(_))) | Ok(Some(TurnEvent::UserStored(_))) => continue,
                Ok(Some(TurnEvent::Delta(text))) => {
                    return Some((Ok(frame("delta", &DeltaEvent { text })), Some((turn, slot))));
                }
                Ok(Some(TurnEvent::Replaced(text))) => {
                    let body = ReplaceEvent {
                        text,
                        moderation_verdict: "blocked".to_owned(),
                    };
                    return Some((Ok(frame("replace", &body)), Some((turn, slot))));
                }
                Ok(Some(TurnEvent::Completed(outcome))) => {
                    break frame("done", &outcome_body(*outcome))
                }
                Ok(Some(TurnEvent::Unrecorded)) => {
                    let error = EngineError::Internal("a /v1 turn was not recorded".to_owned());
                    break frame("error", &ApiError::from(error).body());
                }
                Ok(Some(TurnEvent::Failed { error, outcome })) => {
                    let mut body = json!(ApiError::from(error).body());
                    if let (Some(outcome), Some(map)) = (outcome, body.as_object_mut()) {
                        if let Ok(serde_json::Value::Object(extra)) =
                            serde_json::to_value(outcome_body(*outcome))
                        {
                            map.extend(extra);
                        }
                    }
                    break frame("error", &body);
                }
            }
        };
        Some((Ok(frame), None))
    })
}
