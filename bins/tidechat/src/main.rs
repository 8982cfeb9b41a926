//! `tidechat`: the server and its operator commands. Configuration comes from
//! flags or the `TIDECHAT_*` environment variables (see the README table);
//! everything else lives in the crates this binary wires together.

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use serde_json::json;
use tidechat_engine::{Engine, EngineConfig, ImportFormat};
use tidechat_llm::ModelRegistry;
use tidechat_store::Store;

mod demo;
mod knowledge;
mod models;
mod redact;

#[derive(Parser)]
#[command(
    name = "tidechat",
    version,
    about = "Self-hosted, multi-tenant AI chat backend"
)]
struct Cli {
    #[command(flatten)]
    db: DbArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Args, Clone)]
struct DbArgs {
    /// `sqlite://PATH` (created on first run) or `postgres://USER@HOST/DB`.
    #[arg(
        long,
        env = "TIDECHAT_DATABASE_URL",
        default_value = "sqlite://./data/tidechat.db",
        hide_env_values = true,
        global = true
    )]
    database_url: String,
    /// Database connections per process.
    #[arg(
        long,
        env = "TIDECHAT_DB_MAX_CONNECTIONS",
        default_value_t = 8,
        global = true
    )]
    db_max_connections: usize,
    /// Log filter (`info`, `tidechat=debug,actix_web=warn`, ...).
    #[arg(long, env = "TIDECHAT_LOG", default_value = "info", global = true)]
    log: String,
    /// `text` or `json`.
    #[arg(
        long,
        env = "TIDECHAT_LOG_FORMAT",
        default_value = "text",
        global = true
    )]
    log_format: String,
    /// A models.toml file of LLM providers (the built-in `faq` model is always there).
    #[arg(long, env = "TIDECHAT_MODELS", global = true)]
    models: Option<PathBuf>,
    /// The embedding model for semantic retrieval: `local` (the built-in model,
    /// see `tidechat models install`), an `[[embedding_models]]` id of the
    /// models file, or `none`. Default: the models file's `[retrieval] embedder`,
    /// else the local model when it is installed, else none (lexical retrieval).
    #[arg(long, env = "TIDECHAT_EMBEDDER", global = true)]
    embedder: Option<String>,
    /// The local moderation classifier: `local` (default: USE-m3, shared with
    /// retrieval when that uses it too; only when the model is installed) or
    /// `off` (lexical moderation only, no model memory). See docs/guard.md.
    #[arg(
        long,
        env = "TIDECHAT_MODERATION_CLASSIFIER",
        global = true,
        default_value = "local"
    )]
    moderation_classifier: String,
    /// Let HTTP tools call loopback, private and link-local addresses.
    #[arg(long, env = "TIDECHAT_TOOLS_ALLOW_PRIVATE_URLS", global = true)]
    tools_allow_private_urls: bool,
    /// Requests per minute per organization when none is set.
    #[arg(
        long,
        env = "TIDECHAT_DEFAULT_RPM",
        default_value_t = 100,
        global = true
    )]
    default_rpm: u32,
    /// Concurrent streams and WebSocket connections per organization when none is set.
    #[arg(
        long,
        env = "TIDECHAT_DEFAULT_MAX_STREAMS",
        default_value_t = 50,
        global = true
    )]
    default_max_streams: u32,
}

#[derive(Subcommand)]
enum Command {
    /// Migrate, seed a demo organization on an empty database, and serve (the default).
    Serve(ServeArgs),
    /// Apply pending database migrations.
    Migrate,
    /// Manage organizations.
    Org {
        #[command(subcommand)]
        command: OrgCommand,
    },
    /// Manage API keys.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Manage FAQ entries.
    Faq {
        #[command(subcommand)]
        command: FaqCommand,
    },
    /// Install or list local models (the built-in embedding model).
    Models {
        #[command(subcommand)]
        command: models::ModelsCommand,
    },
    /// Manage knowledge documents (searched together with the FAQ).
    Doc {
        #[command(subcommand)]
        command: knowledge::DocCommand,
    },
    /// Print the OpenAPI document.
    Openapi,
}

