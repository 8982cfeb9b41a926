//! FAQ retrieval: a small in-memory BM25 index over question + answer text.
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
//! # Confidence
//! `confidence` is the IDF-weighted share of the query's distinct terms that
//! the document contains: `Σ idf(matched query terms) / Σ idf(all query
//! terms)`, in `0..=1`. Query words that appear nowhere in the FAQ have the
//! highest IDF, so an off-topic question ("what's the weather on mars")
//! scores low even if it shares a word with some entry, while a paraphrase
//! that keeps the content words ("how do I reset my password") scores high.
//!
//! # Text analysis
//! NFKC normalisation, lowercasing, Unicode word segmentation (UAX #29);
//! punctuation and whitespace are dropped, emoji are kept as terms (variation
//! selectors removed), a trailing English possessive `'s` is removed. Runs of
//! CJK ideographs / kana (written without spaces) become character bigrams;
//! Hangul words are kept whole and, when longer than two syllables, also
//! contribute syllable bigrams so that particles (비밀번호를 / 비밀번호) do
//! not prevent a match. A small English stop-word list is removed from
//! queries unless that would leave the query empty.

use std::collections::HashMap;

use unicode_normalization::UnicodeNormalization;
use unicode_segmentation::UnicodeSegmentation;

use crate::model::Retrieval;

/// BM25 term-frequency saturation.
pub const BM25_K1: f64 = 1.2;
/// BM25 length normalisation.
pub const BM25_B: f64 = 0.75;
/// The confidence threshold callers use by default for [`FaqIndex::retrieve`].
pub const DEFAULT_CONFIDENCE_THRESHOLD: f64 = 0.35;

/// One FAQ entry.
#[derive(Clone, Debug)]
pub struct FaqDoc {
    pub id: String,
    pub question: String,
    pub answer: String,
    /// `None` for entries not owned by an organization.
    pub organization_id: Option<String>,
}

/// One search result.
#[derive(Clone, Debug)]
pub struct FaqHit {
    pub id: String,
    pub question: String,
    pub answer: String,
    /// BM25 score (> 0; only comparable within one search).
    pub score: f64,
    /// IDF-weighted fraction of the query's terms found in this entry, 0..=1.
    pub confidence: f64,
}

const STOP_WORDS: &[&str] = &[
    "a", "about", "am", "an", "and", "any", "are", "as", "at", "be", "been", "but", "by", "can",
    "could", "did", "do", "does", "for", "from", "get", "got", "had", "has", "have", "hello",
    "hey", "hi", "how", "i", "i'd", "i'm", "i've", "if", "in", "into", "is", "it", "it's", "its",
    "let", "me", "my", "of", "on", "or", "our", "please", "so", "some", "than", "that", "the",
    "their", "them", "then", "there", "these", "they", "this", "those", "to", "up", "us", "was",
    "we", "were", "what", "when", "where", "which", "who", "why", "will", "with", "would", "you",
    "your",
];

fn is_stop_word(term: &str) -> bool {
    STOP_WORDS.contains(&term)
}

/// CJK ideographs and kana: scripts written without spaces between words.
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3005..=0x3007          // 々 〆 〇
        | 0x3040..=0x30FF        // hiragana, katakana
        | 0x31F0..=0x31FF        // katakana phonetic extensions
        | 0x3400..=0x4DBF        // CJK ext A
        | 0x4E00..=0x9FFF        // CJK unified ideographs
        | 0xF900..=0xFAFF        // compatibility ideographs
        | 0x20000..=0x3134F      // CJK ext B..G
    )
}

fn is_hangul(c: char) -> bool {
    matches!(c as u32, 0xAC00..=0xD7A3 | 0x1100..=0x11FF | 0x3130..=0x318F)
}

fn is_emoji(c: char) -> bool {
    matches!(c as u32,
        0x1F000..=0x1FAFF
        | 0x2600..=0x27BF
        | 0x2300..=0x23FF
        | 0x2B00..=0x2BFF
        | 0x2190..=0x21FF
        | 0x3030 | 0x303D | 0x3297 | 0x3299
        | 0x00A9 | 0x00AE | 0x203C | 0x2049 | 0x2122 | 0x2139
    )
}

/// Emits bigrams of a CJK run (a lone character stands for itself).
fn push_bigrams(run: &[char], out: &mut Vec<String>) {
    match run.len() {
        0 => {}
        1 => out.push(run[0].to_string()),
        _ => out.extend(run.windows(2).map(|w| w.iter().collect::<String>())),
    }
}

