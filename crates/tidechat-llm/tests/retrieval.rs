#![allow(clippy::unwrap_used)]
//! Retrieval-quality evaluation of the `faq` model's ranker ([`FaqIndex`]).
//!
//! Data (see `docs/retrieval.md`):
//! - `tests/data/retrieval_faq.json`: the FAQ of a fictional e-ink tablet +
//!   cloud subscription company (English, German, Korean entries; a few owned
//!   by the organizations `school-a` / `school-b`).
//! - `tests/data/retrieval_queries.json`: labelled user queries, each with the
//!   expected entry id (or `null` when the FAQ cannot answer it), a `kind`
//!   (`paraphrase`, `typo`, `keyword`, `other_language`, `unanswerable`), the
//!   query language and an optional `organizationId`.
//!
//! Metrics:
//! - hit@1 / hit@3 over answerable queries: the expected id is rank 1 / in the
//!   top 3 of `search(query, limit, organizationId)`.
//! - out-of-scope (OOS) precision / recall with
//!   `retrieve(.., DEFAULT_CONFIDENCE_THRESHOLD)`, the positive class being
//!   "unanswerable": precision = share of flagged queries that are truly
//!   unanswerable, recall = share of unanswerable queries that are flagged.
//! - answered correctly: an answerable query is in scope AND rank 1 is right.
//!
//! Run `cargo test -p tidechat-llm --test retrieval -- --nocapture` to see the
//! report (Markdown tables and the worst examples). The test fails when a
//! metric drops below its floor (constants below, documented in
//! `docs/retrieval.md`).

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Deserialize;
use tidechat_llm::{FaqDoc, FaqIndex, DEFAULT_CONFIDENCE_THRESHOLD};

// Floors: the measured values of the current ranker (docs/retrieval.md:
// hit@1 73.7%, hit@3 82.8%, OOS precision 60.0%, OOS recall 71.4%, answered
// correctly 66.1%) minus about 2 points (one or two queries), so they only
// guard against regressions. hit@3 and OOS precision are still below the
// targets (0.85 / 0.70); raise the floors when the ranker improves.
const FLOOR_HIT_AT_1: f64 = 0.715;
const FLOOR_HIT_AT_3: f64 = 0.805;
const FLOOR_OOS_PRECISION: f64 = 0.58;
const FLOOR_OOS_RECALL: f64 = 0.69;
const FLOOR_ANSWERED_CORRECTLY: f64 = 0.64;

/// Thresholds for the precision / recall trade-off table of the report.
const SWEEP_THRESHOLDS: [f64; 7] = [0.25, 0.30, 0.35, 0.40, 0.45, 0.50, 0.60];

/// Hits requested from `search` (ranks beyond 3 are only reported).
const SEARCH_LIMIT: usize = 10;
/// Hits requested from `retrieve` (what the engine uses).
const RETRIEVE_LIMIT: usize = 3;

const KINDS: [&str; 5] = [
    "paraphrase",
    "typo",
    "keyword",
    "other_language",
    "unanswerable",
];

#[derive(Deserialize, Debug, Clone)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FaqEntry {
    id: String,
    lang: String,
    question: String,
    answer: String,
    #[serde(default)]
    organization_id: Option<String>,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Query {
    query: String,
    expected: Option<String>,
    kind: String,
    lang: String,
    /// Unanswerable queries only: `off_topic` (nothing to do with the
    /// company) or `near_miss` (shares words with FAQ entries but asks
    /// something the FAQ does not cover).
    #[serde(default)]
    subkind: Option<String>,
    #[serde(default)]
    organization_id: Option<String>,
}

fn faq() -> Vec<FaqEntry> {
    serde_json::from_str(include_str!("data/retrieval_faq.json")).unwrap()
}

fn queries() -> Vec<Query> {
    serde_json::from_str(include_str!("data/retrieval_queries.json")).unwrap()
}

fn index(entries: &[FaqEntry]) -> FaqIndex {
    FaqIndex::build(
        entries
            .iter()
            .map(|e| FaqDoc {
                id: e.id.clone(),
                question: e.question.clone(),
                answer: e.answer.clone(),
                organization_id: e.organization_id.clone(),
                embedding: None,
                chunk: None,
            })
            .collect(),
    )
}

