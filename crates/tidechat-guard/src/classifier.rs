//! An optional external classifier, in one of two wire formats
//! ([`ClassifierFormat`]):
//!
//! - `moderation` (default): the OpenAI `/v1/moderations` format: `POST {url}`
//!   with `{"input": text, "model": …}` and a Bearer key; the answer's
//!   `results[0]` carries `flagged`, `categories` and `category_scores`;
//! - `chat-guard`: a guard model (Llama Guard 3 style) behind any
//!   OpenAI-compatible chat completions endpoint (vLLM, Ollama, TGI, LiteLLM):
//!   `POST {url}` (e.g. `http://vllm:8000/v1/chat/completions`) with the text
//!   as the user turn (input) or as the assistant turn (output); the reply
//!   `safe`, or `unsafe` followed by hazard codes (`S1,S10`), is mapped to the
//!   guard's categories ([`llama_guard_category`]).
//!
//! Each call's latency is measured ([`ExternalClassifier::check_with`] returns
//! it; it is logged at debug level). On a timeout or error the persona's
//! `moderation: fail-open|fail-closed` setting, else `fail_open`, decides.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use std::time::Instant;

use crate::guardrail::ModerationSettings;
use crate::{Action, Finding, Stage};

/// Which wire format the classifier speaks (see the module docs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClassifierFormat {
    #[default]
    Moderation,
    ChatGuard,
}

/// The guard category of a Llama Guard 3 hazard code (`S1` … `S14`), or
/// `other` for hazards the guard has no category for (they still block).
pub fn llama_guard_category(code: &str) -> &'static str {
    match code.trim().to_ascii_uppercase().as_str() {
        "S1" | "S9" => "violence",
        "S3" | "S12" => "sexual",
        "S4" => "sexual_minors",
        "S7" => "pii",
        "S10" => "hate",
        "S11" => "self_harm",
        "S14" => "prompt_injection",
        _ => "other",
    }
}

/// How to reach and read the classifier. Deserialises from TOML or JSON, e.g.
///
/// ```toml
/// url = "http://moderation.internal/v1/moderations"
/// format = "moderation"   # or "chat-guard" for a Llama Guard chat endpoint
/// api_key_env = "TIDECHAT_CLASSIFIER_API_KEY"
/// model = "omni-moderation-latest"
/// timeout_ms = 2000
/// fail_open = true
/// [thresholds]
/// hate = 0.5
/// "self-harm" = 0.4
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifierConfig {
    pub url: String,
    /// `moderation` (default) or `chat-guard`.
    #[serde(default)]
    pub format: ClassifierFormat,
    /// Name of the environment variable holding the API key; no key is sent
    /// when it is unset.
    #[serde(default = "default_api_key_env")]
    pub api_key_env: String,
    #[serde(default)]
    pub model: Option<String>,
    /// Categories to enforce, each with the score at or above which it blocks.
    /// Empty: block whatever the classifier itself marks `flagged`.
    #[serde(default)]
    pub thresholds: BTreeMap<String, f64>,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// On timeout or error: `true` allows (finding `classifier_unavailable`
    /// with action `note`, and a warning in the log), `false` blocks. Defaults to
    /// `true`: the built-in checks still run, and an outage of a second opinion
    /// should not stop every conversation.
    #[serde(default = "default_fail_open")]
    pub fail_open: bool,
}

fn default_api_key_env() -> String {
    "TIDECHAT_CLASSIFIER_API_KEY".to_owned()
}

fn default_timeout_ms() -> u64 {
    2000
}

fn default_fail_open() -> bool {
    true
}

