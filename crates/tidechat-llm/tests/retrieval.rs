#![allow(clippy::unwrap_used)]
//! Retrieval-quality evaluation of [`FaqIndex`] on two labelled sets, in
//! every mode that can run here (the report logic is the library's
//! [`tidechat_llm::faq::eval`], which `tidechat faq eval FILE` also uses).
//!
//! Data (see `docs/retrieval.md`):
//! - set 1, `tests/data/retrieval_faq.json` + `retrieval_queries.json`: the
//!   FAQ of a fictional e-ink tablet + cloud subscription company (English,
//!   German, Korean entries; a few owned by the organizations `school-a` /
//!   `school-b`) and 249 labelled queries. The ranker and its calibration
//!   were tuned on this set.
//! - set 2, `retrieval2_faq.json` + `retrieval2_queries.json`: a bike-sharing
//!   FAQ and 199 queries written before the new ranker's first run and never
//!   tuned on (its README). Its labels say a query without organization is
//!   answered from the main entries only, so its main entries are indexed
//!   under a placeholder organization here.
//!
//! Modes:
//! - lexical: no embeddings;
//! - local model alone: entries ranked by the cosine of USE multilingual v3
//!   embeddings (entry question vs query), confidence = cosine, reported at
//!   the cosine threshold with the best OOS F1 (the cosine is not
//!   calibrated);
//! - hybrid: `FaqIndex` with the local model's embeddings.
//!
//! The local-model modes run when `TIDECHAT_TEST_MODELS_DIR` is set (the
//! model in `$TIDECHAT_TEST_MODELS_DIR/use-multilingual-v3`, installed with
//! `tidechat models install`) and FAIL when it is set but the model does
//! not load; unset, they print "skipped: no local model".
//!
//! Run `cargo test -p tidechat-llm --test retrieval -- --nocapture` to see
//! the reports. Each test fails when a metric drops below its floor (about 2
//! points under the measured value, docs/retrieval.md).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use tidechat_llm::embed::{EmbedKind, LocalEmbedder};
use tidechat_llm::faq::eval::{
    self, evaluate, parse_entries, parse_queries, pct, LabelledEntry, LabelledQuery, Outcome,
    Report,
};
use tidechat_llm::{FaqDoc, FaqIndex, DEFAULT_CONFIDENCE_THRESHOLD};

const KINDS: [&str; 5] = [
    "paraphrase",
    "typo",
    "keyword",
    "other_language",
    "unanswerable",
];

/// The organization set 2's main entries (and its queries without one) get.
const SET2_MAIN: &str = "__main__";

/// Floors: (hit@1, hit@3, OOS precision, OOS recall) per set and mode,
/// about 2 points under the values measured when they were set
/// (docs/retrieval.md has the values and the targets). The 2,000-distractor
/// check requires 93% of verdicts unchanged (measured 96.4% lexical, 95.6%
/// hybrid).
struct Floors {
    hit1: f64,
    hit3: f64,
    oos_precision: f64,
    oos_recall: f64,
}

const LEXICAL_SET1: Floors = Floors {
    hit1: 0.785,
    hit3: 0.9,
    oos_precision: 0.525,
    oos_recall: 0.535,
};
const LEXICAL_SET2: Floors = Floors {
    hit1: 0.735,
    hit3: 0.83,
    oos_precision: 0.355,
    oos_recall: 0.45,
};
const SEMANTIC_SET1: Floors = Floors {
    hit1: 0.69,
    hit3: 0.825,
    oos_precision: 0.495,
    oos_recall: 0.47,
};
const SEMANTIC_SET2: Floors = Floors {
    hit1: 0.745,
    hit3: 0.89,
    oos_precision: 0.265,
    oos_recall: 0.98,
};
const HYBRID_SET1: Floors = Floors {
    hit1: 0.83,
    hit3: 0.92,
    oos_precision: 0.58,
    oos_recall: 0.55,
};
const HYBRID_SET2: Floors = Floors {
    hit1: 0.83,
    hit3: 0.905,
    oos_precision: 0.355,
    oos_recall: 0.41,
};

const ENDPOINT_SET1: Floors = Floors {
    hit1: 0.735,
    hit3: 0.875,
    oos_precision: 0.355,
    oos_recall: 0.615,
};
const ENDPOINT_SET2: Floors = Floors {
    hit1: 0.785,
    hit3: 0.835,
    oos_precision: 0.34,
    oos_recall: 0.565,
};