/// The outcome of one query.
#[derive(Debug, Clone)]
struct Outcome {
    query: Query,
    /// 1-based rank of the expected entry in `search` (None: not in the top
    /// `SEARCH_LIMIT`, or the query is unanswerable).
    rank: Option<usize>,
    top_id: Option<String>,
    top_question: Option<String>,
    top_confidence: f64,
    out_of_scope: bool,
}

impl Outcome {
    fn answerable(&self) -> bool {
        self.query.expected.is_some()
    }
    fn hit_at(&self, k: usize) -> bool {
        self.rank.is_some_and(|r| r <= k)
    }
    fn answered_correctly(&self) -> bool {
        self.answerable() && !self.out_of_scope && self.hit_at(1)
    }
    fn is_failure(&self) -> bool {
        if self.answerable() {
            !self.answered_correctly()
        } else {
            !self.out_of_scope
        }
    }
}

fn evaluate(index: &FaqIndex, queries: &[Query]) -> Vec<Outcome> {
    queries
        .iter()
        .map(|q| {
            let org = q.organization_id.as_deref();
            let hits = index.search(&q.query, None, SEARCH_LIMIT, org);
            let retrieval = index.retrieve(
                &q.query,
                None,
                RETRIEVE_LIMIT,
                org,
                DEFAULT_CONFIDENCE_THRESHOLD,
            );
            let rank = q
                .expected
                .as_ref()
                .and_then(|exp| hits.iter().position(|h| &h.id == exp))
                .map(|p| p + 1);
            let top = hits.first();
            Outcome {
                query: q.clone(),
                rank,
                top_id: top.map(|h| h.id.clone()),
                top_question: top.map(|h| h.question.clone()),
                top_confidence: top.map_or(0.0, |h| h.confidence),
                out_of_scope: retrieval.out_of_scope,
            }
        })
        .collect()
}

#[derive(Debug, Default, Clone, Copy)]
struct Group {
    n: usize,
    answerable: usize,
    hit1: usize,
    hit3: usize,
    correct: usize,
    /// Answerable queries flagged out of scope.
    answerable_flagged: usize,
    unanswerable: usize,
    /// Unanswerable queries flagged out of scope.
    unanswerable_flagged: usize,
}

impl Group {
    fn add(&mut self, o: &Outcome) {
        self.n += 1;
        if o.answerable() {
            self.answerable += 1;
            self.hit1 += usize::from(o.hit_at(1));
            self.hit3 += usize::from(o.hit_at(3));
            self.correct += usize::from(o.answered_correctly());
            self.answerable_flagged += usize::from(o.out_of_scope);
        } else {
            self.unanswerable += 1;
            self.unanswerable_flagged += usize::from(o.out_of_scope);
        }
    }
    fn hit1(&self) -> Option<f64> {
        ratio(self.hit1, self.answerable)
    }
    fn hit3(&self) -> Option<f64> {
        ratio(self.hit3, self.answerable)
    }
    fn correct(&self) -> Option<f64> {
        ratio(self.correct, self.answerable)
    }
    fn oos_precision(&self) -> Option<f64> {
        ratio(
            self.unanswerable_flagged,
            self.unanswerable_flagged + self.answerable_flagged,
        )
    }
    fn oos_recall(&self) -> Option<f64> {
        ratio(self.unanswerable_flagged, self.unanswerable)
    }
}

fn ratio(num: usize, den: usize) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

fn pct(x: Option<f64>) -> String {
    x.map_or_else(|| "–".to_string(), |x| format!("{:.1}%", 100.0 * x))
}

fn group_row(name: &str, g: &Group) -> String {
    format!(
        "| {name} | {} | {} | {} | {} | {} | {} / {} | {} / {} |",
        g.n,
        pct(g.hit1()),
        pct(g.hit3()),
        pct(g.correct()),
        pct(ratio(g.answerable_flagged, g.answerable)),
        g.unanswerable_flagged,
        g.unanswerable,
        g.hit1,
        g.answerable,
    )
}

