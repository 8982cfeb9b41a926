//! FAQ retrieval: an in-memory index over FAQ entries (and chunks of uploaded
//! documents) that ranks them for a query, lexically (BM25) and, when the
//! entries and the query carry embeddings, semantically too, with one
//! calibrated confidence that decides "out of scope".
//!
//! `docs/retrieval.md` has the evaluation behind every choice below and the
//! things that were tried and did not help; [`eval`] runs that evaluation on
//! any FAQ and labelled queries.
//!
//! # Why hand-written BM25
//! The `bm25` crate (2.x) was evaluated: with `default-features = false` it
//! is light and accepts a custom tokenizer, but it hashes terms into integer
//! ids (collisions), scores in `f32`, keeps the IDF private and applies term
//! saturation to the query side. The confidence below needs the per-term IDF
//! of exactly the statistics used for ranking, and the tenant filter needs
//! statistics computed over the tenant's own documents. Plain Okapi BM25 is
//! ~60 lines, so it is implemented here directly.
//!
//! # Lexical ranking
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
//! same way (typo tolerance, 0.8 of an exact match). Every word is also
//! expanded with a small lexicon of support vocabulary ([`synonyms`]:
//! "package" / "order", "money back" / "refund"), at 0.7 of an exact match.
//!
//! # Lexical confidence
//! Two coverages of the best entry, both IDF-weighted over the visible
//! entries, so they mean the same in a 2-entry and a 2,000-entry FAQ:
//! - *query coverage*: the share of the query's words the entry contains. A
//!   word no visible entry contains weighs double in the total, six-fold if
//!   it looks like a name in an English query (`Netflix`, `iPhone`); 30% of
//!   it counts only words found in the entry's question;
//! - *entry coverage*: the share of the entry question's own content words
//!   that the query contains. Words the user adds around a match (a city, an
//!   order number, a greeting) do not lower it, so "Do you ship to Canada? I
//!   live in Toronto." is covered by "Do you ship to Canada?". An unknown
//!   word *inside* the matched span of the query (between the first and the
//!   last matched word, or a name right next to it) counts against it:
//!   "cancel my Netflix subscription" is not "cancel my subscription".
//!
//! Emoji, symbols and anything with a digit (order numbers, dates) count
//! only when the entry contains them ([`analysis::is_noise`]), so they never
//! flip a verdict. The confidence is a logistic function of both coverages,
//! fitted on the evaluation set ([`calibration`]): an estimate of the
//! probability that the entry answers the query.
//!
//! # Hybrid ranking
//! When the query has an embedding, every visible entry with an embedding of
//! the same length gets its cosine similarity, and its confidence is a
//! second logistic function of the cosine and both lexical coverages, fitted
//! on the same set. Entries are ranked by confidence. Entries without an
//! embedding (or every entry, when the query has none) keep the lexical
//! confidence, which estimates the same probability, so both kinds rank
//! together and [`DEFAULT_CONFIDENCE_THRESHOLD`] means the same in both
//! modes.
//!
//! # Text analysis
//! NFKC normalisation, lowercasing, Unicode word segmentation (UAX #29);
//! punctuation and whitespace are dropped, emoji are kept as terms (variation
//! selectors removed), a trailing English possessive `'s` is removed and a
//! hyphenated compound is also indexed joined (`Wi-Fi` → `wifi`). Runs of
//! CJK ideographs / kana (written without spaces) become character bigrams;
//! Hangul words are kept whole and also contribute their stem without a
//! known particle or verb ending and (when longer than two syllables) their
//! syllable bigrams, so that 비밀번호를 matches 비밀번호 ([`analysis`]
//! explains the measured choice). Latin-script words are stemmed (Snowball,
//! English or German by a guess per document). English and German stop words
//! are removed from queries unless that would leave the query empty.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

mod analysis;
pub mod calibration;
pub mod eval;
mod synonyms;

pub use analysis::analyze;
use analysis::{
    edit_distance, is_latin_word, is_noise, is_stop_word, name_like_words, Lang, TextLang,
};
pub use calibration::DEFAULT_CONFIDENCE_THRESHOLD;

use crate::model::Retrieval;

