//! Anthropic Messages API (`POST {base_url}/v1/messages`, `x-api-key`,
//! `anthropic-version: 2023-06-01`).
//!
//! System messages go to the top-level `system` field (joined by blank
//! lines). Tool calls of an assistant turn become `tool_use` blocks, tool
//! results become `tool_result` blocks of a user turn, and consecutive turns
//! with the same wire role are merged, since the API expects user and
//! assistant turns to alternate (parallel tool results must share one user
//! turn). Stop reasons are mapped to OpenAI's vocabulary (`end_turn` →
//! `stop`, `max_tokens` → `length`, `tool_use` → `tool_calls`, `refusal` →
//! `content_filter`). Input usage is `input_tokens` plus cache creation and
//! cache read tokens.

use std::collections::HashMap;

use futures_util::stream::BoxStream;
use serde::Deserialize;
use serde_json::{json, Value};
use tidechat_domain::Role;

use super::{drive, parse_json, ProviderConfig, Wire, WireParser};
use crate::model::{ChatModel, LlmError, ModelEvent, ModelRequest, ToolCall};

const PROVIDER: &str = "anthropic";
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// A model behind the Anthropic Messages API.
#[derive(Clone, Debug)]
pub struct AnthropicProvider {
    config: ProviderConfig,
    client: reqwest::Client,
}

impl AnthropicProvider {
    pub fn new(config: ProviderConfig) -> Result<Self, LlmError> {
        let client = config.client()?;
        Ok(Self { config, client })
    }
}

impl ChatModel for AnthropicProvider {
    fn stream(&self, request: ModelRequest) -> BoxStream<'static, Result<ModelEvent, LlmError>> {
        let body = request_body(&self.config, &request);
        let mut http = self
            .client
            .post(self.config.url("/v1/messages"))
            .header("anthropic-version", ANTHROPIC_VERSION)
            .json(&body);
        if let Some(key) = &self.config.api_key {
            http = http.header("x-api-key", key.expose());
        }
        drive(
            PROVIDER,
            http,
            Parser::default(),
            self.config.stream,
            request.messages,
            request.tools,
        )
    }
}

pub(crate) fn request_body(config: &ProviderConfig, request: &ModelRequest) -> Value {
    let mut system: Vec<&str> = Vec::new();
    let mut turns: Vec<(&str, Vec<Value>)> = Vec::new();
    for m in &request.messages {
        let (role, mut blocks) = match m.role {
            Role::System => {
                system.push(&m.content);
                continue;
            }
            Role::User => ("user", text_block(&m.content)),
            Role::Tool => (
                "user",
                vec![json!({
                    "type": "tool_result",
                    "tool_use_id": m.tool_call_id.clone().unwrap_or_default(),
                    "content": m.content,
                })],
            ),
            Role::Assistant => {
                let mut blocks = text_block(&m.content);
                blocks.extend(m.tool_calls.iter().map(|c| {
                    let input = serde_json::from_str::<Value>(&c.arguments)
                        .ok()
                        .filter(Value::is_object)
                        .unwrap_or_else(|| json!({}));
                    json!({"type": "tool_use", "id": c.id, "name": c.name, "input": input})
                }));
                ("assistant", blocks)
            }
        };
        if blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((last, content)) if *last == role => content.append(&mut blocks),
            _ => turns.push((role, blocks)),
        }
    }
    let messages: Vec<Value> = turns
        .into_iter()
        .map(|(role, content)| json!({"role": role, "content": content}))
        .collect();
    let mut body = json!({
        "model": config.upstream_model,
        "max_tokens": request.max_output_tokens,
        "messages": messages,
        // Anthropic's range is 0..=1 (OpenAI's is 0..=2).
        "temperature": request.temperature.clamp(0.0, 1.0),
        "stream": config.stream,
    });
    if !system.is_empty() {
        body["system"] = Value::String(system.join("\n\n"));
    }
    if !request.tools.is_empty() {
        body["tools"] = request
            .tools
            .iter()
            .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.parameters}))
            .collect();
    }
    body
}

/// The API rejects empty text blocks.
fn text_block(text: &str) -> Vec<Value> {
    if text.is_empty() {
        Vec::new()
    } else {
        vec![json!({"type": "text", "text": text})]
    }
}

fn finish_reason(stop_reason: &str) -> String {
    match stop_reason {
        "end_turn" | "stop_sequence" | "pause_turn" => "stop",
        "max_tokens" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        other => other,
    }
    .to_string()
}

#[derive(Deserialize, Default)]
struct WireUsage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
}

