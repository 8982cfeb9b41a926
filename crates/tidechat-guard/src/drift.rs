//! Drift: how far a reply strays from its persona's scope.
//!
//! `drift(reply) = 1 − max_i cos(v(reply), v(ref_i))`, clamped to [0, 1], where
//! the references are the persona's scope texts (by convention one for the
//! system prompt plus guardrails, one per FAQ entry's question and answer) and
//! `v` is a TF-IDF vector:
//!
//! - tokens: NFKC, lower case, Unicode word segmentation; words containing
//!   Han, Hangul, Hiragana or Katakana become character bigrams (a one-character
//!   word stays a unigram); other words drop small English/German stop-word
//!   lists (including pleasantries such as "thanks", "hello") and one-letter
//!   words, then lose one common suffix (`ing ed es en er s e`, stem ≥ 3);
//! - tf = 1 + ln(count); idf(t) = ln((1 + N) / (1 + df(t))) + 1 over the N
//!   references, so a term no reference uses weighs most and pulls the reply
//!   away from every reference.
//!
//! An empty reference set, or a reply with no tokens after stop words, scores
//! 0.0 (nothing to compare, nothing said). The computation is deterministic.

use std::collections::HashMap;

use unicode_normalization::UnicodeNormalization;
use unicode_segmentation::UnicodeSegmentation;

/// Default smoothing for the session's drift average: the newest reply weighs
/// 30 %, so one off-topic answer moves the average noticeably but a single
/// outlier does not dominate it.
pub const DEFAULT_DRIFT_ALPHA: f64 = 0.3;

const STOP_WORDS: &[&str] = &[
    // English
    "a", "about", "after", "again", "all", "also", "am", "an", "and", "any", "are", "as", "at",
    "be", "because", "been", "before", "being", "but", "by", "can", "could", "did", "do", "does",
    "doing", "done", "for", "from", "get", "got", "had", "has", "have", "having", "he", "her",
    "here", "hers", "him", "his", "how", "i", "if", "in", "into", "is", "it", "its", "just", "me",
    "more", "most", "my", "no", "not", "now", "of", "off", "on", "once", "only", "or", "other",
    "our", "ours", "out", "over", "same", "she", "should", "so", "some", "such", "than", "that",
    "the", "their", "them", "then", "there", "these", "they", "this", "those", "through", "to",
    "too", "under", "until", "up", "very", "was", "we", "were", "what", "when", "where", "which",
    "while", "who", "whom", "why", "will", "with", "would", "you", "your", "yours", "yes", "let",
    "s", "t", "ll", "re", "ve", "d", "m", "don", "ok", "okay", "sure", "please", "thanks", "thank",
    "hello", "hi", "hey", "welcome", "glad", "happy", "help", "sorry", "great", "course",
    // German
    "aber", "alle", "als", "also", "am", "an", "auch", "auf", "aus", "bei", "bin", "bis", "bist",
    "da", "damit", "dann", "das", "dass", "dein", "deine", "dem", "den", "der", "des", "dich",
    "die", "dir", "doch", "du", "durch", "ein", "eine", "einem", "einen", "einer", "eines", "er",
    "es", "euch", "euer", "für", "hab", "habe", "haben", "hat", "hier", "ich", "ihr", "ihre", "im",
    "in", "ist", "ja", "jetzt", "kann", "kannst", "können", "mein", "meine", "mich", "mir", "mit",
    "nach", "nicht", "noch", "nun", "nur", "ob", "oder", "sehr", "sein", "sich", "sie", "sind",
    "so", "um", "und", "uns", "unser", "unsere", "von", "vor", "war", "waren", "was", "weil",
    "wenn", "werden", "wie", "wir", "wird", "wo", "zu", "zum", "zur", "über", "bitte", "danke",
    "gerne", "hallo",
];

const SUFFIXES: &[&str] = &["ing", "ed", "es", "en", "er", "s", "e"];

fn is_cjk(c: char) -> bool {
    matches!(c,
        '\u{1100}'..='\u{11FF}' | '\u{3040}'..='\u{30FF}' | '\u{3130}'..='\u{318F}'
        | '\u{3400}'..='\u{4DBF}' | '\u{4E00}'..='\u{9FFF}' | '\u{AC00}'..='\u{D7A3}'
        | '\u{F900}'..='\u{FAFF}')
}

fn stem(word: &str) -> String {
    if word.is_ascii() {
        for suf in SUFFIXES {
            if let Some(s) = word.strip_suffix(suf) {
                if s.len() >= 3 {
                    return s.to_owned();
                }
            }
        }
    }
    word.to_owned()
}

