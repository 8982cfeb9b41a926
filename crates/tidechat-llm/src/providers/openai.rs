//! OpenAI-compatible Chat Completions (`POST {base_url}/chat/completions`):
//! OpenAI itself, and servers that copy its API (Ollama, vLLM, LiteLLM, ...).
//!
//! Streaming requests ask for `stream_options.include_usage`, so the last
//! chunk before `[DONE]` carries the usage. Tool-call arguments arrive in
//! pieces keyed by the call's `index`; they are accumulated and each call is
//! emitted whole when the choice's `finish_reason` arrives (or at the end of
//! the stream).

use std::collections::BTreeMap;

use futures_util::stream::BoxStream;
use serde::Deserialize;
use serde_json::{json, Value};
use tidechat_domain::Role;

use super::{drive, parse_json, ProviderConfig, Wire, WireParser};
use crate::model::{
    ChatMessage, ChatModel, LlmError, ModelEvent, ModelRequest, ToolCall, ToolSpec,
};

const PROVIDER: &str = "openai";

/// A model behind an OpenAI-compatible Chat Completions endpoint.
#[derive(Clone, Debug)]
pub struct OpenAiProvider {
    config: ProviderConfig,
    client: reqwest::Client,
}

impl OpenAiProvider {
    pub fn new(config: ProviderConfig) -> Result<Self, LlmError> {
        let client = config.client()?;
        Ok(Self { config, client })
    }
}