#[derive(Args, Clone)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "TIDECHAT_BIND", default_value = "127.0.0.1:8080")]
    bind: String,
    /// Secret for signing session tokens; generated and stored in the database when unset.
    #[arg(long, env = "TIDECHAT_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    /// HTTP worker threads.
    #[arg(long, env = "TIDECHAT_WORKERS", default_value_t = 2)]
    workers: usize,
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "TIDECHAT_BODY_LIMIT_BYTES", default_value_t = tidechat_api::DEFAULT_BODY_LIMIT)]
    body_limit_bytes: usize,
    /// Seconds a client may take to send a request's head.
    #[arg(long, env = "TIDECHAT_HEADER_TIMEOUT_SECS", default_value_t = 5)]
    header_timeout_secs: u64,
    /// Seconds a client may take to send a request's body (408 after).
    #[arg(long, env = "TIDECHAT_BODY_TIMEOUT_SECS", default_value_t = 60)]
    body_timeout_secs: u64,
    /// Connections one client address may hold open on the public widget
    /// routes (0: no cap; trusted proxies are not counted).
    #[arg(long, env = "TIDECHAT_MAX_CONNECTIONS_PER_IP", default_value_t = 64)]
    max_connections_per_ip: usize,
    /// Seconds in-flight replies may take to finish on shutdown.
    #[arg(long, env = "TIDECHAT_SHUTDOWN_GRACE_SECS", default_value_t = 30)]
    shutdown_grace_secs: u64,
    /// Share rate and stream limits between processes through this Redis.
    #[arg(long, env = "TIDECHAT_REDIS_URL", hide_env_values = true)]
    redis_url: Option<String>,
    /// When Redis is unreachable: allow requests (true, with a warning) or refuse them (false).
    #[arg(long, env = "TIDECHAT_RATE_LIMIT_FAIL_OPEN", default_value_t = true, action = clap::ArgAction::Set)]
    rate_limit_fail_open: bool,
    /// Where widget image uploads are stored.
    #[arg(long, env = "TIDECHAT_UPLOAD_DIR", default_value = "./data/uploads")]
    upload_dir: PathBuf,
    /// The address clients reach this server at (e.g. `https://chat.example.com`),
    /// for links it hands out (uploaded images); default: the listen address.
    /// Request headers (`Host`, `X-Forwarded-Host`) are never used for links.
    #[arg(long, env = "TIDECHAT_PUBLIC_URL")]
    public_url: Option<String>,
    /// Reverse proxies (addresses or CIDR ranges, comma-separated) whose
    /// `X-Forwarded-For` is believed for the client address; without it the
    /// TCP peer is the client and `X-Forwarded-For` is ignored.
    #[arg(long, env = "TIDECHAT_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_proxy)]
    trusted_proxies: Vec<tidechat_api::IpNet>,
    /// Store widget uploads in this S3-compatible bucket (credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY).
    #[arg(long, env = "TIDECHAT_UPLOAD_S3_BUCKET")]
    upload_s3_bucket: Option<String>,
    /// S3-compatible endpoint (MinIO, R2, …); AWS when unset.
    #[arg(long, env = "TIDECHAT_UPLOAD_S3_ENDPOINT")]
    upload_s3_endpoint: Option<String>,
    #[arg(long, env = "TIDECHAT_UPLOAD_S3_REGION")]
    upload_s3_region: Option<String>,
    /// WebSocket messages per second per connection.
    #[arg(long, env = "TIDECHAT_WS_MESSAGES_PER_SECOND", default_value_t = 10)]
    ws_messages_per_second: u32,
    /// Do not create the demo organization on an empty database.
    #[arg(long, env = "TIDECHAT_NO_DEMO")]
    no_demo: bool,
}

impl Default for ServeArgs {
    fn default() -> Self {
        Self::parse_from::<_, &str>([])
    }
}

impl ServeArgs {
    fn parse_from<I, T>(args: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        #[derive(Parser)]
        struct Wrapper {
            #[command(flatten)]
            serve: ServeArgs,
        }
        let args = std::iter::once(std::ffi::OsString::from("tidechat"))
            .chain(args.into_iter().map(Into::into));
        Wrapper::parse_from(args).serve
    }
}

