//! FAQ retrieval: a small in-memory BM25 index over question + answer text,
//! with a confidence that decides "out of scope".
//!
//! `docs/retrieval.md` has the evaluation behind every choice below and the
//! things that were tried and did not help.
//!
//! # Why hand-written BM25
//! The `bm25` crate (2.x) was evaluated: with `default-features = false` it
//! is light and accepts a custom tokenizer, but it hashes terms into integer
//! ids (collisions), scores in `f32`, keeps the IDF private and applies term
//! saturation to the query side. The confidence measure below needs the
//! per-term IDF of exactly the statistics used for ranking, and the tenant
//! filter needs statistics computed over the tenant's own documents. Plain
//! Okapi BM25 is ~60 lines, so it is implemented here directly.
//!
//! # Ranking
//! Okapi BM25 with `k1 = 1.2`, `b = 0.75` and the Lucene IDF
//! `ln(1 + (N - df + 0.5) / (df + 0.5))` (always positive). A document's text
//! is its question twice (questions weigh double) followed by its answer.
//! Statistics (`N`, `df`, average length) are computed over the documents the
//! search may see, so with an organization filter one tenant's FAQ never
//! influences another tenant's scores.
//!
//! Each query word is looked up as its Snowball stem in the query's language
//! (English or German, guessed from function words), then in the other
//! language. A Latin-script word of 5+ letters that is still unknown matches
//! vocabulary words within edit distance 1 (2 from 8 letters) that start the
//! same way (typo tolerance); such a match counts 0.8 of an exact one.
//!
//! # Confidence
//! The IDF-weighted share of the query's words that the entry covers, with
//! two refinements for telling "asked differently" from "asked about
//! something else":
//! - a word that no visible entry contains weighs double in the total (its
//!   IDF is that of a term in no document), and six-fold if it also looks
//!   like a name in an English query (`Netflix`, `iPhone`): "how do I cancel
//!   my Netflix subscription" is not covered by "How do I cancel my
//!   subscription?" although every other word matches;
//! - 30% of the confidence counts only words matched in the entry's
//!   question, since the question states what the entry is about.
//!
//! A word with parts (a Hangul word and its syllable bigrams, a hyphenated
//! compound and its pieces) is one unit: covered when the whole matches,
//! else by the share of its parts that match. The coverage `c` in `0..=1` is
//! reported as `c^0.65`, which puts the best precision / recall trade-off on
//! the evaluation set at [`DEFAULT_CONFIDENCE_THRESHOLD`] (0.35) and keeps a
//! full match at 1.
//!
//! # Text analysis
//! NFKC normalisation, lowercasing, Unicode word segmentation (UAX #29);
//! punctuation and whitespace are dropped, emoji are kept as terms (variation
//! selectors removed), a trailing English possessive `'s` is removed and a
//! hyphenated compound is also indexed joined (`Wi-Fi` → `wifi`). Runs of
//! CJK ideographs / kana (written without spaces) become character bigrams;
//! Hangul words are kept whole and, when longer than two syllables, also
//! contribute syllable bigrams so that particles (비밀번호를 / 비밀번호) do
//! not prevent a match. Latin-script words are stemmed (Snowball, English
//! or German by a guess per document). English and German stop words are
//! removed from queries unless that would leave the query empty.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

mod analysis;

pub use analysis::analyze;
use analysis::{edit_distance, is_latin_word, is_stop_word, name_like_words, Lang};

use crate::model::Retrieval;