fn push_word(word: &str, out: &mut Vec<String>) {
    let word = word
        .strip_suffix("'s")
        .filter(|w| !w.is_empty())
        .unwrap_or(word);
    out.push(word.to_string());
    let syllables: Vec<char> = word.chars().collect();
    if syllables.len() > 2 && syllables.iter().all(|&c| is_hangul(c)) {
        push_bigrams(&syllables, out);
    }
}

/// Splits text into index terms (see the module docs). Exposed for
/// diagnostics and tests; the same analysis is used for documents and
/// queries.
pub fn analyze(text: &str) -> Vec<String> {
    let normalized: String = text
        .nfkc()
        .map(|c| if c == '\u{2019}' { '\'' } else { c })
        .collect::<String>()
        .to_lowercase();
    let mut out = Vec::new();
    let mut cjk_run: Vec<char> = Vec::new();
    for segment in normalized.split_word_bounds() {
        let mut word = String::new();
        for c in segment.chars() {
            if is_cjk(c) {
                if !word.is_empty() {
                    push_bigrams(&cjk_run, &mut out);
                    cjk_run.clear();
                    push_word(&word, &mut out);
                    word.clear();
                }
                cjk_run.push(c);
            } else {
                word.push(c);
            }
        }
        if word.is_empty() {
            continue;
        }
        if word.chars().any(char::is_alphanumeric) {
            push_bigrams(&cjk_run, &mut out);
            cjk_run.clear();
            push_word(&word, &mut out);
        } else if word.chars().any(is_emoji) {
            push_bigrams(&cjk_run, &mut out);
            cjk_run.clear();
            let emoji: String = word
                .chars()
                .filter(|c| !c.is_whitespace() && !matches!(*c, '\u{fe0e}' | '\u{fe0f}'))
                .collect();
            out.push(emoji);
        } else if word.chars().any(|c| !c.is_whitespace()) {
            // Punctuation separates CJK runs; whitespace does not matter
            // because CJK text has none between words anyway.
            push_bigrams(&cjk_run, &mut out);
            cjk_run.clear();
        }
    }
    push_bigrams(&cjk_run, &mut out);
    out
}