fn report(outcomes: &[Outcome]) -> (Group, String) {
    let mut total = Group::default();
    let mut by_kind: BTreeMap<&str, Group> = BTreeMap::new();
    let mut by_lang: BTreeMap<&str, Group> = BTreeMap::new();
    let mut by_subkind: BTreeMap<&str, Group> = BTreeMap::new();
    for o in outcomes {
        total.add(o);
        by_kind.entry(o.query.kind.as_str()).or_default().add(o);
        by_lang.entry(o.query.lang.as_str()).or_default().add(o);
        if let Some(sub) = &o.query.subkind {
            by_subkind.entry(sub.as_str()).or_default().add(o);
        }
    }
    let mut out = String::new();
    let header = "| group | queries | hit@1 | hit@3 | answered correctly | answerable flagged OOS | unanswerable flagged | hit@1 count |\n|---|---:|---:|---:|---:|---:|---:|---:|";
    out.push_str(&format!(
        "\n## FAQ retrieval evaluation (threshold {DEFAULT_CONFIDENCE_THRESHOLD})\n\n"
    ));
    out.push_str("| metric | value | floor |\n|---|---:|---:|\n");
    let rows = [
        ("hit@1 (answerable)", total.hit1(), FLOOR_HIT_AT_1),
        ("hit@3 (answerable)", total.hit3(), FLOOR_HIT_AT_3),
        ("OOS precision", total.oos_precision(), FLOOR_OOS_PRECISION),
        ("OOS recall", total.oos_recall(), FLOOR_OOS_RECALL),
        (
            "answered correctly (answerable)",
            total.correct(),
            FLOOR_ANSWERED_CORRECTLY,
        ),
    ];
    for (name, value, floor) in rows {
        out.push_str(&format!(
            "| {name} | {} | {} |\n",
            pct(value),
            pct(Some(floor))
        ));
    }
    out.push_str(&format!(
        "\n{} queries: {} answerable, {} unanswerable; {} flagged out of scope ({} of them answerable).\n",
        total.n,
        total.answerable,
        total.unanswerable,
        total.answerable_flagged + total.unanswerable_flagged,
        total.answerable_flagged,
    ));
    for (sub, g) in &by_subkind {
        out.push_str(&format!(
            "OOS recall on {sub} unanswerable queries: {} ({} / {}).\n",
            pct(g.oos_recall()),
            g.unanswerable_flagged,
            g.unanswerable
        ));
    }
    out.push_str(&threshold_sweep(outcomes));
    out.push_str("\n### By kind\n\n");
    out.push_str(header);
    out.push('\n');
    for kind in KINDS {
        if let Some(g) = by_kind.get(kind) {
            out.push_str(&group_row(kind, g));
            out.push('\n');
        }
    }
    out.push_str(&group_row("**all**", &total));
    out.push('\n');
    out.push_str("\n### By query language\n\n");
    out.push_str(header);
    out.push('\n');
    for (lang, g) in &by_lang {
        out.push_str(&group_row(lang, g));
        out.push('\n');
    }

    // Worst examples: answerable queries the bot gets wrong (expected entry
    // missing from the results first, then lowest rank), and unanswerable
    // queries it answers anyway (most confident first).
    let mut failures: Vec<&Outcome> = outcomes.iter().filter(|o| o.is_failure()).collect();
    failures.sort_by(|a, b| severity(b).total_cmp(&severity(a)));
    out.push_str(&format!(
        "\n### Failures ({} of {}; worst first)\n\n| # | kind | query | expected | rank | top hit | top confidence | OOS |\n|---:|---|---|---|---:|---|---:|---|\n",
        failures.len(),
        outcomes.len()
    ));
    for (i, o) in failures.iter().enumerate() {
        out.push_str(&format!(
            "| {} | {} | {}{} | {} | {} | {} | {:.2} | {} |\n",
            i + 1,
            o.query.kind,
            o.query.query.replace('|', "\\|"),
            o.query
                .organization_id
                .as_deref()
                .map_or_else(String::new, |org| format!(" (org {org})")),
            o.query.expected.as_deref().unwrap_or("null"),
            o.rank.map_or_else(|| "–".to_string(), |r| r.to_string()),
            match (&o.top_id, &o.top_question) {
                (Some(id), Some(q)) => format!("{id} “{q}”"),
                _ => "(none)".to_string(),
            },
            o.top_confidence,
            if o.out_of_scope { "yes" } else { "no" },
        ));
    }
    (total, out)
}