/// BM25 term-frequency saturation.
pub const BM25_K1: f64 = 1.2;
/// BM25 length normalisation.
pub const BM25_B: f64 = 0.75;
/// How much a typo-corrected query term counts, relative to an exact one.
const FUZZY_WEIGHT: f64 = 0.8;
/// Extra weight (× its IDF) of a query word that no visible entry contains:
/// it is what the user asks about and the FAQ does not cover.
const UNKNOWN_PENALTY: f64 = 1.0;
/// More extra weight when that word also looks like a name (`Netflix`,
/// `iPhone`): a product or place the FAQ never mentions.
const UNKNOWN_NAME_PENALTY: f64 = 4.0;
/// Share of the query coverage that comes from matching the entry's
/// question (the rest: question or answer).
const QUESTION_SHARE: f64 = 0.3;
/// Weight of a query word outside the span of words the entry matches.
const OUTSIDE_SPAN_WEIGHT: f64 = 0.35;
/// Lexical candidates whose entry coverage is computed (by BM25 score); the
/// rest have too little in common with the query to matter.
const LEXICAL_CANDIDATES: usize = 50;

/// One FAQ entry, or one chunk of an uploaded document.
#[derive(Clone, Debug)]
pub struct FaqDoc {
    pub id: String,
    pub question: String,
    pub answer: String,
    /// `None` for entries not owned by an organization.
    pub organization_id: Option<String>,
    /// Unit-length passage embedding from the deployment's embedder (same
    /// model as the query's). `None`: the entry is ranked lexically only.
    /// For an FAQ entry embed its question (docs/retrieval.md: question
    /// alone ranked better than question + answer with USE-m3), for a chunk
    /// its heading path and text.
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
    /// The ranking score (log-odds that this is the best entry; only
    /// comparable within one search; higher is better). Hits are sorted by
    /// it, not by `confidence`.
    pub score: f64,
    /// How sure the index is that this entry answers the query, 0..=1 (a
    /// calibrated probability; compare with [`DEFAULT_CONFIDENCE_THRESHOLD`]).
    pub confidence: f64,
    /// The doc's [`FaqDoc::chunk`].
    pub chunk: Option<ChunkRef>,
    /// The lexical-only confidence, 0..=1 (what `confidence` would be
    /// without embeddings).
    pub lexical: f64,
    /// Cosine similarity of query and entry embeddings, when both exist.
    pub semantic: Option<f64>,
}

/// The inputs of the confidence for one (query, entry) pair.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Features {
    /// IDF-weighted share of the query covered by the entry, 0..=1.
    pub query_coverage: f64,
    /// IDF-weighted share of the entry's question covered by the query,
    /// 0..=1.
    pub entry_coverage: f64,
    /// The entry is in the query's language (so a German question prefers
    /// the German entry of an FAQ kept in several languages).
    pub same_language: bool,
    /// BM25 score relative to the best BM25 score of the search, 0..=1.
    pub bm25: f64,
    /// Cosine of the embeddings, when both exist.
    pub cosine: Option<f64>,
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

/// A distinct query term resolved against the visible vocabulary: the
/// stems it matches, each with its match weight (1 exact, 0.8 typo, 0.7
/// synonym). Empty `stems` with `known == false` holds the word's own stem.
#[derive(Clone, Debug, PartialEq)]
struct QueryTerm {
    stems: Vec<(String, f64)>,
    known: bool,
}

/// One word of the query: its terms (indices into the query's distinct
/// terms; the first is the word itself, the rest its parts).
#[derive(Clone, Debug)]
struct QueryUnit {
    terms: Vec<usize>,
    /// Looks like a name (English query, capitalised or camel-case).
    name_like: bool,
    /// Emoji, symbol or number: counts only when matched.
    noise: bool,
    /// Index of the query sentence the word is in.
    sentence: usize,
}

#[derive(Clone, Debug)]
struct Query {
    terms: Vec<QueryTerm>,
    units: Vec<QueryUnit>,
    lang: TextLang,
}

impl Default for Query {
    fn default() -> Self {
        Query {
            terms: Vec::new(),
            units: Vec::new(),
            lang: TextLang::Other,
        }
    }
}

/// Per-query statistics shared by all candidates.
#[derive(Clone, Debug, Default)]
struct QueryStats {
    /// Per distinct term: per stem, its IDF.
    idf: Vec<Vec<f64>>,
    /// Per unit: its weight (the highest IDF of its known terms, else the
    /// IDF of an unknown term) and whether any of its terms is known.
    unit_weight: Vec<f64>,
    unit_known: Vec<bool>,
    /// Query stem -> best match weight (for entry coverage).
    stems: HashMap<String, f64>,
}