#[derive(Clone)]
struct Set {
    name: &'static str,
    faq: Vec<LabelledEntry>,
    queries: Vec<LabelledQuery>,
}

fn set1() -> Set {
    Set {
        name: "set 1",
        faq: parse_entries(include_str!("data/retrieval_faq.json")).unwrap(),
        queries: parse_queries(include_str!("data/retrieval_queries.json")).unwrap(),
    }
}

fn set2() -> Set {
    let mut faq = parse_entries(include_str!("data/retrieval2_faq.json")).unwrap();
    let mut queries = parse_queries(include_str!("data/retrieval2_queries.json")).unwrap();
    for e in &mut faq {
        e.organization_id
            .get_or_insert_with(|| SET2_MAIN.to_string());
    }
    for q in &mut queries {
        q.organization_id
            .get_or_insert_with(|| SET2_MAIN.to_string());
    }
    Set {
        name: "set 2 (held out)",
        faq,
        queries,
    }
}

/// The local model, or None when `TIDECHAT_TEST_MODELS_DIR` is unset.
/// Panics (fails the test) when it is set but the model does not load.
fn local_model() -> Option<&'static LocalEmbedder> {
    static MODEL: OnceLock<Option<LocalEmbedder>> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            let dir = std::env::var_os("TIDECHAT_TEST_MODELS_DIR")?;
            let dir = PathBuf::from(dir).join("use-multilingual-v3");
            match LocalEmbedder::load(&dir) {
                Ok(model) => Some(model),
                Err(e) => panic!(
                    "TIDECHAT_TEST_MODELS_DIR is set but the local model does not load from {}: {e}",
                    dir.display()
                ),
            }
        })
        .as_ref()
}

fn embed_all(model: &LocalEmbedder, texts: &[String]) -> Vec<Arc<[f32]>> {
    texts
        .chunks(32)
        .flat_map(|batch| {
            model
                .embed_blocking(batch, EmbedKind::Passage)
                .unwrap()
                .vectors
        })
        .map(Arc::from)
        .collect()
}

/// The docs of an FAQ file; with a model, each with the embedding of its
/// question (what docs/retrieval.md recommends to embed).
fn docs(faq: &[LabelledEntry], model: Option<&LocalEmbedder>) -> Vec<FaqDoc> {
    let mut docs: Vec<FaqDoc> = faq.iter().cloned().map(LabelledEntry::into_doc).collect();
    if let Some(model) = model {
        let questions: Vec<String> = docs.iter().map(|d| d.question.clone()).collect();
        for (d, e) in docs.iter_mut().zip(embed_all(model, &questions)) {
            d.embedding = Some(e);
        }
    }
    docs
}

/// Query embeddings, precomputed (so that a report is cheap to recompute).
fn query_embeddings(model: &LocalEmbedder, queries: &[LabelledQuery]) -> HashMap<String, Vec<f32>> {
    let texts: Vec<String> = queries.iter().map(|q| q.query.clone()).collect();
    texts
        .iter()
        .cloned()
        .zip(embed_all(model, &texts).into_iter().map(|v| v.to_vec()))
        .collect()
}

fn check(report: &Report, floors: &Floors, failed: &mut Vec<String>) {
    let total = report.total();
    for (name, value, floor) in [
        ("hit@1", total.hit1(), floors.hit1),
        ("hit@3", total.hit3(), floors.hit3),
        ("OOS precision", total.oos_precision(), floors.oos_precision),
        ("OOS recall", total.oos_recall(), floors.oos_recall),
    ] {
        if value.unwrap_or(0.0) < floor {
            failed.push(format!(
                "{}: {name} = {} < floor {}",
                report.mode,
                pct(value),
                pct(Some(floor))
            ));
        }
    }
}

fn assert_no_failures(failed: &[String]) {
    assert!(
        failed.is_empty(),
        "retrieval quality below the documented floors (docs/retrieval.md): {}",
        failed.join("; ")
    );
}

