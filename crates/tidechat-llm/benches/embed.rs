//! Latency of the built-in local embedder on one short query (needs the real
//! model: `TIDECHAT_TEST_MODELS_DIR` or `TIDECHAT_MODELS_DIR`, else
//! `./data/models`; without it the bench says so and measures nothing).
//!
//! `cargo bench -p tidechat-llm --bench embed`

use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion};
use tidechat_llm::embed::local::USE_M3_NAME;
use tidechat_llm::{EmbedKind, LocalEmbedder};

fn models_dir() -> PathBuf {
    std::env::var_os("TIDECHAT_TEST_MODELS_DIR")
        .or_else(|| std::env::var_os("TIDECHAT_MODELS_DIR"))
        .map_or_else(|| PathBuf::from("data/models"), PathBuf::from)
}

fn bench(c: &mut Criterion) {
    let dir = models_dir().join(USE_M3_NAME);
    let started = std::time::Instant::now();
    let model = match LocalEmbedder::load(&dir) {
        Ok(model) => {
            eprintln!("use_m3 load: {:?}", started.elapsed());
            model
        }
        Err(e) => {
            eprintln!("embed bench skipped: {e}");
            return;
        }
    };
    let rss_loaded = rss_kib();
    report_latency_and_memory(&model, rss_loaded);
    let queries = [
        "How do I reset my password?",
        "Wie kann ich mein Passwort zurücksetzen?",
        "비밀번호를 어떻게 재설정하나요?",
    ];
    for (name, query) in ["en", "de", "ko"].iter().zip(queries) {
        c.bench_function(&format!("use_m3_query_{name}"), |b| {
            b.iter(|| model.embed_blocking(&[query], EmbedKind::Query))
        });
    }
    let passages: Vec<String> = (0..32)
        .map(|i| format!("Passage {i}: our support team answers questions about bikes, stations and billing within one business day."))
        .collect();
    c.bench_function("use_m3_32_passages", |b| {
        b.iter(|| model.embed_blocking(&passages, EmbedKind::Passage))
    });
}

/// Resident set size of this process in KiB (Linux), if readable.
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Criterion reports means; the brief asks for p50/p99 of single short
/// queries and the resident memory after 1,000 of them, printed here.
fn report_latency_and_memory(model: &LocalEmbedder, rss_loaded: Option<u64>) {
    let queries = [
        "How do I reset my password?",
        "Wie kann ich mein Passwort zurücksetzen?",
        "비밀번호를 어떻게 재설정하나요?",
        "Can I return a bike at any station?",
    ];
    let mut times = Vec::with_capacity(2000);
    for i in 0..2000 {
        let q = queries[i % queries.len()];
        let started = std::time::Instant::now();
        let out = model.embed_blocking(&[q], EmbedKind::Query);
        times.push(started.elapsed());
        assert!(out.is_ok());
    }
    times.sort();
    let at = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
    eprintln!(
        "use_m3 single query over {} calls: p50 {:?}, p99 {:?}, max {:?}",
        times.len(),
        at(0.50),
        at(0.99),
        at(1.0)
    );
    let mib =
        |k: Option<u64>| k.map_or("?".to_string(), |k| format!("{:.1} MiB", k as f64 / 1024.0));
    eprintln!(
        "use_m3 resident memory: {} after loading, {} after 2,000 queries",
        mib(rss_loaded),
        mib(rss_kib())
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
