//! The set of models a deployment offers, by id, and its TOML file
//! (format on [`ModelRegistry::from_toml_file`]).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::embed::local::{LocalEmbedder, USE_M3_NAME};
use crate::embed::openai::{OpenAiEmbedderConfig, DEFAULT_BATCH_SIZE};
use crate::embed::{EmbedError, Embedder, OpenAiEmbedder};
use crate::faq_model::FaqModel;
use crate::model::ChatModel;
use crate::pricing::Pricing;
use crate::providers::anthropic::AnthropicProvider;
use crate::providers::openai::OpenAiProvider;
use crate::providers::{ApiKey, ProviderConfig};
use crate::resilient::{ChainLink, Resilient, RetryPolicy};

/// Id of the built-in FAQ model.
pub const FAQ_MODEL_ID: &str = "faq";

/// A model offered under an id, with what the engine needs to budget it.
#[derive(Clone)]
pub struct ModelEntry {
    pub id: String,
    pub model: Arc<dyn ChatModel>,
    pub pricing: Pricing,
    /// Total tokens (prompt + output) the model accepts.
    pub context_window: u32,
    /// Upper bound for `ModelRequest::max_output_tokens`.
    pub max_output_tokens: u32,
    /// Highest temperature the provider accepts (OpenAI 2, Anthropic 1).
    pub max_temperature: f64,
}

impl fmt::Debug for ModelEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModelEntry")
            .field("id", &self.id)
            .field("pricing", &self.pricing)
            .field("context_window", &self.context_window)
            .field("max_output_tokens", &self.max_output_tokens)
            .finish_non_exhaustive()
    }
}

/// Id that selects the built-in local embedder in `[retrieval] embedder`.
pub const LOCAL_EMBEDDER_ID: &str = "local";

/// How to build the embedder that retrieval uses (`[retrieval]` in
/// `models.toml`); see [`ModelRegistry::from_toml_file`].
#[derive(Clone, Debug)]
pub enum EmbedderConfig {
    /// The built-in USE-m3 model, loaded from `models_dir/use-multilingual-v3`
    /// (`models_dir` from the file, else the caller's default).
    Local { models_dir: Option<PathBuf> },
    /// An `[[embedding_models]]` entry.
    OpenAi(OpenAiEmbedderConfig),
}

impl EmbedderConfig {
    /// Builds the embedder. `default_models_dir` is used for
    /// [`EmbedderConfig::Local`] when the file named none. Loading the local
    /// model reads ~32 MB and takes a fraction of a second: build once.
    pub fn build(&self, default_models_dir: &Path) -> Result<Arc<dyn Embedder>, EmbedError> {
        match self {
            Self::Local { models_dir } => {
                let dir = models_dir.as_deref().unwrap_or(default_models_dir);
                Ok(Arc::new(LocalEmbedder::load(&dir.join(USE_M3_NAME))?))
            }
            Self::OpenAi(config) => Ok(Arc::new(OpenAiEmbedder::new(config.clone())?)),
        }
    }
}

/// Models by id. Cloning is cheap-ish (models are shared `Arc`s).
#[derive(Clone, Debug)]
pub struct ModelRegistry {
    entries: BTreeMap<String, ModelEntry>,
    embedding_models: BTreeMap<String, OpenAiEmbedderConfig>,
    retrieval_embedder: Option<EmbedderConfig>,
}

impl ModelRegistry {
    /// A registry with only the built-in [`FAQ_MODEL_ID`] model
    /// ([`FaqModel`], free).
    pub fn builtin() -> Self {
        let mut registry = Self {
            entries: BTreeMap::new(),
            embedding_models: BTreeMap::new(),
            retrieval_embedder: None,
        };
        registry.insert(ModelEntry {
            id: FAQ_MODEL_ID.to_string(),
            model: Arc::new(FaqModel),
            pricing: Pricing::FREE,
            context_window: 16_384,
            max_output_tokens: 2_048,
            max_temperature: 2.0,
        });
        registry
    }

