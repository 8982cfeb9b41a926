//! Moderation and drift scoring.
//!
//! The engine asks a [`Guard`] about every user turn before any model call
//! ([`Guard::check_input`]) and scans every assistant reply *while it streams*
//! through an [`OutputScanner`]; [`DriftModel`] scores how far a reply strays
//! from its persona. [`Moderator`] is the built-in guard (normalisation,
//! lexicon, personal data, prompt injection, guardrails and, when given one,
//! the in-process [`LocalClassifier`] over a [`SentenceEncoder`]),
//! [`PassThrough`] allows everything, and [`ExternalClassifier`] optionally
//! asks an OpenAI-compatible `/v1/moderations` endpoint or a guard model
//! (Llama Guard style) behind an OpenAI-compatible chat endpoint.
//!
//! # Verdicts
//!
//! - `allowed`: delivered unchanged (findings of action `note` may exist);
//! - `flagged`: delivered, but something was redacted (`redact`) or marked for
//!   review (`flag`);
//! - `blocked`: not delivered, replaced by the persona's fallback reply.
//!
//! # Streaming output: sentence windows
//!
//! The scanner buffers deltas and releases text only up to the last *sentence
//! boundary* (`\n`, `。！？`, or `. ! ? …` followed by white space; a `.` only
//! after a word of two or more characters). The folded matching form turns
//! every boundary into a hard break that no pattern can match across, so a
//! window that ends on a boundary can be judged on its own: nothing after it can
//! complete a match that began before it. Personal-data patterns cannot contain
//! a boundary either, so redaction never has to reach into released text.
//!
//! When 1 KiB piles up without a boundary, the scanner cuts anyway but holds
//! back a tail: at least the longest lexicon / `block-terms:` phrase (in folded
//! bytes) plus a margin, snapped back to white space and further back over any
//! run of number-like or e-mail-like tokens. Every match that contains a byte of
//! the released part therefore lies entirely inside the text already scanned,
//! and no partial card number or phone number is released unredacted.
//!
//! Each scan also sees the tail of the text already released: the folded
//! checks the word a window may start inside, the `block:` regular expressions
//! (whose match length is unbounded) up to 256 bytes starting at white space.
//! A regex match across the seam still blocks the rest of the reply, but the
//! part released before the seam has been sent: keep `block:` patterns within
//! one sentence.
//!
//! Concatenating every [`ScanStep::Release`] gives exactly
//! [`OutputScanner::assessment`]`().text`: redactions are applied before release.

mod classifier;
mod drift;
mod guardrail;
mod injection;
mod lexicon;
mod local;
mod moderator;
mod normalize;
mod pii;

use std::ops::Range;

use serde::{Deserialize, Serialize};

pub use classifier::{
    llama_guard_category, ClassifierConfig, ClassifierError, ClassifierFormat, ExternalClassifier,
};
pub use drift::{ewma, DriftModel, DEFAULT_DRIFT_ALPHA};
pub use guardrail::{
    is_moderation_setting, validate_guardrail, GuardrailError, ModerationSettings,
    CLASSIFIER_CATEGORIES, DEFAULT_THRESHOLDS,
};
pub use local::{EncodeError, LocalClassifier, Scores, SentenceEncoder};
pub use moderator::{Moderator, MAX_WINDOW_BYTES};

/// What moderation decided about one piece of text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Delivered unchanged.
    Allowed,
    /// Delivered, but something was noted for review or redacted.
    Flagged,
    /// Not delivered: replaced with the persona's fallback reply.
    Blocked,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Flagged => "flagged",
            Self::Blocked => "blocked",
        }
    }

    /// `blocked` if any finding blocks, `flagged` if any redacts or flags,
    /// otherwise `allowed` (notes alone do not change the verdict).
    pub fn from_findings(findings: &[Finding]) -> Self {
        let has = |a: Action| findings.iter().any(|f| f.action == a);
        if has(Action::Block) {
            Self::Blocked
        } else if has(Action::Redact) || has(Action::Flag) {
            Self::Flagged
        } else {
            Self::Allowed
        }
    }
}

/// Which side of a turn a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// The user's text, before any model call.
    Input,
    /// The assistant's reply, while it streams.
    Output,
}

/// What a finding does to the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// The text is not delivered.
    Block,
    /// The matched span is replaced (e.g. `[email redacted]`).
    Redact,
    /// Delivered unchanged, but the message is flagged for review.
    Flag,
    /// Recorded only; the verdict is unaffected.
    Note,
}

