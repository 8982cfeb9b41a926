//! The confidence: how likely an entry answers the query, from the
//! [`Features`] of the (query, entry) pair, in two logistic stages:
//!
//! 1. a *ranking score* `z`, linear in the features, which orders the
//!    entries (fitted listwise: softmax over each query's visible entries,
//!    maximising the probability of the expected one);
//! 2. the *confidence*, a logistic function of the coverages (and the
//!    cosine), fitted on each query's top entry with label "the query is
//!    answerable", so it estimates that probability. The relative BM25
//!    score and the language are left out on purpose: the top entry always
//!    has the best BM25 score, however little it matches (a 9-entry FAQ
//!    answered "the best pizza recipe for my account party" when they were
//!    in).
//!
//! For ranking, `z` is mapped through `σ(a + b·z)` fitted the same way (the
//! *rank probability*), so that entries with and without embeddings rank
//! together.
//!
//! Lexical mode (no cosine) and hybrid mode (with cosine) have their own
//! constants, fitted so that both confidences estimate the same
//! probability: one threshold then means the same in both, and entries
//! with and without embeddings rank together by confidence. Every feature
//! is a ratio or a cosine (no raw BM25 score, no rank, no margin to the
//! next entry), so the confidence means the same for a 2-entry and a
//! 2,000-entry FAQ; `tests/retrieval.rs` checks this with ~2,000
//! distractor entries.
//!
//! Where the constants come from: the fit (plain gradient descent on the
//! log-loss, L2 1e-3 for stage 1, 1e-4 for stage 2) over the first
//! labelled set only (`tests/data/retrieval_faq.json` +
//! `retrieval_queries.json`: 249 queries, 122 entries), cosines from USE
//! multilingual v3 (the local model) with each entry's question. The
//! second labelled set was never used for it. `docs/retrieval_fit.py`
//! reproduces these constants from the features the ignored test
//! `dump_features` writes (the fit took "same language" from the set's
//! labels; the index guesses it). docs/retrieval.md has the alternatives
//! tried and their figures.

use super::Features;

/// The confidence threshold callers use by default for
/// [`super::FaqIndex::retrieve`]: below it a query is out of scope. The
/// value with the best out-of-scope F1 on the first labelled set for both
/// modes (both were best at 0.65).
pub const DEFAULT_CONFIDENCE_THRESHOLD: f64 = 0.65;

/// Stage 1, lexical: weights of query coverage, entry coverage, their
/// product, same language, relative BM25.
pub const LEXICAL_RANK: [f64; 5] = [0.5387, 2.8593, 1.6828, 2.1952, 5.4586];
/// Stage 1, hybrid: weights of cosine, then as [`LEXICAL_RANK`].
pub const HYBRID_RANK: [f64; 6] = [8.6031, 0.8288, 0.4607, 1.0528, 2.8892, 4.5619];
/// Rank probability, lexical: `(a, b)` of `σ(a + b·z)`.
pub const LEXICAL_CALIBRATION: (f64, f64) = (-4.5926, 0.6272);
/// Rank probability, hybrid.
pub const HYBRID_CALIBRATION: (f64, f64) = (-4.4843, 0.468);
/// Confidence, lexical: intercept, query coverage, entry coverage.
pub const LEXICAL_CONFIDENCE: [f64; 3] = [-1.2847, 3.4731, 1.2712];
/// Confidence, hybrid: intercept, cosine, query coverage, entry coverage.
pub const HYBRID_CONFIDENCE: [f64; 4] = [-2.4483, 3.1187, 3.9641, -0.3232];

/// The confidence that the entry answers the query, 0..=1.
pub fn confidence(f: &Features) -> f64 {
    let (q, e) = (f.query_coverage, f.entry_coverage);
    let z = match f.cosine {
        None => LEXICAL_CONFIDENCE[0] + LEXICAL_CONFIDENCE[1] * q + LEXICAL_CONFIDENCE[2] * e,
        Some(cos) => {
            HYBRID_CONFIDENCE[0]
                + HYBRID_CONFIDENCE[1] * cos
                + HYBRID_CONFIDENCE[2] * q
                + HYBRID_CONFIDENCE[3] * e
        }
    };
    if z.is_finite() {
        sigmoid(z)
    } else {
        0.0
    }
}

fn lexical_terms(f: &Features) -> [f64; 5] {
    let (q, e) = (f.query_coverage, f.entry_coverage);
    [q, e, q * e, f64::from(u8::from(f.same_language)), f.bm25]
}

fn dot(w: &[f64], x: &[f64]) -> f64 {
    w.iter().zip(x).map(|(w, x)| w * x).sum()
}

/// The ranking score: log-odds of the rank probability, so lexical and
/// hybrid entries compare directly.
pub fn logit(f: &Features) -> f64 {
    let lexical = lexical_terms(f);
    let z = match f.cosine {
        None => {
            let z = dot(&LEXICAL_RANK, &lexical);
            LEXICAL_CALIBRATION.0 + LEXICAL_CALIBRATION.1 * z
        }
        Some(cos) => {
            let z = HYBRID_RANK[0] * cos + dot(&HYBRID_RANK[1..], &lexical);
            HYBRID_CALIBRATION.0 + HYBRID_CALIBRATION.1 * z
        }
    };
    if z.is_finite() {
        z
    } else {
        f64::MIN
    }
}

/// The logistic function.
pub fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confidence_grows_with_every_feature() {
        let base = Features {
            query_coverage: 0.5,
            entry_coverage: 0.5,
            same_language: true,
            bm25: 0.5,
            cosine: None,
        };
        let more = [
            Features {
                query_coverage: 0.9,
                ..base
            },
            Features {
                entry_coverage: 0.9,
                ..base
            },
            Features { bm25: 0.9, ..base },
        ];
        for f in more {
            assert!(logit(&f) > logit(&base), "{f:?}");
        }
        let a = Features {
            cosine: Some(0.5),
            ..base
        };
        let b = Features {
            cosine: Some(0.8),
            ..base
        };
        assert!(logit(&b) > logit(&a));
        assert!(confidence(&b) > confidence(&a));
        assert!(
            confidence(&Features {
                query_coverage: 0.9,
                ..base
            }) > confidence(&base)
        );
        assert!((0.0..=1.0).contains(&sigmoid(logit(&Features::default()))));
        assert!(confidence(&Features::default()) < DEFAULT_CONFIDENCE_THRESHOLD);
        let nan = Features {
            cosine: Some(f64::NAN),
            ..base
        };
        assert_eq!(sigmoid(logit(&nan)), 0.0);
        assert_eq!(confidence(&nan), 0.0);
    }
}