impl WireUsage {
    fn input(&self) -> Option<u64> {
        self.input_tokens.map(|n| {
            n + self.cache_creation_input_tokens.unwrap_or(0)
                + self.cache_read_input_tokens.unwrap_or(0)
        })
    }
}

#[derive(Deserialize)]
struct Block {
    #[serde(rename = "type")]
    kind: String,
    text: Option<String>,
    id: Option<String>,
    name: Option<String>,
    input: Option<Value>,
}

#[derive(Deserialize)]
struct Delta {
    #[serde(rename = "type")]
    kind: Option<String>,
    text: Option<String>,
    partial_json: Option<String>,
    stop_reason: Option<String>,
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    content: Vec<Block>,
    stop_reason: Option<String>,
    #[serde(default)]
    usage: WireUsage,
}

#[derive(Deserialize)]
struct WireError {
    #[serde(rename = "type")]
    kind: Option<String>,
}

#[derive(Deserialize)]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    index: Option<usize>,
    message: Option<Message>,
    content_block: Option<Block>,
    delta: Option<Delta>,
    usage: Option<WireUsage>,
    error: Option<WireError>,
}

/// A `tool_use` block being streamed.
struct PendingTool {
    call: ToolCall,
    /// `input` from `content_block_start`, used if no JSON deltas follow.
    initial: Option<Value>,
}

#[derive(Default)]
struct Parser {
    tools: HashMap<usize, PendingTool>,
}

fn tool_call(block: Block) -> ToolCall {
    ToolCall {
        id: block.id.unwrap_or_default(),
        name: block.name.unwrap_or_default(),
        arguments: block
            .input
            .filter(|v| !v.is_null())
            .map_or_else(|| "{}".to_string(), |v| v.to_string()),
    }
}

fn finish_tool(mut pending: PendingTool) -> ToolCall {
    if pending.call.arguments.trim().is_empty() {
        pending.call.arguments = pending
            .initial
            .filter(|v| !v.is_null())
            .map_or_else(|| "{}".to_string(), |v| v.to_string());
    }
    pending.call
}

impl WireParser for Parser {
    fn event(&mut self, _event: &str, data: &str, out: &mut Vec<Wire>) -> Result<(), LlmError> {
        if data.trim().is_empty() {
            return Ok(());
        }
        let event: Event = parse_json(PROVIDER, data.as_bytes())?;
        let index = event.index.unwrap_or(0);
        match event.kind.as_str() {
            "message_start" => {
                if let Some(n) = event.message.and_then(|m| m.usage.input()) {
                    out.push(Wire::InputTokens(n));
                }
            }
            "content_block_start" => match event.content_block {
                Some(block) if block.kind == "tool_use" => {
                    let initial = block.input.clone();
                    let call = ToolCall {
                        arguments: String::new(),
                        ..tool_call(block)
                    };
                    self.tools.insert(index, PendingTool { call, initial });
                }
                Some(Block {
                    text: Some(text), ..
                }) => out.push(Wire::Delta(text)),
                _ => {}
            },
            "content_block_delta" => {
                let Some(delta) = event.delta else {
                    return Ok(());
                };
                match delta.kind.as_deref() {
                    Some("text_delta") => {
                        if let Some(text) = delta.text {
                            out.push(Wire::Delta(text));
                        }
                    }
                    Some("input_json_delta") => {
                        if let (Some(pending), Some(piece)) =
                            (self.tools.get_mut(&index), delta.partial_json)
                        {
                            pending.call.arguments.push_str(&piece);
                        }
                    }
                    // thinking / signature / citations deltas are not output text.
                    _ => {}
                }
            }
            "content_block_stop" => {
                if let Some(pending) = self.tools.remove(&index) {
                    out.push(Wire::ToolCall(finish_tool(pending)));
                }
            }
            "message_delta" => {
                if let Some(reason) = event.delta.and_then(|d| d.stop_reason) {
                    out.push(Wire::Finish(finish_reason(&reason)));
                }
                if let Some(n) = event.usage.and_then(|u| u.output_tokens) {
                    out.push(Wire::OutputTokens(n));
                }
            }
            "message_stop" => out.push(Wire::End),
            "error" => {
                let kind = event.error.and_then(|e| e.kind).unwrap_or_default();
                tracing::warn!(provider = PROVIDER, kind = %kind, "provider sent an error event");
                return Err(match kind.as_str() {
                    "rate_limit_error" => LlmError::RateLimited { retry_after: None },
                    "overloaded_error" => LlmError::Upstream {
                        status: None,
                        retryable: true,
                        detail: "the provider is overloaded",
                    },
                    "api_error" => LlmError::Upstream {
                        status: None,
                        retryable: true,
                        detail: "the provider failed",
                    },
                    _ => LlmError::Upstream {
                        status: None,
                        retryable: false,
                        detail: "the provider reported an error",
                    },
                });
            }
            // "ping" and event types added later.
            _ => {}
        }
        Ok(())
    }

