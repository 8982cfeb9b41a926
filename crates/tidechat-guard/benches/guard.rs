//! Scanning cost per 1 KiB: the output scanner (push + finish) and check_input.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tidechat_guard::{DriftModel, Guard, GuardPolicy, Moderator, ScanStep};

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
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
