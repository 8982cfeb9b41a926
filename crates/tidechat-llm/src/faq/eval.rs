//! Retrieval evaluation: runs labelled queries against a [`FaqIndex`] and
//! reports how well it ranks and how well it tells answerable from
//! out-of-scope questions, as Markdown. The project's evaluation
//! (`tests/retrieval.rs`) and `tidechat faq eval FILE` both use it.
//!
//! # Labelled-query file
//! A JSON array of objects:
//! `{"query": "...", "expected": "faq_001" | null, "kind": "paraphrase",
//! "lang": "en", "subkind": "near_miss", "organizationId": "org_…"}`.
//! `expected` is the id of the entry that answers the query, `null` when the
//! FAQ cannot answer it; `kind` and `lang` are free labels the report groups
//! by (the project uses `paraphrase`, `typo`, `keyword`, `other_language`,
//! `unanswerable` and `en`/`de`/`ko`); `subkind` (optional, unanswerable
//! queries: `off_topic` / `near_miss`) and `organizationId` (optional: the
//! search is restricted to that organization) may be left out.
//!
//! # Metrics
//! - hit@1 / hit@3 over answerable queries: the expected entry is first /
//!   in the top 3;
//! - out-of-scope (OOS) precision / recall, the positive class being
//!   "unanswerable": precision = share of queries flagged out of scope that
//!   are truly unanswerable, recall = share of unanswerable queries flagged;
//! - answered correctly: an answerable query is in scope and its first hit
//!   is right.
//!
//! The suggested threshold is the one with the best OOS F1 over
//! [`SWEEP`]; ties go to the one closest to the threshold evaluated.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Deserialize;

use super::{FaqDoc, FaqIndex};

/// Thresholds of the precision / recall table and of the suggestion.
pub const SWEEP: [f64; 17] = [
    0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9,
];

/// Hits requested per query (ranks beyond 3 are only reported).
const SEARCH_LIMIT: usize = 10;

/// Why a labelled file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("malformed labelled file: {0}")]
    Json(#[from] serde_json::Error),
    #[error("labelled file has no queries")]
    Empty,
}

/// One labelled query (see the module docs for the file format).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelledQuery {
    pub query: String,
    pub expected: Option<String>,
    #[serde(default = "unlabelled")]
    pub kind: String,
    #[serde(default = "unlabelled")]
    pub lang: String,
    #[serde(default)]
    pub subkind: Option<String>,
    #[serde(default)]
    pub organization_id: Option<String>,
}

fn unlabelled() -> String {
    "–".to_string()
}

/// One FAQ entry of the project's evaluation FAQ file (`id`, `lang`,
/// `question`, `answer`, optional `organizationId`).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelledEntry {
    pub id: String,
    #[serde(default)]
    pub lang: Option<String>,
    pub question: String,
    pub answer: String,
    #[serde(default)]
    pub organization_id: Option<String>,
}

impl LabelledEntry {
    pub fn into_doc(self) -> FaqDoc {
        FaqDoc {
            id: self.id,
            question: self.question,
            answer: self.answer,
            organization_id: self.organization_id,
            embedding: None,
            chunk: None,
        }
    }
}

/// Parses a labelled-query file.
pub fn parse_queries(json: &str) -> Result<Vec<LabelledQuery>, EvalError> {
    let queries: Vec<LabelledQuery> = serde_json::from_str(json)?;
    if queries.is_empty() {
        return Err(EvalError::Empty);
    }
    Ok(queries)
}

/// Parses an FAQ file in the evaluation format.
pub fn parse_entries(json: &str) -> Result<Vec<LabelledEntry>, EvalError> {
    Ok(serde_json::from_str(json)?)
}

/// The outcome of one query.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub query: LabelledQuery,
    /// 1-based rank of the expected entry (None: not in the top 10, or
    /// unanswerable).
    pub rank: Option<usize>,
    pub top_id: Option<String>,
    pub top_question: Option<String>,
    pub top_confidence: f64,
}