/// OOS precision / recall and answered-correctly at other thresholds (the
/// top hit's confidence is the same in `search` and `retrieve`).
fn threshold_sweep(outcomes: &[Outcome]) -> String {
    let mut out = String::from(
        "\n| threshold | OOS precision | OOS recall | answered correctly | answerable flagged OOS |\n|---:|---:|---:|---:|---:|\n",
    );
    for t in SWEEP_THRESHOLDS {
        let mut g = Group::default();
        for o in outcomes {
            let mut o = o.clone();
            o.out_of_scope = o.top_confidence < t;
            g.add(&o);
        }
        out.push_str(&format!(
            "| {t:.2} | {} | {} | {} | {} |\n",
            pct(g.oos_precision()),
            pct(g.oos_recall()),
            pct(g.correct()),
            pct(ratio(g.answerable_flagged, g.answerable)),
        ));
    }
    out
}

/// Higher is worse. A wrong answer given with confidence is the worst
/// outcome for a support bot, so failures that are *answered* (in scope) rank
/// above those that fall back. Within each group: an unanswerable query, or an
/// answerable one whose entry is missing from the results, ranks above a
/// right entry at a low rank, which ranks above a right entry at rank 1 (only
/// below the threshold); ties go to the higher confidence.
fn severity(o: &Outcome) -> f64 {
    let answered = if o.out_of_scope { 0.0 } else { 10.0 };
    let miss = match (o.answerable(), o.rank) {
        (false, _) | (true, None) => 5.0,
        (true, Some(1)) => 0.0,
        (true, Some(r)) => 1.0 + r as f64 / 10.0,
    };
    answered + miss + o.top_confidence
}

#[test]
fn data_files_are_consistent() {
    let faq = faq();
    let queries = queries();
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
        assert!(["en", "de", "ko"].contains(&e.lang.as_str()), "{e:?}");
        assert!(!e.question.trim().is_empty() && !e.answer.trim().is_empty());
    }
    let langs: HashMap<&str, usize> = faq.iter().fold(HashMap::new(), |mut m, e| {
        *m.entry(e.lang.as_str()).or_default() += 1;
        m
    });
    assert!(langs.get("de").copied().unwrap_or(0) >= 15, "{langs:?}");
    assert!(langs.get("ko").copied().unwrap_or(0) >= 15, "{langs:?}");
    let by_id: HashMap<&str, &FaqEntry> = faq.iter().map(|e| (e.id.as_str(), e)).collect();

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
    let faq = faq();
    let index = index(&faq);
    let org_of: HashMap<&str, Option<&str>> = faq
        .iter()
        .map(|e| (e.id.as_str(), e.organization_id.as_deref()))
        .collect();
    let scoped: Vec<Query> = queries()
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
fn retrieval_quality_meets_floors() {
    let faq = faq();
    let queries = queries();
    let index = index(&faq);
    assert_eq!(index.len(), faq.len());

    let outcomes = evaluate(&index, &queries);
    let (total, table) = report(&outcomes);
    println!("{table}");

    let checks = [
        ("hit@1", total.hit1(), FLOOR_HIT_AT_1),
        ("hit@3", total.hit3(), FLOOR_HIT_AT_3),
        ("OOS precision", total.oos_precision(), FLOOR_OOS_PRECISION),
        ("OOS recall", total.oos_recall(), FLOOR_OOS_RECALL),
        (
            "answered correctly",
            total.correct(),
            FLOOR_ANSWERED_CORRECTLY,
        ),
    ];
    let failed: Vec<String> = checks
        .iter()
        .filter(|(_, value, floor)| value.unwrap_or(0.0) < *floor)
        .map(|(name, value, floor)| {
            format!("{name} = {} < floor {}", pct(*value), pct(Some(*floor)))
        })
        .collect();
    assert!(
        failed.is_empty(),
        "retrieval quality below the documented floors (docs/retrieval.md): {}",
        failed.join("; ")
    );
}