/// Ranks by cosine alone ("local model alone"), reported at the cosine
/// threshold with the best OOS F1.
fn semantic_only(set: &Set, docs: &[FaqDoc], q_emb: &HashMap<String, Vec<f32>>) -> Report {
    let outcomes: Vec<Outcome> = set
        .queries
        .iter()
        .map(|q| {
            let qe = &q_emb[&q.query];
            let mut scored: Vec<(f64, &FaqDoc)> = docs
                .iter()
                .filter(|d| q.organization_id.is_none() || d.organization_id == q.organization_id)
                .filter_map(|d| {
                    let e = d.embedding.as_deref()?;
                    Some((f64::from(tidechat_llm::embed::cosine(qe, e)), d))
                })
                .collect();
            scored.sort_by(|a, b| b.0.total_cmp(&a.0));
            let rank = q
                .expected
                .as_ref()
                .and_then(|exp| scored.iter().take(10).position(|(_, d)| &d.id == exp))
                .map(|p| p + 1);
            Outcome {
                query: q.clone(),
                rank,
                top_id: scored.first().map(|(_, d)| d.id.clone()),
                top_question: scored.first().map(|(_, d)| d.question.clone()),
                top_confidence: scored.first().map_or(0.0, |(c, _)| *c),
            }
        })
        .collect();
    let mut report = Report {
        mode: format!("local model alone (cosine), {}", set.name),
        threshold: 0.5,
        outcomes,
    };
    if let Some(t) = report.suggested_threshold() {
        report.threshold = t;
    }
    report
}

#[test]
fn data_files_are_consistent() {
    let faq = set1().faq;
    let queries = set1().queries;
    assert!(faq.len() >= 100, "{} FAQ entries", faq.len());
    assert!(queries.len() >= 200, "{} queries", queries.len());

    let mut ids = HashSet::new();
    for e in &faq {
        assert!(ids.insert(e.id.as_str()), "duplicate id {}", e.id);
        assert!(
            e.id.starts_with("faq_") && e.id.len() == 7,
            "unstable id {}",
            e.id
        );
        assert!(
            ["en", "de", "ko"].contains(&e.lang.as_deref().unwrap_or("")),
            "{e:?}"
        );
        assert!(!e.question.trim().is_empty() && !e.answer.trim().is_empty());
    }
    let langs: HashMap<&str, usize> = faq.iter().fold(HashMap::new(), |mut m, e| {
        *m.entry(e.lang.as_deref().unwrap_or("")).or_default() += 1;
        m
    });
    assert!(langs.get("de").copied().unwrap_or(0) >= 15, "{langs:?}");
    assert!(langs.get("ko").copied().unwrap_or(0) >= 15, "{langs:?}");
    let by_id: HashMap<&str, &LabelledEntry> = faq.iter().map(|e| (e.id.as_str(), e)).collect();

    let mut seen = HashSet::new();
    for q in &queries {
        assert!(KINDS.contains(&q.kind.as_str()), "{q:?}");
        assert!(["en", "de", "ko"].contains(&q.lang.as_str()), "{q:?}");
        assert!(
            seen.insert((q.query.as_str(), q.organization_id.as_deref())),
            "duplicate query {q:?}"
        );
        assert_eq!(
            q.kind == "unanswerable",
            q.expected.is_none(),
            "expected must be null exactly for unanswerable queries: {q:?}"
        );
        assert_eq!(
            q.kind == "unanswerable",
            matches!(q.subkind.as_deref(), Some("off_topic" | "near_miss")),
            "subkind (off_topic | near_miss) exactly on unanswerable queries: {q:?}"
        );
        if let Some(exp) = &q.expected {
            let entry = by_id.get(exp.as_str()).copied();
            let entry = entry.unwrap_or_else(|| panic!("unknown expected id: {q:?}"));
            // An organization-scoped search only sees that organization's
            // entries, so the expected entry must belong to it.
            assert_eq!(
                entry.organization_id, q.organization_id,
                "expected entry outside the query's organization: {q:?}"
            );
        }
        if let Some(org) = &q.organization_id {
            assert!(
                faq.iter()
                    .any(|e| e.organization_id.as_deref() == Some(org)),
                "no FAQ entry for organization {org}"
            );
        }
    }
    let unanswerable = queries.iter().filter(|q| q.expected.is_none()).count();
    assert!(unanswerable >= 50, "{unanswerable} unanswerable queries");
}

