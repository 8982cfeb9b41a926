//! Tools the model may call (`toolNames`): the built-in `faq_search` and
//! `end_session`, and each organization's HTTP tools (`/v1/tools`).
//!
//! HTTP tools are called with `POST <url>` and a JSON body
//! `{"tool", "callId", "arguments", "sessionId", "organizationId"}`, signed:
//! `X-Tidechat-Timestamp: <unix seconds>` and
//! `X-Tidechat-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
//! The response body (at most 16 KiB, JSON or text) is the result the model
//! sees; a non-2xx status, a timeout or a refused address is an error result,
//! never a failed turn.
//!
//! Server-side request forgery: a tool URL whose host resolves to a
//! loopback, private, link-local, shared (CGNAT), multicast or unspecified
//! address is refused unless the server allows private tool URLs
//! (`TIDECHAT_TOOLS_ALLOW_PRIVATE_URLS`). The address checked is the address
//! connected to (the client is pinned to it), so DNS rebinding cannot swap it.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use chrono::Utc;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use tidechat_domain::{
    validate, HttpTool, HttpToolDraft, OrgId, Session, SessionStatus, ToolId, WorkspaceId,
};
use tidechat_llm::{ToolCall, ToolSpec};

use crate::auth::Principal;
use crate::knowledge::Billing;
use crate::{Engine, EngineError};

pub const FAQ_SEARCH: &str = "faq_search";
pub const END_SESSION: &str = "end_session";
pub const HANDOFF: &str = "handoff_to_operator";
/// Largest tool result handed to the model.
const RESULT_MAX_BYTES: usize = 16 * 1024;

/// The tools of one turn: what the model is told, and how to run each.
#[derive(Debug, Clone, Default)]
pub(crate) struct ToolSet {
    pub specs: Vec<ToolSpec>,
    http: HashMap<String, HttpTool>,
}

impl ToolSet {
    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }
}

/// What a tool call produced.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ToolOutcome {
    pub content: String,
    pub is_error: bool,
}

impl ToolOutcome {
    fn ok(content: String) -> Self {
        Self {
            content,
            is_error: false,
        }
    }

    fn error(message: impl Into<String>) -> Self {
        Self {
            content: json!({ "error": message.into() }).to_string(),
            is_error: true,
        }
    }
}

/// Where a tool runs.
pub(crate) struct ToolContext<'a> {
    pub session: &'a Session,
    pub workspace: &'a WorkspaceId,
    pub faq_threshold: f64,
    /// The key the turn is billed to (for the query embedding of `faq_search`).
    pub billing_key: Option<&'a tidechat_domain::ApiKeyId>,
}

fn builtin_spec(name: &str) -> Option<ToolSpec> {
    match name {
        FAQ_SEARCH => Some(ToolSpec {
            name: FAQ_SEARCH.to_owned(),
            description:
                "Search the company's FAQ. Returns the best matching questions and answers."
                    .to_owned(),
            parameters: json!({
                "type": "object",
                "properties": {"query": {"type": "string", "description": "What to look for"}},
                "required": ["query"]
            }),
        }),
        END_SESSION => Some(ToolSpec {
            name: END_SESSION.to_owned(),
            description:
                "End this conversation when the user is done. No further messages are accepted."
                    .to_owned(),
            parameters: json!({"type": "object", "properties": {}}),
        }),
        HANDOFF => Some(ToolSpec {
            name: HANDOFF.to_owned(),
            description: "Hand this website chat to a human operator when the visitor asks for a person or you cannot help. Tell the visitor a person will reply here.".to_owned(),
            parameters: json!({"type": "object", "properties": {"reason": {"type": "string"}}}),
        }),
        _ => None,
    }
}

/// True when connecting to `ip` could reach something inside our network.
pub fn is_private_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
                || (a == 192 && b == 0 && v4.octets()[2] == 0) // IETF protocol assignments
                || a >= 240 // reserved
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_ipv4(v6) {
                return is_private_address(IpAddr::V4(v4));
            }
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated, still routed by some)
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x0100 && s[1..4] == [0, 0, 0]) // discard-only 100::/64
        }
    }
}