/// Why the classifier cannot be configured.
#[derive(Debug, thiserror::Error)]
pub enum ClassifierError {
    #[error("invalid classifier setting {name}: {reason}")]
    InvalidSetting { name: &'static str, reason: String },
    #[error("HTTP client could not be built: {0}")]
    Client(String),
}

impl ClassifierConfig {
    /// Reads `TIDECHAT_CLASSIFIER_URL` (unset: no classifier, `Ok(None)`),
    /// `_FORMAT` (`moderation` or `chat-guard`), `_API_KEY_ENV`, `_MODEL`, `_THRESHOLDS` (`hate=0.5,violence=0.7`),
    /// `_TIMEOUT_MS` and `_FAIL_OPEN` through `var` (pass
    /// `|k| std::env::var(k).ok()`).
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, ClassifierError> {
        let Some(url) = var("TIDECHAT_CLASSIFIER_URL").filter(|u| !u.trim().is_empty()) else {
            return Ok(None);
        };
        let invalid =
            |name: &'static str, reason: String| ClassifierError::InvalidSetting { name, reason };
        let mut thresholds = BTreeMap::new();
        if let Some(spec) = var("TIDECHAT_CLASSIFIER_THRESHOLDS") {
            for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let (name, value) = part.split_once('=').ok_or_else(|| {
                    invalid(
                        "TIDECHAT_CLASSIFIER_THRESHOLDS",
                        format!("`{part}` is not name=score"),
                    )
                })?;
                let score: f64 = value.trim().parse().map_err(|_| {
                    invalid(
                        "TIDECHAT_CLASSIFIER_THRESHOLDS",
                        format!("`{value}` is not a number"),
                    )
                })?;
                thresholds.insert(name.trim().to_owned(), score);
            }
        }
        let timeout_ms = match var("TIDECHAT_CLASSIFIER_TIMEOUT_MS") {
            Some(v) => v.trim().parse().map_err(|_| {
                invalid(
                    "TIDECHAT_CLASSIFIER_TIMEOUT_MS",
                    format!("`{v}` is not a whole number"),
                )
            })?,
            None => default_timeout_ms(),
        };
        let fail_open = match var("TIDECHAT_CLASSIFIER_FAIL_OPEN")
            .as_deref()
            .map(str::trim)
        {
            None => default_fail_open(),
            Some("true" | "1" | "yes") => true,
            Some("false" | "0" | "no") => false,
            Some(other) => {
                return Err(invalid(
                    "TIDECHAT_CLASSIFIER_FAIL_OPEN",
                    format!("`{other}` is not true/false"),
                ))
            }
        };
        let format = match var("TIDECHAT_CLASSIFIER_FORMAT").as_deref().map(str::trim) {
            None | Some("" | "moderation") => ClassifierFormat::Moderation,
            Some("chat-guard") => ClassifierFormat::ChatGuard,
            Some(other) => {
                return Err(invalid(
                    "TIDECHAT_CLASSIFIER_FORMAT",
                    format!("`{other}` is neither moderation nor chat-guard"),
                ))
            }
        };
        Ok(Some(Self {
            url,
            format,
            api_key_env: var("TIDECHAT_CLASSIFIER_API_KEY_ENV").unwrap_or_else(default_api_key_env),
            model: var("TIDECHAT_CLASSIFIER_MODEL"),
            thresholds,
            timeout_ms,
            fail_open,
        }))
    }
}

#[derive(Serialize)]
struct ModerationRequest<'a> {
    input: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<&'a str>,
}

#[derive(Serialize)]
struct ChatMessage<'a> {
    role: &'static str,
    content: &'a str,
}

#[derive(Serialize)]
struct ChatRequest<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<&'a str>,
    messages: Vec<ChatMessage<'a>>,
    temperature: f32,
    max_tokens: u32,
    stream: bool,
}

#[derive(Deserialize)]
struct ChatResponse {
    choices: Vec<ChatChoice>,
}

#[derive(Deserialize)]
struct ChatChoice {
    message: ChatReply,
}

#[derive(Deserialize)]
struct ChatReply {
    #[serde(default)]
    content: Option<String>,
}

/// What the classifier said, in either format.
enum Verdict {
    Moderation(ModerationResult),
    /// The guard model's hazard codes; empty = safe.
    Guard(Vec<String>),
}

/// Parses a guard model's reply: `safe`, or `unsafe` then codes on the next
/// line(s), comma or space separated.
fn parse_guard_reply(reply: &str) -> Result<Vec<String>, String> {
    let reply = reply.trim();
    let mut lines = reply.lines();
    match lines
        .next()
        .map(|l| l.trim().to_ascii_lowercase())
        .as_deref()
    {
        Some("safe") => Ok(Vec::new()),
        Some(first) if first.starts_with("unsafe") => {
            let rest = first.trim_start_matches("unsafe").to_owned();
            let mut codes: Vec<String> = std::iter::once(rest.as_str())
                .chain(lines)
                .flat_map(|l| l.split([',', ' ', '\t']))
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_ascii_uppercase)
                .collect();
            if codes.is_empty() {
                codes.push("unspecified".to_owned());
            }
            Ok(codes)
        }
        _ => Err(format!(
            "the guard model replied neither safe nor unsafe: `{}`",
            reply.chars().take(40).collect::<String>()
        )),
    }
}