#[test]
fn organization_filter_returns_only_that_organization() {
    let faq = set1().faq;
    let index = FaqIndex::build(docs(&faq, None));
    let org_of: HashMap<&str, Option<&str>> = faq
        .iter()
        .map(|e| (e.id.as_str(), e.organization_id.as_deref()))
        .collect();
    let scoped: Vec<LabelledQuery> = set1()
        .queries
        .into_iter()
        .filter(|q| q.organization_id.is_some())
        .collect();
    assert!(
        scoped.len() >= 8,
        "{} organization-scoped queries",
        scoped.len()
    );
    let orgs: HashSet<&str> = scoped
        .iter()
        .filter_map(|q| q.organization_id.as_deref())
        .collect();
    assert!(orgs.len() >= 2, "{orgs:?}");
    for q in &scoped {
        let org = q.organization_id.as_deref();
        let hits = index.search(&q.query, None, 100, org);
        for h in &hits {
            assert_eq!(
                org_of.get(h.id.as_str()).copied().flatten(),
                org,
                "{:?} (org {org:?}) returned {} from another organization",
                q.query,
                h.id
            );
        }
        let r = index.retrieve(&q.query, None, 100, org, DEFAULT_CONFIDENCE_THRESHOLD);
        assert!(r
            .hits
            .iter()
            .all(|h| org_of.get(h.id.as_str()).copied().flatten() == org));
        // The same query in another organization never sees this one's
        // entries, and an unknown organization sees nothing.
        for other in orgs.iter().filter(|o| Some(**o) != org) {
            let hits = index.search(&q.query, None, 100, Some(other));
            assert!(
                hits.iter()
                    .all(|h| org_of.get(h.id.as_str()).copied().flatten() == Some(*other)),
                "{:?} in {other}: {hits:?}",
                q.query
            );
        }
        assert!(index
            .search(&q.query, None, 100, Some("no-such-organization"))
            .is_empty());
    }
    // Identical questions in two organizations resolve to each one's own
    // entry.
    let a = index.search(
        "How do students sign in to Inkwave?",
        None,
        1,
        Some("school-a"),
    );
    let b = index.search(
        "How do students sign in to Inkwave?",
        None,
        1,
        Some("school-b"),
    );
    assert_eq!(a.first().map(|h| h.id.as_str()), Some("faq_085"));
    assert_eq!(b.first().map(|h| h.id.as_str()), Some("faq_089"));
}

#[test]
fn lexical_quality_meets_floors() {
    let mut failed = Vec::new();
    for (set, floors) in [(set1(), &LEXICAL_SET1), (set2(), &LEXICAL_SET2)] {
        let index = FaqIndex::build(docs(&set.faq, None));
        let report = evaluate(
            &index,
            &set.queries,
            None,
            &format!("lexical, {}", set.name),
            DEFAULT_CONFIDENCE_THRESHOLD,
        );
        println!("{}", report.to_markdown(40));
        check(&report, floors, &mut failed);
    }
    assert_no_failures(&failed);
}

#[test]
fn local_model_quality_meets_floors() {
    let Some(model) = local_model() else {
        println!("skipped: no local model (set TIDECHAT_TEST_MODELS_DIR)");
        return;
    };
    let mut failed = Vec::new();
    for (set, semantic_floors, hybrid_floors) in [
        (set1(), &SEMANTIC_SET1, &HYBRID_SET1),
        (set2(), &SEMANTIC_SET2, &HYBRID_SET2),
    ] {
        let docs = docs(&set.faq, Some(model));
        let q_emb = query_embeddings(model, &set.queries);
        let semantic = semantic_only(&set, &docs, &q_emb);
        println!("{}", semantic.to_markdown(20));
        check(&semantic, semantic_floors, &mut failed);

        let index = FaqIndex::build(docs);
        let embed = |q: &str| q_emb.get(q).cloned();
        let hybrid = evaluate(
            &index,
            &set.queries,
            Some(&embed),
            &format!("hybrid (local model), {}", set.name),
            DEFAULT_CONFIDENCE_THRESHOLD,
        );
        println!("{}", hybrid.to_markdown(40));
        check(&hybrid, hybrid_floors, &mut failed);
    }
    assert_no_failures(&failed);
}