/// The IPv4 address an IPv6 address carries, in every form that reaches
/// it: IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`), NAT64
/// (`64:ff9b::/96` and the local-use `64:ff9b:1::/48`), 6to4 (`2002::/16`)
/// and Teredo (`2001::/32`, the client address inverted in the last 32 bits).
fn embedded_ipv4(v6: std::net::Ipv6Addr) -> Option<std::net::Ipv4Addr> {
    use std::net::Ipv4Addr;
    let s = v6.segments();
    let from =
        |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    match s {
        // IPv4-compatible (`::1` and `::` are IPv6's own loopback / unspecified).
        [0, 0, 0, 0, 0, 0, hi, lo] if hi != 0 => Some(from(hi, lo)),
        [0x0064, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(from(hi, lo)),
        [0x0064, 0xff9b, 0x0001, ..] => Some(from(s[6], s[7])),
        [0x2002, hi, lo, ..] => Some(from(hi, lo)),
        [0x2001, 0x0000, ..] => Some(from(!s[6], !s[7])),
        _ => None,
    }
}

fn signature(secret: &str, timestamp: i64, body: &str) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(format!("{timestamp}.{body}").as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

impl Engine {
    /// Resolves `toolNames`; any name that is neither built in nor one of
    /// the organization's tools is `unknown_tool`.
    pub(crate) async fn resolve_tools(
        &self,
        org: &OrgId,
        names: &[String],
    ) -> Result<ToolSet, EngineError> {
        let mut set = ToolSet::default();
        let custom: Vec<String> = names
            .iter()
            .filter(|n| builtin_spec(n).is_none())
            .cloned()
            .collect();
        let found = if custom.is_empty() {
            Vec::new()
        } else {
            self.inner.store.tools_named(org, &custom).await?
        };
        for name in names {
            if set.specs.iter().any(|s| &s.name == name) {
                continue;
            }
            if let Some(spec) = builtin_spec(name) {
                set.specs.push(spec);
            } else if let Some(tool) = found.iter().find(|t| &t.name == name) {
                set.specs.push(ToolSpec {
                    name: tool.name.clone(),
                    description: tool.description.clone(),
                    parameters: tool.parameters.clone(),
                });
                set.http.insert(tool.name.clone(), tool.clone());
            } else {
                return Err(EngineError::UnknownTool(name.chars().take(64).collect()));
            }
        }
        Ok(set)
    }

    /// Runs one call. Failures become error results for the model.
    pub(crate) async fn run_tool(
        &self,
        tools: &ToolSet,
        ctx: &ToolContext<'_>,
        call: &ToolCall,
    ) -> ToolOutcome {
        let arguments: Value = match serde_json::from_str(&call.arguments) {
            Ok(v @ Value::Object(_)) => v,
            Ok(_) | Err(_) => return ToolOutcome::error("the arguments must be a JSON object"),
        };
        match call.name.as_str() {
            FAQ_SEARCH => {
                let Some(query) = arguments.get("query").and_then(Value::as_str) else {
                    return ToolOutcome::error("`query` (a string) is required");
                };
                let billing = Billing {
                    org_id: ctx.session.org_id.clone(),
                    key: ctx.billing_key.cloned(),
                };
                match self
                    .retrieve(&billing, ctx.workspace, query, 3, None, ctx.faq_threshold)
                    .await
                {
                    Ok((_, retrieval, _)) => {
                        let hits: Vec<Value> = retrieval
                            .hits
                            .into_iter()
                            .map(|h| json!({"id": h.id, "question": h.question, "answer": h.answer, "confidence": h.confidence}))
                            .collect();
                        ToolOutcome::ok(json!({ "results": hits }).to_string())
                    }
                    Err(e) => {
                        tracing::warn!(error = ?e, "faq_search failed");
                        ToolOutcome::error("the FAQ could not be searched")
                    }
                }
            }
            END_SESSION => {
                let ended = self
                    .inner
                    .store
                    .set_session_status(
                        &ctx.session.org_id,
                        &ctx.session.id,
                        SessionStatus::Ended,
                        Utc::now(),
                    )
                    .await;
                match ended {
                    Ok(Some(_)) => ToolOutcome::ok(json!({"ended": true}).to_string()),
                    Ok(None) | Err(_) => ToolOutcome::error("the session could not be ended"),
                }
            }
            HANDOFF => {
                // Only the mode column: a concurrent operator or visitor
                // change to the conversation stays.
                let update = tidechat_store::OperatorUpdate {
                    mode: Some(tidechat_domain::ConversationMode::Operator),
                    blocked: None,
                };
                match self
                    .inner
                    .store
                    .update_conversation(&ctx.session.org_id, &ctx.session.id, update, Utc::now())
                    .await
                {
                    Ok(true) => ToolOutcome::ok(json!({"handedOff": true}).to_string()),
                    Ok(false) => ToolOutcome::error(
                        "only website widget conversations can be handed to an operator",
                    ),
                    Err(_) => ToolOutcome::error("the conversation could not be handed over"),
                }
            }
            name => match tools.http.get(name) {
                Some(tool) => self.call_http_tool(tool, ctx, call, arguments).await,
                None => ToolOutcome::error(format!("`{name}` is not one of the tools offered")),
            },
        }
    }

    async fn call_http_tool(
        &self,
        tool: &HttpTool,
        ctx: &ToolContext<'_>,
        call: &ToolCall,
        arguments: Value,
    ) -> ToolOutcome {
        let config = &self.inner.config;
        let Ok(url) = reqwest::Url::parse(&tool.url) else {
            return ToolOutcome::error("the tool's URL is invalid");
        };
        let (Some(host), Some(port)) = (
            url.host_str().map(str::to_owned),
            url.port_or_known_default(),
        ) else {
            return ToolOutcome::error("the tool's URL has no host");
        };
        let lookup_host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let resolved = tokio::time::timeout(
            config.tool_timeout,
            tokio::net::lookup_host((lookup_host.as_str(), port)),
        )
        .await;
        let addrs: Vec<SocketAddr> = match resolved {
            Ok(Ok(addrs)) => addrs.collect(),
            _ => return ToolOutcome::error("the tool's host could not be resolved"),
        };
        let Some(addr) = addrs.first().copied() else {
            return ToolOutcome::error("the tool's host could not be resolved");
        };
        if !config.allow_private_tool_urls && addrs.iter().any(|a| is_private_address(a.ip())) {
            tracing::warn!(tool = %tool.name, "refused a tool call to a private address");
            return ToolOutcome::error("the tool's address is not allowed");
        }
        let client = match reqwest::Client::builder()
            .timeout(config.tool_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .resolve(&lookup_host, addr)
            .build()
        {
            Ok(c) => c,
            Err(_) => return ToolOutcome::error("the tool could not be called"),
        };
        let body = json!({
            "tool": tool.name,
            "callId": call.id,
            "arguments": arguments,
            "sessionId": ctx.session.id.as_str(),
            "organizationId": ctx.session.org_id.as_str(),
        })
        .to_string();
        let timestamp = Utc::now().timestamp();
        let response = client
            .post(url)
            .header("content-type", "application/json")
            .header("x-tidechat-timestamp", timestamp.to_string())
            .header(
                "x-tidechat-signature",
                signature(&tool.secret, timestamp, &body),
            )
            .body(body)
            .send()
            .await;
        let response = match response {
            Ok(r) => r,
            Err(e) if e.is_timeout() => return ToolOutcome::error("the tool timed out"),
            Err(_) => return ToolOutcome::error("the tool could not be reached"),
        };
        let status = response.status();
        let text = match response.bytes().await {
            Ok(bytes) => {
                let cut = &bytes[..bytes.len().min(RESULT_MAX_BYTES)];
                String::from_utf8_lossy(cut).into_owned()
            }
            Err(_) => return ToolOutcome::error("the tool's response could not be read"),
        };
        if !status.is_success() {
            return ToolOutcome::error(format!("the tool answered HTTP {}", status.as_u16()));
        }
        ToolOutcome::ok(text)
    }

    /// Refuses tool URLs that point inside the network (when not allowed).
    async fn check_tool_url(&self, url: &str) -> Result<(), EngineError> {
        if self.inner.config.allow_private_tool_urls {
            return Ok(());
        }
        let bad = || {
            EngineError::validation(
                "url",
                "must not point to a loopback, private or link-local address",
            )
        };
        let parsed = reqwest::Url::parse(url)
            .map_err(|_| EngineError::validation("url", "is not a valid URL"))?;
        let host = parsed
            .host_str()
            .ok_or_else(|| EngineError::validation("url", "has no host"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = host.parse::<IpAddr>() {
            return if is_private_address(ip) {
                Err(bad())
            } else {
                Ok(())
            };
        }
        if host.eq_ignore_ascii_case("localhost") || host.ends_with(".localhost") {
            return Err(bad());
        }
        // Names are checked again, against the resolved address, on every call.
        Ok(())
    }

    async fn check_tool_draft(&self, draft: &HttpToolDraft) -> Result<(), EngineError> {
        validate::tool(draft)?;
        if builtin_spec(&draft.name).is_some() {
            return Err(EngineError::validation(
                "name",
                "is the name of a built-in tool",
            ));
        }
        self.check_tool_url(&draft.url).await
    }

    pub async fn create_tool(
        &self,
        who: &Principal,
        draft: HttpToolDraft,
    ) -> Result<HttpTool, EngineError> {
        who.require_admin()?;
        self.check_tool_draft(&draft).await?;
        let now = Utc::now();
        let tool = HttpTool {
            id: ToolId::generate(),
            org_id: who.org_id.clone(),
            name: draft.name,
            description: draft.description,
            parameters: draft.parameters,
            url: draft.url,
            secret: draft.secret,
            created_at: now,
            updated_at: now,
        };
        match self.inner.store.insert_tool(&tool).await {
            Ok(()) => Ok(tool),
            Err(tidechat_store::StoreError::Conflict(_)) => Err(EngineError::Conflict(format!(
                "a tool named `{}` exists",
                tool.name
            ))),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn list_tools(&self, who: &Principal) -> Result<Vec<HttpTool>, EngineError> {
        who.require_admin()?;
        Ok(self.inner.store.list_tools(&who.org_id).await?)
    }

    pub async fn get_tool(&self, who: &Principal, id: &str) -> Result<HttpTool, EngineError> {
        who.require_admin()?;
        let id = ToolId::parse(id).map_err(|_| EngineError::NotFound("tool"))?;
        self.inner
            .store
            .get_tool(&who.org_id, &id)
            .await?
            .ok_or(EngineError::NotFound("tool"))
    }

    pub async fn update_tool(
        &self,
        who: &Principal,
        id: &str,
        draft: HttpToolDraft,
    ) -> Result<HttpTool, EngineError> {
        who.require_admin()?;
        let id = ToolId::parse(id).map_err(|_| EngineError::NotFound("tool"))?;
        self.check_tool_draft(&draft).await?;
        match self
            .inner
            .store
            .update_tool(&who.org_id, &id, &draft, Utc::now())
            .await
        {
            Ok(Some(tool)) => Ok(tool),
            Ok(None) => Err(EngineError::NotFound("tool")),
            Err(tidechat_store::StoreError::Conflict(_))
            | Err(tidechat_store::StoreError::Database(_)) => Err(EngineError::Conflict(format!(
                "a tool named `{}` exists",
                draft.name
            ))),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn delete_tool(&self, who: &Principal, id: &str) -> Result<(), EngineError> {
        who.require_admin()?;
        let id = ToolId::parse(id).map_err(|_| EngineError::NotFound("tool"))?;
        if self.inner.store.delete_tool(&who.org_id, &id).await? {
            Ok(())
        } else {
            Err(EngineError::NotFound("tool"))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn private_addresses() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fc00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "::10.0.0.1",
            "64:ff9b::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::c0a8:101",
            "2002:7f00:1::",
            "2002:a9fe:a9fe::1",
            "2001:0:4136:e378:8000:63bf:80ff:fffe", // Teredo, client 127.0.0.1
            "fec0::1",
            "2001:db8::1",
            "100::1",
            "224.0.0.1",
            "255.255.255.255",
        ] {
            assert!(is_private_address(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "100.128.0.1",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "::8.8.8.8",
        ] {
            assert!(!is_private_address(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn signatures_are_stable_hmac() {
        let sig = signature("secret", 1_700_000_000, r#"{"a":1}"#);
        assert!(sig.starts_with("sha256=") && sig.len() == 7 + 64);
        assert_eq!(sig, signature("secret", 1_700_000_000, r#"{"a":1}"#));
        assert_ne!(sig, signature("other", 1_700_000_000, r#"{"a":1}"#));
    }
}