    /// Adds `entry`, replacing any entry with the same id.
    pub fn insert(&mut self, entry: ModelEntry) {
        self.entries.insert(entry.id.clone(), entry);
    }

    pub fn get(&self, id: &str) -> Option<&ModelEntry> {
        self.entries.get(id)
    }

    /// All ids, sorted.
    pub fn ids(&self) -> Vec<String> {
        self.entries.keys().cloned().collect()
    }

    /// The embedder `[retrieval] embedder` selects, if any (`None`: lexical
    /// retrieval only).
    pub fn retrieval_embedder(&self) -> Option<&EmbedderConfig> {
        self.retrieval_embedder.as_ref()
    }

    /// Selects the retrieval embedder (e.g. from a CLI flag), replacing the
    /// file's choice.
    pub fn set_retrieval_embedder(&mut self, config: Option<EmbedderConfig>) {
        self.retrieval_embedder = config;
    }

    /// An `[[embedding_models]]` entry by id.
    pub fn embedding_model(&self, id: &str) -> Option<&OpenAiEmbedderConfig> {
        self.embedding_models.get(id)
    }

    /// Ids of the `[[embedding_models]]`, sorted.
    pub fn embedding_model_ids(&self) -> Vec<String> {
        self.embedding_models.keys().cloned().collect()
    }