/// One thing moderation found: what the engine stores per message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// `violence`, `self_harm`, `sexual_minors`, `hate`, `harassment`,
    /// `prompt_injection`, `guardrail`, `pii.email`, `pii.phone`, `pii.card`,
    /// `pii.iban`, `classifier.<name>` or `classifier_unavailable`.
    pub category: String,
    /// What matched: the lexicon phrase, the injection pattern's name, the
    /// guardrail string, the PII rule or the classifier score.
    pub rule: String,
    pub stage: Stage,
    pub action: Action,
    /// The matched text, at most 80 characters; personal data is masked
    /// (`j***@example.com`, `***1111`).
    pub excerpt: String,
    /// Byte range in the checked text (the raw input, or the whole raw reply
    /// as the model produced it, before redaction).
    pub span: Range<usize>,
}

/// The outcome of checking one text.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    pub verdict: Verdict,
    /// The text to deliver: redacted when the policy asks for it. For a
    /// streamed reply, everything released so far.
    pub text: String,
    pub findings: Vec<Finding>,
}

impl Assessment {
    pub fn allowed(text: &str) -> Self {
        Self {
            verdict: Verdict::Allowed,
            text: text.to_owned(),
            findings: Vec::new(),
        }
    }

    /// The distinct categories found, in order of first appearance.
    pub fn categories(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for f in &self.findings {
            if !out.contains(&f.category.as_str()) {
                out.push(&f.category);
            }
        }
        out
    }
}

/// The instructions moderation applies for one turn.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuardPolicy {
    /// Persona guardrails followed by the request's `extraGuardrails`.
    pub guardrails: Vec<String>,
    /// Replace personal data in delivered text (verdict `flagged`).
    pub redact_pii: bool,
}

/// The result of feeding text to an [`OutputScanner`].
#[derive(Debug, Clone, PartialEq)]
pub enum ScanStep {
    /// Text now safe to send to the client; may be empty.
    Release(String),
    /// The reply is blocked: send nothing more of it. Repeated on every later
    /// call.
    Block(Finding),
}

/// Checks one streamed reply. Not thread-safe by design: one per reply.
pub trait OutputScanner: Send {
    /// Feeds a delta; returns text that is now safe to release, or a block.
    fn push(&mut self, delta: &str) -> ScanStep;
    /// End of the reply: releases the rest, or blocks.
    fn finish(&mut self) -> ScanStep;
    /// The reply's assessment so far; `text` is everything released.
    fn assessment(&self) -> Assessment;
}

/// Checks user input and streamed replies.
pub trait Guard: Send + Sync + 'static {
    /// Checks the user's text before any model call.
    fn check_input(&self, text: &str, policy: &GuardPolicy) -> Assessment;

    /// A streaming scanner for one reply.
    fn output_scanner(&self, policy: &GuardPolicy) -> Box<dyn OutputScanner>;

    /// Checks a whole reply at once (same result as streaming it).
    fn check_output(&self, text: &str, policy: &GuardPolicy) -> Assessment {
        let mut scanner = self.output_scanner(policy);
        if let ScanStep::Release(_) = scanner.push(text) {
            let _ = scanner.finish();
        }
        scanner.assessment()
    }
}

/// Allows everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct PassThrough;

impl Guard for PassThrough {
    fn check_input(&self, text: &str, _policy: &GuardPolicy) -> Assessment {
        Assessment::allowed(text)
    }

    fn output_scanner(&self, _policy: &GuardPolicy) -> Box<dyn OutputScanner> {
        Box::<PassThroughScanner>::default()
    }
}

/// Releases every delta as it comes.
#[derive(Debug, Default)]
struct PassThroughScanner {
    released: String,
}

impl OutputScanner for PassThroughScanner {
    fn push(&mut self, delta: &str) -> ScanStep {
        self.released.push_str(delta);
        ScanStep::Release(delta.to_owned())
    }

    fn finish(&mut self) -> ScanStep {
        ScanStep::Release(String::new())
    }

    fn assessment(&self) -> Assessment {
        Assessment::allowed(&self.released)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pass_through_allows_and_streams_unchanged() {
        let guard = PassThrough;
        let policy = GuardPolicy::default();
        let a = guard.check_input("hello", &policy);
        assert_eq!(a.verdict, Verdict::Allowed);
        assert_eq!(a.text, "hello");
        let mut s = guard.output_scanner(&policy);
        assert_eq!(s.push("kill "), ScanStep::Release("kill ".into()));
        assert_eq!(s.finish(), ScanStep::Release(String::new()));
        assert_eq!(s.assessment().text, "kill ");
        assert_eq!(guard.check_output("x", &policy).verdict.as_str(), "allowed");
    }
}