impl Outcome {
    pub fn answerable(&self) -> bool {
        self.query.expected.is_some()
    }
    pub fn hit_at(&self, k: usize) -> bool {
        self.rank.is_some_and(|r| r <= k)
    }
    pub fn out_of_scope(&self, threshold: f64) -> bool {
        self.top_id.is_none() || self.top_confidence < threshold
    }
    pub fn answered_correctly(&self, threshold: f64) -> bool {
        self.answerable() && !self.out_of_scope(threshold) && self.hit_at(1)
    }
    fn is_failure(&self, threshold: f64) -> bool {
        if self.answerable() {
            !self.answered_correctly(threshold)
        } else {
            !self.out_of_scope(threshold)
        }
    }
}

/// Counts over a group of outcomes at one threshold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Group {
    pub n: usize,
    pub answerable: usize,
    pub hit1: usize,
    pub hit3: usize,
    pub correct: usize,
    /// Answerable queries flagged out of scope.
    pub answerable_flagged: usize,
    pub unanswerable: usize,
    /// Unanswerable queries flagged out of scope.
    pub unanswerable_flagged: usize,
}

impl Group {
    fn add(&mut self, o: &Outcome, threshold: f64) {
        self.n += 1;
        let flagged = o.out_of_scope(threshold);
        if o.answerable() {
            self.answerable += 1;
            self.hit1 += usize::from(o.hit_at(1));
            self.hit3 += usize::from(o.hit_at(3));
            self.correct += usize::from(o.answered_correctly(threshold));
            self.answerable_flagged += usize::from(flagged);
        } else {
            self.unanswerable += 1;
            self.unanswerable_flagged += usize::from(flagged);
        }
    }
    pub fn hit1(&self) -> Option<f64> {
        ratio(self.hit1, self.answerable)
    }
    pub fn hit3(&self) -> Option<f64> {
        ratio(self.hit3, self.answerable)
    }
    pub fn correct(&self) -> Option<f64> {
        ratio(self.correct, self.answerable)
    }
    pub fn oos_precision(&self) -> Option<f64> {
        ratio(
            self.unanswerable_flagged,
            self.unanswerable_flagged + self.answerable_flagged,
        )
    }
    pub fn oos_recall(&self) -> Option<f64> {
        ratio(self.unanswerable_flagged, self.unanswerable)
    }
    pub fn oos_f1(&self) -> Option<f64> {
        let (p, r) = (self.oos_precision()?, self.oos_recall()?);
        Some(if p + r > 0.0 {
            2.0 * p * r / (p + r)
        } else {
            0.0
        })
    }
}

fn ratio(num: usize, den: usize) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

/// The result of [`evaluate`].
#[derive(Clone, Debug)]
pub struct Report {
    /// A label for the ranking mode ("lexical", "hybrid (local model)").
    pub mode: String,
    /// The threshold the verdicts are computed at.
    pub threshold: f64,
    pub outcomes: Vec<Outcome>,
}

/// Gives a query's embedding, `None` when there is none (for example the
/// embedding endpoint failed): that query is then ranked lexically.
pub type QueryEmbedder<'a> = dyn Fn(&str) -> Option<Vec<f32>> + 'a;

/// Runs every query through `index.search`. `embed` gives a query's
/// embedding (None from it, or no `embed`: that query is ranked lexically).
pub fn evaluate(
    index: &FaqIndex,
    queries: &[LabelledQuery],
    embed: Option<&QueryEmbedder<'_>>,
    mode: &str,
    threshold: f64,
) -> Report {
    let outcomes = queries
        .iter()
        .map(|q| {
            let org = q.organization_id.as_deref();
            let embedding = embed.and_then(|f| f(&q.query));
            let hits = index.search(&q.query, embedding.as_deref(), SEARCH_LIMIT, org);
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
            }
        })
        .collect();
    Report {
        mode: mode.to_string(),
        threshold,
        outcomes,
    }
}

impl Report {
    /// All outcomes at [`Report::threshold`].
    pub fn total(&self) -> Group {
        self.group(|_| true, self.threshold)
    }

    /// The outcomes `keep` selects, at `threshold`.
    pub fn group(&self, keep: impl Fn(&Outcome) -> bool, threshold: f64) -> Group {
        let mut g = Group::default();
        for o in self.outcomes.iter().filter(|o| keep(o)) {
            g.add(o, threshold);
        }
        g
    }