    /// The built-in models plus those of the TOML file at `path`, reading
    /// API keys from the process environment.
    ///
    /// # `models.toml`
    /// ```toml
    /// [[models]]
    /// id = "gpt-4o-mini"                 # registry id clients ask for
    /// provider = "openai"                # "openai" (any OpenAI-compatible API) | "anthropic"
    /// base_url = "https://api.openai.com/v1"
    /// api_key_env = "OPENAI_API_KEY"     # name of the env var holding the key
    /// upstream_model = "gpt-4o-mini"     # the provider's model name
    /// context_window = 128000
    /// max_output_tokens = 4096
    /// input_usd_per_mtok = 0.15
    /// output_usd_per_mtok = 0.60
    /// fallbacks = ["claude-haiku", "faq"]  # optional, tried in order
    /// # optional:
    /// stream = true                      # false: non-streaming API
    /// connect_timeout_ms = 5000          # default 10000
    /// first_token_timeout_ms = 20000     # default 30000
    /// idle_timeout_ms = 60000            # default 60000 (gap between chunks)
    /// max_retries = 2                    # default 2
    /// retry_base_ms = 250                # default 250
    /// retry_max_ms = 4000                # default 4000
    ///
    /// # Embedding models (semantic retrieval), all optional:
    /// [[embedding_models]]
    /// id = "openai-small"                # name used by [retrieval] below
    /// provider = "openai"                # any OpenAI-compatible /v1/embeddings
    /// base_url = "https://api.openai.com/v1"   # (Ollama, vLLM, TEI, LiteLLM too)
    /// api_key_env = "OPENAI_API_KEY"     # optional for local servers
    /// model = "text-embedding-3-small"   # the provider's model name
    /// input_usd_per_mtok = 0.02
    /// # optional:
    /// dimensions = 512                   # sent as `dimensions` (OpenAI v3 models)
    /// batch_size = 64                    # inputs per request, default 64
    /// connect_timeout_ms = 5000          # default 10000
    /// timeout_ms = 30000                 # whole request, default 30000
    /// max_retries = 2                    # default 2 (connect errors, 429, 5xx)
    /// retry_base_ms = 250                # default 250
    /// retry_max_ms = 4000                # default 4000
    ///
    /// [retrieval]
    /// embedder = "openai-small"          # an embedding model id, or "local":
    ///                                    # the built-in USE-m3 (install it with
    ///                                    # `tidechat models install use-multilingual-v3`)
    /// models_dir = "data/models"         # optional, where "local" looks
    /// ```
    ///
    /// Without `[retrieval] embedder` the file selects no embedder (the
    /// `tidechat` server then uses the local model when it is installed;
    /// `TIDECHAT_EMBEDDER` overrides both). The
    /// embedder's stable id ([`Embedder::id`], stored with vectors) is
    /// `"{id}:{model}"` (plus `"@{dimensions}"`) for an embedding model and
    /// `"local:use-multilingual-v3"` for the built-in one.
    ///
    /// Every configured model is served through [`Resilient`]: its chain is the
    /// model itself followed by the chain of each of its `fallbacks` in order
    /// (depth first), skipping models already in the chain. Each link keeps its
    /// own timeouts, retries, pricing and output cap. `"faq"` may be used as a
    /// fallback (the built-in FAQ answer as a last resort). Load errors: a
    /// duplicate or reserved id, an unknown fallback, a fallback cycle, an
    /// `api_key_env` naming an unset variable, an `anthropic` model without
    /// `api_key_env` (OpenAI-compatible servers such as Ollama may omit it), an
    /// unknown field, or an out-of-range number.
    pub fn from_toml_file(path: impl AsRef<Path>) -> Result<Self, RegistryError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| RegistryError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml_str(&text)
    }

    /// Like [`from_toml_file`](Self::from_toml_file), from TOML text.
    pub fn from_toml_str(text: &str) -> Result<Self, RegistryError> {
        Self::from_toml_str_with_env(text, |name| std::env::var(name).ok())
    }

    /// Like [`from_toml_str`](Self::from_toml_str), looking environment
    /// variables up with `env` (tests pass a map instead of mutating the
    /// process environment).
    pub fn from_toml_str_with_env(
        text: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, RegistryError> {
        let file: ModelsFile = toml::from_str(text)?;
        let mut configs: HashMap<String, ModelConfig> = HashMap::new();
        let mut order = Vec::new();
        for config in file.models {
            if config.id == FAQ_MODEL_ID {
                return Err(RegistryError::ReservedId(config.id));
            }
            config.validate()?;
            if configs.contains_key(&config.id) {
                return Err(RegistryError::DuplicateId(config.id));
            }
            order.push(config.id.clone());
            configs.insert(config.id.clone(), config);
        }

        let mut links: HashMap<String, ChainLink> = HashMap::new();
        links.insert(
            FAQ_MODEL_ID.to_string(),
            ChainLink {
                id: FAQ_MODEL_ID.to_string(),
                model: Arc::new(FaqModel),
                pricing: Pricing::FREE,
                max_output_tokens: u32::MAX,
                policy: RetryPolicy::default(),
            },
        );
        for id in &order {
            if let Some(config) = configs.get(id) {
                links.insert(id.clone(), config.link(&env)?);
            }
        }

        let mut registry = Self::builtin();
        for config in file.embedding_models {
            config.validate()?;
            if config.id == LOCAL_EMBEDDER_ID {
                return Err(RegistryError::ReservedId(config.id));
            }
            if registry.embedding_models.contains_key(&config.id) {
                return Err(RegistryError::DuplicateId(config.id));
            }
            let built = config.build(&env)?;
            registry.embedding_models.insert(config.id.clone(), built);
        }
        if let Some(retrieval) = file.retrieval {
            registry.retrieval_embedder = match retrieval.embedder.as_deref() {
                None => None,
                Some(LOCAL_EMBEDDER_ID) => Some(EmbedderConfig::Local {
                    models_dir: retrieval.models_dir,
                }),
                Some(id) => Some(EmbedderConfig::OpenAi(
                    registry
                        .embedding_models
                        .get(id)
                        .cloned()
                        .ok_or_else(|| RegistryError::UnknownEmbedder(id.to_string()))?,
                )),
            };
        }
        for id in &order {
            let Some(config) = configs.get(id) else {
                continue;
            };
            let mut chain = Vec::new();
            expand(id, &configs, &mut Vec::new(), &mut chain)?;
            let mut ids = chain.iter();
            let Some(primary) = ids.next().and_then(|id| links.get(id)) else {
                continue;
            };
            let mut model = Resilient::new(primary.clone());
            for fallback in ids.filter_map(|id| links.get(id)) {
                model = model.with_fallback(fallback.clone());
            }
            registry.insert(ModelEntry {
                id: id.clone(),
                model: Arc::new(model),
                pricing: Pricing::new(config.input_usd_per_mtok, config.output_usd_per_mtok),
                context_window: config.context_window,
                max_output_tokens: config.max_output_tokens,
                max_temperature: match config.provider {
                    ProviderKind::Anthropic => 1.0,
                    _ => 2.0,
                },
            });
        }
        Ok(registry)
    }
}

