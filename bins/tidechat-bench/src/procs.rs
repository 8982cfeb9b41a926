//! Starting and stopping the processes under test, their databases, and
//! reading their memory and CPU time from /proc.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::Value;
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// A child process, killed when dropped.
pub struct Proc {
    pub child: Child,
    pub pid: u32,
}

impl Proc {
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.pid)
    }

    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

pub fn spawn(name: &str, cmd: &mut Command, log_dir: &Path) -> anyhow::Result<Proc> {
    std::fs::create_dir_all(log_dir)?;
    let log = std::fs::File::create(log_dir.join(format!("{name}.log")))?;
    let child = cmd
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {name}"))?;
    let pid = child.id().context("child has no pid")?;
    Ok(Proc { child, pid })
}

/// Polls `url` until it answers 2xx; returns how long that took.
pub async fn wait_ready(
    client: &reqwest::Client,
    url: &str,
    limit: Duration,
    poll: Duration,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    loop {
        if let Ok(r) = client.get(url).timeout(Duration::from_secs(2)).send().await {
            if r.status().is_success() {
                return Ok(start.elapsed());
            }
        }
        if start.elapsed() > limit {
            bail!("{url} not ready after {limit:?}");
        }
        tokio::time::sleep(poll).await;
    }
}

pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// CPU seconds (user + system) of every process, grouped: the pids we know by
/// their role, the rest by command name.
pub fn cpu_by_group(known: &[(u32, &str)]) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    let me = std::process::id();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // comm is in parentheses and may contain spaces: split after the last ')'.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = &stat[open + 1..close];
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        // After the comm: state is field 0, utime field 11, stime field 12.
        let secs = (ticks(11) + ticks(12)) as f64 / 100.0;
        let group = if pid == me {
            "load generator".to_owned()
        } else if let Some((_, name)) = known.iter().find(|(p, _)| *p == pid) {
            (*name).to_owned()
        } else if comm.starts_with("postgres") {
            "postgres".to_owned()
        } else if comm.contains("python") || comm.contains("litellm") || comm.contains("uvicorn") {
            "litellm".to_owned()
        } else {
            continue;
        };
        *out.entry(group).or_default() += secs;
    }
    out
}

pub fn cpu_delta(
    before: &BTreeMap<String, f64>,
    after: &BTreeMap<String, f64>,
) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                ((v - before.get(k).copied().unwrap_or(0.0)) * 100.0).round() / 100.0,
            )
        })
        .filter(|(_, v)| *v > 0.0)
        .collect()
}

/// Where a tidechat instance keeps its data.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(PathBuf),
    Postgres { server: String, name: String },
}

impl Db {
    pub fn url(&self) -> String {
        match self {
            Db::Sqlite(p) => format!("sqlite://{}", p.display()),
            Db::Postgres { server, name } => format!("{server}/{name}"),
        }
    }

