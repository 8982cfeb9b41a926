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
    let model = match LocalEmbedder::load(&dir) {
        Ok(model) => model,
        Err(e) => {
            eprintln!("embed bench skipped: {e}");
            return;
        }
    };
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

criterion_group!(benches, bench);
criterion_main!(benches);