/// One entry that matched at least one query term.
#[derive(Clone, Debug, Default)]
struct Candidate {
    doc: u32,
    bm25: f64,
    /// Per unit: matched fraction (0..=1) in the entry / in its question.
    unit_match: Vec<f64>,
    unit_question: Vec<f64>,
}

/// An immutable index over FAQ entries. Cheap to search; rebuild it when
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
    /// Per doc: the content words of its question (stop words removed),
    /// each as its stems (whole word first, then its parts).
    question_units: Vec<Vec<Vec<String>>>,
    /// Per doc: its language.
    doc_lang: Vec<TextLang>,
    all: CorpusStats,
    by_org: HashMap<String, CorpusStats>,
}

impl FaqIndex {
    pub fn build(docs: Vec<FaqDoc>) -> Self {
        let mut index = FaqIndex {
            doc_len: Vec::with_capacity(docs.len()),
            question_units: Vec::with_capacity(docs.len()),
            ..FaqIndex::default()
        };
        for (i, doc) in docs.iter().enumerate() {
            let question_units = analysis::units(&doc.question);
            let question: Vec<String> = question_units.iter().flatten().cloned().collect();
            let answer = analyze(&doc.answer);
            let terms = [question.as_slice(), answer.as_slice()].concat();
            let lang = Lang::guess(&terms);
            index.doc_lang.push(TextLang::of(&terms));
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
            let mut content: Vec<Vec<String>> = Vec::new();
            for unit in question_units {
                if is_stop_word(&unit[0]) || is_noise(&unit[0]) {
                    continue;
                }
                let stems: Vec<String> = unit.iter().map(|t| lang.stem(t)).collect();
                if !content.iter().any(|u| u[0] == stems[0]) {
                    content.push(stems);
                }
            }
            index.question_units.push(content);
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

    /// The indexed docs, in build order.
    pub fn docs(&self) -> &[FaqDoc] {
        &self.docs
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

    fn visible_df(&self, stem: &str, organization_id: Option<&str>) -> usize {
        self.postings.get(stem).map_or(0, |p| {
            p.iter()
                .filter(|p| self.visible(p.doc, organization_id))
                .count()
        })
    }

    fn is_visible_term(&self, stem: &str, organization_id: Option<&str>) -> bool {
        self.postings
            .get(stem)
            .is_some_and(|p| p.iter().any(|p| self.visible(p.doc, organization_id)))
    }

    /// Resolves query words to index stems: the query language's stem, then
    /// the other language's, then (typo tolerance) similar vocabulary words;
    /// plus synonyms.
    fn resolve(&self, query: &str, organization_id: Option<&str>) -> Query {
        // Units with the index of their sentence: a name only qualifies the
        // words of its own sentence ("Anna. Do you ship to Canada?").
        let mut all: Vec<Vec<String>> = Vec::new();
        let mut sentence_of: Vec<usize> = Vec::new();
        let mut seen = HashSet::new();
        for (s, sentence) in query
            .split(['.', '!', '?', '\n', '。', '！', '？'])
            .enumerate()
        {
            for unit in analysis::units(sentence) {
                if seen.insert(unit[0].clone()) {
                    all.push(unit);
                    sentence_of.push(s);
                }
            }
        }
        let words: Vec<String> = all.iter().map(|u| u[0].clone()).collect();
        let lang = Lang::guess(&words);
        let names: HashSet<String> = if lang == Lang::En {
            query
                .split(['.', '!', '?', '\n'])
                .flat_map(name_like_words)
                .collect()
        } else {
            HashSet::new()
        };
        let phrases = synonyms::phrase_targets(&words);
        let mut units: Vec<(Vec<String>, &[String], usize)> = all
            .iter()
            .zip(&phrases)
            .zip(&sentence_of)
            .filter(|((u, _), _)| !is_stop_word(&u[0]))
            .map(|((u, p), s)| (u.clone(), p.as_slice(), *s))
            .collect();
        if units.is_empty() {
            units = all
                .iter()
                .zip(&phrases)
                .zip(&sentence_of)
                .map(|((u, p), s)| (u.clone(), p.as_slice(), *s))
                .collect();
        }
        let mut q = Query {
            lang: TextLang::of(&words),
            ..Query::default()
        };
        for (mut unit, phrase, sentence) in units {
            let name_like = names.contains(&unit[0]);
            let noise = is_noise(&unit[0]);
            if noise {
                // `#A-99812` must not match entries through its piece `a`.
                unit.truncate(1);
            }
            let mut indices = Vec::new();
            for (k, word) in unit.iter().enumerate() {
                let extra = if k == 0 { phrase } else { &[] };
                let term = self.resolve_word(word, lang, extra, organization_id);
                let i = match q.terms.iter().position(|t| *t == term) {
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
                noise,
                sentence,
            });
        }
        q
    }

    fn resolve_word(
        &self,
        word: &str,
        lang: Lang,
        phrase: &[String],
        organization_id: Option<&str>,
    ) -> QueryTerm {
        let own = [lang.stem(word), lang.other().stem(word)];
        let mut stems: Vec<(String, f64)> = Vec::new();
        let push = |stems: &mut Vec<(String, f64)>, stem: &str, weight: f64| {
            if !stems.iter().any(|(s, _)| s == stem) && self.is_visible_term(stem, organization_id)
            {
                stems.push((stem.to_string(), weight));
            }
        };
        if let Some(stem) = own
            .iter()
            .find(|s| self.is_visible_term(s, organization_id))
        {
            push(&mut stems, stem, 1.0);
        } else {
            for stem in self.typo_candidates(word, organization_id) {
                push(&mut stems, &stem, FUZZY_WEIGHT);
            }
        }
        let mut bases: Vec<String> = own.to_vec();
        bases.extend(stems.iter().map(|(s, _)| s.clone()));
        for base in &bases {
            for syn in synonyms::of(base) {
                push(&mut stems, syn, synonyms::SYNONYM_WEIGHT);
            }
        }
        for syn in phrase {
            push(&mut stems, syn, synonyms::SYNONYM_WEIGHT);
        }
        if stems.is_empty() {
            QueryTerm {
                stems: vec![(own[0].clone(), 0.0)],
                known: false,
            }
        } else {
            QueryTerm { stems, known: true }
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

    /// BM25 candidates, best first, with the statistics for the coverages.
    fn rank(
        &self,
        query: &str,
        organization_id: Option<&str>,
    ) -> (Query, QueryStats, Vec<Candidate>) {
        let mut stats_q = QueryStats::default();
        let empty = || (Query::default(), QueryStats::default(), Vec::new());
        if self.docs.is_empty() {
            return empty();
        }
        let stats = match organization_id {
            None => self.all,
            Some(org) => match self.by_org.get(org) {
                Some(stats) => *stats,
                None => return empty(),
            },
        };
        if stats.docs == 0 {
            return empty();
        }
        let q = self.resolve(query, organization_id);
        let n = stats.docs as f64;
        let avgdl = (stats.total_len as f64 / n).max(1.0);
        let idf_of = |df: f64| (1.0 + (n - df + 0.5) / (df + 0.5)).ln();

        // doc -> (score, per term: (match weight, in question))
        let mut acc: HashMap<u32, (f64, Vec<(f64, bool)>)> = HashMap::new();
        for (i, term) in q.terms.iter().enumerate() {
            // doc -> best (weight × idf, weight, tf, in question) over the
            // term's stems.
            let mut hits: BTreeMap<u32, (f64, f64, u32, bool)> = BTreeMap::new();
            let mut idfs = Vec::with_capacity(term.stems.len());
            for (stem, weight) in &term.stems {
                let postings: Vec<&Posting> = if term.known {
                    self.postings
                        .get(stem)
                        .into_iter()
                        .flatten()
                        .filter(|p| self.visible(p.doc, organization_id))
                        .collect()
                } else {
                    Vec::new()
                };
                let idf = idf_of(postings.len() as f64);
                idfs.push(idf);
                for p in postings {
                    let value = weight * idf;
                    let e = hits.entry(p.doc).or_insert((0.0, 0.0, 0, false));
                    if value > e.0 {
                        *e = (value, *weight, p.tf, p.in_question);
                    }
                }
                if term.known {
                    let best = stats_q.stems.entry(stem.clone()).or_insert(0.0);
                    *best = best.max(*weight);
                }
            }
            stats_q.idf.push(idfs);
            for (doc, (value, weight, tf, in_question)) in hits {
                let tf = f64::from(tf);
                let dl = f64::from(self.doc_len.get(doc as usize).copied().unwrap_or(0));
                let norm = BM25_K1 * (1.0 - BM25_B + BM25_B * dl / avgdl);
                let entry = acc
                    .entry(doc)
                    .or_insert_with(|| (0.0, vec![(0.0, false); q.terms.len()]));
                entry.0 += value * tf * (BM25_K1 + 1.0) / (tf + norm);
                entry.1[i] = (weight, in_question);
            }
        }
        for unit in &q.units {
            // A term's weight is the IDF of its own stem (the first one),
            // not of a rarer synonym.
            let known: Vec<f64> = unit
                .terms
                .iter()
                .filter(|&&t| q.terms[t].known)
                .map(|&t| stats_q.idf[t].first().copied().unwrap_or(0.0))
                .collect();
            let weight = known
                .iter()
                .copied()
                .reduce(f64::max)
                .unwrap_or_else(|| idf_of(0.0));
            stats_q.unit_weight.push(weight);
            stats_q.unit_known.push(!known.is_empty());
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
            .map(|(doc, (bm25, matches))| Candidate {
                doc,
                bm25,
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
        ranked.sort_by(|a, b| b.bm25.total_cmp(&a.bm25).then(a.doc.cmp(&b.doc)));
        (q, stats_q, ranked)
    }

    /// The lexical features of one candidate.
    fn lexical_features(
        &self,
        q: &Query,
        stats: &QueryStats,
        c: &Candidate,
        best_bm25: f64,
        df_cache: &mut HashMap<String, f64>,
        organization_id: Option<&str>,
    ) -> Features {
        Features {
            query_coverage: query_coverage(q, stats, c),
            entry_coverage: self.entry_coverage(q, stats, c, df_cache, organization_id),
            same_language: self.doc_lang.get(c.doc as usize) == Some(&q.lang),
            bm25: if best_bm25 > 0.0 {
                (c.bm25 / best_bm25).clamp(0.0, 1.0)
            } else {
                0.0
            },
            cosine: None,
        }
    }

    /// IDF-weighted share of the entry question's content words that the
    /// query contains, lowered by unknown words inside the matched span of
    /// the query (see the module docs).
    fn entry_coverage(
        &self,
        q: &Query,
        stats: &QueryStats,
        c: &Candidate,
        df_cache: &mut HashMap<String, f64>,
        organization_id: Option<&str>,
    ) -> f64 {
        let Some(units) = self.question_units.get(c.doc as usize) else {
            return 0.0;
        };
        let stats_c = match organization_id {
            None => self.all,
            Some(org) => self.by_org.get(org).copied().unwrap_or_default(),
        };
        let n = stats_c.docs as f64;
        let mut idf = |stem: &str| -> f64 {
            if let Some(v) = df_cache.get(stem) {
                return *v;
            }
            let df = self.visible_df(stem, organization_id) as f64;
            let v = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
            df_cache.insert(stem.to_string(), v);
            v
        };
        let matched = |stem: &str| stats.stems.get(stem).copied().unwrap_or(0.0);
        let (mut total, mut covered) = (0.0, 0.0);
        for unit in units {
            let w = idf(&unit[0]);
            let whole = matched(&unit[0]);
            let m = if whole > 0.0 || unit.len() == 1 {
                whole
            } else {
                unit[1..].iter().map(|s| matched(s)).sum::<f64>() / (unit.len() - 1) as f64
            };
            total += w;
            covered += w * m;
        }
        // Unknown query words inside the matched span (or names right next
        // to it) are part of what the user asks.
        let positions: Vec<usize> = (0..q.units.len())
            .filter(|&i| c.unit_match[i] > 0.0)
            .collect();
        if let (Some(&lo), Some(&hi)) = (positions.first(), positions.last()) {
            for (i, unit) in q.units.iter().enumerate() {
                if stats.unit_known[i] || unit.noise {
                    continue;
                }
                let inside = i > lo && i < hi;
                let adjacent = unit.name_like
                    && ((i + 1 == lo && q.units[lo].sentence == unit.sentence)
                        || (i == hi + 1 && q.units[hi].sentence == unit.sentence));
                if inside || adjacent {
                    let penalty = if unit.name_like {
                        1.0 + UNKNOWN_NAME_PENALTY
                    } else {
                        1.0
                    };
                    total += stats.unit_weight[i] * penalty;
                }
            }
        }
        if total <= 0.0 {
            0.0
        } else {
            (covered / total).clamp(0.0, 1.0)
        }
    }

    /// Every visible doc the query may be about, with its features: the
    /// lexical candidates and, with a query embedding, every doc with an
    /// embedding of the same length. Unordered.
    pub fn features(
        &self,
        query: &str,
        query_embedding: Option<&[f32]>,
        organization_id: Option<&str>,
    ) -> Vec<(usize, Features)> {
        let (q, stats, ranked) = self.rank(query, organization_id);
        let mut df_cache = HashMap::new();
        let mut out: HashMap<usize, Features> = HashMap::new();
        let best = ranked.first().map_or(0.0, |c| c.bm25);
        for c in ranked.iter().take(LEXICAL_CANDIDATES) {
            let f = self.lexical_features(&q, &stats, c, best, &mut df_cache, organization_id);
            out.insert(c.doc as usize, f);
        }
        // A zero or broken query vector carries no information: lexical.
        let usable = |qe: &&[f32]| qe.iter().all(|x| x.is_finite()) && qe.iter().any(|x| *x != 0.0);
        if let Some(qe) = query_embedding.filter(usable) {
            for (i, doc) in self.docs.iter().enumerate() {
                let Some(e) = doc.embedding.as_deref() else {
                    continue;
                };
                if e.len() != qe.len() || !self.visible(i as u32, organization_id) {
                    continue;
                }
                let cos = f64::from(dot(qe, e)).clamp(-1.0, 1.0);
                let f = out.entry(i).or_insert_with(|| Features {
                    same_language: self.doc_lang.get(i) == Some(&q.lang),
                    ..Features::default()
                });
                f.cosine = Some(cos);
            }
        }
        out.into_iter().collect()
    }

    /// Best first (by confidence); `organization_id` `Some(x)` restricts the
    /// search (and the BM25 statistics) to docs whose `organization_id ==
    /// Some(x)`; `None` searches every doc. With `query_embedding`, docs
    /// that carry an embedding of the same length are ranked by the hybrid
    /// confidence and the rest lexically (module docs); a doc with neither a
    /// lexical match nor an embedding is never returned.
    pub fn search(
        &self,
        query: &str,
        query_embedding: Option<&[f32]>,
        limit: usize,
        organization_id: Option<&str>,
    ) -> Vec<FaqHit> {
        if limit == 0 {
            return Vec::new();
        }
        let mut scored: Vec<(usize, Features, f64)> = self
            .features(query, query_embedding, organization_id)
            .into_iter()
            .map(|(i, f)| (i, f, calibration::logit(&f)))
            .collect();
        scored.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.0.cmp(&b.0)));
        scored
            .into_iter()
            .take(limit)
            .filter_map(|(i, f, z)| {
                self.docs.get(i).map(|d| FaqHit {
                    id: d.id.clone(),
                    question: d.question.clone(),
                    answer: d.answer.clone(),
                    score: z,
                    confidence: calibration::confidence(&f),
                    chunk: d.chunk.clone(),
                    lexical: calibration::confidence(&Features { cosine: None, ..f }),
                    semantic: f.cosine,
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

/// Dot product of two unit vectors of the same length (their cosine), in
/// eight independent lanes so that the compiler vectorises it: a query
/// compares its vector with every entry's.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            lanes[k] += x[k] * y[k];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// The IDF-weighted share of the query's words that `c` covers (see the
/// module docs).
fn query_coverage(q: &Query, stats: &QueryStats, c: &Candidate) -> f64 {
    let mut total = 0.0;
    let mut in_entry = 0.0;
    let mut in_question = 0.0;
    let matched: Vec<usize> = (0..q.units.len())
        .filter(|&i| c.unit_match[i] > 0.0)
        .collect();
    let (lo, hi) = match (matched.first(), matched.last()) {
        (Some(&lo), Some(&hi)) => (lo, hi),
        _ => return 0.0,
    };
    let max_matched = matched
        .iter()
        .map(|&i| stats.unit_weight[i])
        .fold(0.0, f64::max);
    for (i, &weight) in stats.unit_weight.iter().enumerate() {
        let unit = &q.units[i];
        if unit.noise && c.unit_match[i] <= 0.0 {
            continue;
        }
        // Words outside the matched span (a greeting, a city, a name
        // before or after the question) count for little: what the user
        // adds around a match must not push it out of scope.
        let adjacent_name = unit.name_like
            && ((i + 1 == lo && q.units[lo].sentence == unit.sentence)
                || (i == hi + 1 && q.units[hi].sentence == unit.sentence));
        let outside = (i < lo || i > hi) && !adjacent_name;
        if outside {
            // No unknown-word penalty out there, and no more weight than the
            // rarest matched word: in a 2-entry FAQ every unknown word is
            // far rarer than any known one.
            total += weight.min(max_matched) * OUTSIDE_SPAN_WEIGHT;
            in_entry += weight.min(max_matched) * OUTSIDE_SPAN_WEIGHT * c.unit_match[i];
            in_question += weight.min(max_matched) * OUTSIDE_SPAN_WEIGHT * c.unit_question[i];
            continue;
        }
        let penalty = match (stats.unit_known[i], unit.name_like) {
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
    (((1.0 - QUESTION_SHARE) * in_entry + QUESTION_SHARE * in_question) / total).clamp(0.0, 1.0)
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
            vec!["비밀번호를", "비밀번호", "비밀", "밀번", "번호", "호를"]
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
                .map(|t| t.stems.into_iter().map(|(s, _)| s).collect())
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
            assert!(hits.iter().all(|h| (0.0..=1.0).contains(&h.confidence)));
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
    fn dot_is_the_cosine_of_unit_vectors() {
        let a: Vec<f32> = (0..21).map(|i| (i as f32).sin()).collect();
        let b: Vec<f32> = (0..21).map(|i| (i as f32).cos()).collect();
        let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - plain).abs() < 1e-4);
        assert_eq!(dot(&[], &[]), 0.0);
    }

    /// Docs with and without embeddings, and queries with and without one,
    /// rank together; a vector of another length or a zero vector is
    /// ignored, never an error.
    #[test]
    fn mixed_embeddings_never_fail() {
        let unit = |v: [f32; 4]| -> Arc<[f32]> {
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            Arc::from(v.map(|x| x / n).to_vec())
        };
        let mut docs = faq().docs().to_vec();
        docs[0].embedding = Some(unit([1.0, 0.0, 0.0, 0.0])); // pw
        docs[1].embedding = Some(unit([0.0, 1.0, 0.0, 0.0])); // email
        docs[2].embedding = Some(Arc::from(vec![1.0f32; 3])); // another model
        let index = FaqIndex::build(docs);
        let q = unit([0.9, 0.1, 0.0, 0.0]);
        let t = DEFAULT_CONFIDENCE_THRESHOLD;
        // Semantic only: "pw" is found without a shared word.
        let r = index.retrieve("locked out, help", Some(&q), 3, None, t);
        assert_eq!(r.hits[0].id, "pw", "{r:?}");
        assert!(r.hits[0].semantic.is_some());
        // Lexical entries (no embedding) still rank in hybrid mode.
        let r = index.retrieve("download my invoices", Some(&q), 3, None, t);
        assert_eq!(r.hits[0].id, "invoice", "{r:?}");
        assert!(r.hits[0].semantic.is_none());
        assert!(!r.out_of_scope, "{r:?}");
        // Another length, a zero vector, an empty one, NaN: lexical.
        for qe in [vec![1.0f32; 7], vec![0.0; 4], Vec::new(), vec![f32::NAN; 4]] {
            let hybrid = index.search("reset my password", Some(&qe), 3, None);
            let lexical = index.search("reset my password", None, 3, None);
            assert_eq!(hybrid[0].id, lexical[0].id);
            assert!(hybrid.iter().all(|h| h.semantic.is_none()), "{hybrid:?}");
            assert!((hybrid[0].confidence - lexical[0].confidence).abs() < 1e-12);
        }
        // The lexical confidence is reported beside the hybrid one.
        let r = index.search("reset my password", Some(&q), 1, None);
        assert!((0.0..=1.0).contains(&r[0].lexical));
        assert!(r[0].semantic.is_some_and(|c| c > 0.9));
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