#[derive(Deserialize)]
struct ModerationResponse {
    results: Vec<ModerationResult>,
}

#[derive(Deserialize)]
struct ModerationResult {
    #[serde(default)]
    flagged: bool,
    #[serde(default)]
    categories: BTreeMap<String, Option<bool>>,
    #[serde(default)]
    category_scores: BTreeMap<String, Option<f64>>,
}

/// A client for the configured classifier; cheap to clone.
#[derive(Clone)]
pub struct ExternalClassifier {
    config: ClassifierConfig,
    api_key: Option<String>,
    client: reqwest::Client,
}

impl std::fmt::Debug for ExternalClassifier {
    /// Never prints the API key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExternalClassifier")
            .field("url", &self.config.url)
            .field("has_api_key", &self.api_key.is_some())
            .finish_non_exhaustive()
    }
}

impl ExternalClassifier {
    /// Builds the client; the API key is read from `config.api_key_env` now.
    pub fn new(config: ClassifierConfig) -> Result<Self, ClassifierError> {
        let api_key = std::env::var(&config.api_key_env)
            .ok()
            .filter(|k| !k.is_empty());
        Self::with_api_key(config, api_key)
    }

    /// Like [`ExternalClassifier::new`] with the key given directly.
    pub fn with_api_key(
        config: ClassifierConfig,
        api_key: Option<String>,
    ) -> Result<Self, ClassifierError> {
        if !(config.url.starts_with("http://") || config.url.starts_with("https://")) {
            return Err(ClassifierError::InvalidSetting {
                name: "url",
                reason: format!("`{}` is not an http(s) URL", config.url),
            });
        }
        if let Some((name, t)) = config
            .thresholds
            .iter()
            .find(|(_, t)| !(0.0..=1.0).contains(*t))
        {
            return Err(ClassifierError::InvalidSetting {
                name: "thresholds",
                reason: format!("{name} = {t} is outside [0, 1]"),
            });
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.timeout_ms.max(1)))
            .build()
            .map_err(|e| ClassifierError::Client(e.to_string()))?;
        Ok(Self {
            config,
            api_key,
            client,
        })
    }

    /// Classifies `text` with the configured failure policy; see
    /// [`ExternalClassifier::check_with`].
    pub async fn check(&self, text: &str, stage: Stage) -> Vec<Finding> {
        self.check_with(text, stage, &ModerationSettings::default())
            .await
            .0
    }

    /// Classifies `text`; returns `block` findings for enforced categories, or
    /// one `classifier_unavailable` finding when the call fails (action `note`
    /// when failing open, `block` when failing closed: the persona's
    /// `moderation:` setting, else `fail_open`), and the call's latency.
    pub async fn check_with(
        &self,
        text: &str,
        stage: Stage,
        settings: &ModerationSettings,
    ) -> (Vec<Finding>, Duration) {
        let span = 0..text.len();
        let started = Instant::now();
        let result = self.call(text, stage).await;
        let latency = started.elapsed();
        tracing::debug!(latency_ms = latency.as_secs_f64() * 1e3, url = %self.config.url, "moderation classifier call");
        let fail_open = settings.fail_open.unwrap_or(self.config.fail_open);
        let findings = match result {
            Ok(Verdict::Moderation(result)) => self.findings(&result, stage, span),
            Ok(Verdict::Guard(codes)) => self.guard_findings(&codes, stage, span),
            Err(error) => {
                tracing::warn!(%error, url = %self.config.url, fail_open,
                    "moderation classifier unavailable");
                vec![Finding {
                    category: "classifier_unavailable".to_owned(),
                    rule: error,
                    stage,
                    action: if fail_open {
                        Action::Note
                    } else {
                        Action::Block
                    },
                    excerpt: String::new(),
                    span,
                }]
            }
        };
        (findings, latency)
    }

    fn guard_findings(
        &self,
        codes: &[String],
        stage: Stage,
        span: std::ops::Range<usize>,
    ) -> Vec<Finding> {
        let mut out: Vec<Finding> = Vec::new();
        for code in codes {
            let category = format!("classifier.{}", llama_guard_category(code));
            // With thresholds configured, only the named categories block.
            let enforced = self.config.thresholds.is_empty()
                || self
                    .config
                    .thresholds
                    .contains_key(llama_guard_category(code));
            if !enforced || out.iter().any(|f| f.category == category) {
                continue;
            }
            out.push(Finding {
                category,
                rule: format!("guard model: unsafe {code}"),
                stage,
                action: Action::Block,
                excerpt: String::new(),
                span: span.clone(),
            });
        }
        out
    }

    async fn call(&self, text: &str, stage: Stage) -> Result<Verdict, String> {
        let model = self.config.model.as_deref();
        let mut request = match self.config.format {
            ClassifierFormat::Moderation => self
                .client
                .post(&self.config.url)
                .json(&ModerationRequest { input: text, model }),
            ClassifierFormat::ChatGuard => {
                let messages = match stage {
                    Stage::Input => vec![ChatMessage {
                        role: "user",
                        content: text,
                    }],
                    // The guard judges the last turn: the reply, after a
                    // user turn the scanner does not know.
                    Stage::Output => vec![
                        ChatMessage {
                            role: "user",
                            content: "…",
                        },
                        ChatMessage {
                            role: "assistant",
                            content: text,
                        },
                    ],
                };
                self.client.post(&self.config.url).json(&ChatRequest {
                    model,
                    messages,
                    temperature: 0.0,
                    max_tokens: 20,
                    stream: false,
                })
            }
        };
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.map_err(|e| {
            if e.is_timeout() {
                "timed out".to_owned()
            } else {
                format!("request failed: {e}")
            }
        })?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("HTTP {status}"));
        }
        match self.config.format {
            ClassifierFormat::Moderation => {
                let body: ModerationResponse = response
                    .json()
                    .await
                    .map_err(|e| format!("unreadable response: {e}"))?;
                body.results
                    .into_iter()
                    .next()
                    .map(Verdict::Moderation)
                    .ok_or_else(|| "response has no results".to_owned())
            }
            ClassifierFormat::ChatGuard => {
                let body: ChatResponse = response
                    .json()
                    .await
                    .map_err(|e| format!("unreadable response: {e}"))?;
                let reply = body
                    .choices
                    .into_iter()
                    .next()
                    .and_then(|c| c.message.content)
                    .ok_or_else(|| "response has no message".to_owned())?;
                parse_guard_reply(&reply).map(Verdict::Guard)
            }
        }
    }

    fn findings(
        &self,
        result: &ModerationResult,
        stage: Stage,
        span: std::ops::Range<usize>,
    ) -> Vec<Finding> {
        let finding = |name: &str, rule: String| Finding {
            category: format!("classifier.{name}"),
            rule,
            stage,
            action: Action::Block,
            excerpt: String::new(),
            span: span.clone(),
        };
        if self.config.thresholds.is_empty() {
            if !result.flagged {
                return Vec::new();
            }
            let flagged: Vec<Finding> = result
                .categories
                .iter()
                .filter(|(_, v)| v.unwrap_or(false))
                .map(|(name, _)| finding(name, "flagged by classifier".to_owned()))
                .collect();
            return if flagged.is_empty() {
                vec![finding("flagged", "flagged by classifier".to_owned())]
            } else {
                flagged
            };
        }
        self.config
            .thresholds
            .iter()
            .filter_map(|(name, &threshold)| {
                let score = result.category_scores.get(name).copied().flatten()?;
                (score >= threshold)
                    .then(|| finding(name, format!("score {score:.3} ≥ {threshold:.3}")))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_replies_parse_into_codes() {
        assert_eq!(parse_guard_reply(" safe\n"), Ok(vec![]));
        assert_eq!(
            parse_guard_reply("unsafe\nS1,S10"),
            Ok(vec!["S1".to_owned(), "S10".to_owned()])
        );
        assert_eq!(parse_guard_reply("unsafe s4"), Ok(vec!["S4".to_owned()]));
        assert_eq!(
            parse_guard_reply("UNSAFE"),
            Ok(vec!["unspecified".to_owned()])
        );
        assert!(parse_guard_reply("I cannot help with that").is_err());
        assert_eq!(llama_guard_category("S4"), "sexual_minors");
        assert_eq!(llama_guard_category("s11"), "self_harm");
        assert_eq!(llama_guard_category("S2"), "other");
    }
}
