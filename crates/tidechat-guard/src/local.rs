//! The local classifier: softmax regression over sentence embeddings.
//!
//! The guard does not know which model embeds text: it takes any
//! [`SentenceEncoder`] (the server passes the Universal Sentence Encoder
//! multilingual v3 that retrieval already loaded, see `tidechat-engine`'s
//! `moderation` module). At load the labelled prototypes shipped in
//! `src/data/prototypes.jsonl` (EN/DE/KO; kept apart from the evaluation set)
//! are embedded and a 7-class softmax regression (the six categories of
//! [`CLASSIFIER_CATEGORIES`] plus `safe`) is fitted on them: about 270
//! embeddings, a few hundred milliseconds. A text's score for a category is
//! that class's probability; it blocks at or above the category's threshold
//! ([`DEFAULT_THRESHOLDS`], overridable per persona with a `moderation:`
//! guardrail, see [`crate::ModerationSettings`]).
//!
//! The encoder sees [`crate::normalize`]'s readable form of the text
//! (evasions undone, words kept), not the raw text.

use std::fmt;
use std::sync::Arc;

use serde::Deserialize;

use crate::guardrail::{ModerationSettings, CLASSIFIER_CATEGORIES};
use crate::normalize::readable;

/// Embeds sentences; the vectors must be L2-normalised and of one length.
pub trait SentenceEncoder: Send + Sync + fmt::Debug {
    fn encode(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EncodeError>;
}

/// Why the encoder could not embed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sentence encoder failed: {0}")]
pub struct EncodeError(pub String);

const PROTOTYPES: &str = include_str!("data/prototypes.jsonl");
const CLASSES: usize = CLASSIFIER_CATEGORIES.len() + 1;
const SAFE: usize = CLASSES - 1;
/// Scale applied to the (unit) embeddings before the linear layer: cosine
/// differences are small, this lets gradient descent reach confident logits.
const FEATURE_SCALE: f32 = 8.0;
const EPOCHS: usize = 600;
const LEARNING_RATE: f32 = 0.05;
const L2: f32 = 1e-2;

#[derive(Deserialize)]
struct Prototype {
    text: String,
    label: String,
}

/// Per-category probabilities for one text, in [`CLASSIFIER_CATEGORIES`] order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scores(pub [f32; CLASSES - 1]);

impl Scores {
    /// The highest-scoring category at or above its threshold in `settings`.
    pub fn blocking(&self, settings: &ModerationSettings) -> Option<(&'static str, f32, f32)> {
        let mut best: Option<(&'static str, f32, f32)> = None;
        for (i, &score) in self.0.iter().enumerate() {
            let Some(t) = settings.thresholds[i] else {
                continue;
            };
            if score >= t && best.is_none_or(|(_, s, _)| score > s) {
                best = Some((CLASSIFIER_CATEGORIES[i], score, t));
            }
        }
        best
    }
}

/// The fitted classifier; cheap to clone.
#[derive(Clone)]
pub struct LocalClassifier {
    inner: Arc<Fitted>,
}

struct Fitted {
    encoder: Arc<dyn SentenceEncoder>,
    dim: usize,
    /// `CLASSES` rows of `dim` weights, then `CLASSES` biases.
    weights: Vec<f32>,
    bias: [f32; CLASSES],
}

impl fmt::Debug for LocalClassifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalClassifier")
            .field("encoder", &self.inner.encoder)
            .field("dim", &self.inner.dim)
            .finish_non_exhaustive()
    }
}

fn softmax(logits: &mut [f32; CLASSES]) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for l in logits.iter_mut() {
        *l = (*l - max).exp();
        sum += *l;
    }
    for l in logits.iter_mut() {
        *l /= sum;
    }
}

impl LocalClassifier {
    /// Embeds the shipped prototypes with `encoder` and fits the classifier.
    pub fn fit(encoder: Arc<dyn SentenceEncoder>) -> Result<Self, EncodeError> {
        let mut examples = Vec::new();
        for line in PROTOTYPES.lines().filter(|l| !l.trim().is_empty()) {
            let p: Prototype = serde_json::from_str(line)
                .map_err(|e| EncodeError(format!("bad prototype line: {e}")))?;
            examples.push((p.label, p.text));
        }
        let refs: Vec<(&str, &str)> = examples
            .iter()
            .map(|(l, t)| (l.as_str(), t.as_str()))
            .collect();
        Self::fit_on(encoder, &refs)
    }

    /// Fits on `(label, text)` examples instead of the shipped prototypes;
    /// a label is one of [`CLASSIFIER_CATEGORIES`] or `safe`.
    pub fn fit_on(
        encoder: Arc<dyn SentenceEncoder>,
        examples: &[(&str, &str)],
    ) -> Result<Self, EncodeError> {
        let mut texts = Vec::new();
        let mut labels = Vec::new();
        for (label, text) in examples {
            let class = match CLASSIFIER_CATEGORIES.iter().position(|c| c == label) {
                Some(i) => i,
                None if *label == "safe" => SAFE,
                None => return Err(EncodeError(format!("unknown prototype label {label}"))),
            };
            texts.push(readable(text));
            labels.push(class);
        }
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let x = encoder.encode(&refs)?;
        let dim = x.first().map_or(0, Vec::len);
        if dim == 0 || x.len() != labels.len() || x.iter().any(|v| v.len() != dim) {
            return Err(EncodeError("the encoder returned unusable vectors".into()));
        }
        let (weights, bias) = train(&x, &labels, dim);
        Ok(Self {
            inner: Arc::new(Fitted {
                encoder,
                dim,
                weights,
                bias,
            }),
        })
    }

