//! The five scenarios of issue 9. Each starts the processes it needs on fresh
//! databases, measures, stops them and writes `target/bench/<name>.json`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::{json, Value};
use tokio::process::Command;
use tokio::time::Instant;

use crate::load::{self, Expect, Samples, StepResult, Target};
use crate::procs::{self, Db, Proc, Tidechat, TidechatOpts};
use crate::{Common, ProfileName};

/// The sizes of a run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Profile {
    pub name: ProfileName,
    pub one_stream_samples: usize,
    pub ttft_rates: Vec<f64>,
    pub ttft_step_secs: u64,
    pub ttft_rounds: usize,
    pub peer_rates: Vec<f64>,
    pub turn_rates: Vec<f64>,
    pub turn_step_secs: u64,
    pub pgbench_secs: u64,
    pub stream_levels: Vec<usize>,
    pub stream_open_rate: f64,
    pub stream_gap_ms: u64,
    pub stream_chunks: u32,
    pub history_total: i64,
    pub history_session: i64,
    pub history_rate: f64,
    pub history_secs: u64,
    pub startup_runs: usize,
}

impl Profile {
    pub fn of(name: ProfileName) -> Self {
        match name {
            ProfileName::Quick => Self {
                name,
                one_stream_samples: 8,
                ttft_rates: vec![200.0, 1000.0],
                ttft_step_secs: 3,
                ttft_rounds: 1,
                peer_rates: vec![10.0, 25.0],
                turn_rates: vec![100.0, 300.0, 600.0],
                turn_step_secs: 3,
                pgbench_secs: 5,
                stream_levels: vec![250, 1000],
                stream_open_rate: 500.0,
                stream_gap_ms: 500,
                stream_chunks: 24,
                history_total: 100_000,
                history_session: 20_000,
                history_rate: 100.0,
                history_secs: 3,
                startup_runs: 2,
            },
            ProfileName::Full => Self {
                name,
                one_stream_samples: 60,
                ttft_rates: vec![100.0, 200.0, 400.0, 700.0, 1000.0, 1400.0],
                ttft_step_secs: 10,
                ttft_rounds: 2,
                peer_rates: vec![5.0, 10.0, 20.0, 30.0, 40.0],
                turn_rates: vec![
                    100.0, 200.0, 400.0, 600.0, 800.0, 1000.0, 1300.0, 1600.0, 2000.0,
                ],
                turn_step_secs: 10,
                pgbench_secs: 20,
                stream_levels: vec![1000, 5000, 10000],
                stream_open_rate: 500.0,
                stream_gap_ms: 1000,
                stream_chunks: 75,
                history_total: 1_000_000,
                history_session: 200_000,
                history_rate: 200.0,
                history_secs: 10,
                startup_runs: 5,
            },
        }
    }
}

/// What every scenario shares: paths, the client, the upstream.
pub struct Env {
    pub common: Common,
    pub profile: Profile,
    pub client: reqwest::Client,
    pub tidechat_bin: PathBuf,
    pub models: PathBuf,
    pub logs: PathBuf,
    pub upstream: Proc,
    pub upstream_base: String,
}

/// "Sustained": p99 under 50 ms and under 0.1 % errors.
pub fn sustained(r: &StepResult, p99_ms: f64) -> bool {
    r.sent > 0 && r.error_rate() < 0.001 && p99_ms < 50.0
}

pub const PACED: &str = "bench?chunks=64&gap_ms=20";
pub const FAST: &str = "bench?chunks=16";

impl Env {
    async fn new(common: &Common) -> anyhow::Result<Self> {
        let profile = Profile::of(common.profile);
        let out = &common.out_dir;
        std::fs::create_dir_all(out)?;
        let logs = out.join("logs");
        let client = load::client()?;
        let tidechat_bin = common.bin_dir.join("tidechat");
        if !tidechat_bin.exists() {
            bail!(
                "{} is missing: cargo build --release -p tidechat",
                tidechat_bin.display()
            );
        }
        let port = procs::free_port()?;
        let exe = std::env::current_exe()?;
        let mut cmd = Command::new(exe);
        cmd.args(["upstream", "--bind", &format!("127.0.0.1:{port}")]);
        let upstream = procs::spawn("upstream", &mut cmd, &logs)?;
        let upstream_base = format!("http://127.0.0.1:{port}/v1");
        procs::wait_ready(
            &client,
            &format!("{upstream_base}/health"),
            Duration::from_secs(10),
            Duration::from_millis(5),
        )
        .await?;
        let models = out.join("models.toml");
        let long = format!(
            "bench?chunks={}&gap_ms={}",
            profile.stream_chunks, profile.stream_gap_ms
        );
        let mut toml = String::new();
        for (id, upstream_model) in [("paced", PACED), ("fast", FAST), ("long", long.as_str())] {
            toml.push_str(&format!(
                "[[models]]\nid = \"{id}\"\nprovider = \"openai\"\nbase_url = \"{upstream_base}\"\n\
                 upstream_model = \"{upstream_model}\"\ncontext_window = 8192\nmax_output_tokens = 1024\n\
                 input_usd_per_mtok = 1.0\noutput_usd_per_mtok = 2.0\nidle_timeout_ms = 120000\n\n"
            ));
        }
        std::fs::write(&models, toml)?;
        Ok(Self {
            common: common.clone(),
            profile,
            client,
            tidechat_bin,
            models,
            logs,
            upstream,
            upstream_base,
        })
    }