/// ~2,000 entries of other businesses (a garden centre, a travel agency, a
/// pet shop, a cooking school...) in English, German and Korean.
fn distractors(n: usize) -> Vec<LabelledEntry> {
    let en_verbs = [
        "plant", "book", "feed", "bake", "water", "prune", "pack", "groom", "season", "repot",
        "rent", "paint",
    ];
    let en_nouns = [
        "tulips",
        "a cruise",
        "my puppy",
        "sourdough",
        "tomatoes",
        "roses",
        "a suitcase",
        "my cat",
        "a cast-iron pan",
        "orchids",
        "a kayak",
        "a fence",
        "a hotel room",
        "basil",
        "a hamster",
        "croissants",
        "a ferry ticket",
    ];
    let en_when = [
        "in winter",
        "before a trip",
        "on weekends",
        "for beginners",
        "in a small flat",
        "at high altitude",
        "without a garden",
        "for a group",
    ];
    let de = [
        ("Wie pflanze ich", "Tulpen"),
        ("Wie buche ich", "eine Kreuzfahrt"),
        ("Wie füttere ich", "meinen Welpen"),
        ("Wie backe ich", "Sauerteigbrot"),
        ("Wie gieße ich", "Tomaten"),
        ("Wie schneide ich", "Rosen"),
    ];
    let de_when = [
        "im Winter",
        "vor einer Reise",
        "am Wochenende",
        "für Anfänger",
    ];
    let ko = [
        "튤립을 심는 방법",
        "크루즈 예약 방법",
        "강아지 사료 주는 법",
        "빵 굽는 법",
        "토마토 물 주기",
        "장미 가지치기",
        "여행 가방 싸는 법",
        "고양이 목욕",
    ];
    let ko_when = ["겨울에", "여행 전에", "주말에", "초보자를 위한"];
    let mut out = Vec::with_capacity(n);
    let mut i = 0usize;
    while out.len() < n {
        let k = out.len();
        let (question, answer) = match k % 5 {
            0..=2 => {
                let v = en_verbs[i % en_verbs.len()];
                let o = en_nouns[(i / en_verbs.len()) % en_nouns.len()];
                let w = en_when[(i / 7) % en_when.len()];
                (
                    format!("How do I {v} {o} {w}?"),
                    format!(
                        "To {v} {o} {w}, follow our step-by-step guide in the workshop section; our staff are happy to show you."
                    ),
                )
            }
            3 => {
                let (v, o) = de[i % de.len()];
                let w = de_when[(i / de.len()) % de_when.len()];
                (
                    format!("{v} {o} {w}?"),
                    format!("Unsere Anleitung zeigt Schritt für Schritt, wie es {w} gelingt."),
                )
            }
            _ => {
                let q = ko[i % ko.len()];
                let w = ko_when[(i / ko.len()) % ko_when.len()];
                (
                    format!("{w} {q}이 궁금해요"),
                    format!("{w} {q}은 안내 페이지에서 단계별로 확인할 수 있어요."),
                )
            }
        };
        i += 1;
        out.push(LabelledEntry {
            id: format!("distractor_{k}"),
            lang: None,
            question,
            answer,
            organization_id: None,
        });
    }
    out
}

/// The same threshold means the same with 2 or 2,000 entries: set 1's
/// queries against its FAQ alone and against the FAQ plus ~2,000 entries of
/// other businesses give (almost) the same verdicts.
#[test]
fn confidence_does_not_depend_on_faq_size() {
    let set = set1();
    let mut big = set.faq.clone();
    big.extend(distractors(2_000));
    let mut modes: Vec<(&str, Option<&LocalEmbedder>)> = vec![("lexical", None)];
    match local_model() {
        Some(model) => modes.push(("hybrid (local model)", Some(model))),
        None => println!("hybrid: skipped: no local model"),
    }
    for (mode, model) in modes {
        let q_emb = model.map(|m| query_embeddings(m, &set.queries));
        let embed = |q: &str| q_emb.as_ref().and_then(|e| e.get(q).cloned());
        let embed: Option<&eval::QueryEmbedder> = if q_emb.is_some() { Some(&embed) } else { None };
        let t = DEFAULT_CONFIDENCE_THRESHOLD;
        let small = evaluate(
            &FaqIndex::build(docs(&set.faq, model)),
            &set.queries,
            embed,
            mode,
            t,
        );
        let large = evaluate(
            &FaqIndex::build(docs(&big, model)),
            &set.queries,
            embed,
            mode,
            t,
        );
        let agree = small
            .outcomes
            .iter()
            .zip(&large.outcomes)
            .filter(|(a, b)| a.out_of_scope(t) == b.out_of_scope(t))
            .count();
        let (s, l) = (small.total(), large.total());
        let agreement = agree as f64 / small.outcomes.len() as f64;
        println!(
            "{mode}: {} entries vs {}: verdicts agree on {} of queries; hit@1 {} vs {}; OOS precision {} vs {}; OOS recall {} vs {}",
            set.faq.len(),
            big.len(),
            pct(Some(agreement)),
            pct(s.hit1()),
            pct(l.hit1()),
            pct(s.oos_precision()),
            pct(l.oos_precision()),
            pct(s.oos_recall()),
            pct(l.oos_recall()),
        );
        assert!(
            agreement >= 0.93,
            "{mode}: verdicts agree on only {}",
            pct(Some(agreement))
        );
    }
}