    fn full(&mut self, body: &[u8], out: &mut Vec<Wire>) -> Result<(), LlmError> {
        let message: Message = parse_json(PROVIDER, body)?;
        for block in message.content {
            match block.kind.as_str() {
                "text" => out.extend(block.text.map(Wire::Delta)),
                "tool_use" => out.push(Wire::ToolCall(tool_call(block))),
                _ => {}
            }
        }
        if let Some(n) = message.usage.input() {
            out.push(Wire::InputTokens(n));
        }
        if let Some(n) = message.usage.output_tokens {
            out.push(Wire::OutputTokens(n));
        }
        if let Some(reason) = message.stop_reason {
            out.push(Wire::Finish(finish_reason(&reason)));
        }
        out.push(Wire::End);
        Ok(())
    }

    fn flush(&mut self, out: &mut Vec<Wire>) {
        let mut pending: Vec<_> = self.tools.drain().collect();
        pending.sort_by_key(|(i, _)| *i);
        out.extend(
            pending
                .into_iter()
                .map(|(_, p)| Wire::ToolCall(finish_tool(p))),
        );
    }
}

/// A fresh parser, for [`super::decode_for_fuzzing`].
pub(super) fn fuzz_parser() -> impl WireParser {
    Parser::default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::model::ChatMessage;

    #[test]
    fn system_goes_top_level_and_tool_turns_alternate() {
        let config = ProviderConfig::new("http://x", "claude");
        let call = |id: &str| ToolCall {
            id: id.into(),
            name: "faq_search".into(),
            arguments: r#"{"q":"x"}"#.into(),
        };
        let request = ModelRequest::new(vec![
            ChatMessage::system("one"),
            ChatMessage::system("two"),
            ChatMessage::user("q"),
            ChatMessage::assistant_tool_calls("", vec![call("a"), call("b")]),
            ChatMessage::tool_result("a", "ra"),
            ChatMessage::tool_result("b", "rb"),
        ])
        .with_temperature(1.7);
        let body = request_body(&config, &request);
        assert_eq!(body["system"], "one\n\ntwo");
        assert_eq!(body["temperature"], 1.0);
        let messages = body["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 3);
        assert_eq!(messages[1]["content"][1]["input"]["q"], "x");
        assert_eq!(messages[2]["role"], "user");
        assert_eq!(messages[2]["content"][1]["tool_use_id"], "b");
    }

    #[test]
    fn assembles_streamed_tool_input() {
        let mut p = Parser::default();
        let mut out = Vec::new();
        for data in [
            r#"{"type":"message_start","message":{"content":[],"usage":{"input_tokens":12,"cache_read_input_tokens":3,"output_tokens":1}}}"#,
            r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"faq_search","input":{}}}"#,
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"q\": "}}"#,
            r#"{"type":"ping"}"#,
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"\"pw\"}"}}"#,
            r#"{"type":"content_block_stop","index":1}"#,
            r#"{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":9}}"#,
            r#"{"type":"message_stop"}"#,
        ] {
            p.event("", data, &mut out).unwrap();
        }
        assert_eq!(
            out,
            vec![
                Wire::InputTokens(15),
                Wire::ToolCall(ToolCall {
                    id: "toolu_1".into(),
                    name: "faq_search".into(),
                    arguments: r#"{"q": "pw"}"#.into()
                }),
                Wire::Finish("tool_calls".into()),
                Wire::OutputTokens(9),
                Wire::End,
            ]
        );
    }

    #[test]
    fn error_events_are_classified_without_their_message() {
        let mut p = Parser::default();
        let mut out = Vec::new();
        let overloaded =
            r#"{"type":"error","error":{"type":"overloaded_error","message":"secret body"}}"#;
        let e = p.event("error", overloaded, &mut out).unwrap_err();
        assert!(e.is_retryable());
        assert!(!e.to_string().contains("secret"));
        let invalid = r#"{"type":"error","error":{"type":"invalid_request_error","message":"x"}}"#;
        assert!(!p
            .event("error", invalid, &mut out)
            .unwrap_err()
            .is_retryable());
        assert!(p.event("", "not json", &mut out).is_err());
    }
}