    /// Per value of `key` (kind, language, ...), sorted by value.
    pub fn by(&self, key: impl Fn(&Outcome) -> Option<&str>) -> BTreeMap<String, Group> {
        let mut out: BTreeMap<String, Group> = BTreeMap::new();
        for o in &self.outcomes {
            if let Some(k) = key(o) {
                out.entry(k.to_string()).or_default().add(o, self.threshold);
            }
        }
        out
    }

    pub fn by_kind(&self) -> BTreeMap<String, Group> {
        self.by(|o| Some(o.query.kind.as_str()))
    }

    pub fn by_lang(&self) -> BTreeMap<String, Group> {
        self.by(|o| Some(o.query.lang.as_str()))
    }

    /// `(threshold, counts)` for each threshold of [`SWEEP`].
    pub fn sweep(&self) -> Vec<(f64, Group)> {
        SWEEP
            .iter()
            .map(|&t| (t, self.group(|_| true, t)))
            .collect()
    }

    /// The threshold of [`SWEEP`] with the best OOS F1 (ties: closest to
    /// [`Report::threshold`]); `None` without unanswerable queries.
    pub fn suggested_threshold(&self) -> Option<f64> {
        let mut best: Option<(f64, f64)> = None;
        for (t, g) in self.sweep() {
            let Some(f1) = g.oos_f1() else { continue };
            let better = match best {
                None => true,
                Some((bt, bf)) => {
                    f1 > bf + 1e-12
                        || ((f1 - bf).abs() <= 1e-12
                            && (t - self.threshold).abs() < (bt - self.threshold).abs())
                }
            };
            if better {
                best = Some((t, f1));
            }
        }
        best.map(|(t, _)| t)
    }

    /// The whole report as Markdown: totals, the threshold sweep and the
    /// suggestion, tables by kind and by language, and the failures (worst
    /// first, at most `max_failures`).
    pub fn to_markdown(&self, max_failures: usize) -> String {
        let mut out = String::new();
        let total = self.total();
        let _ = writeln!(
            out,
            "\n## FAQ retrieval: {} (threshold {})\n",
            self.mode, self.threshold
        );
        let _ = writeln!(out, "| metric | value |\n|---|---:|");
        for (name, value) in [
            ("hit@1 (answerable)", total.hit1()),
            ("hit@3 (answerable)", total.hit3()),
            ("OOS precision", total.oos_precision()),
            ("OOS recall", total.oos_recall()),
            ("answered correctly (answerable)", total.correct()),
        ] {
            let _ = writeln!(out, "| {name} | {} |", pct(value));
        }
        let _ = writeln!(
            out,
            "\n{} queries: {} answerable, {} unanswerable; {} flagged out of scope ({} of them answerable).",
            total.n,
            total.answerable,
            total.unanswerable,
            total.answerable_flagged + total.unanswerable_flagged,
            total.answerable_flagged,
        );
        for (sub, g) in self.by(|o| o.query.subkind.as_deref()) {
            let _ = writeln!(
                out,
                "OOS recall on {sub} unanswerable queries: {} ({} / {}).",
                pct(g.oos_recall()),
                g.unanswerable_flagged,
                g.unanswerable
            );
        }
        out.push_str(
            "\n| threshold | OOS precision | OOS recall | OOS F1 | answered correctly | answerable flagged OOS |\n|---:|---:|---:|---:|---:|---:|\n",
        );
        for (t, g) in self.sweep() {
            let _ = writeln!(
                out,
                "| {t:.2} | {} | {} | {} | {} | {} |",
                pct(g.oos_precision()),
                pct(g.oos_recall()),
                pct(g.oos_f1()),
                pct(g.correct()),
                pct(ratio(g.answerable_flagged, g.answerable)),
            );
        }
        match self.suggested_threshold() {
            Some(t) => {
                let _ = writeln!(
                    out,
                    "\nSuggested threshold: **{t:.2}** (best out-of-scope F1 on these queries)."
                );
            }
            None => out.push_str("\nNo suggested threshold: no unanswerable queries.\n"),
        }
        let header = "| group | queries | hit@1 | hit@3 | answered correctly | OOS precision | OOS recall | hit@1 count |\n|---|---:|---:|---:|---:|---:|---:|---:|";
        for (title, groups) in [
            ("By kind", self.by_kind()),
            ("By query language", self.by_lang()),
        ] {
            let _ = writeln!(out, "\n### {title}\n\n{header}");
            for (name, g) in &groups {
                out.push_str(&group_row(name, g));
            }
            out.push_str(&group_row("**all**", &total));
        }

        let t = self.threshold;
        let mut failures: Vec<&Outcome> =
            self.outcomes.iter().filter(|o| o.is_failure(t)).collect();
        failures.sort_by(|a, b| severity(b, t).total_cmp(&severity(a, t)));
        let _ = writeln!(
            out,
            "\n### Failures ({} of {}; worst first)\n\n| # | kind | query | expected | rank | top hit | top confidence | OOS |\n|---:|---|---|---|---:|---|---:|---|",
            failures.len(),
            self.outcomes.len()
        );
        for (i, o) in failures.iter().take(max_failures).enumerate() {
            let _ = writeln!(
                out,
                "| {} | {} | {}{} | {} | {} | {} | {:.2} | {} |",
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
                    (Some(id), Some(q)) => format!("{id} “{}”", q.replace('|', "\\|")),
                    _ => "(none)".to_string(),
                },
                o.top_confidence,
                if o.out_of_scope(t) { "yes" } else { "no" },
            );
        }
        out
    }
}

