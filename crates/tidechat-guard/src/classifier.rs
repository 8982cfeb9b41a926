//! An optional external classifier speaking the OpenAI `/v1/moderations` wire
//! format: `POST {url}` with `{"input": text, "model": …}` and a Bearer key;
//! the answer's `results[0]` carries `flagged`, `categories` and
//! `category_scores`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Action, Finding, Stage};

/// How to reach and read the classifier. Deserialises from TOML or JSON, e.g.
///
/// ```toml
/// url = "http://moderation.internal/v1/moderations"
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
    /// `_API_KEY_ENV`, `_MODEL`, `_THRESHOLDS` (`hate=0.5,violence=0.7`),
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
        Ok(Some(Self {
            url,
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

    /// Classifies `text`; returns `block` findings for enforced categories, or
    /// one `classifier_unavailable` finding when the call fails. Never errors:
    /// the failure policy is `fail_open`.
    pub async fn check(&self, text: &str, stage: Stage) -> Vec<Finding> {
        let span = 0..text.len();
        match self.call(text).await {
            Ok(result) => self.findings(&result, stage, span),
            Err(error) => {
                tracing::warn!(%error, url = %self.config.url, fail_open = self.config.fail_open,
                    "moderation classifier unavailable");
                vec![Finding {
                    category: "classifier_unavailable".to_owned(),
                    rule: error,
                    stage,
                    action: if self.config.fail_open {
                        Action::Note
                    } else {
                        Action::Block
                    },
                    excerpt: String::new(),
                    span,
                }]
            }
        }
    }

    async fn call(&self, text: &str) -> Result<ModerationResult, String> {
        let mut request = self.client.post(&self.config.url).json(&ModerationRequest {
            input: text,
            model: self.config.model.as_deref(),
        });
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
        let body: ModerationResponse = response
            .json()
            .await
            .map_err(|e| format!("unreadable response: {e}"))?;
        body.results
            .into_iter()
            .next()
            .ok_or_else(|| "response has no results".to_owned())
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