/// Appends the chain of `id` to `chain` (see the module docs); `path` is
/// the current fallback path, for cycle detection.
fn expand(
    id: &str,
    configs: &HashMap<String, ModelConfig>,
    path: &mut Vec<String>,
    chain: &mut Vec<String>,
) -> Result<(), RegistryError> {
    if path.iter().any(|p| p == id) {
        let mut cycle = path.clone();
        cycle.push(id.to_string());
        return Err(RegistryError::FallbackCycle(cycle));
    }
    if chain.iter().any(|c| c == id) {
        return Ok(());
    }
    chain.push(id.to_string());
    if id == FAQ_MODEL_ID {
        return Ok(());
    }
    path.push(id.to_string());
    let fallbacks = configs
        .get(id)
        .map(|c| c.fallbacks.as_slice())
        .unwrap_or_default();
    for fallback in fallbacks {
        if fallback != FAQ_MODEL_ID && !configs.contains_key(fallback) {
            return Err(RegistryError::UnknownFallback {
                model: id.to_string(),
                fallback: fallback.clone(),
            });
        }
        expand(fallback, configs, path, chain)?;
    }
    path.pop();
    Ok(())
}

/// Why a models file could not be loaded. Messages name models, fields and
/// environment variables, never key values.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cannot read the models file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid models file: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("model id {0:?} is defined twice")]
    DuplicateId(String),
    #[error("model id {0:?} is reserved for the built-in model")]
    ReservedId(String),
    #[error("model {model:?}: unknown fallback {fallback:?}")]
    UnknownFallback { model: String, fallback: String },
    #[error("fallback cycle: {}", .0.join(" -> "))]
    FallbackCycle(Vec<String>),
    #[error("model {model:?}: environment variable {env} (api_key_env) is not set")]
    MissingApiKey { model: String, env: String },
    #[error("model {model:?}: {reason}")]
    Invalid { model: String, reason: &'static str },
    #[error("[retrieval] embedder {0:?} is neither \"local\" nor an [[embedding_models]] id")]
    UnknownEmbedder(String),
}

/// The provider protocol of a configured model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// OpenAI Chat Completions, or any server that copies it.
    OpenAi,
    /// Anthropic Messages.
    Anthropic,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelsFile {
    #[serde(default)]
    models: Vec<ModelConfig>,
    #[serde(default)]
    embedding_models: Vec<EmbeddingModelConfig>,
    retrieval: Option<RetrievalConfig>,
}

/// The protocol of an embedding model (only the OpenAI wire format today).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum EmbeddingProvider {
    OpenAi,
}