/// BM25 term-frequency saturation.
pub const BM25_K1: f64 = 1.2;
/// BM25 length normalisation.
pub const BM25_B: f64 = 0.75;
/// The confidence threshold callers use by default for [`FaqIndex::retrieve`].
pub const DEFAULT_CONFIDENCE_THRESHOLD: f64 = 0.35;
/// How much a typo-corrected query term counts, relative to an exact one.
const FUZZY_WEIGHT: f64 = 0.8;
/// Extra weight (× its IDF) of a query word that no visible entry contains:
/// it is what the user asks about and the FAQ does not cover.
const UNKNOWN_PENALTY: f64 = 1.0;
/// More extra weight when that word also looks like a name (`Netflix`,
/// `iPhone`): a product or place the FAQ never mentions.
const UNKNOWN_NAME_PENALTY: f64 = 4.0;
/// Share of the confidence that comes from matching the entry's question
/// (the rest: question or answer).
const QUESTION_SHARE: f64 = 0.3;
/// `coverage^γ` maps the coverage at the best precision/recall trade-off on
/// the evaluation set (≈ 0.2) to [`DEFAULT_CONFIDENCE_THRESHOLD`].
const CALIBRATION_EXPONENT: f64 = 0.65;

/// One FAQ entry.
#[derive(Clone, Debug)]
pub struct FaqDoc {
    pub id: String,
    pub question: String,
    pub answer: String,
    /// `None` for entries not owned by an organization.
    pub organization_id: Option<String>,
    /// Unit-length passage embedding from the deployment's embedder (same
    /// model as the query's). `None`: the entry is ranked lexically only.
    pub embedding: Option<Arc<[f32]>>,
    /// Set when this doc is a chunk of an uploaded document (Markdown, HTML,
    /// text): `question` then holds the document title + heading path,
    /// `answer` the chunk text.
    pub chunk: Option<ChunkRef>,
}

/// Where a chunk of an uploaded document comes from (for citations).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkRef {
    pub document_id: String,
    /// 0-based position of the chunk in its document.
    pub index: u32,
}

/// One search result.
#[derive(Clone, Debug)]
pub struct FaqHit {
    pub id: String,
    pub question: String,
    pub answer: String,
    /// BM25 score (> 0; only comparable within one search).
    pub score: f64,
    /// How sure the index is that this entry answers the query, 0..=1.
    pub confidence: f64,
    /// The doc's [`FaqDoc::chunk`].
    pub chunk: Option<ChunkRef>,
    /// Lexical coverage of the entry (0..=1; the lexical-only confidence).
    pub lexical: f64,
    /// Cosine similarity of query and entry embeddings, when both exist.
    pub semantic: Option<f64>,
}

#[derive(Clone, Copy, Debug, Default)]
struct CorpusStats {
    docs: usize,
    total_len: u64,
}

#[derive(Clone, Copy, Debug)]
struct Posting {
    doc: u32,
    /// Weighted term frequency (question occurrences count twice).
    tf: u32,
    in_question: bool,
}

/// How a query term was found in the index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Match {
    Exact,
    Fuzzy,
    Unknown,
}

impl Match {
    /// How much a match of the term counts (BM25 and confidence).
    fn weight(self) -> f64 {
        match self {
            Match::Exact => 1.0,
            Match::Fuzzy => FUZZY_WEIGHT,
            Match::Unknown => 0.0,
        }
    }
}

/// A distinct query term resolved against the visible vocabulary.
#[derive(Clone, Debug)]
struct QueryTerm {
    stems: Vec<String>,
    kind: Match,
}

/// One word of the query: its terms (indices into the query's distinct
/// terms; the first is the word itself, the rest its parts).
#[derive(Clone, Debug)]
struct QueryUnit {
    terms: Vec<usize>,
    /// Looks like a name (English query, capitalised or camel-case).
    name_like: bool,
}

#[derive(Clone, Debug, Default)]
struct Query {
    terms: Vec<QueryTerm>,
    units: Vec<QueryUnit>,
}

/// Per-query statistics shared by all candidates.
#[derive(Clone, Debug, Default)]
struct QueryStats {
    /// Per distinct term.
    idf: Vec<f64>,
    /// Per unit: its weight (the highest IDF of its known terms, else the
    /// IDF of an unknown term), whether any of its terms is in the visible
    /// vocabulary, whether it looks like a name.
    unit_weight: Vec<f64>,
    unit_known: Vec<bool>,
    unit_name: Vec<bool>,
}