/// A percentage with one decimal, `–` when undefined.
pub fn pct(x: Option<f64>) -> String {
    x.map_or_else(|| "–".to_string(), |x| format!("{:.1}%", 100.0 * x))
}

fn group_row(name: &str, g: &Group) -> String {
    format!(
        "| {name} | {} | {} | {} | {} | {} | {} | {} / {} |\n",
        g.n,
        pct(g.hit1()),
        pct(g.hit3()),
        pct(g.correct()),
        pct(g.oos_precision()),
        pct(g.oos_recall()),
        g.hit1,
        g.answerable,
    )
}

/// Higher is worse. A wrong answer given with confidence is the worst
/// outcome for a support bot, so failures that are *answered* (in scope)
/// rank above those that fall back; within each, a missing entry ranks
/// above a low rank; ties go to the higher confidence.
fn severity(o: &Outcome, threshold: f64) -> f64 {
    let answered = if o.out_of_scope(threshold) { 0.0 } else { 10.0 };
    let miss = match (o.answerable(), o.rank) {
        (false, _) | (true, None) => 5.0,
        (true, Some(1)) => 0.0,
        (true, Some(r)) => 1.0 + r as f64 / 10.0,
    };
    answered + miss + o.top_confidence
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn report_counts_and_suggests() {
        let faq: Vec<FaqDoc> = parse_entries(
            r#"[{"id":"pw","question":"How can I reset my password?","answer":"Settings, Security."},
                {"id":"inv","question":"Where can I download my invoices?","answer":"Billing."}]"#,
        )
        .unwrap()
        .into_iter()
        .map(LabelledEntry::into_doc)
        .collect();
        let index = FaqIndex::build(faq);
        let queries = parse_queries(
            r#"[{"query":"reset my password","expected":"pw","kind":"keyword","lang":"en"},
                {"query":"download invoices","expected":"inv"},
                {"query":"what is the weather on mars","expected":null,"kind":"unanswerable","subkind":"off_topic"}]"#,
        )
        .unwrap();
        let report = evaluate(&index, &queries, None, "lexical", 0.6);
        let total = report.total();
        assert_eq!((total.n, total.answerable, total.hit1), (3, 2, 2));
        assert_eq!(total.unanswerable_flagged, 1);
        assert_eq!(report.suggested_threshold().map(|t| t > 0.0), Some(true));
        let md = report.to_markdown(10);
        assert!(md.contains("| hit@1 (answerable) | 100.0% |"), "{md}");
        assert!(md.contains("Suggested threshold"), "{md}");
        assert!(parse_queries("[]").is_err());
        assert!(parse_queries("{").is_err());
    }
}