/// Emoji, order numbers and other appended noise never flip the verdict of
/// a set-1 query (lexical mode, where it can be guaranteed).
#[test]
fn appended_noise_never_flips_a_verdict() {
    let set = set1();
    let index = FaqIndex::build(docs(&set.faq, None));
    let t = DEFAULT_CONFIDENCE_THRESHOLD;
    let mut flipped = Vec::new();
    for q in &set.queries {
        let org = q.organization_id.as_deref();
        let base = index.retrieve(&q.query, None, 3, org, t);
        for noise in [
            " 🙏",
            " 🙏🙏 !!",
            " (#48213)",
            " #A-99812",
            " 2026-12-07",
            " 👍 48213",
        ] {
            let noisy = format!("{}{noise}", q.query);
            let r = index.retrieve(&noisy, None, 3, org, t);
            let top = |r: &tidechat_llm::Retrieval| r.hits.first().map(|h| h.id.clone());
            if r.out_of_scope != base.out_of_scope || top(&r) != top(&base) {
                flipped.push(format!("{noisy:?}"));
            }
        }
    }
    assert!(flipped.is_empty(), "{} flipped: {flipped:?}", flipped.len());
}

/// The issue's examples: extra words never push a clear match out of scope.
#[test]
fn extra_words_keep_a_clear_match_in_scope() {
    let faq = parse_entries(
        r#"[{"id":"ship","question":"Do you ship to Canada?","answer":"Yes, we ship to Canada within 5 business days."},
            {"id":"returns","question":"How do I return an item?","answer":"Use the return label in your order confirmation."}]"#,
    )
    .unwrap();
    let mut models: Vec<Option<&LocalEmbedder>> = vec![None];
    models.extend(local_model().map(Some));
    for model in models {
        let index = FaqIndex::build(docs(&faq, model));
        let embed = |q: &str| {
            model.map(|m| {
                m.embed_blocking(&[q], EmbedKind::Query)
                    .unwrap()
                    .vectors
                    .remove(0)
            })
        };
        for query in [
            "Do you ship to Canada?",
            "Do you ship to Canada? I live in Toronto.",
            "Hi, I'm Anna. Do you ship to Canada? Thanks!",
            "do you ship to canada 🙏",
        ] {
            let qe = embed(query);
            let r = index.retrieve(query, qe.as_deref(), 3, None, DEFAULT_CONFIDENCE_THRESHOLD);
            assert_eq!(
                r.hits.first().map(|h| h.id.as_str()),
                Some("ship"),
                "{query}"
            );
            assert!(
                !r.out_of_scope,
                "{query} (model: {}): {r:?}",
                model.is_some()
            );
        }
    }
    let big = FaqIndex::build(docs(&set1().faq, None));
    for (query, expected) in [
        ("환불 받으려면 어떻게 해야 하나요? 🙏", "faq_110"),
        ("환불 받으려면 어떻게 해야 하나요?", "faq_110"),
        (
            "How can I reset my password? My order number is 48213.",
            "faq_002",
        ),
    ] {
        let r = big.retrieve(query, None, 3, None, DEFAULT_CONFIDENCE_THRESHOLD);
        assert_eq!(
            r.hits.first().map(|h| h.id.as_str()),
            Some(expected),
            "{query}: {r:?}"
        );
        assert!(!r.out_of_scope, "{query}: {r:?}");
    }
}