/// One entry that matched at least one query term.
#[derive(Clone, Debug, Default)]
struct Candidate {
    doc: u32,
    score: f64,
    /// Per unit: matched fraction (0..=1) in the entry / in its question.
    unit_match: Vec<f64>,
    unit_question: Vec<f64>,
}

/// An immutable BM25 index over FAQ entries. Cheap to search; rebuild it when
/// the FAQ changes.
#[derive(Clone, Debug, Default)]
pub struct FaqIndex {
    docs: Vec<FaqDoc>,
    doc_len: Vec<u32>,
    /// stem -> postings, doc indices ascending.
    postings: HashMap<String, Vec<Posting>>,
    /// Latin-script surface word -> the stems it was indexed under (for
    /// typo tolerance). Ordered so that lookups are deterministic.
    surfaces: BTreeMap<String, Vec<String>>,
    all: CorpusStats,
    by_org: HashMap<String, CorpusStats>,
}

impl FaqIndex {
    pub fn build(docs: Vec<FaqDoc>) -> Self {
        let mut index = FaqIndex {
            doc_len: Vec::with_capacity(docs.len()),
            ..FaqIndex::default()
        };
        for (i, doc) in docs.iter().enumerate() {
            let question = analyze(&doc.question);
            let answer = analyze(&doc.answer);
            let lang = Lang::guess(&[question.as_slice(), answer.as_slice()].concat());
            let mut stem_of = |term: &String| {
                let stem = lang.stem(term);
                if is_latin_word(term) {
                    let stems = index.surfaces.entry(term.clone()).or_default();
                    if !stems.contains(&stem) {
                        stems.push(stem.clone());
                    }
                }
                stem
            };
            let question: Vec<String> = question.iter().map(&mut stem_of).collect();
            let answer: Vec<String> = answer.iter().map(&mut stem_of).collect();
            let mut tf: HashMap<&str, (u32, bool)> = HashMap::new();
            for term in &question {
                let e = tf.entry(term.as_str()).or_default();
                e.0 += 2;
                e.1 = true;
            }
            for term in &answer {
                tf.entry(term.as_str()).or_default().0 += 1;
            }
            let len = (2 * question.len() + answer.len()) as u64;
            for (term, (n, in_question)) in tf {
                index
                    .postings
                    .entry(term.to_string())
                    .or_default()
                    .push(Posting {
                        doc: i as u32,
                        tf: n,
                        in_question,
                    });
            }
            index.doc_len.push(u32::try_from(len).unwrap_or(u32::MAX));
            index.all.docs += 1;
            index.all.total_len += len;
            if let Some(org) = &doc.organization_id {
                let stats = index.by_org.entry(org.clone()).or_default();
                stats.docs += 1;
                stats.total_len += len;
            }
        }
        index.docs = docs;
        index
    }

    pub fn len(&self) -> usize {
        self.docs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }

    fn visible(&self, doc: u32, organization_id: Option<&str>) -> bool {
        match organization_id {
            None => true,
            Some(org) => {
                self.docs
                    .get(doc as usize)
                    .and_then(|d| d.organization_id.as_deref())
                    == Some(org)
            }
        }
    }

    fn is_visible_term(&self, stem: &str, organization_id: Option<&str>) -> bool {
        self.postings
            .get(stem)
            .is_some_and(|p| p.iter().any(|p| self.visible(p.doc, organization_id)))
    }

