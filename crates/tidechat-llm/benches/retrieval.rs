//! Latency of one FAQ query over 1,000 entries, query embedding included
//! (the local model), and lexical only.
//!
//! `cargo bench -p tidechat-llm --bench retrieval` (on one core:
//! `taskset -c 0 cargo bench ...`). The local model comes from
//! `TIDECHAT_TEST_MODELS_DIR` or `TIDECHAT_MODELS_DIR` (else
//! `./data/models`); without it only the lexical case runs. Criterion
//! reports means; a manual loop of 2,000 queries prints p50 / p99 too.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
use tidechat_llm::embed::local::USE_M3_NAME;
use tidechat_llm::{EmbedKind, FaqDoc, FaqIndex, LocalEmbedder};

const ENTRIES: usize = 1_000;

fn models_dir() -> PathBuf {
    std::env::var_os("TIDECHAT_TEST_MODELS_DIR")
        .or_else(|| std::env::var_os("TIDECHAT_MODELS_DIR"))
        .map_or_else(|| PathBuf::from("data/models"), PathBuf::from)
}

#[derive(serde::Deserialize)]
struct Entry {
    id: String,
    question: String,
    answer: String,
}

/// The evaluation FAQ (122 entries, EN/DE/KO) plus generated entries of
/// other businesses up to [`ENTRIES`].
fn entries() -> Vec<FaqDoc> {
    let faq: Vec<Entry> =
        serde_json::from_str(include_str!("../tests/data/retrieval_faq.json")).unwrap_or_default();
    let mut docs: Vec<FaqDoc> = faq
        .into_iter()
        .map(|e| FaqDoc {
            id: e.id,
            question: e.question,
            answer: e.answer,
            organization_id: None,
            embedding: None,
            chunk: None,
        })
        .collect();
    let verbs = [
        "plant", "book", "feed", "bake", "water", "prune", "pack", "groom", "rent",
    ];
    let nouns = [
        "tulips",
        "a cruise",
        "my puppy",
        "sourdough",
        "tomatoes",
        "roses",
        "a suitcase",
        "my cat",
        "orchids",
        "a kayak",
        "a hotel room",
        "basil",
        "a ferry ticket",
    ];
    let when = [
        "in winter",
        "before a trip",
        "on weekends",
        "for beginners",
        "for a group",
    ];
    let mut i = 0;
    while docs.len() < ENTRIES {
        let (v, n, w) = (
            verbs[i % verbs.len()],
            nouns[(i / verbs.len()) % nouns.len()],
            when[(i / 3) % when.len()],
        );
        docs.push(FaqDoc {
            id: format!("d{i}"),
            question: format!("How do I {v} {n} {w}?"),
            answer: format!(
                "To {v} {n} {w}, follow the step-by-step guide in our workshop section."
            ),
            organization_id: None,
            embedding: None,
            chunk: None,
        });
        i += 1;
    }
    docs
}

const QUERIES: [&str; 6] = [
    "I forgot my password and can't log in",
    "Wie kann ich mein Abonnement beenden?",
    "환불 받으려면 어떻게 해야 하나요? 🙏",
    "my package arrived damaged, order 48213",
    "do you ship to Canada? I live in Toronto",
    "what's the weather in Berlin tomorrow",
];

/// p50 / p99 of `f` over 2,000 calls, in microseconds.
fn percentiles(mut f: impl FnMut(usize)) -> (f64, f64) {
    for i in 0..100 {
        f(i);
    }
    let mut times: Vec<f64> = (0..2_000)
        .map(|i| {
            let start = Instant::now();
            f(i);
            start.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    times.sort_by(f64::total_cmp);
    (times[times.len() / 2], times[times.len() * 99 / 100])
}

fn bench(c: &mut Criterion) {
    let lexical = FaqIndex::build(entries());
    let (p50, p99) = percentiles(|i| {
        std::hint::black_box(lexical.search(QUERIES[i % QUERIES.len()], None, 3, None));
    });
    println!("lexical, {ENTRIES} entries: p50 {p50:.0} µs, p99 {p99:.0} µs (2,000 queries)");
    c.bench_function("faq_search_lexical_1000", |b| {
        let mut i = 0;
        b.iter(|| {
            i += 1;
            lexical.search(QUERIES[i % QUERIES.len()], None, 3, None)
        })
    });

    let dir = models_dir().join(USE_M3_NAME);
    let model = match LocalEmbedder::load(&dir) {
        Ok(model) => model,
        Err(e) => {
            eprintln!("hybrid retrieval bench skipped (no local model): {e}");
            return;
        }
    };
    let mut docs = entries();
    let started = Instant::now();
    let questions: Vec<String> = docs.iter().map(|d| d.question.clone()).collect();
    let mut vectors = Vec::with_capacity(docs.len());
    for batch in questions.chunks(64) {
        match model.embed_blocking(batch, EmbedKind::Passage) {
            Ok(e) => vectors.extend(e.vectors),
            Err(e) => {
                eprintln!("hybrid retrieval bench skipped: {e}");
                return;
            }
        }
    }
    for (d, v) in docs.iter_mut().zip(vectors) {
        d.embedding = Some(Arc::from(v));
    }
    let index = FaqIndex::build(docs);
    println!(
        "{ENTRIES} entries embedded and indexed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let (p50, p99) = percentiles(|i| {
        std::hint::black_box(
            model
                .embed_blocking(&[QUERIES[i % QUERIES.len()]], EmbedKind::Query)
                .ok(),
        );
    });
    println!("query embedding alone: p50 {p50:.0} µs, p99 {p99:.0} µs (2,000 queries)");
    let vectors: Vec<Vec<f32>> = QUERIES
        .iter()
        .filter_map(|q| {
            model
                .embed_blocking(&[q], EmbedKind::Query)
                .ok()
                .and_then(|mut e| e.vectors.pop())
        })
        .collect();
    let (p50, p99) = percentiles(|i| {
        let k = i % vectors.len().max(1);
        std::hint::black_box(index.search(QUERIES[k], vectors.get(k).map(Vec::as_slice), 3, None));
    });
    println!("hybrid search alone (embedding precomputed): p50 {p50:.0} µs, p99 {p99:.0} µs (2,000 queries)");
    let query = |i: usize| {
        let q = QUERIES[i % QUERIES.len()];
        let e = model
            .embed_blocking(&[q], EmbedKind::Query)
            .ok()
            .and_then(|mut e| e.vectors.pop());
        index.search(q, e.as_deref(), 3, None)
    };
    let (p50, p99) = percentiles(|i| {
        std::hint::black_box(query(i));
    });
    println!(
        "hybrid, {ENTRIES} entries, query embedding included: p50 {p50:.0} µs, p99 {p99:.0} µs (2,000 queries)"
    );
    c.bench_function("faq_search_hybrid_1000_with_query_embedding", |b| {
        let mut i = 0;
        b.iter(|| {
            i += 1;
            query(i)
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