/// One `[[embedding_models]]` table; see [`ModelRegistry::from_toml_file`].
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EmbeddingModelConfig {
    id: String,
    #[allow(dead_code)] // one provider today; the field keeps files explicit
    provider: EmbeddingProvider,
    base_url: String,
    api_key_env: Option<String>,
    model: String,
    input_usd_per_mtok: f64,
    dimensions: Option<usize>,
    batch_size: Option<usize>,
    connect_timeout_ms: Option<u64>,
    timeout_ms: Option<u64>,
    max_retries: Option<u32>,
    retry_base_ms: Option<u64>,
    retry_max_ms: Option<u64>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetrievalConfig {
    embedder: Option<String>,
    models_dir: Option<PathBuf>,
}

impl EmbeddingModelConfig {
    fn invalid(&self, reason: &'static str) -> RegistryError {
        RegistryError::Invalid {
            model: self.id.clone(),
            reason,
        }
    }

    fn validate(&self) -> Result<(), RegistryError> {
        if self.id.trim().is_empty() {
            return Err(self.invalid("id must not be empty"));
        }
        if !(self.base_url.starts_with("http://") || self.base_url.starts_with("https://")) {
            return Err(self.invalid("base_url must start with http:// or https://"));
        }
        if self.model.trim().is_empty() {
            return Err(self.invalid("model must not be empty"));
        }
        if !(self.input_usd_per_mtok.is_finite() && self.input_usd_per_mtok >= 0.0) {
            return Err(self.invalid("prices must be finite and not negative"));
        }
        if self.batch_size == Some(0) || self.dimensions == Some(0) {
            return Err(self.invalid("batch_size and dimensions must be positive"));
        }
        let timeouts = [self.connect_timeout_ms, self.timeout_ms, self.retry_max_ms];
        if timeouts.contains(&Some(0)) {
            return Err(self.invalid("timeouts must be positive"));
        }
        Ok(())
    }

    fn build(
        &self,
        env: &impl Fn(&str) -> Option<String>,
    ) -> Result<OpenAiEmbedderConfig, RegistryError> {
        let api_key = match &self.api_key_env {
            Some(name) => Some(ApiKey::new(
                env(name).filter(|k| !k.trim().is_empty()).ok_or_else(|| {
                    RegistryError::MissingApiKey {
                        model: self.id.clone(),
                        env: name.clone(),
                    }
                })?,
            )),
            None => None,
        };
        let defaults = RetryPolicy::default();
        let ms = Duration::from_millis;
        let mut id = format!("{}:{}", self.id, self.model);
        if let Some(d) = self.dimensions {
            id.push_str(&format!("@{d}"));
        }
        let mut config = OpenAiEmbedderConfig::new(id, &self.base_url, &self.model);
        config.api_key = api_key;
        config.batch_size = self.batch_size.unwrap_or(DEFAULT_BATCH_SIZE);
        config.dimensions = self.dimensions;
        config.pricing = Pricing::new(self.input_usd_per_mtok, 0.0);
        config.connect_timeout = self.connect_timeout_ms.map_or(Duration::from_secs(10), ms);
        config.policy = RetryPolicy {
            max_retries: self.max_retries.unwrap_or(defaults.max_retries),
            backoff_base: self.retry_base_ms.map_or(defaults.backoff_base, ms),
            backoff_max: self.retry_max_ms.map_or(defaults.backoff_max, ms),
            first_token_timeout: self.timeout_ms.map_or(defaults.first_token_timeout, ms),
            idle_timeout: defaults.idle_timeout,
        };
        Ok(config)
    }
}

/// One `[[models]]` table; see the module docs.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelConfig {
    id: String,
    provider: ProviderKind,
    base_url: String,
    api_key_env: Option<String>,
    upstream_model: String,
    context_window: u32,
    max_output_tokens: u32,
    input_usd_per_mtok: f64,
    output_usd_per_mtok: f64,
    #[serde(default)]
    fallbacks: Vec<String>,
    #[serde(default = "default_stream")]
    stream: bool,
    connect_timeout_ms: Option<u64>,
    first_token_timeout_ms: Option<u64>,
    idle_timeout_ms: Option<u64>,
    max_retries: Option<u32>,
    retry_base_ms: Option<u64>,
    retry_max_ms: Option<u64>,
}

fn default_stream() -> bool {
    true
}

impl ModelConfig {
    fn invalid(&self, reason: &'static str) -> RegistryError {
        RegistryError::Invalid {
            model: self.id.clone(),
            reason,
        }
    }