    /// Resolves query words to index stems: the query language's stem, then
    /// the other language's, then (typo tolerance) similar vocabulary words.
    fn resolve(&self, query: &str, organization_id: Option<&str>) -> Query {
        let mut all = analysis::units(query);
        let mut seen = HashSet::new();
        all.retain(|u| seen.insert(u[0].clone()));
        let words: Vec<String> = all.iter().map(|u| u[0].clone()).collect();
        let lang = Lang::guess(&words);
        let names: HashSet<String> = if lang == Lang::En {
            name_like_words(query).into_iter().collect()
        } else {
            HashSet::new()
        };
        let content: Vec<Vec<String>> = all
            .iter()
            .filter(|u| !is_stop_word(&u[0]))
            .cloned()
            .collect();
        let units = if content.is_empty() { all } else { content };
        let mut q = Query::default();
        for unit in units {
            let name_like = names.contains(&unit[0]);
            let mut indices = Vec::new();
            for word in &unit {
                let term = self.resolve_word(word, lang, organization_id);
                let i = match q.terms.iter().position(|t| t.stems == term.stems) {
                    Some(i) => i,
                    None => {
                        q.terms.push(term);
                        q.terms.len() - 1
                    }
                };
                if !indices.contains(&i) {
                    indices.push(i);
                }
            }
            q.units.push(QueryUnit {
                terms: indices,
                name_like,
            });
        }
        q
    }

    fn resolve_word(&self, word: &str, lang: Lang, organization_id: Option<&str>) -> QueryTerm {
        let exact = [lang.stem(word), lang.other().stem(word)]
            .into_iter()
            .find(|s| self.is_visible_term(s, organization_id));
        if let Some(stem) = exact {
            return QueryTerm {
                stems: vec![stem],
                kind: Match::Exact,
            };
        }
        let stems = self.typo_candidates(word, organization_id);
        if stems.is_empty() {
            QueryTerm {
                stems: vec![lang.stem(word)],
                kind: Match::Unknown,
            }
        } else {
            QueryTerm {
                stems,
                kind: Match::Fuzzy,
            }
        }
    }

    /// Vocabulary words within edit distance 1 (2 from 8 letters) of a Latin
    /// word of 5+ letters that the index does not know. They must share the
    /// first letter and, below 6 letters, the second one too (or differ by
    /// swapping the two): short words have many real-word neighbours
    /// (score / store, black / back) and typos rarely hit the start.
    fn typo_candidates(&self, word: &str, organization_id: Option<&str>) -> Vec<String> {
        let chars: Vec<char> = word.chars().collect();
        if chars.len() < 5 || !is_latin_word(word) || word.contains('\'') {
            return Vec::new();
        }
        let max = if chars.len() >= 8 { 2 } else { 1 };
        let mut stems: Vec<String> = Vec::new();
        for (surface, surface_stems) in &self.surfaces {
            let other: Vec<char> = surface.chars().collect();
            if other.len().abs_diff(chars.len()) > max || other.first() != chars.first() {
                continue;
            }
            let swapped =
                chars.len() > 2 && other.len() > 2 && other[1] == chars[2] && other[2] == chars[1];
            if chars.len() < 6 && other.get(1) != chars.get(1) && !swapped {
                continue;
            }
            if edit_distance(word, surface) > max {
                continue;
            }
            for stem in surface_stems {
                if !stems.contains(stem) && self.is_visible_term(stem, organization_id) {
                    stems.push(stem.clone());
                }
            }
        }
        stems
    }