    /// An empty database (dropped and created again).
    pub async fn fresh(&self) -> anyhow::Result<()> {
        match self {
            Db::Sqlite(p) => {
                if let Some(dir) = p.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", p.display()));
                }
            }
            Db::Postgres { server, name } => {
                psql(
                    server,
                    "postgres",
                    &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                )
                .await?;
                psql(server, "postgres", &format!("CREATE DATABASE {name}")).await?;
            }
        }
        Ok(())
    }

    /// Runs one SQL statement and returns its unaligned, header-less output
    /// (for a one-value query: that value).
    pub async fn scalar(&self, sql: &str) -> anyhow::Result<String> {
        let out = match self {
            Db::Sqlite(p) => Command::new("sqlite3")
                .arg(p)
                .arg(sql)
                .output()
                .await
                .context("sqlite3 (apt-get install sqlite3)")?,
            Db::Postgres { server, name } => {
                Command::new("psql")
                    .args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-d"])
                    .arg(format!("{server}/{name}"))
                    .arg("-c")
                    .arg(sql)
                    .output()
                    .await?
            }
        };
        if !out.status.success() {
            bail!("{sql}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    pub async fn drop_db(&self) {
        if let Db::Postgres { server, name } = self {
            let _ = psql(
                server,
                "postgres",
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            )
            .await;
        }
    }
}

pub async fn psql(server: &str, db: &str, sql: &str) -> anyhow::Result<String> {
    let out = Command::new("psql")
        .args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-d"])
        .arg(format!("{server}/{db}"))
        .arg("-c")
        .arg(sql)
        .output()
        .await
        .context("psql")?;
    if !out.status.success() {
        bail!("psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// A running tidechat with one benchmark organization.
pub struct Tidechat {
    pub proc: Proc,
    pub base: String,
    pub key: String,
    pub org: String,
    /// The organization's default persona (WebSocket chats use it).
    pub persona: String,
    pub db: Db,
    /// From spawning `serve` to `/readyz` answering 200.
    pub ready_after: Duration,
}

pub struct TidechatOpts<'a> {
    pub bin: &'a Path,
    pub db: Db,
    pub port: u16,
    pub models: &'a Path,
    pub log_dir: &'a Path,
    pub name: String,
}

pub fn tidechat_env(cmd: &mut Command, db: &Db, models: &Path) {
    cmd.env("TIDECHAT_DATABASE_URL", db.url())
        .env("TIDECHAT_MODELS", models)
        .env("TIDECHAT_DEFAULT_RPM", "100000000")
        .env("TIDECHAT_DEFAULT_MAX_STREAMS", "100000")
        .env("TIDECHAT_NO_DEMO", "true")
        .env("TIDECHAT_LOG", "warn")
        .env_remove("TIDECHAT_REDIS_URL");
}

pub async fn start_tidechat(
    client: &reqwest::Client,
    o: TidechatOpts<'_>,
) -> anyhow::Result<Tidechat> {
    o.db.fresh().await?;
    let mut create = Command::new(o.bin);
    tidechat_env(&mut create, &o.db, o.models);
    let out = create
        .args(["org", "create", "--name", "bench", "--json"])
        .output()
        .await
        .context("tidechat org create")?;
    if !out.status.success() {
        bail!(
            "tidechat org create: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let created: Value = serde_json::from_slice(&out.stdout).context("org create --json output")?;
    let key = created["apiKey"].as_str().context("apiKey")?.to_owned();
    let org = created["orgId"].as_str().context("orgId")?.to_owned();
    let persona = created["personaId"]
        .as_str()
        .context("personaId")?
        .to_owned();
    let bind = format!("127.0.0.1:{}", o.port);
    let mut cmd = Command::new(o.bin);
    tidechat_env(&mut cmd, &o.db, o.models);
    cmd.env("TIDECHAT_BIND", &bind).arg("serve");
    let start = Instant::now();
    let proc = spawn(&o.name, &mut cmd, o.log_dir)?;
    let base = format!("http://{bind}");
    wait_ready(
        client,
        &format!("{base}/readyz"),
        Duration::from_secs(60),
        Duration::from_millis(5),
    )
    .await?;
    Ok(Tidechat {
        proc,
        base,
        key,
        org,
        persona,
        db: o.db,
        ready_after: start.elapsed(),
    })
}

impl Tidechat {
    /// Makes the default persona answer with `model` (chats over WebSocket
    /// have no per-message model choice).
    pub async fn set_default_model(
        &self,
        client: &reqwest::Client,
        model: &str,
    ) -> anyhow::Result<()> {
        let resp = client
            .put(format!("{}/v1/personas/{}", self.base, self.persona))
            .bearer_auth(&self.key)
            .json(&serde_json::json!({"name": "bench", "modelId": model}))
            .send()
            .await?;
        if !resp.status().is_success() {
            bail!("updating the persona: {}", resp.status());
        }
        Ok(())
    }

    /// Creates `n` sessions (`concurrency` at a time) and returns their ids.
    pub async fn sessions(
        &self,
        client: &reqwest::Client,
        n: usize,
        concurrency: usize,
    ) -> anyhow::Result<Vec<String>> {
        use futures_util::StreamExt;
        let results: Vec<anyhow::Result<String>> = futures_util::stream::iter(0..n)
            .map(|i| async move {
                let v: Value = client
                    .post(format!("{}/v1/chat/sessions", self.base))
                    .bearer_auth(&self.key)
                    .json(&serde_json::json!({"userId": format!("bench-{i}")}))
                    .send()
                    .await?
                    .error_for_status()?
                    .json()
                    .await?;
                Ok(v["sessionId"].as_str().context("sessionId")?.to_owned())
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        results.into_iter().collect()
    }
}

/// Free TCP port on loopback (bound then released).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// RLIMIT_NOFILE soft limit, from /proc (no unsafe code here).
pub fn nofile_limit() -> Option<u64> {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3).and_then(|v| v.parse().ok()))
        })
}
