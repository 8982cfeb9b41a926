//! `tidechat-bench`: the load generator and orchestrator of tidechat's
//! benchmarks (docs/benchmarks.md). `run` starts everything itself: the
//! benchmark upstream, tidechat on SQLite and PostgreSQL, the LiteLLM peer,
//! and writes raw JSON under `target/bench/` and the tables in
//! docs/benchmarks.md.

mod load;
mod procs;
mod report;
mod scenarios;
mod upstream;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "tidechat-bench", version)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Clone, clap::Args)]
pub struct Common {
    /// quick: `just bench` (a few minutes); full: `just bench-full`.
    #[arg(long, value_enum, default_value_t = ProfileName::Quick)]
    pub profile: ProfileName,
    /// Directory of the release binaries `tidechat`.
    #[arg(long, default_value = "target/release")]
    pub bin_dir: PathBuf,
    /// Where raw results and logs go.
    #[arg(long, default_value = "target/bench")]
    pub out_dir: PathBuf,
    /// PostgreSQL server (databases `tcbench_*` are created and dropped on it).
    #[arg(
        long,
        env = "TIDECHAT_BENCH_PG",
        default_value = "postgres://root@127.0.0.1:5432"
    )]
    pub pg: String,
    /// The LiteLLM executable (`bench/litellm-install.sh` puts it here).
    #[arg(
        long,
        env = "TIDECHAT_BENCH_LITELLM",
        default_value = "target/bench/litellm-venv/bin/litellm"
    )]
    pub litellm: PathBuf,
    /// Record a `perf` profile of tidechat during the heaviest step.
    #[arg(long)]
    pub perf: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProfileName {
    Quick,
    Full,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Serve the benchmark upstream (OpenAI wire format, sentence pieces).
    Upstream {
        #[arg(long, default_value = "127.0.0.1:8099")]
        bind: SocketAddr,
    },
    /// Every scenario, then the report.
    Run {
        #[command(flatten)]
        common: Common,
        /// Only these scenarios (comma-separated: ttft,turns,streams,history,startup).
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
    },
    /// 1: time to first token, direct vs tidechat (SQLite, PostgreSQL) vs LiteLLM.
    Ttft(Common),
    /// 2: sustained persisted turns per second, and the pgbench ceiling.
    Turns(Common),
    /// 3: concurrent long-lived SSE streams: RSS per connection, lost frames.
    Streams(Common),
    /// 4: history page latency at many stored messages (PostgreSQL).
    History(Common),
    /// 5: idle RSS and start-up time to ready.
    Startup(Common),
    /// Rewrite docs/benchmarks.md from the JSON results in the out dir.
    Report {
        #[arg(long, default_value = "target/bench")]
        out_dir: PathBuf,
        #[arg(long, default_value = "docs/benchmarks.md")]
        doc: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match cli.command {
            Cmd::Upstream { bind } => upstream::serve(bind).await,
            Cmd::Run { common, only } => {
                let all = ["startup", "ttft", "turns", "streams", "history"];
                let chosen: Vec<&str> = if only.is_empty() {
                    all.to_vec()
                } else {
                    all.iter()
                        .copied()
                        .filter(|s| only.iter().any(|o| o == s))
                        .collect()
                };
                for s in chosen {
                    scenarios::run_one(s, &common).await?;
                }
                report::write(&common.out_dir, std::path::Path::new("docs/benchmarks.md"))
            }
            Cmd::Ttft(c) => scenarios::run_one("ttft", &c).await,
            Cmd::Turns(c) => scenarios::run_one("turns", &c).await,
            Cmd::Streams(c) => scenarios::run_one("streams", &c).await,
            Cmd::History(c) => scenarios::run_one("history", &c).await,
            Cmd::Startup(c) => scenarios::run_one("startup", &c).await,
            Cmd::Report { out_dir, doc } => report::write(&out_dir, &doc),
        }
    })
}