    /// All candidates, best first, with the statistics for [`confidence`].
    fn rank(&self, query: &str, organization_id: Option<&str>) -> (QueryStats, Vec<Candidate>) {
        let mut stats_q = QueryStats::default();
        if self.docs.is_empty() {
            return (stats_q, Vec::new());
        }
        let stats = match organization_id {
            None => self.all,
            Some(org) => match self.by_org.get(org) {
                Some(stats) => *stats,
                None => return (stats_q, Vec::new()),
            },
        };
        if stats.docs == 0 {
            return (stats_q, Vec::new());
        }
        let q = self.resolve(query, organization_id);
        let n = stats.docs as f64;
        let avgdl = (stats.total_len as f64 / n).max(1.0);

        // doc -> (score, per term: (match weight, in question))
        let mut acc: HashMap<u32, (f64, Vec<(f64, bool)>)> = HashMap::new();
        for (i, term) in q.terms.iter().enumerate() {
            // doc -> (tf, in question), over the union of the term's stems.
            let mut hits: BTreeMap<u32, (u32, bool)> = BTreeMap::new();
            if term.kind != Match::Unknown {
                for stem in &term.stems {
                    for p in self.postings.get(stem).into_iter().flatten() {
                        if self.visible(p.doc, organization_id) {
                            let e = hits.entry(p.doc).or_default();
                            e.0 += p.tf;
                            e.1 |= p.in_question;
                        }
                    }
                }
            }
            let df = hits.len() as f64;
            let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
            stats_q.idf.push(idf);
            let weight = term.kind.weight();
            for (doc, (tf, in_question)) in hits {
                let tf = f64::from(tf);
                let dl = f64::from(self.doc_len.get(doc as usize).copied().unwrap_or(0));
                let norm = BM25_K1 * (1.0 - BM25_B + BM25_B * dl / avgdl);
                let entry = acc
                    .entry(doc)
                    .or_insert_with(|| (0.0, vec![(0.0, false); q.terms.len()]));
                entry.0 += weight * idf * tf * (BM25_K1 + 1.0) / (tf + norm);
                entry.1[i] = (weight, in_question);
            }
        }
        for unit in &q.units {
            let known: Vec<f64> = unit
                .terms
                .iter()
                .filter(|&&t| q.terms[t].kind != Match::Unknown)
                .map(|&t| stats_q.idf[t])
                .collect();
            let weight = known
                .iter()
                .copied()
                .reduce(f64::max)
                .unwrap_or_else(|| stats_q.idf[unit.terms[0]]);
            stats_q.unit_weight.push(weight);
            stats_q.unit_known.push(!known.is_empty());
            stats_q.unit_name.push(unit.name_like);
        }
        let unit_fraction = |matches: &[(f64, bool)], unit: &QueryUnit, question: bool| -> f64 {
            let m = |t: usize| {
                let (w, in_q) = matches[t];
                if question && !in_q {
                    0.0
                } else {
                    w
                }
            };
            let whole = m(unit.terms[0]);
            if whole > 0.0 || unit.terms.len() == 1 {
                whole
            } else {
                let parts = &unit.terms[1..];
                parts.iter().map(|&t| m(t)).sum::<f64>() / parts.len() as f64
            }
        };
        let mut ranked: Vec<Candidate> = acc
            .into_iter()
            .filter(|(_, (score, _))| *score > 0.0)
            .map(|(doc, (score, matches))| Candidate {
                doc,
                score,
                unit_match: q
                    .units
                    .iter()
                    .map(|u| unit_fraction(&matches, u, false))
                    .collect(),
                unit_question: q
                    .units
                    .iter()
                    .map(|u| unit_fraction(&matches, u, true))
                    .collect(),
            })
            .collect();
        ranked.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.doc.cmp(&b.doc)));
        (stats_q, ranked)
    }

    /// Best first; only hits with score > 0; `organization_id` `Some(x)`
    /// restricts the search (and the BM25 statistics) to docs whose
    /// `organization_id == Some(x)`; `None` searches every doc.
    pub fn search(
        &self,
        query: &str,
        query_embedding: Option<&[f32]>,
        limit: usize,
        organization_id: Option<&str>,
    ) -> Vec<FaqHit> {
        let _ = query_embedding;
        if limit == 0 {
            return Vec::new();
        }
        let (stats, ranked) = self.rank(query, organization_id);
        ranked
            .iter()
            .take(limit)
            .filter_map(|c| {
                self.docs.get(c.doc as usize).map(|d| FaqHit {
                    id: d.id.clone(),
                    question: d.question.clone(),
                    answer: d.answer.clone(),
                    score: c.score,
                    confidence: confidence(&stats, c),
                    chunk: d.chunk.clone(),
                    lexical: confidence(&stats, c),
                    semantic: None,
                })
            })
            .collect()
    }

    /// Convenience: [`search`](Self::search) plus
    /// `out_of_scope = no hits || best.confidence < threshold`.
    pub fn retrieve(
        &self,
        query: &str,
        query_embedding: Option<&[f32]>,
        limit: usize,
        organization_id: Option<&str>,
        threshold: f64,
    ) -> Retrieval {
        let hits = self.search(query, query_embedding, limit, organization_id);
        let out_of_scope = hits.first().is_none_or(|best| best.confidence < threshold);
        Retrieval { hits, out_of_scope }
    }
}