impl ChatModel for OpenAiProvider {
    fn stream(&self, request: ModelRequest) -> BoxStream<'static, Result<ModelEvent, LlmError>> {
        let body = request_body(&self.config, &request);
        let mut http = self
            .client
            .post(self.config.url("/chat/completions"))
            .json(&body);
        if let Some(key) = &self.config.api_key {
            http = http.bearer_auth(key.expose());
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

fn message(m: &ChatMessage) -> Value {
    match m.role {
        Role::Tool => json!({
            "role": "tool",
            "tool_call_id": m.tool_call_id.clone().unwrap_or_default(),
            "content": m.content,
        }),
        Role::Assistant if !m.tool_calls.is_empty() => {
            let calls: Vec<Value> = m
                .tool_calls
                .iter()
                .map(|c| {
                    json!({
                        "id": c.id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": c.arguments},
                    })
                })
                .collect();
            let content = if m.content.is_empty() {
                Value::Null
            } else {
                Value::String(m.content.clone())
            };
            json!({"role": "assistant", "content": content, "tool_calls": calls})
        }
        role => json!({"role": role.as_str(), "content": m.content}),
    }
}

fn tool(t: &ToolSpec) -> Value {
    json!({
        "type": "function",
        "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
    })
}

pub(crate) fn request_body(config: &ProviderConfig, request: &ModelRequest) -> Value {
    let mut body = json!({
        "model": config.upstream_model,
        "messages": request.messages.iter().map(message).collect::<Vec<_>>(),
        "temperature": request.temperature,
        "max_tokens": request.max_output_tokens,
        "stream": config.stream,
    });
    if config.stream {
        body["stream_options"] = json!({"include_usage": true});
    }
    if !request.tools.is_empty() {
        body["tools"] = request.tools.iter().map(tool).collect();
    }
    body
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<Choice>,
    usage: Option<WireUsage>,
    error: Option<Value>,
}

#[derive(Deserialize)]
struct Choice {
    /// Streaming.
    delta: Option<WireMessage>,
    /// Non-streaming.
    message: Option<WireMessage>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireMessage {
    content: Option<String>,
    #[serde(default)]
    tool_calls: Vec<WireToolCall>,
}

#[derive(Deserialize)]
struct WireToolCall {
    #[serde(default)]
    index: usize,
    id: Option<String>,
    function: Option<WireFunction>,
}

#[derive(Deserialize)]
struct WireFunction {
    name: Option<String>,
    arguments: Option<String>,
}

#[derive(Deserialize)]
struct WireUsage {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
}

#[derive(Default)]
struct Parser {
    /// Tool calls being assembled, by index.
    calls: BTreeMap<usize, ToolCall>,
}

impl Parser {
    fn chunk(&mut self, chunk: Chunk, out: &mut Vec<Wire>) -> Result<(), LlmError> {
        if chunk.error.is_some() {
            tracing::warn!(provider = PROVIDER, "provider sent an error object");
            return Err(LlmError::Upstream {
                status: None,
                retryable: false,
                detail: "the provider reported an error",
            });
        }
        // Only the first choice is used (we never ask for `n > 1`).
        if let Some(choice) = chunk.choices.into_iter().next() {
            if let Some(msg) = choice.delta.or(choice.message) {
                if let Some(text) = msg.content {
                    out.push(Wire::Delta(text));
                }
                for piece in msg.tool_calls {
                    let call = self.calls.entry(piece.index).or_default();
                    if let Some(id) = piece.id {
                        call.id = id;
                    }
                    if let Some(f) = piece.function {
                        if let Some(name) = f.name {
                            call.name.push_str(&name);
                        }
                        if let Some(args) = f.arguments {
                            call.arguments.push_str(&args);
                        }
                    }
                }
            }
            if let Some(reason) = choice.finish_reason {
                self.flush(out);
                out.push(Wire::Finish(reason));
            }
        }
        if let Some(usage) = chunk.usage {
            if let Some(n) = usage.prompt_tokens {
                out.push(Wire::InputTokens(n));
            }
            if let Some(n) = usage.completion_tokens {
                out.push(Wire::OutputTokens(n));
            }
        }
        Ok(())
    }
}

impl WireParser for Parser {
    fn event(&mut self, _event: &str, data: &str, out: &mut Vec<Wire>) -> Result<(), LlmError> {
        let data = data.trim();
        if data == "[DONE]" {
            out.push(Wire::End);
            return Ok(());
        }
        if data.is_empty() {
            return Ok(());
        }
        let chunk: Chunk = parse_json(PROVIDER, data.as_bytes())?;
        self.chunk(chunk, out)
    }

    fn full(&mut self, body: &[u8], out: &mut Vec<Wire>) -> Result<(), LlmError> {
        let chunk: Chunk = parse_json(PROVIDER, body)?;
        self.chunk(chunk, out)
    }

    fn flush(&mut self, out: &mut Vec<Wire>) {
        for (_, mut call) in std::mem::take(&mut self.calls) {
            if call.arguments.trim().is_empty() {
                call.arguments = "{}".to_string();
            }
            out.push(Wire::ToolCall(call));
        }
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

    fn feed(parser: &mut Parser, data: &str) -> Vec<Wire> {
        let mut out = Vec::new();
        parser.event("", data, &mut out).unwrap();
        out
    }

    #[test]
    fn accumulates_tool_call_pieces_by_index() {
        let mut p = Parser::default();
        assert!(feed(&mut p, r#"{"choices":[{"delta":{"role":"assistant","tool_calls":[{"index":0,"id":"call_a","function":{"name":"faq_search","arguments":"{\"q\":"}},{"index":1,"id":"call_b","function":{"name":"other","arguments":""}}]}}]}"#).is_empty());
        assert!(feed(&mut p, r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"reset\"}"}}]}}]}"#).is_empty());
        let out = feed(
            &mut p,
            r#"{"choices":[{"delta":{},"finish_reason":"tool_calls"}]}"#,
        );
        assert_eq!(
            out,
            vec![
                Wire::ToolCall(ToolCall {
                    id: "call_a".into(),
                    name: "faq_search".into(),
                    arguments: r#"{"q":"reset"}"#.into()
                }),
                Wire::ToolCall(ToolCall {
                    id: "call_b".into(),
                    name: "other".into(),
                    arguments: "{}".into()
                }),
                Wire::Finish("tool_calls".into()),
            ]
        );
        assert_eq!(
            feed(
                &mut p,
                r#"{"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3}}"#
            ),
            vec![Wire::InputTokens(7), Wire::OutputTokens(3)]
        );
        assert_eq!(feed(&mut p, "[DONE]"), vec![Wire::End]);
    }

    #[test]
    fn maps_tool_turns_to_the_wire() {
        let config = ProviderConfig::new("http://x/v1", "m");
        let call = ToolCall {
            id: "c1".into(),
            name: "faq_search".into(),
            arguments: "{}".into(),
        };
        let request = ModelRequest::new(vec![
            ChatMessage::system("sys"),
            ChatMessage::user("q"),
            ChatMessage::assistant_tool_calls("", vec![call]),
            ChatMessage::tool_result("c1", "result"),
        ]);
        let body = request_body(&config, &request);
        assert_eq!(body["stream_options"]["include_usage"], true);
        assert_eq!(body["messages"][2]["content"], Value::Null);
        assert_eq!(
            body["messages"][2]["tool_calls"][0]["function"]["name"],
            "faq_search"
        );
        assert_eq!(body["messages"][3]["role"], "tool");
        assert_eq!(body["messages"][3]["tool_call_id"], "c1");
        assert!(body.get("tools").is_none());
    }
}