    /// Category probabilities of `text`.
    pub fn scores(&self, text: &str) -> Result<Scores, EncodeError> {
        let r = readable(text);
        let v = self.inner.encoder.encode(&[r.as_str()])?;
        let v = v
            .into_iter()
            .next()
            .filter(|v| v.len() == self.inner.dim)
            .ok_or_else(|| EncodeError("the encoder returned no usable vector".into()))?;
        let p = self.inner.probabilities(&v);
        let mut out = [0.0; CLASSES - 1];
        out.copy_from_slice(&p[..CLASSES - 1]);
        Ok(Scores(out))
    }
}

impl Fitted {
    fn probabilities(&self, v: &[f32]) -> [f32; CLASSES] {
        let mut logits = self.bias;
        for (c, l) in logits.iter_mut().enumerate() {
            let w = &self.weights[c * self.dim..(c + 1) * self.dim];
            *l += FEATURE_SCALE * w.iter().zip(v).map(|(a, b)| a * b).sum::<f32>();
        }
        softmax(&mut logits);
        logits
    }
}

/// Full-batch gradient descent with momentum on the class-balanced
/// cross-entropy. Deterministic: same prototypes, same weights.
fn train(x: &[Vec<f32>], labels: &[usize], dim: usize) -> (Vec<f32>, [f32; CLASSES]) {
    let n = x.len();
    let mut counts = [0usize; CLASSES];
    for &l in labels {
        counts[l] += 1;
    }
    let class_weight: Vec<f32> = counts
        .iter()
        .map(|&c| {
            if c == 0 {
                0.0
            } else {
                n as f32 / (CLASSES as f32 * c as f32)
            }
        })
        .collect();
    let mut w = vec![0.0f32; CLASSES * dim];
    let mut b = [0.0f32; CLASSES];
    let mut vw = vec![0.0f32; CLASSES * dim];
    let mut vb = [0.0f32; CLASSES];
    let mut gw = vec![0.0f32; CLASSES * dim];
    for _ in 0..EPOCHS {
        gw.iter_mut().for_each(|g| *g = 0.0);
        let mut gb = [0.0f32; CLASSES];
        for (xi, &yi) in x.iter().zip(labels) {
            let mut p = b;
            for (c, l) in p.iter_mut().enumerate() {
                let wc = &w[c * dim..(c + 1) * dim];
                *l += FEATURE_SCALE * wc.iter().zip(xi).map(|(a, b)| a * b).sum::<f32>();
            }
            softmax(&mut p);
            let cw = class_weight[yi] / n as f32;
            for c in 0..CLASSES {
                let err = cw * (p[c] - if c == yi { 1.0 } else { 0.0 });
                gb[c] += err;
                let g = &mut gw[c * dim..(c + 1) * dim];
                for (g, xv) in g.iter_mut().zip(xi) {
                    *g += err * FEATURE_SCALE * xv;
                }
            }
        }
        for i in 0..w.len() {
            let g = gw[i] + L2 * w[i];
            vw[i] = 0.9 * vw[i] - LEARNING_RATE * g;
            w[i] += vw[i];
        }
        for c in 0..CLASSES {
            vb[c] = 0.9 * vb[c] - LEARNING_RATE * gb[c];
            b[c] += vb[c];
        }
    }
    (w, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A toy encoder: one dimension per category keyword, so the real fitting
    /// and scoring code runs without a model.
    #[derive(Debug)]
    struct Keywords;

    const KEYS: [&[&str]; CLASSES] = [
        &[
            "kill",
            "shoot",
            "stab",
            "bomb",
            "죽",
            "töten",
            "erschieß",
            "찔러",
        ],
        &["myself", "suicide", "selbstmord", "자살", "mich"],
        &["jews", "muslims", "immigrants", "juden", "이민자", "흑인"],
        &["idiot", "bitch", "loser", "idiot", "병신", "versager"],
        &["sex", "porn", "nude", "섹스", "야한"],
        &[
            "child", "kid", "girl", "boy", "kind", "아이", "아동", "minderj",
        ],
        &["plan", "invoice", "help", "password", "rechnung", "주문"],
    ];

    impl SentenceEncoder for Keywords {
        fn encode(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EncodeError> {
            Ok(texts
                .iter()
                .map(|t| {
                    let t = t.to_lowercase();
                    let mut v: Vec<f32> = KEYS
                        .iter()
                        .map(|ks| ks.iter().filter(|k| t.contains(*k)).count() as f32)
                        .collect();
                    v.push(1.0);
                    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                    v.iter_mut().for_each(|x| *x /= norm);
                    v
                })
                .collect())
        }
    }

    #[test]
    fn fits_the_prototypes_and_scores_categories() {
        let c = LocalClassifier::fit(Arc::new(Keywords)).expect("fits");
        let settings = ModerationSettings::default();
        let cat = |t: &str| {
            c.scores(t)
                .expect("scores")
                .blocking(&settings)
                .map(|(c, _, _)| c)
        };
        assert_eq!(cat("I will shoot and stab him"), Some("violence"));
        assert_eq!(cat("please help me with my invoice password"), None);
        // Evasions reach the encoder undone.
        assert_eq!(cat("1 w1ll sh00t and st4b h1m"), Some("violence"));
        let off = ModerationSettings::from_guardrails(&["moderation: violence=off".into()]);
        let s = c.scores("I will shoot and stab him").expect("scores");
        assert!(s.blocking(&off).is_none_or(|(c, _, _)| c != "violence"));
    }
}