/// The confidence that `c` answers the query (see the module docs).
fn confidence(stats: &QueryStats, c: &Candidate) -> f64 {
    let mut total = 0.0;
    let mut in_entry = 0.0;
    let mut in_question = 0.0;
    for (i, &weight) in stats.unit_weight.iter().enumerate() {
        let penalty = match (stats.unit_known[i], stats.unit_name[i]) {
            (true, _) => 0.0,
            (false, false) => UNKNOWN_PENALTY,
            (false, true) => UNKNOWN_PENALTY + UNKNOWN_NAME_PENALTY,
        };
        total += weight * (1.0 + penalty);
        in_entry += weight * c.unit_match[i];
        in_question += weight * c.unit_question[i];
    }
    if total <= 0.0 {
        return 0.0;
    }
    let coverage = ((1.0 - QUESTION_SHARE) * in_entry + QUESTION_SHARE * in_question) / total;
    coverage.clamp(0.0, 1.0).powf(CALIBRATION_EXPONENT)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn doc(id: &str, question: &str, answer: &str, org: Option<&str>) -> FaqDoc {
        FaqDoc {
            id: id.to_string(),
            question: question.to_string(),
            answer: answer.to_string(),
            organization_id: org.map(str::to_string),
            embedding: None,
            chunk: None,
        }
    }

    fn faq() -> FaqIndex {
        FaqIndex::build(vec![
            doc(
                "pw",
                "How can I reset my password?",
                "Open Settings → Security and click \"Reset password\". We email you a link.",
                None,
            ),
            doc(
                "email",
                "How do I change the email address on my account?",
                "Go to Settings → Profile, edit your email and confirm the verification mail.",
                None,
            ),
            doc(
                "invoice",
                "Where can I download my invoices?",
                "All invoices are under Billing → Invoices as PDF.",
                None,
            ),
            doc(
                "cancel",
                "How do I cancel my subscription?",
                "Billing → Plan → Cancel subscription. You keep access until the period ends.",
                None,
            ),
            doc(
                "refund",
                "Can I get a refund?",
                "Refunds are possible within 14 days of a payment; contact billing support.",
                None,
            ),
            doc(
                "de-pw",
                "Wie kann ich mein Passwort zurücksetzen?",
                "Öffne Einstellungen → Sicherheit und klicke auf „Passwort zurücksetzen“.",
                None,
            ),
            doc(
                "de-rechnung",
                "Wo finde ich meine Rechnungen?",
                "Alle Rechnungen findest du unter Abrechnung → Rechnungen. Größere Beträge per Überweisung.",
                None,
            ),
            doc(
                "ko-pw",
                "비밀번호를 재설정하려면 어떻게 해야 하나요?",
                "설정 → 보안에서 비밀번호 재설정을 누르세요.",
                None,
            ),
            doc(
                "ko-refund",
                "환불을 받을 수 있나요?",
                "결제 후 14일 이내에 환불이 가능합니다.",
                None,
            ),
        ])
    }

    #[test]
    fn analyzer_basics() {
        assert_eq!(analyze("Hello, WORLD!"), vec!["hello", "world"]);
        assert_eq!(analyze("ＡＢＣ　Straße"), vec!["abc", "straße"]);
        assert_eq!(analyze("user’s guide"), vec!["user", "guide"]);
        assert_eq!(analyze("I ❤️ it 🔥"), vec!["i", "❤", "it", "🔥"]);
        assert_eq!(analyze("重置密码"), vec!["重置", "置密", "密码"]);
        assert_eq!(analyze("密码。"), vec!["密码"]);
        assert_eq!(analyze("中"), vec!["中"]);
        assert_eq!(
            analyze("비밀번호를"),
            vec!["비밀번호를", "비밀", "밀번", "번호", "호를"]
        );
        assert!(analyze("  ...?! ").is_empty());
        assert!(analyze("").is_empty());
    }

    #[test]
    fn hyphenated_compounds_are_also_joined() {
        assert_eq!(
            analyze("Wi-Fi, e-mail - ok"),
            vec!["wifi", "wi", "fi", "email", "e", "mail", "ok"]
        );
        assert_eq!(
            analyze("E-Mail-Adresse"),
            vec!["emailadresse", "e", "mail", "email", "adresse"]
        );
    }

    #[test]
    fn stems_typos_and_compounds_match() {
        let index = faq();
        for (query, expected) in [
            ("downloading an invoice", "invoice"),
            ("Rechnung", "de-rechnung"),
            ("how do I reset my pasword", "pw"),
            ("where are my invocies", "invoice"),
            ("cancle my subscripton", "cancel"),
            ("refnud", "refund"),
            ("change emial adress", "email"),
        ] {
            let r = index.retrieve(query, None, 3, None, DEFAULT_CONFIDENCE_THRESHOLD);
            assert_eq!(
                r.hits.first().map(|h| h.id.as_str()),
                Some(expected),
                "{query}: {r:?}"
            );
            assert!(!r.out_of_scope, "{query}: {r:?}");
        }
        // Short words have too many real-word neighbours to be corrected.
        assert!(index.search("pass", None, 3, None).is_empty());
    }

    #[test]
    fn unknown_names_mean_out_of_scope() {
        let index = faq();
        let t = DEFAULT_CONFIDENCE_THRESHOLD;
        let r = index.retrieve("How do I cancel my subscription?", None, 3, None, t);
        assert!(!r.out_of_scope, "{r:?}");
        let r = index.retrieve("How do I cancel my Netflix subscription?", None, 3, None, t);
        assert_eq!(r.hits[0].id, "cancel");
        assert!(r.out_of_scope, "{r:?}");
        let r = index.retrieve("I forgot my Gmail password", None, 3, None, t);
        assert!(r.out_of_scope, "{r:?}");
    }

    #[test]
    fn stop_words_never_empty_a_query() {
        let stems = |q: &str| -> Vec<Vec<String>> {
            faq()
                .resolve(q, None)
                .terms
                .into_iter()
                .map(|t| t.stems)
                .collect()
        };
        assert_eq!(
            stems("How do I reset my password?"),
            vec![vec!["reset"], vec!["password"]]
        );
        assert_eq!(stems("how do I"), vec![vec!["how"], vec!["do"], vec!["i"]]);
    }

    #[test]
    fn ranks_the_right_entry() {
        let index = faq();
        assert_eq!(index.len(), 9);
        let cases = [
            ("How do I reset my password?", "pw"),
            ("forgot password, need a reset", "pw"),
            ("change email address", "email"),
            ("download invoice pdf", "invoice"),
            ("cancel subscription", "cancel"),
            ("I want a refund", "refund"),
            ("Passwort zurücksetzen", "de-pw"),
            ("Wo finde ich meine Rechnungen", "de-rechnung"),
            ("Rechnungen größere Überweisung", "de-rechnung"),
            ("비밀번호 재설정", "ko-pw"),
            ("환불 받을 수 있나요", "ko-refund"),
        ];
        for (query, expected) in cases {
            let hits = index.search(query, None, 3, None);
            assert!(!hits.is_empty(), "{query}: no hits");
            assert_eq!(hits[0].id, expected, "{query}: {hits:?}");
            assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
            assert!(hits
                .iter()
                .all(|h| h.score > 0.0 && (0.0..=1.0).contains(&h.confidence)));
        }
    }

    #[test]
    fn threshold_behaviour() {
        let index = faq();
        let t = DEFAULT_CONFIDENCE_THRESHOLD;
        let r = index.retrieve("How do I reset my password?", None, 3, None, t);
        assert!(!r.out_of_scope, "{r:?}");
        assert_eq!(r.hits[0].id, "pw");
        assert!(r.hits[0].confidence > 0.9);

        let r = index.retrieve("what's the weather on mars", None, 3, None, t);
        assert!(r.out_of_scope, "{r:?}");

        let r = index.retrieve(
            "what is the best pizza recipe for my account party",
            None,
            3,
            None,
            t,
        );
        assert!(r.out_of_scope, "{r:?}");

        let r = index.retrieve("Wie kann ich mein Passwort zurücksetzen?", None, 3, None, t);
        assert!(!r.out_of_scope, "{r:?}");
        assert_eq!(r.hits[0].id, "de-pw");

        let r = index.retrieve("비밀번호를 어떻게 재설정하나요?", None, 3, None, t);
        assert!(!r.out_of_scope, "{r:?}");
        assert_eq!(r.hits[0].id, "ko-pw");

        let r = index.retrieve("如何重置密码？", None, 3, None, t);
        assert!(r.out_of_scope, "{r:?}");
    }

    #[test]
    fn cjk_queries_match_cjk_entries() {
        let index = FaqIndex::build(vec![
            doc("zh", "如何重置密码？", "在设置中点击重置密码。", None),
            doc(
                "ja",
                "パスワードをリセットするには？",
                "設定からリセットできます。",
                None,
            ),
            doc(
                "en",
                "How can I reset my password?",
                "Settings, Security.",
                None,
            ),
        ]);
        let r = index.retrieve("我想重置密码", None, 3, None, DEFAULT_CONFIDENCE_THRESHOLD);
        assert_eq!(r.hits[0].id, "zh");
        assert!(!r.out_of_scope, "{r:?}");
        let r = index.retrieve(
            "パスワードのリセット",
            None,
            3,
            None,
            DEFAULT_CONFIDENCE_THRESHOLD,
        );
        assert_eq!(r.hits[0].id, "ja");
        assert!(!r.out_of_scope, "{r:?}");
    }

    #[test]
    fn weird_queries_do_not_panic() {
        let index = faq();
        for q in [
            "",
            "   ",
            "🔥🔥🔥",
            "👨‍👩‍👧‍👦",
            "?!…",
            "\u{0}\u{feff}\u{fffd}",
            "e\u{301}\u{301}",
        ] {
            let r = index.retrieve(q, None, 3, None, DEFAULT_CONFIDENCE_THRESHOLD);
            assert!(r.out_of_scope, "{q:?}: {r:?}");
        }
        let long = "password ".repeat(20_000);
        assert_eq!(index.search(&long, None, 1, None)[0].id, "pw");
        assert!(FaqIndex::build(Vec::new())
            .search("password", None, 5, None)
            .is_empty());
        assert!(index.search("password", None, 0, None).is_empty());
    }

    #[test]
    fn emoji_are_searchable() {
        let index = FaqIndex::build(vec![
            doc("fire", "What does 🔥 mean?", "It marks a hot topic.", None),
            doc("other", "What does ⭐ mean?", "It marks a favourite.", None),
        ]);
        assert_eq!(index.search("🔥", None, 1, None)[0].id, "fire");
    }

    #[test]
    fn organization_filter() {
        let index = FaqIndex::build(vec![
            doc(
                "a",
                "How do I reset my password?",
                "Org A: use the portal.",
                Some("org-a"),
            ),
            doc(
                "b",
                "How do I reset my password?",
                "Org B: ask IT.",
                Some("org-b"),
            ),
            doc(
                "global",
                "How do I reset my password?",
                "Global answer.",
                None,
            ),
        ]);
        let hits = index.search("reset password", None, 10, Some("org-b"));
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].id, "b");
        let hits = index.search("reset password", None, 10, Some("org-a"));
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].id, "a");
        assert!(index
            .search("reset password", None, 10, Some("org-c"))
            .is_empty());
        assert_eq!(index.search("reset password", None, 10, None).len(), 3);
        assert_eq!(index.search("reset password", None, 2, None).len(), 2);
    }
}