    fn db(&self, kind: &str, tag: &str) -> Db {
        match kind {
            "sqlite" => Db::Sqlite(
                std::env::current_dir()
                    .unwrap_or_default()
                    .join(&self.common.out_dir)
                    .join("db")
                    .join(format!("{tag}.db")),
            ),
            _ => Db::Postgres {
                server: self.common.pg.clone(),
                name: format!("tcbench_{tag}"),
            },
        }
    }

    async fn tidechat(&self, kind: &str, tag: &str) -> anyhow::Result<Tidechat> {
        procs::start_tidechat(
            &self.client,
            TidechatOpts {
                bin: &self.tidechat_bin,
                db: self.db(kind, tag),
                port: procs::free_port()?,
                models: &self.models,
                log_dir: &self.logs,
                name: format!("tidechat-{tag}"),
            },
        )
        .await
    }

    fn direct(&self, model: &str, stream: bool) -> Target {
        Target::OpenAi {
            key: None,
            base: self.upstream_base.clone(),
            model: model.to_owned(),
            stream,
        }
    }

    fn known_pids(&self, extra: &[(u32, &'static str)]) -> Vec<(u32, &'static str)> {
        let mut v = vec![(self.upstream.pid, "upstream")];
        v.extend_from_slice(extra);
        v
    }

    /// One open-loop step with the CPU time each process used during it.
    async fn step(
        &self,
        target: &Target,
        rate: f64,
        secs: u64,
        known: &[(u32, &'static str)],
        expect: Expect,
    ) -> Samples {
        settle(known).await;
        let before = procs::cpu_by_group(known);
        let mut s = load::open_loop(
            &self.client,
            target,
            rate,
            Duration::from_secs(secs),
            Duration::from_secs(30),
            expect,
            50_000,
        )
        .await;
        s.cpu_s = procs::cpu_delta(&before, &procs::cpu_by_group(known));
        // Let write-behind work and closed connections settle between steps.
        tokio::time::sleep(Duration::from_millis(500)).await;
        s
    }

    fn save(&self, name: &str, mut v: Value) -> anyhow::Result<()> {
        v["scenario"] = json!(name);
        v["profile"] = json!(self.profile);
        v["finished_at"] = json!(chrono::Utc::now().to_rfc3339());
        v["machine"] = machine();
        let path = self.common.out_dir.join(format!("{name}.json"));
        std::fs::write(&path, serde_json::to_string_pretty(&v)?)?;
        eprintln!("wrote {}", path.display());
        Ok(())
    }
}

/// Waits (up to 60 s) until the processes of `known` together use under 10 %
/// of a core over 0.5 s: an overloaded step leaves work queued (abandoned
/// requests still being answered) that would otherwise run into the next
/// step and distort it.
async fn settle(known: &[(u32, &'static str)]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let before = procs::cpu_by_group(known);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let used: f64 = procs::cpu_delta(&before, &procs::cpu_by_group(known))
            .iter()
            .filter(|(k, _)| known.iter().any(|(_, n)| n == k))
            .map(|(_, v)| *v)
            .sum();
        if used < 0.05 || Instant::now() > deadline {
            return;
        }
    }
}

pub async fn run_one(name: &str, common: &Common) -> anyhow::Result<()> {
    let env = Env::new(common).await?;
    eprintln!("== scenario {name} ({:?}) ==", env.profile.name);
    let started = Instant::now();
    let v = match name {
        "ttft" => ttft(&env).await?,
        "turns" => turns(&env).await?,
        "streams" => streams(&env).await?,
        "history" => history(&env).await?,
        "startup" => startup(&env).await?,
        other => bail!("unknown scenario {other}"),
    };
    let mut v = v;
    v["seconds"] = json!(started.elapsed().as_secs_f64());
    env.save(name, v)?;
    env.upstream.stop().await;
    Ok(())
}

// ------------------------------------------------------------------ peer

async fn start_litellm(env: &Env) -> anyhow::Result<Proc> {
    let bin = &env.common.litellm;
    if !bin.exists() {
        bail!(
            "{} not found (bench/litellm-install.sh installs it)",
            bin.display()
        );
    }
    let port = procs::free_port()?;
    let mut cmd = Command::new(bin);
    cmd.args([
        "--config",
        "bench/litellm.yaml",
        "--host",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--num_workers",
        "2",
    ])
    .env("TIDECHAT_BENCH_UPSTREAM", &env.upstream_base)
    .env("LITELLM_MASTER_KEY", litellm_key())
    .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    .env("LITELLM_TELEMETRY", "False")
    .env("LITELLM_LOG", "ERROR")
    .env("DISABLE_ADMIN_UI", "True")
    .env("NO_DOCS", "True")
    .env_remove("DATABASE_URL");
    let mut p = procs::spawn("litellm", &mut cmd, &env.logs)?;
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    loop {
        if let Some(status) = p.child.try_wait()? {
            bail!("LiteLLM exited during start-up ({status}); see target/bench/logs/litellm.log");
        }
        if procs::wait_ready(
            &env.client,
            &format!("{base}/health/liveliness"),
            Duration::ZERO,
            Duration::ZERO,
        )
        .await
        .is_ok()
        {
            break;
        }
        if started.elapsed() > Duration::from_secs(180) {
            bail!("LiteLLM not ready after 180 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Both workers must be up: warm each one with a few requests.
    let target = Target::OpenAi {
        key: Some(litellm_key()),
        base: format!("{base}/v1"),
        model: "fast".into(),
        stream: false,
    };
    for i in 0..8 {
        let o = load::one(
            &env.client,
            &target,
            i,
            Instant::now(),
            Duration::from_secs(30),
            Expect::default(),
        )
        .await;
        if let Some(e) = o.error {
            bail!("litellm warm-up request failed: {e}");
        }
    }
    std::env::set_var("TIDECHAT_BENCH_LITELLM_BASE", &base);
    Ok(p)
}

/// The peer refuses to start without a master key; this one lives only as
/// long as the run, on loopback.
fn litellm_key() -> String {
    format!("sk-tidechat-bench-{}", std::process::id())
}

fn litellm_base() -> String {
    std::env::var("TIDECHAT_BENCH_LITELLM_BASE").unwrap_or_default()
}

// ------------------------------------------------------------------ 1. ttft

async fn ttft(env: &Env) -> anyhow::Result<Value> {
    let p = &env.profile;
    let sqlite = env.tidechat("sqlite", "ttft_sqlite").await?;
    let pg = env.tidechat("postgres", "ttft_pg").await?;
    let max_rate = p.ttft_rates.iter().copied().fold(0.0, f64::max);
    // Enough sessions that concurrent turns rarely share one (each stream
    // lasts ~1.3 s).
    let n_sessions = ((max_rate * 2.0) as usize).max(64);
    let s_sqlite = Arc::new(sqlite.sessions(&env.client, n_sessions, 32).await?);
    let s_pg = Arc::new(pg.sessions(&env.client, n_sessions, 32).await?);
    let peer = match start_litellm(env).await {
        Ok(p) => Some(p),
        Err(e) => {
            eprintln!("peer not run: {e:#}");
            None
        }
    };
    let peer_error = if peer.is_none() {
        Some("LiteLLM did not start (see target/bench/logs/litellm.log)")
    } else {
        None
    };
    let tc = |t: &Tidechat, s: &Arc<Vec<String>>| Target::Tidechat {
        base: t.base.clone(),
        key: t.key.clone(),
        sessions: s.clone(),
        model: "paced".into(),
        stream: true,
    };
    let mut targets: Vec<(&str, Target)> = vec![
        ("direct", env.direct(PACED, true)),
        ("tidechat-sqlite", tc(&sqlite, &s_sqlite)),
        ("tidechat-postgres", tc(&pg, &s_pg)),
    ];
    if peer.is_some() {
        targets.push((
            "litellm",
            Target::OpenAi {
                key: Some(litellm_key()),
                base: format!("{}/v1", litellm_base()),
                model: "paced".into(),
                stream: true,
            },
        ));
    }
    let mut known = env.known_pids(&[
        (sqlite.proc.pid, "tidechat-sqlite"),
        (pg.proc.pid, "tidechat-postgres"),
    ]);
    if let Some(pp) = &peer {
        known.push((pp.pid, "litellm"));
    }

    // Warm every path (connections, caches) before measuring.
    for (_, t) in &targets {
        for i in 0..3 {
            let _ = load::one(
                &env.client,
                t,
                i,
                Instant::now(),
                Duration::from_secs(30),
                Expect::default(),
            )
            .await;
        }
    }

    // One stream at a time, interleaved sample by sample: A, B, C, D, A, …
    eprintln!("one stream × {} per target", p.one_stream_samples);
    let mut one: BTreeMap<String, Samples> = BTreeMap::new();
    let expect = Expect {
        chunks: Some(64),
        stall_after: None,
    };
    for i in 0..p.one_stream_samples {
        for (name, t) in &targets {
            let o = load::one(
                &env.client,
                t,
                i,
                Instant::now(),
                Duration::from_secs(30),
                expect,
            )
            .await;
            one.entry((*name).to_owned()).or_default().push(o);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let one: BTreeMap<String, StepResult> = one
        .iter()
        .map(|(k, s)| (k.clone(), s.result(k, 0.0)))
        .collect();

    // Fixed arrival rates: direct and tidechat, interleaved by round.
    let mut rates = Vec::new();
    let mut perf = Value::Null;
    for &rate in &p.ttft_rates {
        let mut merged: BTreeMap<String, Samples> = BTreeMap::new();
        for round in 0..p.ttft_rounds {
            for (name, t) in targets.iter().filter(|(n, _)| *n != "litellm") {
                eprintln!("ttft rate {rate}/s round {round} {name}");
                let profile_this = env.common.perf
                    && *name == "tidechat-postgres"
                    && rate == max_rate
                    && round == 0;
                let rec = if profile_this {
                    perf_start(env, pg.proc.pid, p.ttft_step_secs, "ttft-postgres", &known)
                        .await
                        .ok()
                } else {
                    None
                };
                let s = env.step(t, rate, p.ttft_step_secs, &known, expect).await;
                if let Some(rec) = rec {
                    perf = perf_finish(rec)
                        .await
                        .unwrap_or_else(|e| json!({"error": format!("{e:#}")}));
                }
                merged.entry((*name).to_owned()).or_default().merge(s);
            }
        }
        let results: BTreeMap<String, StepResult> = merged
            .iter()
            .map(|(k, s)| (k.clone(), s.result(k, rate)))
            .collect();
        for r in results.values() {
            eprintln!(
                "  {:<18} sent {:>6} err {:>5} ttft p50 {:>8.2} p99 {:>8.2} ms lag p99 {:.2} ms",
                r.target, r.sent, r.errors, r.ttft.p50_ms, r.ttft.p99_ms, r.lag.p99_ms
            );
        }
        rates.push(json!({"rate": rate, "results": results}));
    }

    // The peer's sustainable rate (it saturates far below tidechat's rates).
    let mut peer_steps = Vec::new();
    if peer.is_some() {
        let t = Target::OpenAi {
            key: Some(litellm_key()),
            base: format!("{}/v1", litellm_base()),
            model: "paced".into(),
            stream: true,
        };
        for &rate in &p.peer_rates {
            eprintln!("peer rate {rate}/s");
            let s = env
                .step(&t, rate, p.ttft_step_secs.max(5), &known, expect)
                .await;
            let r = s.result("litellm", rate);
            eprintln!(
                "  litellm sent {} err {} ttft p50 {:.2} p99 {:.2}",
                r.sent, r.errors, r.ttft.p50_ms, r.ttft.p99_ms
            );
            let ok = sustained(&r, r.ttft.p99_ms);
            peer_steps.push(r);
            if !ok {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    let rss =
        json!({"tidechat-sqlite": sqlite.proc.rss_kib(), "tidechat-postgres": pg.proc.rss_kib()});
    if let Some(pp) = peer {
        pp.stop().await;
    }
    sqlite.proc.stop().await;
    pg.proc.stop().await;
    pg.db.drop_db().await;
    Ok(json!({
        "definition": "time from the request's scheduled start to the first byte of the first content event: \
                       direct/LiteLLM = first OpenAI chunk with non-empty delta.content; tidechat = first `event: delta`",
        "one_stream": one,
        "rates": rates,
        "peer": peer_steps,
        "peer_error": peer_error,
        "perf": perf,
        "rss_after_kib": rss,
    }))
}

// ------------------------------------------------------------------ perf

struct PerfRec {
    child: tokio::process::Child,
    file: PathBuf,
}

/// Starts recording once the measured processes are idle, so the recording
/// covers the step that follows (whose own settle then returns at once),
/// not the wait for an earlier step's backlog.
async fn perf_start(
    env: &Env,
    pid: u32,
    secs: u64,
    tag: &str,
    known: &[(u32, &'static str)],
) -> anyhow::Result<PerfRec> {
    settle(known).await;
    let file = env.common.out_dir.join(format!("perf-{tag}.data"));
    let child = Command::new("perf")
        .args(["record", "-F", "499", "-g", "-o"])
        .arg(&file)
        .args(["-p", &pid.to_string(), "--", "sleep", &secs.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("perf")?;
    Ok(PerfRec { child, file })
}

async fn perf_finish(mut rec: PerfRec) -> anyhow::Result<Value> {
    rec.child.wait().await?;
    // Self time only: release builds have no frame pointers, so user-space
    // call chains do not unwind; flat symbols and the kernel share still say
    // where the CPU goes (syscalls per frame, scheduling, our own code).
    let report = |sort: &'static str, limit: &'static str| {
        let file = rec.file.clone();
        async move {
            let out = Command::new("perf")
                .args([
                    "report",
                    "--stdio",
                    "--no-children",
                    "-g",
                    "none",
                    "--percent-limit",
                    limit,
                    "--sort",
                    sort,
                    "-i",
                ])
                .arg(&file)
                .output()
                .await?;
            Ok::<Vec<String>, anyhow::Error>(
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
                    .map(|l| {
                        l.split_whitespace()
                            .filter(|w| *w != "-")
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .map(|l| l.chars().take(140).collect())
                    .take(25)
                    .collect(),
            )
        }
    };
    let by_dso = report("dso", "1").await?;
    let top = report("dso,symbol", "1").await?;
    Ok(json!({"file": rec.file, "by_dso": by_dso, "top": top}))
}

// ------------------------------------------------------------------ 2. turns

async fn turns(env: &Env) -> anyhow::Result<Value> {
    let p = &env.profile;
    let sqlite = env.tidechat("sqlite", "turns_sqlite").await?;
    let pg = env.tidechat("postgres", "turns_pg").await?;
    let s_sqlite = Arc::new(sqlite.sessions(&env.client, 512, 32).await?);
    let s_pg = Arc::new(pg.sessions(&env.client, 512, 32).await?);
    let known = env.known_pids(&[
        (sqlite.proc.pid, "tidechat-sqlite"),
        (pg.proc.pid, "tidechat-postgres"),
    ]);
    let mut modes = Vec::new();
    let mut ok_turns: BTreeMap<&str, u64> = BTreeMap::new();
    let mut perf = Value::Null;
    for stream in [false, true] {
        let mode = if stream { "streaming" } else { "non-streaming" };
        let targets = [
            (
                "tidechat-sqlite",
                Target::Tidechat {
                    base: sqlite.base.clone(),
                    key: sqlite.key.clone(),
                    sessions: s_sqlite.clone(),
                    model: "fast".into(),
                    stream,
                },
            ),
            (
                "tidechat-postgres",
                Target::Tidechat {
                    base: pg.base.clone(),
                    key: pg.key.clone(),
                    sessions: s_pg.clone(),
                    model: "fast".into(),
                    stream,
                },
            ),
        ];
        let mut alive = [true, true];
        let mut steps: Vec<StepResult> = Vec::new();
        let mut best: BTreeMap<&str, f64> = BTreeMap::new();
        for &rate in &p.turn_rates {
            for (i, (name, t)) in targets.iter().enumerate() {
                if !alive[i] {
                    continue;
                }
                eprintln!("turns {mode} {rate}/s {name}");
                let profile_this =
                    env.common.perf && *name == "tidechat-postgres" && stream && perf.is_null();
                let rec = if profile_this && rate >= 300.0 {
                    perf_start(env, pg.proc.pid, p.turn_step_secs, "turns-postgres", &known)
                        .await
                        .ok()
                } else {
                    None
                };
                let s = env
                    .step(
                        t,
                        rate,
                        p.turn_step_secs,
                        &known,
                        Expect {
                            chunks: Some(16),
                            stall_after: None,
                        },
                    )
                    .await;
                if let Some(rec) = rec {
                    perf = perf_finish(rec)
                        .await
                        .unwrap_or_else(|e| json!({"error": format!("{e:#}")}));
                }
                let r = s.result(name, rate);
                eprintln!(
                    "  sent {} err {} p50 {:.2} p99 {:.2} ms",
                    r.sent, r.errors, r.total.p50_ms, r.total.p99_ms
                );
                *ok_turns.entry(name).or_default() += r.ok;
                if sustained(&r, r.total.p99_ms) {
                    best.insert(name, rate);
                } else {
                    alive[i] = false;
                }
                steps.push(r);
            }
            if !alive.iter().any(|a| *a) {
                break;
            }
        }
        modes.push(json!({"mode": mode, "steps": steps, "best": best}));
    }
    // Every successful turn stored: a user and an assistant message each.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut rows = BTreeMap::new();
    for (name, t) in [("tidechat-sqlite", &sqlite), ("tidechat-postgres", &pg)] {
        let messages: i64 =
            t.db.scalar("SELECT count(*) FROM messages")
                .await?
                .parse()
                .unwrap_or(-1);
        let counted: i64 =
            t.db.scalar("SELECT COALESCE(sum(message_count), 0) FROM sessions")
                .await?
                .parse()
                .unwrap_or(-1);
        let expected = 2 * ok_turns.get(name).copied().unwrap_or(0) as i64;
        rows.insert(name, json!({"messages": messages, "session_message_count": counted, "expected": expected, "equal": messages == expected && counted == expected}));
    }
    sqlite.proc.stop().await;
    pg.proc.stop().await;
    pg.db.drop_db().await;
    let pgbench = pgbench(env)
        .await
        .unwrap_or_else(|e| json!({"error": format!("{e:#}")}));
    Ok(json!({
        "definition": "latency = scheduled start to the complete response (non-streaming: the JSON body; streaming: the `done` event); upstream reply: 16 pieces, no delay",
        "modes": modes,
        "rows": rows,
        "pgbench": pgbench,
        "perf": perf,
    }))
}

/// The persistence ceiling: bench/turn.sql (the two `append_message`
/// transactions of one turn) with as many clients as tidechat has database
/// connections.
async fn pgbench(env: &Env) -> anyhow::Result<Value> {
    let db = env.db("postgres", "pgbench");
    db.fresh().await?;
    let mut migrate = Command::new(&env.tidechat_bin);
    procs::tidechat_env(&mut migrate, &db, &env.models);
    let st = migrate.arg("migrate").output().await?;
    if !st.status.success() {
        bail!("tidechat migrate: {}", String::from_utf8_lossy(&st.stderr));
    }
    let Db::Postgres { server, name } = &db else {
        bail!("pgbench needs PostgreSQL")
    };
    let url = format!("{server}/{name}");
    let sessions = 512;
    let setup = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-v",
            &format!("nsessions={sessions}"),
            "-f",
            "bench/pgbench-setup.sql",
            "-d",
            &url,
        ])
        .output()
        .await?;
    if !setup.status.success() {
        bail!("pgbench setup: {}", String::from_utf8_lossy(&setup.stderr));
    }
    let clients = 8;
    let out = Command::new("pgbench")
        .args([
            "-n",
            "-c",
            &clients.to_string(),
            "-j",
            "2",
            "-T",
            &env.profile.pgbench_secs.to_string(),
        ])
        .args([
            "-D",
            &format!("nsessions={sessions}"),
            "-f",
            "bench/turn.sql",
            &url,
        ])
        .output()
        .await
        .context("pgbench")?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        bail!("pgbench: {}{}", text, String::from_utf8_lossy(&out.stderr));
    }
    let tps = text
        .lines()
        .find(|l| l.starts_with("tps ="))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|v| v.parse::<f64>().ok())
        .context("pgbench printed no tps")?;
    let lat = text
        .lines()
        .find(|l| l.starts_with("latency average"))
        .map(str::to_owned);
    let messages = db
        .scalar("SELECT count(*) FROM messages")
        .await
        .unwrap_or_default();
    db.drop_db().await;
    Ok(
        json!({"turns_per_s": tps, "clients": clients, "sessions": sessions, "latency": lat, "messages": messages,
              "command": format!("pgbench -n -c {clients} -j 2 -T {} -D nsessions={sessions} -f bench/turn.sql", env.profile.pgbench_secs)}),
    )
}

// ------------------------------------------------------------------ 3. streams

async fn streams(env: &Env) -> anyhow::Result<Value> {
    let p = &env.profile;
    let max = p.stream_levels.iter().copied().max().unwrap_or(0);
    let nofile = procs::nofile_limit();
    let pg = env.tidechat("postgres", "streams_pg").await?;
    let sessions = Arc::new(pg.sessions(&env.client, max, 64).await?);
    let target = Target::Tidechat {
        base: pg.base.clone(),
        key: pg.key.clone(),
        sessions: sessions.clone(),
        model: "long".into(),
        stream: true,
    };
    // One short turn so lazily built state (FAQ index, drift model, pools) exists.
    let warm = Target::Tidechat {
        base: pg.base.clone(),
        key: pg.key.clone(),
        sessions,
        model: "fast".into(),
        stream: true,
    };
    let _ = load::one(
        &env.client,
        &warm,
        0,
        Instant::now(),
        Duration::from_secs(30),
        Expect::default(),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let upstream_baseline = env.upstream.rss_kib();
    let expect = Expect {
        chunks: Some(p.stream_chunks),
        stall_after: Some(Duration::from_millis(p.stream_gap_ms * 3)),
    };
    let timeout = Duration::from_millis(p.stream_gap_ms * u64::from(p.stream_chunks) + 120_000);
    // SSE: `/v1` turns.
    let (client, sse_target) = (env.client.clone(), target.clone());
    let (points, samples) = hold_levels(env, &pg, move |i, at| {
        let (client, target) = (client.clone(), sse_target.clone());
        async move { load::one(&client, &target, i, at, timeout, expect).await }
    })
    .await;
    let result = samples.result("tidechat-postgres", p.stream_open_rate);
    let stored: i64 = pg
        .db
        .scalar("SELECT count(*) FROM messages WHERE role = 'assistant' AND status = 'complete'")
        .await?
        .parse()
        .unwrap_or(-1);
    pg.proc.stop().await;
    pg.db.drop_db().await;
    // WebSocket: one chat per connection (a new chat and user each), one
    // message, the same paced reply; on a fresh tidechat so memory freed by
    // the SSE phase does not flatter the slope.
    let pg = env.tidechat("postgres", "streams_ws_pg").await?;
    pg.set_default_model(&env.client, "fast").await?;
    let _ = load::ws_one(
        &pg.base,
        &pg.key,
        "ws-warm",
        Instant::now(),
        Duration::from_secs(60),
        Expect::default(),
    )
    .await;
    pg.set_default_model(&env.client, "long").await?;
    let (base, key) = (pg.base.clone(), pg.key.clone());
    let (ws_points, ws_samples) = hold_levels(env, &pg, move |i, at| {
        let (base, key) = (base.clone(), key.clone());
        async move { load::ws_one(&base, &key, &format!("ws-{i}"), at, timeout, expect).await }
    })
    .await;
    let ws_result = ws_samples.result("tidechat-postgres-ws", p.stream_open_rate);
    let ws_stored: i64 = pg
        .db
        .scalar("SELECT count(*) FROM messages WHERE role = 'assistant' AND status = 'complete'")
        .await?
        .parse::<i64>()
        .map(|n| n - 1)
        .unwrap_or(-1);
    pg.proc.stop().await;
    pg.db.drop_db().await;
    Ok(json!({
        "definition": format!("each stream: one /v1 turn whose upstream sends {} pieces {} ms apart; lost = the reply text is not exactly the upstream's pieces in order; stalled = a gap over {} ms between deltas",
                              p.stream_chunks, p.stream_gap_ms, p.stream_gap_ms * 3),
        "slope_kib_per_stream": slope(&points),
        "points": points,
        "upstream_baseline_kib": upstream_baseline,
        "result": result,
        "stored_complete_replies": stored,
        "nofile_limit": nofile,
        "websocket": {
            "definition": "each connection: /ws/chat?api_key=…&user_id=ws-N (a new chat), one message, the same paced reply read to message_stream_ended",
            "slope_kib_per_connection": slope(&ws_points),
            "points": ws_points,
            "result": ws_result,
            "stored_complete_replies": ws_stored,
        },
    }))
}

/// Least-squares slope of RSS (KiB) against open connections.
fn slope(points: &[Value]) -> f64 {
    let xs: Vec<f64> = points
        .iter()
        .map(|v| v["streams"].as_f64().unwrap_or(0.0))
        .collect();
    let ys: Vec<f64> = points
        .iter()
        .map(|v| v["rss_kib"].as_f64().unwrap_or(0.0))
        .collect();
    let n = xs.len() as f64;
    let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
    let sxy: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let sxx: f64 = xs.iter().map(|x| (x - mx) * (x - mx)).sum();
    if sxx > 0.0 {
        sxy / sxx
    } else {
        0.0
    }
}

/// Opens connections with `open(i, scheduled_at)` at the profile's opening
/// rate up to each of its levels and holds them; reads tidechat's RSS and
/// open descriptors 3 s after each level; waits for every outcome.
async fn hold_levels<F, Fut>(env: &Env, pg: &Tidechat, open: F) -> (Vec<Value>, Samples)
where
    F: Fn(usize, Instant) -> Fut,
    Fut: std::future::Future<Output = load::Outcome> + Send + 'static,
{
    let p = &env.profile;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let baseline = pg.proc.rss_kib();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut points = vec![json!({"streams": 0, "rss_kib": baseline})];
    let mut opened = 0usize;
    let started = Instant::now();
    for &level in &p.stream_levels {
        let start = Instant::now();
        let from = opened;
        while opened < level {
            let at = start + Duration::from_secs_f64((opened - from) as f64 / p.stream_open_rate);
            tokio::time::sleep_until(at).await;
            let (fut, tx) = (open(opened, at), tx.clone());
            tokio::spawn(async move {
                let _ = tx.send(fut.await);
            });
            opened += 1;
        }
        // Let the last ones get their first frames before reading memory.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let rss = pg.proc.rss_kib();
        let fds = std::fs::read_dir(format!("/proc/{}/fd", pg.proc.pid))
            .map(|d| d.count())
            .unwrap_or(0);
        let finished_early = rx.len();
        eprintln!(
            "streams {level}: tidechat rss {rss} KiB, {fds} fds, {finished_early} already finished"
        );
        points.push(json!({"streams": level, "rss_kib": rss, "fds": fds, "finished_early": finished_early,
                           "upstream_rss_kib": env.upstream.rss_kib(), "elapsed_s": started.elapsed().as_secs_f64()}));
    }
    drop(tx);
    let mut samples = Samples::default();
    while let Some(o) = rx.recv().await {
        samples.push(o);
    }
    (points, samples)
}

// ------------------------------------------------------------------ 4. history

async fn history(env: &Env) -> anyhow::Result<Value> {
    let p = &env.profile;
    let pg = env.tidechat("postgres", "history_pg").await?;
    let fillers = 100usize;
    let sessions = pg.sessions(&env.client, fillers + 1, 16).await?;
    let big = sessions[0].clone();
    let rest = &sessions[1..];
    let load_start = Instant::now();
    let n_big = p.history_session;
    let n_rest = p.history_total - n_big;
    let array = rest
        .iter()
        .map(|s| format!("'{s}'"))
        .collect::<Vec<_>>()
        .join(",");
    let insert = |sid_expr: &str, seq_expr: &str, from: i64, to: i64| {
        format!(
            "INSERT INTO messages (id, session_id, org_id, seq, role, content, input_tokens, output_tokens, tokens_estimated, \
             model, latency_ms, cost_usd_micros, moderation_verdict, drift_score, status, created_at) \
             SELECT 'msg_0' || lpad(to_hex(g), 25, '0'), {sid_expr}, '{org}', {seq_expr}, \
             CASE WHEN g % 2 = 0 THEN 'user' ELSE 'assistant' END, \
             'A stored message of about one hundred characters, standing in for a real chat turn number ' || g, \
             12, 24, false, 'paced', 100, 30, 'allowed', 0.1, 'complete', \
             timestamp '2026-01-01' + g * interval '1 second' FROM generate_series({from}, {to}) g",
            org = pg.org
        )
    };
    pg.db
        .scalar(&insert(
            &format!("'{big}'"),
            &format!("g - {}", 1),
            1,
            n_big,
        ))
        .await?;
    pg.db
        .scalar(&insert(
            &format!("(ARRAY[{array}])[1 + (g % {fillers})]"),
            &format!("(g - {}) / {fillers}", n_big + 1),
            n_big + 1,
            n_big + n_rest,
        ))
        .await?;
    pg.db
        .scalar(
            "UPDATE sessions s SET next_seq = c.n, message_count = c.n FROM \
             (SELECT session_id, count(*) AS n FROM messages GROUP BY session_id) c WHERE s.id = c.session_id",
        )
        .await?;
    pg.db.scalar("ANALYZE").await?;
    let load_s = load_start.elapsed().as_secs_f64();
    let total: i64 = pg
        .db
        .scalar("SELECT count(*) FROM messages")
        .await?
        .parse()
        .unwrap_or(-1);
    eprintln!("history: {total} messages loaded in {load_s:.1} s");
    let first = format!("/v1/chat/sessions/{big}/messages?limit=50&order=desc");
    let deep = format!(
        "/v1/chat/sessions/{big}/messages?limit=50&order=desc&cursor={}",
        n_big / 2
    );
    // Both pages must really be full pages.
    let mut pages = BTreeMap::new();
    for (name, path) in [("first", &first), ("deep", &deep)] {
        let v: Value = env
            .client
            .get(format!("{}{path}", pg.base))
            .bearer_auth(&pg.key)
            .send()
            .await?
            .json()
            .await?;
        pages.insert(name, v["items"].as_array().map(|a| a.len()).unwrap_or(0));
    }
    let explain = pg
        .db
        .scalar(&format!(
            "EXPLAIN (ANALYZE, FORMAT JSON) SELECT * FROM messages WHERE session_id = '{big}' AND org_id = '{}' AND seq < {} ORDER BY seq DESC LIMIT 51",
            pg.org,
            n_big / 2
        ))
        .await
        .ok()
        .and_then(|s| serde_json::from_str::<Value>(&s).ok())
        .map(|v| json!({"execution_ms": v[0]["Execution Time"], "planning_ms": v[0]["Planning Time"], "node": v[0]["Plan"]["Plans"][0]["Node Type"], "index": v[0]["Plan"]["Plans"][0]["Index Name"]}))
        .unwrap_or(Value::Null);
    let known = env.known_pids(&[(pg.proc.pid, "tidechat-postgres")]);
    let mut merged: BTreeMap<&str, Samples> = BTreeMap::new();
    let targets = [
        (
            "first page",
            Target::Get {
                base: pg.base.clone(),
                key: pg.key.clone(),
                paths: Arc::new(vec![first.clone()]),
            },
        ),
        (
            "deep page",
            Target::Get {
                base: pg.base.clone(),
                key: pg.key.clone(),
                paths: Arc::new(vec![deep.clone()]),
            },
        ),
    ];
    for (name, t) in &targets {
        // warm-up
        let _ = env
            .step(t, p.history_rate, 1, &known, Expect::default())
            .await;
        let _ = name;
    }
    // Service time without queueing: one request at a time.
    let mut sequential: BTreeMap<&str, Samples> = BTreeMap::new();
    for i in 0..400 {
        let (name, t) = &targets[i % 2];
        let o = load::one(
            &env.client,
            t,
            i,
            Instant::now(),
            Duration::from_secs(10),
            Expect::default(),
        )
        .await;
        sequential.entry(name).or_default().push(o);
    }
    let sequential: BTreeMap<&str, StepResult> = sequential
        .iter()
        .map(|(k, s)| (*k, s.result(k, 0.0)))
        .collect();
    let mut perf = Value::Null;
    for round in 0..2 {
        for (name, t) in &targets {
            let rec = if env.common.perf && round == 0 && *name == "first page" {
                perf_start(env, pg.proc.pid, p.history_secs, "history-postgres", &known)
                    .await
                    .ok()
            } else {
                None
            };
            let s = env
                .step(t, p.history_rate, p.history_secs, &known, Expect::default())
                .await;
            if let Some(rec) = rec {
                perf = perf_finish(rec)
                    .await
                    .unwrap_or_else(|e| json!({"error": format!("{e:#}")}));
            }
            merged.entry(name).or_default().merge(s);
        }
    }
    let results: BTreeMap<&str, StepResult> = merged
        .iter()
        .map(|(k, s)| (*k, s.result(k, p.history_rate)))
        .collect();
    for r in results.values() {
        eprintln!(
            "  {:<10} p50 {:.2} p99 {:.2} ms err {}",
            r.target, r.total.p50_ms, r.total.p99_ms, r.errors
        );
    }
    pg.proc.stop().await;
    pg.db.drop_db().await;
    Ok(json!({
        "sequential": sequential,
        "perf": perf,
        "messages": total,
        "session_messages": n_big,
        "load_seconds": load_s,
        "deep_cursor": n_big / 2,
        "page_items": pages,
        "explain_deep": explain,
        "results": results,
    }))
}

// ------------------------------------------------------------------ 5. startup

async fn startup(env: &Env) -> anyhow::Result<Value> {
    let mut runs = Vec::new();
    for kind in ["sqlite", "postgres"] {
        for i in 0..env.profile.startup_runs {
            let t = env.tidechat(kind, &format!("startup_{kind}")).await?;
            tokio::time::sleep(Duration::from_secs(3)).await;
            let idle = t.proc.rss_kib();
            // Where the memory is: anonymous (heap, stacks) vs file-backed (the binary).
            let anon_kib = std::fs::read_to_string(format!("/proc/{}/smaps_rollup", t.proc.pid))
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find(|l| l.starts_with("Anonymous:"))
                        .and_then(|l| {
                            l.split_whitespace()
                                .nth(1)
                                .and_then(|v| v.parse::<u64>().ok())
                        })
                })
                .unwrap_or(0);
            runs.push(json!({"db": kind, "run": i, "ready_ms": t.ready_after.as_secs_f64() * 1000.0, "idle_rss_kib": idle, "anon_kib": anon_kib}));
            eprintln!(
                "startup {kind}: ready {:.0} ms, idle rss {} KiB",
                t.ready_after.as_secs_f64() * 1000.0,
                idle
            );
            t.proc.stop().await;
            t.db.drop_db().await;
        }
    }
    Ok(json!({
        "definition": "ready = from spawning `tidechat serve` on a migrated database with one organization to the first 200 from /readyz (polled every 5 ms); idle RSS = VmRSS 3 s after ready, no traffic",
        "runs": runs,
    }))
}

// ------------------------------------------------------------------ machine

pub fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    let mem_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines().next().and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
            })
        })
        .unwrap_or(0);
    let cmd = |c: &str, args: &[&str]| {
        std::process::Command::new(c)
            .args(args)
            .output()
            .ok()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_owned()
            })
            .unwrap_or_default()
    };
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    json!({
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu": cpu,
        "memory_gib": (mem_kib as f64 / 1024.0 / 1024.0 * 10.0).round() / 10.0,
        "kernel": cmd("uname", &["-r"]),
        "rustc": cmd("rustc", &["--version"]),
        "postgres": cmd("psql", &["--version"]),
        "sqlite": cmd("sqlite3", &["--version"]),
        "litellm": litellm_version(),
        "loadavg_at_end": load.trim(),
        "git": cmd("git", &["rev-parse", "--short", "HEAD"]),
    })
}

fn litellm_version() -> String {
    std::process::Command::new("target/bench/litellm-venv/bin/pip")
        .args(["show", "litellm"])
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .find(|l| l.starts_with("Version:"))
                .map(|l| l.trim_start_matches("Version:").trim().to_owned())
        })
        .unwrap_or_else(|| "not installed".to_owned())
}