/// The analyser described in the module docs.
pub(crate) fn tokens(text: &str) -> Vec<String> {
    let folded: String = text.nfkc().flat_map(char::to_lowercase).collect();
    let mut out = Vec::new();
    let words = folded
        .unicode_words()
        .flat_map(|w| w.split(['\'', '\u{2019}']))
        .filter(|w| !w.is_empty());
    for word in words {
        if word.chars().any(is_cjk) {
            let chars: Vec<char> = word.chars().collect();
            if chars.len() == 1 {
                out.push(word.to_owned());
            } else {
                out.extend(chars.windows(2).map(|w| w.iter().collect::<String>()));
            }
        } else if word.chars().count() > 1 && !STOP_WORDS.contains(&word) {
            out.push(stem(word));
        }
    }
    out
}

fn term_counts(text: &str) -> HashMap<String, f64> {
    let mut counts: HashMap<String, f64> = HashMap::new();
    for t in tokens(text) {
        *counts.entry(t).or_insert(0.0) += 1.0;
    }
    counts
}

/// TF-IDF reference vectors for one persona's scope; build once per scope
/// (e.g. per persona and FAQ version) and score every reply against it.
#[derive(Debug, Clone, Default)]
pub struct DriftModel {
    idf: HashMap<String, f64>,
    /// Weight of a term no reference contains.
    unseen_idf: f64,
    /// Unit-length reference vectors.
    references: Vec<HashMap<String, f64>>,
}

fn tf(count: f64) -> f64 {
    1.0 + count.ln()
}

impl DriftModel {
    /// Builds the model; references with no tokens are ignored.
    pub fn build(reference_texts: &[String]) -> Self {
        let counts: Vec<HashMap<String, f64>> = reference_texts
            .iter()
            .map(|t| term_counts(t))
            .filter(|c| !c.is_empty())
            .collect();
        let n = counts.len() as f64;
        let mut df: HashMap<&str, f64> = HashMap::new();
        for c in &counts {
            for t in c.keys() {
                *df.entry(t.as_str()).or_insert(0.0) += 1.0;
            }
        }
        let idf: HashMap<String, f64> = df
            .into_iter()
            .map(|(t, d)| (t.to_owned(), ((1.0 + n) / (1.0 + d)).ln() + 1.0))
            .collect();
        let references = counts
            .iter()
            .map(|c| {
                let mut v: HashMap<String, f64> = c
                    .iter()
                    .map(|(t, &k)| (t.clone(), tf(k) * idf.get(t).copied().unwrap_or(1.0)))
                    .collect();
                let norm = v.values().map(|w| w * w).sum::<f64>().sqrt();
                if norm > 0.0 {
                    v.values_mut().for_each(|w| *w /= norm);
                }
                v
            })
            .collect();
        Self {
            idf,
            unseen_idf: (1.0 + n).ln() + 1.0,
            references,
        }
    }

    /// Drift of `reply` in [0, 1]: 0 on topic, 1 unrelated.
    pub fn score(&self, reply: &str) -> f64 {
        if self.references.is_empty() {
            return 0.0;
        }
        let counts = term_counts(reply);
        if counts.is_empty() {
            return 0.0;
        }
        let v: Vec<(&String, f64)> = counts
            .iter()
            .map(|(t, &k)| {
                (
                    t,
                    tf(k) * self.idf.get(t).copied().unwrap_or(self.unseen_idf),
                )
            })
            .collect();
        let norm = v.iter().map(|(_, w)| w * w).sum::<f64>().sqrt();
        if norm == 0.0 {
            return 0.0;
        }
        let best = self
            .references
            .iter()
            .map(|r| {
                v.iter()
                    .map(|(t, w)| w * r.get(*t).copied().unwrap_or(0.0))
                    .sum::<f64>()
                    / norm
            })
            .fold(0.0_f64, f64::max);
        (1.0 - best).clamp(0.0, 1.0)
    }
}

/// Exponentially weighted moving average for a session's drift:
/// `alpha · score + (1 − alpha) · previous`; the first reply's score stands
/// alone. `alpha` is clamped to [0, 1]; see [`DEFAULT_DRIFT_ALPHA`].
pub fn ewma(previous: Option<f64>, score: f64, alpha: f64) -> f64 {
    let alpha = alpha.clamp(0.0, 1.0);
    match previous {
        Some(p) => alpha * score + (1.0 - alpha) * p,
        None => score,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn analyser_folds_and_splits() {
        assert_eq!(tokens("Refunds ARE processed"), ["refund", "process"]);
        assert_eq!(tokens("환불 처리"), ["환불", "처리"]);
        assert_eq!(tokens("환불처리"), ["환불", "불처", "처리"]);
        assert!(tokens("Thanks, you are welcome!").is_empty());
    }

    #[test]
    fn edge_cases_score_zero() {
        assert_eq!(DriftModel::build(&[]).score("anything"), 0.0);
        let m = DriftModel::build(&["billing and invoices".to_owned()]);
        assert_eq!(m.score(""), 0.0);
        assert!(m.score("billing invoices") < 0.01);
        assert_eq!(ewma(None, 0.8, 0.3), 0.8);
        assert!((ewma(Some(0.0), 1.0, 0.3) - 0.3).abs() < 1e-12);
    }
}