    fn validate(&self) -> Result<(), RegistryError> {
        if self.id.trim().is_empty() {
            return Err(self.invalid("id must not be empty"));
        }
        if !(self.base_url.starts_with("http://") || self.base_url.starts_with("https://")) {
            return Err(self.invalid("base_url must start with http:// or https://"));
        }
        if self.upstream_model.trim().is_empty() {
            return Err(self.invalid("upstream_model must not be empty"));
        }
        if self.max_output_tokens == 0 || self.max_output_tokens >= self.context_window {
            return Err(self.invalid("need 0 < max_output_tokens < context_window"));
        }
        let price_ok = |p: f64| p.is_finite() && p >= 0.0;
        if !price_ok(self.input_usd_per_mtok) || !price_ok(self.output_usd_per_mtok) {
            return Err(self.invalid("prices must be finite and not negative"));
        }
        let timeouts = [
            self.connect_timeout_ms,
            self.first_token_timeout_ms,
            self.idle_timeout_ms,
            self.retry_max_ms,
        ];
        if timeouts.contains(&Some(0)) {
            return Err(self.invalid("timeouts must be positive"));
        }
        Ok(())
    }

    fn link(&self, env: &impl Fn(&str) -> Option<String>) -> Result<ChainLink, RegistryError> {
        let api_key = match &self.api_key_env {
            Some(name) => Some(ApiKey::new(
                env(name).filter(|k| !k.trim().is_empty()).ok_or_else(|| {
                    RegistryError::MissingApiKey {
                        model: self.id.clone(),
                        env: name.clone(),
                    }
                })?,
            )),
            None if self.provider == ProviderKind::Anthropic => {
                return Err(self.invalid("the anthropic provider needs api_key_env"));
            }
            None => None,
        };
        let defaults = RetryPolicy::default();
        let ms = Duration::from_millis;
        let mut provider = ProviderConfig::new(&self.base_url, &self.upstream_model)
            .with_stream(self.stream)
            .with_connect_timeout(self.connect_timeout_ms.map_or(Duration::from_secs(10), ms));
        provider.api_key = api_key;
        let model: Arc<dyn ChatModel> = match self.provider {
            ProviderKind::OpenAi => Arc::new(
                OpenAiProvider::new(provider)
                    .map_err(|_| self.invalid("the HTTP client could not be built"))?,
            ),
            ProviderKind::Anthropic => Arc::new(
                AnthropicProvider::new(provider)
                    .map_err(|_| self.invalid("the HTTP client could not be built"))?,
            ),
        };
        Ok(ChainLink {
            id: self.id.clone(),
            model,
            pricing: Pricing::new(self.input_usd_per_mtok, self.output_usd_per_mtok),
            max_output_tokens: self.max_output_tokens,
            policy: RetryPolicy {
                max_retries: self.max_retries.unwrap_or(defaults.max_retries),
                backoff_base: self.retry_base_ms.map_or(defaults.backoff_base, ms),
                backoff_max: self.retry_max_ms.map_or(defaults.backoff_max, ms),
                first_token_timeout: self
                    .first_token_timeout_ms
                    .map_or(defaults.first_token_timeout, ms),
                idle_timeout: self.idle_timeout_ms.map_or(defaults.idle_timeout, ms),
            },
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn builtin_has_only_faq() {
        let registry = ModelRegistry::builtin();
        assert_eq!(registry.ids(), vec![FAQ_MODEL_ID.to_string()]);
        let faq = registry.get("faq").unwrap();
        assert_eq!(faq.id, "faq");
        assert_eq!(faq.pricing, Pricing::FREE);
        assert!(faq.context_window > faq.max_output_tokens);
        assert!(registry.get("gpt-4o").is_none());
        assert!(registry.get("").is_none());
    }

    #[test]
    fn insert_adds_and_replaces() {
        let mut registry = ModelRegistry::builtin();
        let paid = ModelEntry {
            id: "echo".into(),
            model: Arc::new(FaqModel),
            pricing: Pricing::new(1.0, 2.0),
            context_window: 1_000,
            max_output_tokens: 100,
            max_temperature: 2.0,
        };
        registry.insert(paid.clone());
        registry.insert(ModelEntry {
            id: "alpha".into(),
            ..paid.clone()
        });
        assert_eq!(registry.ids(), vec!["alpha", "echo", "faq"]);
        registry.insert(ModelEntry {
            context_window: 2_000,
            ..paid
        });
        assert_eq!(registry.get("echo").unwrap().context_window, 2_000);
        assert_eq!(registry.ids().len(), 3);
        let copy = registry.clone();
        assert_eq!(copy.ids(), registry.ids());
        assert!(format!("{:?}", copy.get("echo").unwrap()).contains("echo"));
    }

    fn model(id: &str, provider: &str, extra: &str) -> String {
        format!(
            "[[models]]\nid = \"{id}\"\nprovider = \"{provider}\"\nbase_url = \"http://127.0.0.1:1/v1\"\n\
             upstream_model = \"m\"\ncontext_window = 8000\nmax_output_tokens = 1000\n\
             input_usd_per_mtok = 1.5\noutput_usd_per_mtok = 2.0\n{extra}\n"
        )
    }

    fn load(text: &str) -> Result<ModelRegistry, RegistryError> {
        ModelRegistry::from_toml_str_with_env(text, |name| {
            (name == "KEY").then(|| "sk-secret-value".to_string())
        })
    }

    #[test]
    fn loads_models_with_fallback_chains() {
        let text = [
            model(
                "a",
                "openai",
                "fallbacks = [\"b\", \"c\"]\nmax_retries = 0\nfirst_token_timeout_ms = 500",
            ),
            model(
                "b",
                "anthropic",
                "api_key_env = \"KEY\"\nfallbacks = [\"c\", \"faq\"]",
            ),
            model("c", "openai", "stream = false"),
        ]
        .concat();
        let registry = load(&text).unwrap();
        assert_eq!(registry.ids(), vec!["a", "b", "c", "faq"]);
        let a = registry.get("a").unwrap();
        assert_eq!(a.pricing, Pricing::new(1.5, 2.0));
        assert_eq!((a.context_window, a.max_output_tokens), (8000, 1000));
        assert!(registry.get("faq").is_some());
        assert_eq!(expand_ids(&text, "a"), vec!["a", "b", "c", "faq"]);
        assert_eq!(expand_ids(&text, "c"), vec!["c"]);
        assert!(load("").unwrap().get("faq").is_some());
    }

    fn expand_ids(text: &str, id: &str) -> Vec<String> {
        let file: ModelsFile = toml::from_str(text).unwrap();
        let configs = file.models.into_iter().map(|c| (c.id.clone(), c)).collect();
        let mut chain = Vec::new();
        expand(id, &configs, &mut Vec::new(), &mut chain).unwrap();
        chain
    }

    fn embedding(id: &str, extra: &str) -> String {
        format!(
            "[[embedding_models]]\nid = \"{id}\"\nprovider = \"openai\"\n\
             base_url = \"http://127.0.0.1:1/v1\"\nmodel = \"emb\"\ninput_usd_per_mtok = 0.02\n{extra}\n"
        )
    }

    #[test]
    fn loads_embedding_models_and_the_retrieval_choice() {
        let text = [
            embedding(
                "small",
                "api_key_env = \"KEY\"\ndimensions = 256\nbatch_size = 16\ntimeout_ms = 900",
            ),
            embedding("other", ""),
            "[retrieval]\nembedder = \"small\"\n".to_string(),
        ]
        .concat();
        let registry = load(&text).unwrap();
        assert_eq!(registry.embedding_model_ids(), vec!["other", "small"]);
        let small = registry.embedding_model("small").unwrap();
        assert_eq!(small.id, "small:emb@256");
        assert_eq!((small.batch_size, small.dimensions), (16, Some(256)));
        assert_eq!(small.pricing, Pricing::new(0.02, 0.0));
        assert_eq!(small.policy.first_token_timeout, Duration::from_millis(900));
        assert!(small.api_key.is_some());
        assert_eq!(registry.embedding_model("other").unwrap().batch_size, 64);
        match registry.retrieval_embedder() {
            Some(EmbedderConfig::OpenAi(c)) => assert_eq!(c.id, "small:emb@256"),
            other => panic!("{other:?}"),
        }
        let built = registry
            .retrieval_embedder()
            .unwrap()
            .build(Path::new("/nonexistent"))
            .unwrap();
        assert_eq!(built.id(), "small:emb@256");
        assert_eq!(built.dimensions(), Some(256));
        assert!(!format!("{registry:?}").contains("sk-secret"));

        let local = load("[retrieval]\nembedder = \"local\"\nmodels_dir = \"/m\"\n").unwrap();
        match local.retrieval_embedder() {
            Some(EmbedderConfig::Local { models_dir }) => {
                assert_eq!(models_dir.as_deref(), Some(Path::new("/m")))
            }
            other => panic!("{other:?}"),
        }
        // The model is not installed there: a load error naming the path.
        let err = local
            .retrieval_embedder()
            .unwrap()
            .build(Path::new("/x"))
            .unwrap_err();
        assert!(err.to_string().contains("/m/use-multilingual-v3"), "{err}");
        assert!(load("").unwrap().retrieval_embedder().is_none());
        assert!(load("[retrieval]\n")
            .unwrap()
            .retrieval_embedder()
            .is_none());
    }

    #[test]
    fn rejects_bad_embedding_models() {
        let err = |text: String| load(&text).unwrap_err().to_string();
        assert!(err("[retrieval]\nembedder = \"nope\"\n".into()).contains("\"nope\""));
        assert!(err(embedding("local", "")).contains("reserved"));
        assert!(err([embedding("a", ""), embedding("a", "")].concat()).contains("twice"));
        assert!(err(embedding("a", "api_key_env = \"NOPE\"")).contains("NOPE"));
        assert!(err(embedding("a", "batch_size = 0")).contains("positive"));
        assert!(err(embedding("a", "timeout_ms = 0")).contains("positive"));
        assert!(err(embedding("a", "colour = 1")).contains("colour"));
        assert!(err(embedding("a", "").replace("openai", "cohere")).contains("invalid"));
        assert!(err(embedding("a", "").replace("http://", "ftp://")).contains("base_url"));
    }

    #[test]
    fn rejects_bad_files_clearly() {
        let err = |text: String| load(&text).unwrap_err().to_string();
        assert!(
            err(model("a", "openai", "fallbacks = [\"zz\"]")).contains("unknown fallback \"zz\"")
        );
        let cycle = [
            model("a", "openai", "fallbacks = [\"b\"]"),
            model("b", "openai", "fallbacks = [\"a\"]"),
        ]
        .concat();
        assert_eq!(err(cycle), "fallback cycle: a -> b -> a");
        assert!(err(model("a", "openai", "fallbacks = [\"a\"]")).contains("cycle"));
        assert!(
            err([model("a", "openai", ""), model("a", "openai", "")].concat()).contains("twice")
        );
        assert!(err(model("faq", "openai", "")).contains("reserved"));
        let missing = err(model("a", "openai", "api_key_env = \"NOPE\""));
        assert!(
            missing.contains("NOPE") && missing.contains("not set"),
            "{missing}"
        );
        assert!(err(model("a", "anthropic", "")).contains("needs api_key_env"));
        assert!(err(model("a", "gemini", "")).contains("invalid models file"));
        assert!(err(model("a", "openai", "colour = 1")).contains("colour"));
        assert!(err(model("a", "openai", "first_token_timeout_ms = 0")).contains("positive"));
        let ok = load(&model("a", "anthropic", "api_key_env = \"KEY\"")).unwrap();
        assert!(!format!("{:?}", ok.get("a").unwrap()).contains("sk-secret"));
        let io = ModelRegistry::from_toml_file("/nonexistent/models.toml").unwrap_err();
        assert!(matches!(io, RegistryError::Io { .. }));
    }
}