#[test]
fn set2_files_are_consistent() {
    let set = set2();
    let ids: HashSet<&str> = set.faq.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids.len(), set.faq.len());
    assert!(set.queries.len() >= 120);
    for q in &set.queries {
        if let Some(exp) = &q.expected {
            assert!(ids.contains(exp.as_str()), "{q:?}");
        }
    }
}

#[test]
fn suggested_threshold_is_reported() {
    let set = set1();
    let index = FaqIndex::build(docs(&set.faq, None));
    let report = evaluate(
        &index,
        &set.queries,
        None,
        "lexical",
        DEFAULT_CONFIDENCE_THRESHOLD,
    );
    let t = report.suggested_threshold().unwrap();
    assert!(eval::SWEEP.contains(&t));
    assert!(report.to_markdown(0).contains("Suggested threshold"));
}

/// Development aid: writes the lexical features of every (query, candidate)
/// pair of set 1 to the file named by `TIDECHAT_DUMP_FEATURES` (used to fit
/// the calibration constants, docs/retrieval.md). Set 2 is never dumped.
#[test]
#[ignore]
fn dump_features() {
    let Ok(path) = std::env::var("TIDECHAT_DUMP_FEATURES") else {
        return;
    };
    let set = set1();
    let index = FaqIndex::build(docs(&set.faq, None));
    let rows: Vec<serde_json::Value> = set
        .queries
        .iter()
        .map(|q| {
            let f = index.features(&q.query, None, q.organization_id.as_deref());
            let cands: Vec<serde_json::Value> = f
                .iter()
                .map(|(i, f)| {
                    serde_json::json!([
                        index.docs()[*i].id,
                        f.query_coverage,
                        f.entry_coverage,
                        f.same_language,
                        f.bm25
                    ])
                })
                .collect();
            serde_json::json!({"query": q.query, "expected": q.expected, "lang": q.lang,
                "kind": q.kind, "org": q.organization_id, "cands": cands})
        })
        .collect();
    std::fs::write(path, serde_json::to_string(&rows).unwrap()).unwrap();
}

/// Hybrid through an OpenAI-compatible `/v1/embeddings` endpoint: the
/// mock's (character-trigram vectors, not a language model), so this checks
/// the wiring of remote embeddings into the index and reports what such
/// vectors give with the calibration fitted for the local model.
#[tokio::test]
async fn hybrid_through_an_embedding_endpoint() {
    use tidechat_llm::embed::openai::OpenAiEmbedderConfig;
    use tidechat_llm::{Embedder, OpenAiEmbedder};
    use tidechat_mock_llm::{MockConfig, MockServer};

    let mock = MockServer::start(MockConfig::default()).unwrap();
    let embedder = OpenAiEmbedder::new(OpenAiEmbedderConfig::new(
        "test:mock",
        mock.openai_base_url(),
        "mock-embed",
    ))
    .unwrap();
    let mut failed = Vec::new();
    for (set, floors) in [(set1(), &ENDPOINT_SET1), (set2(), &ENDPOINT_SET2)] {
        let mut docs = docs(&set.faq, None);
        let questions: Vec<String> = docs.iter().map(|d| d.question.clone()).collect();
        let vectors = embedder
            .embed(questions, EmbedKind::Passage)
            .await
            .unwrap()
            .vectors;
        for (d, v) in docs.iter_mut().zip(vectors) {
            d.embedding = Some(Arc::from(v));
        }
        let texts: Vec<String> = set.queries.iter().map(|q| q.query.clone()).collect();
        let vectors = embedder
            .embed(texts.clone(), EmbedKind::Query)
            .await
            .unwrap()
            .vectors;
        let q_emb: HashMap<String, Vec<f32>> = texts.into_iter().zip(vectors).collect();
        let index = FaqIndex::build(docs);
        let embed = |q: &str| q_emb.get(q).cloned();
        let report = evaluate(
            &index,
            &set.queries,
            Some(&embed),
            &format!(
                "hybrid (embedding endpoint: mock trigram vectors), {}",
                set.name
            ),
            DEFAULT_CONFIDENCE_THRESHOLD,
        );
        println!("{}", report.to_markdown(0));
        check(&report, floors, &mut failed);
    }
    assert!(mock.embedding_stats().requests >= 4);
    assert_no_failures(&failed);
}