/// Distinct query terms, stop words removed unless that empties the query.
fn query_terms(query: &str) -> Vec<String> {
    let mut all = analyze(query);
    let mut seen = std::collections::HashSet::new();
    all.retain(|t| seen.insert(t.clone()));
    let content: Vec<String> = all.iter().filter(|t| !is_stop_word(t)).cloned().collect();
    if content.is_empty() {
        all
    } else {
        content
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct CorpusStats {
    docs: usize,
    total_len: u64,
}

/// An immutable BM25 index over FAQ entries. Cheap to search; rebuild it when
/// the FAQ changes.
#[derive(Clone, Debug, Default)]
pub struct FaqIndex {
    docs: Vec<FaqDoc>,
    doc_len: Vec<u32>,
    /// term -> (doc index, term frequency), doc indices ascending.
    postings: HashMap<String, Vec<(u32, u32)>>,
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
            let mut tf: HashMap<&str, u32> = HashMap::new();
            for term in question.iter().chain(&question).chain(&answer) {
                *tf.entry(term.as_str()).or_default() += 1;
            }
            let len = (2 * question.len() + answer.len()) as u64;
            for (term, n) in tf {
                index
                    .postings
                    .entry(term.to_string())
                    .or_default()
                    .push((i as u32, n));
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

    /// Best first; only hits with score > 0; `organization_id` `Some(x)`
    /// restricts the search (and the BM25 statistics) to docs whose
    /// `organization_id == Some(x)`; `None` searches every doc.
    pub fn search(&self, query: &str, limit: usize, organization_id: Option<&str>) -> Vec<FaqHit> {
        if limit == 0 || self.docs.is_empty() {
            return Vec::new();
        }
        let stats = match organization_id {
            None => self.all,
            Some(org) => match self.by_org.get(org) {
                Some(stats) => *stats,
                None => return Vec::new(),
            },
        };
        if stats.docs == 0 {
            return Vec::new();
        }
        let visible = |doc: u32| match organization_id {
            None => true,
            Some(org) => {
                self.docs
                    .get(doc as usize)
                    .and_then(|d| d.organization_id.as_deref())
                    == Some(org)
            }
        };
        let terms = query_terms(query);
        let n = stats.docs as f64;
        let avgdl = (stats.total_len as f64 / n).max(1.0);

        // doc index -> (score, matched idf)
        let mut acc: HashMap<u32, (f64, f64)> = HashMap::new();
        let mut total_idf = 0.0;
        for term in &terms {
            let postings: Vec<(u32, u32)> = self
                .postings
                .get(term)
                .map(|p| p.iter().copied().filter(|&(d, _)| visible(d)).collect())
                .unwrap_or_default();
            let df = postings.len() as f64;
            let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
            total_idf += idf;
            for (doc, tf) in postings {
                let tf = f64::from(tf);
                let dl = f64::from(self.doc_len.get(doc as usize).copied().unwrap_or(0));
                let norm = BM25_K1 * (1.0 - BM25_B + BM25_B * dl / avgdl);
                let entry = acc.entry(doc).or_default();
                entry.0 += idf * tf * (BM25_K1 + 1.0) / (tf + norm);
                entry.1 += idf;
            }
        }
        let mut ranked: Vec<(u32, f64, f64)> = acc
            .into_iter()
            .filter(|&(_, (score, _))| score > 0.0)
            .map(|(doc, (score, matched))| {
                let confidence = if total_idf > 0.0 {
                    (matched / total_idf).clamp(0.0, 1.0)
                } else {
                    0.0
                };
                (doc, score, confidence)
            })
            .collect();
        ranked.sort_by(|a, b| {
            b.1.total_cmp(&a.1)
                .then(b.2.total_cmp(&a.2))
                .then(a.0.cmp(&b.0))
        });
        ranked
            .into_iter()
            .take(limit)
            .filter_map(|(doc, score, confidence)| {
                self.docs.get(doc as usize).map(|d| FaqHit {
                    id: d.id.clone(),
                    question: d.question.clone(),
                    answer: d.answer.clone(),
                    score,
                    confidence,
                })
            })
            .collect()
    }

    /// Convenience: [`search`](Self::search) plus
    /// `out_of_scope = no hits || best.confidence < threshold`.
    pub fn retrieve(
        &self,
        query: &str,
        limit: usize,
        organization_id: Option<&str>,
        threshold: f64,
    ) -> Retrieval {
        let hits = self.search(query, limit, organization_id);
        let out_of_scope = hits.first().is_none_or(|best| best.confidence < threshold);
        Retrieval { hits, out_of_scope }
    }
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
    fn stop_words_never_empty_a_query() {
        assert_eq!(
            query_terms("How do I reset my password?"),
            vec!["reset", "password"]
        );
        assert_eq!(query_terms("how do I"), vec!["how", "do", "i"]);
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
            let hits = index.search(query, 3, None);
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
        let r = index.retrieve("How do I reset my password?", 3, None, t);
        assert!(!r.out_of_scope, "{r:?}");
        assert_eq!(r.hits[0].id, "pw");
        assert!(r.hits[0].confidence > 0.9);

        let r = index.retrieve("what's the weather on mars", 3, None, t);
        assert!(r.out_of_scope, "{r:?}");

        let r = index.retrieve(
            "what is the best pizza recipe for my account party",
            3,
            None,
            t,
        );
        assert!(r.out_of_scope, "{r:?}");

        let r = index.retrieve("Wie kann ich mein Passwort zurücksetzen?", 3, None, t);
        assert!(!r.out_of_scope, "{r:?}");
        assert_eq!(r.hits[0].id, "de-pw");

        let r = index.retrieve("비밀번호를 어떻게 재설정하나요?", 3, None, t);
        assert!(!r.out_of_scope, "{r:?}");
        assert_eq!(r.hits[0].id, "ko-pw");

        let r = index.retrieve("如何重置密码？", 3, None, t);
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
        let r = index.retrieve("我想重置密码", 3, None, DEFAULT_CONFIDENCE_THRESHOLD);
        assert_eq!(r.hits[0].id, "zh");
        assert!(!r.out_of_scope, "{r:?}");
        let r = index.retrieve(
            "パスワードのリセット",
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
            let r = index.retrieve(q, 3, None, DEFAULT_CONFIDENCE_THRESHOLD);
            assert!(r.out_of_scope, "{q:?}: {r:?}");
        }
        let long = "password ".repeat(20_000);
        assert_eq!(index.search(&long, 1, None)[0].id, "pw");
        assert!(FaqIndex::build(Vec::new())
            .search("password", 5, None)
            .is_empty());
        assert!(index.search("password", 0, None).is_empty());
    }

    #[test]
    fn emoji_are_searchable() {
        let index = FaqIndex::build(vec![
            doc("fire", "What does 🔥 mean?", "It marks a hot topic.", None),
            doc("other", "What does ⭐ mean?", "It marks a favourite.", None),
        ]);
        assert_eq!(index.search("🔥", 1, None)[0].id, "fire");
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
        let hits = index.search("reset password", 10, Some("org-b"));
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].id, "b");
        let hits = index.search("reset password", 10, Some("org-a"));
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].id, "a");
        assert!(index.search("reset password", 10, Some("org-c")).is_empty());
        assert_eq!(index.search("reset password", 10, None).len(), 3);
        assert_eq!(index.search("reset password", 2, None).len(), 2);
    }
}
