//! The `tidechat` binary as scripts and users run it: the CLI forms the README
//! documents, and `tidechat` with no arguments serving a fresh SQLite database.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

fn tidechat(db_url: &str, cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tidechat"))
        .args(args)
        .current_dir(cwd)
        .env("TIDECHAT_DATABASE_URL", db_url)
        .env("TIDECHAT_LOG", "warn")
        .output()
        .unwrap()
}

fn stdout_json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn operator_commands(db_url: &str, dir: &Path) {
    let out = tidechat(db_url, dir, &["migrate"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let org = stdout_json(&tidechat(
        db_url,
        dir,
        &["org", "create", "--name", "Acme GmbH", "--json"],
    ));
    for field in ["orgId", "workspaceId", "personaId", "apiKey"] {
        assert!(org[field].is_string(), "{field} in {org}");
    }
    let org_id = org["orgId"].as_str().unwrap();
    assert!(org_id.starts_with("org_"));
    assert!(org["apiKey"].as_str().unwrap().starts_with("tc_"));

    let key = stdout_json(&tidechat(
        db_url,
        dir,
        &["key", "create", "--org", org_id, "--json"],
    ));
    assert!(key["apiKey"].as_str().unwrap().starts_with("tc_"));
    assert_ne!(key["apiKey"], org["apiKey"]);

    let csv = dir.join("faq.csv");
    std::fs::write(&csv, "question,answer,tags\nHow do I pay?,By card.,billing\n\"Wo ist, mein Paket?\",Unterwegs 🚚,de\n").unwrap();
    let out = tidechat(
        db_url,
        dir,
        &["faq", "import", "--org", org_id, csv.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("imported 2"));
    let json_file = dir.join("faq.json");
    std::fs::write(
        &json_file,
        r#"[{"question": "Is there an app?", "answer": "Yes.", "organizationId": "eu"}]"#,
    )
    .unwrap();
    let out = tidechat(
        db_url,
        dir,
        &[
            "faq",
            "import",
            "--org",
            org_id,
            json_file.to_str().unwrap(),
        ],
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("imported 1"));

    // Documents, then an evaluation against the FAQ and the document.
    let guide = dir.join("guide.md");
    std::fs::write(
        &guide,
        "# Care guide\n\n## Winter\n\nLet the tablet warm up to room temperature for an hour before charging it in winter.\n",
    )
    .unwrap();
    let out = tidechat(
        db_url,
        dir,
        &["doc", "import", "--org", org_id, guide.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let progress = String::from_utf8_lossy(&out.stderr);
    assert!(progress.contains("[1/1] guide.md: doc_"), "{progress}");
    assert!(progress.contains("1 chunks"), "{progress}");
    let out = tidechat(db_url, dir, &["doc", "list", "--org", org_id]);
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed["title"], "Care guide");
    let doc_id = listed["documentId"].as_str().unwrap();
    let labelled = dir.join("questions.json");
    std::fs::write(
        &labelled,
        json!([
            {"query": "should the tablet warm up before charging in winter", "expected": format!("{doc_id}#0"), "kind": "paraphrase", "lang": "en"},
            {"query": "what is the capital of France", "expected": null, "kind": "unanswerable", "lang": "en"}
        ])
        .to_string(),
    )
    .unwrap();
    let out = tidechat(
        db_url,
        dir,
        &["faq", "eval", "--org", org_id, labelled.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("lexical"), "{report}");
    assert!(report.contains("Suggested threshold"), "{report}");
    assert!(
        report.contains("100.0%"),
        "the document answers its question: {report}"
    );

    // Mistakes fail with a message and a non-zero exit, never a panic.
    let bad = dir.join("bad.csv");
    std::fs::write(&bad, "q,a\n1,2\n").unwrap();
    for args in [
        vec!["faq", "import", "--org", org_id, bad.to_str().unwrap()],
        vec!["faq", "import", "--org", org_id, "/no/such/file.csv"],
        vec![
            "key",
            "create",
            "--org",
            "org_01jd3x8y6q1v0w2r7k9m4n5p6t",
            "--json",
        ],
        vec!["key", "create", "--org", "nonsense"],
        vec!["org", "create", "--name", "   "],
        vec!["doc", "import", "--org", org_id, "/no/such/file.md"],
        vec!["doc", "import", "--org", org_id, bad.to_str().unwrap()],
        vec!["faq", "eval", "--org", org_id, bad.to_str().unwrap()],
    ] {
        let out = tidechat(db_url, dir, &args);
        assert!(!out.status.success(), "{args:?} should fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(err.contains("Error"), "{args:?}: {err}");
    }
}

#[test]
fn operator_commands_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    operator_commands(&url, dir.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_commands_on_postgres() {
    let Some(db) = tidechat_store::testing::postgres().await else {
        eprintln!("skipped: TIDECHAT_TEST_POSTGRES_URL is not set");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let url = db.url.clone();
    let path = dir.path().to_owned();
    tokio::task::spawn_blocking(move || operator_commands(&url, &path))
        .await
        .unwrap();
}

#[test]
fn openapi_command_prints_the_committed_spec() {
    let out = Command::new(env!("CARGO_BIN_EXE_tidechat"))
        .arg("openapi")
        .output()
        .unwrap();
    assert!(out.status.success());
    let committed = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../openapi/openapi.json"
    ))
    .unwrap();
    assert!(
        out.stdout == committed,
        "openapi/openapi.json is stale: run `just openapi`"
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The README's run command on a fresh directory, then its curl walkthrough.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_on_a_fresh_clone_prints_a_key_and_holds_a_conversation() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tidechat"))
        .current_dir(dir.path())
        .env_remove("TIDECHAT_DATABASE_URL")
        .env("TIDECHAT_BIND", format!("127.0.0.1:{port}"))
        .env("TIDECHAT_LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (key_tx, key_rx) = std::sync::mpsc::channel();
    // Keep draining stdout so the server never writes to a closed pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(key) = line.strip_prefix("API key (shown once): ") {
                let _ = key_tx.send(key.trim().to_owned());
            }
        }
    });
    let key = tokio::task::spawn_blocking(move || {
        key_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("no API key printed")
    })
    .await
    .unwrap();
    assert!(
        dir.path().join("data/tidechat.db").exists(),
        "the default SQLite database is created"
    );

    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .map(|r| r.status() != 200)
        .unwrap_or(true)
    {
        assert!(Instant::now() < deadline, "server never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let session: Value = client
        .post(format!("{base}/v1/chat/sessions"))
        .bearer_auth(&key)
        .json(&json!({"userId": "demo-user"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = session["sessionId"].as_str().unwrap();
    let reply: Value = client
        .post(format!("{base}/v1/chat/sessions/{id}/messages"))
        .bearer_auth(&key)
        .json(&json!({"userText": "How do I reset my password?"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        reply["assistantMessage"]["content"]
            .as_str()
            .unwrap()
            .contains("Forgot password"),
        "{reply}"
    );
    let stream = client
        .post(format!("{base}/v1/chat/sessions/{id}/messages"))
        .bearer_auth(&key)
        .json(&json!({"userText": "Which payment methods do you accept?", "stream": true}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        stream.contains("event: delta") && stream.contains("event: done"),
        "{stream}"
    );
    let history: Value = client
        .get(format!("{base}/v1/chat/sessions/{id}/messages"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(history["items"].as_array().unwrap().len(), 4);

    // A WebSocket URL carries the key in its query: it must never be logged.
    let res = client
        .get(format!("{base}/ws/chat?api_key={key}&user_id=u"))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_client_error(), "not a WebSocket handshake");

    // SIGTERM: a clean exit, with JSON logs on stderr.
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(exit.success(), "{exit:?}");
    let mut logs = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut logs).unwrap();
    let first = logs.lines().next().unwrap_or_default();
    assert!(
        serde_json::from_str::<Value>(first).is_ok(),
        "TIDECHAT_LOG_FORMAT=json logs JSON: {first}"
    );
    assert!(
        logs.contains("x-request-id") || logs.contains("request_id"),
        "requests are logged with their id"
    );

    // A second start on the same database does not create another demo org.
    let out = Command::new(env!("CARGO_BIN_EXE_tidechat"))
        .current_dir(dir.path())
        .args(["org", "create", "--name", "x", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
}

/// Neither `--help` nor a failed start prints the database password
/// (issue 22: secrets in output).
#[test]
fn the_database_password_is_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let url = "postgres://app:hunter2@127.0.0.1:1/chat?password=hunter3&sslmode=disable";
    for args in [&["--help"][..], &["serve", "--help"][..], &["serve"][..]] {
        let out = tidechat(url, dir.path(), args);
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !printed.contains("hunter2") && !printed.contains("hunter3"),
            "{args:?}: {printed}"
        );
        if args == ["serve"] {
            assert!(!out.status.success(), "{printed}");
        } else {
            assert!(printed.contains("TIDECHAT_DATABASE_URL"), "{printed}");
        }
    }
}
