//! Scanning cost per 1 KiB: the output scanner (push + finish) and check_input,
//! lexical only and (when `TIDECHAT_TEST_MODELS_DIR` holds USE-m3) with the
//! local classifier. Besides criterion's means it prints p99 per call
//! (check_input, and each push that releases an output window) and the
//! resident memory the classifier adds (RSS before and after loading the
//! model and fitting).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tidechat_guard::{
    DriftModel, EncodeError, Guard, GuardPolicy, LocalClassifier, Moderator, ScanStep,
    SentenceEncoder,
};
use tidechat_llm::embed::{EmbedKind, LocalEmbedder};

#[derive(Debug)]
struct Use(LocalEmbedder);

impl SentenceEncoder for Use {
    fn encode(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EncodeError> {
        self.0
            .embed_blocking(texts, EmbedKind::Query)
            .map(|e| e.vectors)
            .map_err(|e| EncodeError(e.to_string()))
    }
}

/// Resident set size in KiB (Linux).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn p99(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() * 99 / 100).copied().unwrap_or_default()
}

/// p99 of check_input and of each releasing push, over `rounds` replies.
fn percentiles(name: &str, m: &Moderator, text: &str, deltas: &[&str], policy: &GuardPolicy) {
    let rounds = 300;
    let mut input = Vec::with_capacity(rounds);
    let sentence = "Could you tell me when my refund for the March invoice will arrive?";
    let mut short = Vec::with_capacity(rounds);
    let mut windows = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        black_box(m.check_input(black_box(text), policy));
        input.push(t.elapsed());
        let t = Instant::now();
        black_box(m.check_input(black_box(sentence), policy));
        short.push(t.elapsed());
        let mut s = m.output_scanner(policy);
        for d in deltas {
            let t = Instant::now();
            let step = s.push(black_box(d));
            let e = t.elapsed();
            if matches!(&step, ScanStep::Release(r) if !r.is_empty()) {
                windows.push(e);
            }
        }
        black_box(s.finish());
    }
    println!(
        "p99 {name}: check_input 1 KiB {:?}, check_input one sentence {:?}, released output window {:?} ({} windows)",
        p99(input),
        p99(short),
        p99(windows.clone()),
        windows.len()
    );
}

/// About 1 KiB of realistic support-chat reply text, mixed languages.
fn window() -> String {
    let text = "Thanks for reaching out! I checked your account and the invoice for March \
was issued on the 3rd; you can download it under Settings > Billing > Invoices. \
If the payment failed, please update your card in the billing settings and we will retry \
automatically within 24 hours. To kill the stuck import, open the jobs page and press stop. \
Ihre Rechnung finden Sie unter Einstellungen > Abrechnung; das Paket bringen wir um 5 vorbei. \
환불은 요청 후 14일 이내에 원래 결제 수단으로 처리됩니다. \
Let me know if there is anything else I can help with, for example changing your plan, \
adding team members or exporting your data as CSV. Have a great day!\n";
    let mut out = String::new();
    while out.len() < 1024 {
        out.push_str(text);
    }
    let mut end = 1024;
    while !out.is_char_boundary(end) {
        end -= 1;
    }
    out.truncate(end);
    out
}

fn bench(c: &mut Criterion) {
    let moderator = Moderator::new();
    let text = window();
    let policy = GuardPolicy {
        guardrails: vec![
            "Be concise.".to_owned(),
            "block: (?i)competitor\\s+corp".to_owned(),
            "block-terms: cheaper elsewhere, rabattcode".to_owned(),
        ],
        redact_pii: true,
    };
    // Token-sized deltas, as a model streams them.
    let deltas: Vec<&str> = text.split_inclusive(' ').collect();

    let mut g = c.benchmark_group("guard");
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("output_scanner_1k_token_deltas", |b| {
        b.iter(|| {
            let mut s = moderator.output_scanner(&policy);
            let mut n = 0;
            for d in &deltas {
                if let ScanStep::Release(r) = s.push(black_box(d)) {
                    n += r.len();
                }
            }
            if let ScanStep::Release(r) = s.finish() {
                n += r.len();
            }
            black_box(n)
        })
    });
    g.bench_function("output_scanner_1k_one_push", |b| {
        b.iter(|| {
            let mut s = moderator.output_scanner(&policy);
            let _ = black_box(s.push(black_box(&text)));
            black_box(s.finish())
        })
    });
    g.bench_function("check_input_1k", |b| {
        b.iter(|| black_box(moderator.check_input(black_box(&text), &policy)))
    });
    let refs: Vec<String> = (0..50)
        .map(|i| format!("Question {i} about billing, invoices and refunds? Answer {i}: see Settings > Billing for plan {i}."))
        .collect();
    let drift = DriftModel::build(&refs);
    g.bench_function("drift_score_1k_50_refs", |b| {
        b.iter(|| black_box(drift.score(black_box(&text))))
    });
    percentiles("lexical", &moderator, &text, &deltas, &policy);

    if let Some(dir) = std::env::var_os("TIDECHAT_TEST_MODELS_DIR") {
        let before = rss_kib();
        let dir = std::path::PathBuf::from(dir).join(tidechat_llm::embed::local::USE_M3_NAME);
        let embedder = LocalEmbedder::load(&dir).expect("USE-m3 loads");
        let loaded = rss_kib();
        let t = Instant::now();
        let classifier = LocalClassifier::fit(Arc::new(Use(embedder))).expect("fits");
        let fit = t.elapsed();
        let with = Moderator::with_classifier(Some(classifier));
        let after = rss_kib();
        println!(
            "memory: RSS {before} KiB before, {loaded} KiB with USE-m3 loaded (+{} KiB), {after} KiB after fitting (+{} KiB in all); fit {fit:?}",
            loaded.saturating_sub(before),
            after.saturating_sub(before)
        );
        g.bench_function("check_input_1k_classifier", |b| {
            b.iter(|| black_box(with.check_input(black_box(&text), &policy)))
        });
        g.bench_function("output_scanner_1k_token_deltas_classifier", |b| {
            b.iter(|| {
                let mut s = with.output_scanner(&policy);
                for d in &deltas {
                    black_box(s.push(black_box(d)));
                }
                black_box(s.finish())
            })
        });
        percentiles("with classifier", &with, &text, &deltas, &policy);
    } else {
        println!("classifier benches skipped: TIDECHAT_TEST_MODELS_DIR is unset");
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