#[derive(Subcommand)]
enum OrgCommand {
    /// Create an organization with a workspace, a default persona and an API key.
    Create {
        #[arg(long)]
        name: String,
        /// Print one JSON object (`orgId`, `workspaceId`, `personaId`, `apiKey`).
        #[arg(long)]
        json: bool,
    },
    /// Show or change an organization's limits and monthly quotas (only the
    /// options given change; `--clear` unsets everything first). Prints the
    /// resulting limits as JSON.
    Limits {
        org: String,
        /// Requests per minute.
        #[arg(long)]
        rpm: Option<i64>,
        /// Open streams and WebSocket connections.
        #[arg(long)]
        max_streams: Option<i64>,
        /// Input + output tokens per calendar month (UTC).
        #[arg(long)]
        monthly_tokens: Option<i64>,
        /// Cost per calendar month, in US dollars (e.g. 25.50).
        #[arg(long)]
        monthly_cost_usd: Option<f64>,
        #[arg(long)]
        clear: bool,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Create an API key for an organization.
    Create {
        #[arg(long)]
        org: String,
        #[arg(long)]
        name: Option<String>,
        /// `admin` (everything) or `chat` (sessions and messages only).
        #[arg(long, default_value = "admin")]
        scope: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum FaqCommand {
    /// Import FAQ entries from a JSON or CSV file (all or nothing).
    Import {
        #[arg(long)]
        org: String,
        file: PathBuf,
    },
    /// Evaluate retrieval on labelled questions (a JSON array of
    /// `{query, expected, kind?, lang?, organizationId?}`, `expected` the id of
    /// the FAQ entry (`faq_…`) or chunk (`doc_…#N`) that answers, or null when
    /// nothing should): prints a Markdown report per mode and the threshold it
    /// suggests.
    Eval {
        #[arg(long)]
        org: String,
        file: PathBuf,
        /// Failures listed per mode.
        #[arg(long, default_value_t = 20)]
        failures: usize,
    },
}

fn init_logging(db: &DbArgs) {
    let filter = tracing_subscriber::EnvFilter::try_new(&db.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if db.log_format.eq_ignore_ascii_case("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn open_store(db: &DbArgs) -> Result<Store> {
    let store = Store::connect(&db.database_url, db.db_max_connections)
        .await
        .context("opening the database (TIDECHAT_DATABASE_URL)")?;
    store
        .migrate()
        .await
        .context("applying database migrations")?;
    Ok(store)
}

async fn engine(store: Store, global: &DbArgs, jwt_secret: Option<String>) -> Result<Engine> {
    let models = match &global.models {
        Some(path) => ModelRegistry::from_toml_file(path).with_context(|| {
            format!(
                "loading the model registry {} (TIDECHAT_MODELS)",
                path.display()
            )
        })?,
        None => ModelRegistry::builtin(),
    };
    let (embedder, local_embedder) = retrieval_embedder(&models, global.embedder.as_deref())?;
    let classifier = tidechat_guard::ClassifierConfig::from_env(|k| std::env::var(k).ok())
        .context("reading the TIDECHAT_CLASSIFIER_* settings")?
        .map(tidechat_guard::ExternalClassifier::new)
        .transpose()
        .context("setting up the moderation classifier")?;
    let config = EngineConfig {
        jwt_secret,
        default_requests_per_minute: global.default_rpm,
        default_max_concurrent_streams: global.default_max_streams,
        allow_private_tool_urls: global.tools_allow_private_urls,
        classifier,
        embedder,
        ..EngineConfig::default()
    };
    let guard = moderator(&global.moderation_classifier, local_embedder).await?;
    Ok(Engine::new(store, models, Arc::new(guard), config).await?)
}

/// The built-in guard, with the local classifier when `choice` is `local`
/// and USE-m3 is installed (reusing retrieval's instance when there is one).
async fn moderator(
    choice: &str,
    local: Option<tidechat_llm::embed::LocalEmbedder>,
) -> Result<tidechat_guard::Moderator> {
    use tidechat_llm::embed::{local::USE_M3_NAME, LocalEmbedder};
    match choice.trim() {
        "off" => {
            tracing::info!("moderation is lexical: TIDECHAT_MODERATION_CLASSIFIER=off");
            return Ok(tokio::task::spawn_blocking(tidechat_guard::Moderator::new).await?);
        }
        "local" => {}
        other => {
            anyhow::bail!("TIDECHAT_MODERATION_CLASSIFIER: `{other}` is neither `local` nor `off`")
        }
    }
    let dir = models::default_models_dir().join(USE_M3_NAME);
    let embedder = match local {
        Some(e) => Some(e),
        None if dir.is_dir() => Some(
            LocalEmbedder::load(&dir)
                .with_context(|| format!("loading the moderation model from {}", dir.display()))?,
        ),
        None => None,
    };
    let Some(embedder) = embedder else {
        tracing::info!(
            "moderation is lexical: no local model (install one with `tidechat models install use-multilingual-v3`)"
        );
        return Ok(tokio::task::spawn_blocking(tidechat_guard::Moderator::new).await?);
    };
    let guard = tokio::task::spawn_blocking(move || {
        tidechat_engine::moderation::moderator_with_local_classifier(embedder)
    })
    .await?
    .context("fitting the local moderation classifier")?;
    tracing::info!("moderation: lexical + local classifier (use-multilingual-v3)");
    Ok(guard)
}

/// Retrieval's embedder, and the same model as a [`LocalEmbedder`] when it is
/// the local one (shared with moderation).
///
/// [`LocalEmbedder`]: tidechat_llm::embed::LocalEmbedder
type RetrievalEmbedder = (
    Option<Arc<dyn tidechat_llm::Embedder>>,
    Option<tidechat_llm::embed::LocalEmbedder>,
);

/// The embedder retrieval uses (see `DbArgs::embedder`); says once which,
/// or that retrieval is lexical. A local model is also returned as itself,
/// so the moderation classifier can share the loaded weights.
fn retrieval_embedder(models: &ModelRegistry, choice: Option<&str>) -> Result<RetrievalEmbedder> {
    use tidechat_llm::EmbedderConfig;
    let models_dir = models::default_models_dir();
    let config = match choice.map(str::trim) {
        Some("none") => None,
        Some("local") => Some(EmbedderConfig::Local { models_dir: None }),
        Some(id) if !id.is_empty() => Some(EmbedderConfig::OpenAi(
            models
                .embedding_model(id)
                .with_context(|| {
                    format!("TIDECHAT_EMBEDDER: `{id}` is neither `local`, `none` nor an [[embedding_models]] id of the models file")
                })?
                .clone(),
        )),
        _ => match models.retrieval_embedder() {
            Some(config) => Some(config.clone()),
            None if models_dir
                .join(tidechat_llm::embed::local::USE_M3_NAME)
                .is_dir() =>
            {
                Some(EmbedderConfig::Local { models_dir: None })
            }
            None => None,
        },
    };
    let Some(config) = config else {
        tracing::info!(
            "retrieval is lexical: no embedding model (install one with `tidechat models install use-multilingual-v3`, or configure an endpoint; see the README)"
        );
        return Ok((None, None));
    };
    let context = "setting up the embedding model (TIDECHAT_EMBEDDER, [retrieval] embedder)";
    let (embedder, local): (Arc<dyn tidechat_llm::Embedder>, _) = match &config {
        EmbedderConfig::Local { models_dir: dir } => {
            let dir = dir
                .as_deref()
                .unwrap_or(&models_dir)
                .join(tidechat_llm::embed::local::USE_M3_NAME);
            let local = tidechat_llm::embed::LocalEmbedder::load(&dir).context(context)?;
            (Arc::new(local.clone()), Some(local))
        }
        _ => (config.build(&models_dir).context(context)?, None),
    };
    tracing::info!(
        embedder = embedder.id(),
        "retrieval is hybrid: lexical + embeddings"
    );
    Ok((Some(embedder), local))
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    if let Some(Command::Openapi) = cli.command {
        print!("{}", tidechat_api::openapi::json());
        return Ok(());
    }
    init_logging(&cli.db);
    match cli.command {
        None => serve(&cli.db, ServeArgs::default()).await,
        Some(Command::Serve(args)) => serve(&cli.db, args).await,
        Some(Command::Migrate) => {
            open_store(&cli.db).await?;
            println!("migrations applied");
            Ok(())
        }
        Some(Command::Org {
            command: OrgCommand::Create { name, json },
        }) => {
            let engine = engine(open_store(&cli.db).await?, &cli.db, None).await?;
            let b = engine.create_org(&name).await?;
            if json {
                println!(
                    "{}",
                    json!({"orgId": b.org.id.as_str(), "workspaceId": b.workspace.id.as_str(),
                           "personaId": b.persona.id.as_str(), "apiKeyId": b.key.id.as_str(), "apiKey": b.api_key})
                );
            } else {
                println!(
                    "organization {} ({})\nworkspace    {}\npersona      {}\nAPI key      {}",
                    b.org.name, b.org.id, b.workspace.id, b.persona.id, b.api_key
                );
            }
            Ok(())
        }
        Some(Command::Org {
            command:
                OrgCommand::Limits {
                    org,
                    rpm,
                    max_streams,
                    monthly_tokens,
                    monthly_cost_usd,
                    clear,
                },
        }) => {
            let engine = engine(open_store(&cli.db).await?, &cli.db, None).await?;
            let (org_id, _) = engine.org_workspace(&org).await?;
            let mut limits = if clear {
                Default::default()
            } else {
                engine.org_limits(&org_id).await?
            };
            if rpm.is_some() {
                limits.requests_per_minute = rpm;
            }
            if max_streams.is_some() {
                limits.max_concurrent_streams = max_streams;
            }
            if monthly_tokens.is_some() {
                limits.monthly_tokens = monthly_tokens;
            }
            if let Some(usd) = monthly_cost_usd {
                if !usd.is_finite() || usd < 0.0 {
                    bail!("--monthly-cost-usd must be 0 or more");
                }
                limits.monthly_cost_usd_micros = Some((usd * 1_000_000.0).round() as i64);
            }
            let limits = engine.set_limits_for(&org_id, None, limits).await?;
            println!(
                "{}",
                json!({"orgId": org_id.as_str(), "requestsPerMinute": limits.requests_per_minute,
                       "maxConcurrentStreams": limits.max_concurrent_streams,
                       "monthlyTokens": limits.monthly_tokens,
                       "monthlyCostUsdMicros": limits.monthly_cost_usd_micros})
            );
            Ok(())
        }
        Some(Command::Key {
            command:
                KeyCommand::Create {
                    org,
                    name,
                    scope,
                    json,
                },
        }) => {
            let scope = tidechat_domain::KeyScope::parse(&scope)
                .with_context(|| format!("--scope must be admin or chat, not `{scope}`"))?;
            let engine = engine(open_store(&cli.db).await?, &cli.db, None).await?;
            let (org_id, ws) = engine.org_workspace(&org).await?;
            let created = engine
                .create_key_for_org(&org_id, &ws, name.as_deref(), scope)
                .await?;
            if json {
                println!(
                    "{}",
                    json!({"keyId": created.key.id.as_str(), "orgId": org_id.as_str(), "prefix": created.key.prefix, "apiKey": created.secret})
                );
            } else {
                println!("{}", created.secret);
            }
            Ok(())
        }
        Some(Command::Faq {
            command: FaqCommand::Import { org, file },
        }) => {
            let engine = engine(open_store(&cli.db).await?, &cli.db, None).await?;
            let (org_id, ws) = engine.org_workspace(&org).await?;
            let content =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let format = ImportFormat::detect(file.to_str(), &content);
            let drafts = format.parse(&content)?;
            let entries = engine.import_faqs_for(&org_id, &ws, drafts).await?;
            println!("imported {} FAQ entries", entries.len());
            Ok(())
        }
        Some(Command::Faq {
            command:
                FaqCommand::Eval {
                    org,
                    file,
                    failures,
                },
        }) => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let queries = tidechat_llm::faq::eval::parse_queries(&text)
                .with_context(|| format!("reading {}", file.display()))?;
            let engine = engine(open_store(&cli.db).await?, &cli.db, None).await?;
            let (org_id, ws) = engine.org_workspace(&org).await?;
            for report in engine.evaluate_retrieval(&org_id, &ws, &queries).await? {
                println!("{}", report.to_markdown(failures));
                if report.suggested_threshold().is_none() {
                    println!("No threshold suggested: label some questions the FAQ cannot answer (`\"expected\": null`).\n");
                }
            }
            Ok(())
        }
        Some(Command::Models { command }) => models::run(command),
        Some(Command::Doc { command }) => {
            let engine = engine(open_store(&cli.db).await?, &cli.db, None).await?;
            knowledge::run(&engine, command).await
        }
        Some(Command::Openapi) => Ok(()),
    }
}

async fn serve(db: &DbArgs, args: ServeArgs) -> Result<()> {
    let store = open_store(db).await?;
    // Build the tokenizer now rather than on the first request.
    let warm = tokio::task::spawn_blocking(tidechat_llm::tokens::warm_up);
    let engine = engine(store, db, args.jwt_secret.clone()).await?;
    let _ = warm.await;
    let listener =
        TcpListener::bind(&args.bind).with_context(|| format!("binding {}", args.bind))?;
    let address = listener.local_addr()?;
    if !args.no_demo && engine.organization_count().await? == 0 {
        demo::seed(&engine, &address.to_string()).await?;
    }
    if args.workers == 0 {
        bail!("TIDECHAT_WORKERS must be at least 1");
    }
    let grace = Duration::from_secs(args.shutdown_grace_secs);
    let limiter = match &args.redis_url {
        Some(url) => {
            let mut config = tidechat_limits::RedisConfig::new(url.clone());
            config.fail_open = args.rate_limit_fail_open;
            tidechat_limits::Limiter::new(tidechat_limits::Backend::Redis(config))
                .await
                .context("TIDECHAT_REDIS_URL")?
        }
        None => tidechat_limits::Limiter::new(tidechat_limits::Backend::InProcess).await?,
    };
    tracing::info!(backend = limiter.backend_name(), "rate limits");
    let options = tidechat_api::ServerOptions {
        limiter: Some(limiter),
        ws_messages_per_second: args.ws_messages_per_second,
        upload_dir: args.upload_dir.clone(),
        public_url: args.public_url.clone(),
        trusted_proxies: args.trusted_proxies.clone(),
        upload_s3: args
            .upload_s3_bucket
            .clone()
            .map(|bucket| tidechat_api::S3Uploads {
                bucket,
                endpoint: args.upload_s3_endpoint.clone(),
                region: args.upload_s3_region.clone(),
                access_key_id: None,
                secret_access_key: None,
            }),
        body_limit: args.body_limit_bytes,
        header_timeout: Duration::from_secs(args.header_timeout_secs.max(1)),
        body_timeout: Duration::from_secs(args.body_timeout_secs.max(1)),
        max_connections_per_ip: args.max_connections_per_ip,
        workers: args.workers,
        shutdown_grace: grace,
        ..Default::default()
    };
    tracing::info!(%address, database = %redact::redacted_url(&db.database_url), "tidechat listening");
    tidechat_api::server(engine.clone(), listener, options)
        .await?
        .await?;
    tracing::info!("HTTP server stopped; waiting for replies in progress");
    engine.shutdown(grace).await;
    tracing::info!("bye");
    Ok(())
}

/// A trusted proxy: an address (`10.0.0.5`) or a range (`10.0.0.0/8`).
fn parse_proxy(value: &str) -> std::result::Result<tidechat_api::IpNet, String> {
    let value = value.trim();
    value
        .parse::<tidechat_api::IpNet>()
        .or_else(|_| {
            value
                .parse::<std::net::IpAddr>()
                .map(tidechat_api::IpNet::from)
        })
        .map_err(|_| format!("`{value}` is not an IP address or CIDR range"))
}
