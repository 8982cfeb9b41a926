//! Guardrails the guard enforces itself.
//!
//! Every guardrail is an instruction to the model. Two forms are also enforced
//! on input and output (category `guardrail`, rule = the guardrail string):
//!
//! - `block: <regex>` — a Rust `regex` matched against the raw text (add `(?i)`
//!   for case-insensitive matching). Compiled with a 256 KiB size limit; the
//!   pattern may be at most 1000 characters.
//! - `block-terms: a, b, c` — comma-separated phrases matched on the folded text
//!   with word boundaries, like the lexicon, so look-alike and spacing evasions
//!   are caught too.
//!
//! - `moderation: hate=0.7, sexual=off, fail-closed` — the persona's
//!   moderation settings, not an instruction to the model: a score threshold in
//!   `(0, 1]` or `off` for any of the local classifier's categories
//!   (`violence`, `self_harm`, `hate`, `harassment`, `sexual`,
//!   `sexual_minors`), and `fail-open` / `fail-closed` for the external
//!   classifier. `sexual_minors` can only be made stricter (a lower
//!   threshold), never switched off. With several `moderation:` lines the
//!   strictest value of each category wins. The engine takes these from the
//!   persona only, never from a request's extra guardrails
//!   ([`is_moderation_setting`]).
//!
//! The prefixes are case-insensitive. Anything else is an instruction only.

use regex::{Regex, RegexBuilder};

use crate::lexicon::PhraseSet;

const REGEX_SIZE_LIMIT: usize = 256 * 1024;
const MAX_PATTERN_CHARS: usize = 1000;
const MAX_TERMS: usize = 200;

/// Why a guardrail cannot be enforced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardrailError {
    #[error("`block:` needs a regular expression after the colon")]
    EmptyRegex,
    #[error("the `block:` pattern is longer than {MAX_PATTERN_CHARS} characters")]
    RegexTooLong,
    #[error("invalid `block:` regular expression: {0}")]
    InvalidRegex(String),
    #[error("`block-terms:` needs at least one term")]
    NoTerms,
    #[error("`block-terms:` takes at most {MAX_TERMS} terms")]
    TooManyTerms,
    #[error(
        "`moderation:` setting `{0}` is not category=score, category=off, fail-open or fail-closed"
    )]
    BadSetting(String),
    #[error("`moderation:` category `{0}` is unknown")]
    UnknownCategory(String),
    #[error("`moderation:` threshold `{0}` is not a number in (0, 1]")]
    BadThreshold(String),
    #[error(
        "`moderation:` sexual_minors can only be made stricter (at most {max}), never switched off"
    )]
    MinorsAlwaysOn { max: String },
}

/// A guardrail string as the guard reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Parsed<'a> {
    Regex(&'a str),
    Terms(Vec<&'a str>),
    Settings(&'a str),
    Instruction,
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

pub(crate) fn parse(guardrail: &str) -> Parsed<'_> {
    let g = guardrail.trim_start();
    if let Some(rest) = strip_prefix_ci(g, "block-terms:") {
        Parsed::Terms(
            rest.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .collect(),
        )
    } else if let Some(rest) = strip_prefix_ci(g, "block:") {
        Parsed::Regex(rest.trim())
    } else if let Some(rest) = strip_prefix_ci(g, "moderation:") {
        Parsed::Settings(rest.trim())
    } else {
        Parsed::Instruction
    }
}

pub(crate) fn compile_regex(pattern: &str) -> Result<Regex, GuardrailError> {
    if pattern.is_empty() {
        return Err(GuardrailError::EmptyRegex);
    }
    if pattern.chars().count() > MAX_PATTERN_CHARS {
        return Err(GuardrailError::RegexTooLong);
    }
    RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| GuardrailError::InvalidRegex(e.to_string()))
}

/// Checks that a guardrail can be enforced, so the API can reject bad ones
/// (422) before they are stored. Plain instructions are always valid.
pub fn validate_guardrail(guardrail: &str) -> Result<(), GuardrailError> {
    match parse(guardrail) {
        Parsed::Instruction => Ok(()),
        Parsed::Regex(p) => compile_regex(p).map(|_| ()),
        Parsed::Terms(t) if t.is_empty() => Err(GuardrailError::NoTerms),
        Parsed::Terms(t) if t.len() > MAX_TERMS => Err(GuardrailError::TooManyTerms),
        Parsed::Terms(_) => Ok(()),
        Parsed::Settings(spec) => {
            let mut settings = ModerationSettings::default();
            settings.apply(spec)
        }
    }
}

/// Whether a guardrail string is a `moderation:` settings line (which only a
/// persona may set: see the module docs).
pub fn is_moderation_setting(guardrail: &str) -> bool {
    matches!(parse(guardrail), Parsed::Settings(_))
}

/// The local classifier's categories, in score order.
pub const CLASSIFIER_CATEGORIES: [&str; 6] = [
    "violence",
    "self_harm",
    "hate",
    "harassment",
    "sexual",
    "sexual_minors",
];

/// Default score at or above which a category blocks. Chosen on the
/// prototypes and the project's labelled sets, never on the evaluation set.
pub const DEFAULT_THRESHOLDS: [f32; 6] = [0.6, 0.6, 0.6, 0.6, 0.6, 0.5];

const MINORS: usize = 5;

/// What one policy's `moderation:` lines say.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModerationSettings {
    /// Per [`CLASSIFIER_CATEGORIES`]: the blocking threshold, `None` = off.
    pub thresholds: [Option<f32>; 6],
    /// Overrides the external classifier's `fail_open` when set.
    pub fail_open: Option<bool>,
    /// Whether any category was set explicitly (for the strictest-wins rule).
    explicit: [bool; 6],
}

impl Default for ModerationSettings {
    fn default() -> Self {
        Self {
            thresholds: DEFAULT_THRESHOLDS.map(Some),
            fail_open: None,
            explicit: [false; 6],
        }
    }
}

impl ModerationSettings {
    /// The settings of `guardrails` (defaults when there is no
    /// `moderation:` line). Invalid parts are skipped with a warning.
    pub fn from_guardrails(guardrails: &[String]) -> Self {
        let mut settings = Self::default();
        for g in guardrails {
            if let Parsed::Settings(spec) = parse(g) {
                if let Err(e) = settings.apply(spec) {
                    tracing::warn!(guardrail = %g, error = %e, "moderation setting not applied");
                }
            }
        }
        settings
    }

    fn apply(&mut self, spec: &str) -> Result<(), GuardrailError> {
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.to_ascii_lowercase().as_str() {
                "fail-open" | "fail_open" => {
                    // Closed wins over open.
                    self.fail_open = Some(self.fail_open.unwrap_or(true));
                    continue;
                }
                "fail-closed" | "fail_closed" => {
                    self.fail_open = Some(false);
                    continue;
                }
                _ => {}
            }
            let (name, value) = part
                .split_once('=')
                .ok_or_else(|| GuardrailError::BadSetting(part.to_owned()))?;
            let name = name.trim().to_ascii_lowercase().replace(['-', '/'], "_");
            let i = CLASSIFIER_CATEGORIES
                .iter()
                .position(|c| *c == name)
                .ok_or_else(|| GuardrailError::UnknownCategory(name.clone()))?;
            let value = value.trim();
            let threshold = if value.eq_ignore_ascii_case("off") {
                None
            } else {
                let t: f32 = value
                    .parse()
                    .ok()
                    .filter(|t: &f32| *t > 0.0 && *t <= 1.0)
                    .ok_or_else(|| GuardrailError::BadThreshold(value.to_owned()))?;
                Some(t)
            };
            if i == MINORS && threshold.is_none_or(|t| t > DEFAULT_THRESHOLDS[MINORS]) {
                return Err(GuardrailError::MinorsAlwaysOn {
                    max: DEFAULT_THRESHOLDS[MINORS].to_string(),
                });
            }
            // The first explicit value replaces the default; later ones only
            // tighten (a lower threshold, or on instead of off).
            self.thresholds[i] = if self.explicit[i] {
                match (self.thresholds[i], threshold) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            } else {
                threshold
            };
            self.explicit[i] = true;
        }
        Ok(())
    }
}

/// The enforceable part of one policy's guardrails, compiled.
#[derive(Debug, Default)]
pub(crate) struct CompiledRules {
    /// `(guardrail string, regex)`.
    pub(crate) regexes: Vec<(String, Regex)>,
    /// Terms; an entry's `tag` is its index into `term_rules`.
    pub(crate) terms: Option<PhraseSet>,
    pub(crate) term_rules: Vec<String>,
    pub(crate) settings: ModerationSettings,
}

impl CompiledRules {
    /// Compiles what can be compiled. Invalid guardrails are skipped with a
    /// warning here: they should have been rejected by [`validate_guardrail`].
    pub(crate) fn compile(guardrails: &[String]) -> Self {
        let mut rules = Self {
            settings: ModerationSettings::from_guardrails(guardrails),
            ..Self::default()
        };
        let mut items = Vec::new();
        for g in guardrails {
            match parse(g) {
                Parsed::Instruction | Parsed::Settings(_) => {}
                Parsed::Regex(p) => match compile_regex(p) {
                    Ok(re) => rules.regexes.push((g.clone(), re)),
                    Err(e) => tracing::warn!(guardrail = %g, error = %e, "guardrail not enforced"),
                },
                Parsed::Terms(terms) => {
                    let idx = rules.term_rules.len();
                    rules.term_rules.push(g.clone());
                    for t in terms.into_iter().take(MAX_TERMS) {
                        items.push(("guardrail", idx, t.to_owned()));
                    }
                }
            }
        }
        if !items.is_empty() {
            rules.terms = Some(PhraseSet::build(items));
        }
        rules
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_validates() {
        assert_eq!(parse("Be polite."), Parsed::Instruction);
        assert_eq!(parse("BLOCK: (?i)acme"), Parsed::Regex("(?i)acme"));
        assert_eq!(
            parse("block-terms: a, b ,, c"),
            Parsed::Terms(vec!["a", "b", "c"])
        );
        assert!(validate_guardrail("block: (unclosed").is_err());
        assert!(validate_guardrail("block: ").is_err());
        assert!(validate_guardrail("block-terms: , ,").is_err());
        assert!(validate_guardrail("block: a{1000}{1000}{1000}").is_err());
        assert!(validate_guardrail("block: (?i)competitor\\s+corp").is_ok());
    }

    #[test]
    fn moderation_settings_tighten_and_keep_minors_on() {
        let s = |lines: &[&str]| {
            ModerationSettings::from_guardrails(
                &lines.iter().map(|l| (*l).to_owned()).collect::<Vec<_>>(),
            )
        };
        let d = s(&[]);
        assert_eq!(d.thresholds, DEFAULT_THRESHOLDS.map(Some));
        let a = s(&["Moderation: hate=0.8, sexual=off, fail-closed"]);
        assert_eq!(a.thresholds[2], Some(0.8));
        assert_eq!(a.thresholds[4], None);
        assert_eq!(a.fail_open, Some(false));
        let b = s(&["moderation: hate=0.8", "moderation: hate=0.6, fail-open"]);
        assert_eq!(b.thresholds[2], Some(0.6));
        assert_eq!(b.fail_open, Some(true));
        // Never off, never looser.
        for bad in [
            "moderation: sexual_minors=off",
            "moderation: sexual/minors=0.9",
        ] {
            assert!(validate_guardrail(bad).is_err(), "{bad}");
            assert_eq!(s(&[bad]).thresholds[5], Some(DEFAULT_THRESHOLDS[5]));
        }
        assert!(validate_guardrail("moderation: sexual_minors=0.1").is_ok());
        assert!(validate_guardrail("moderation: gore=0.5").is_err());
        assert!(validate_guardrail("moderation: hate=2").is_err());
        assert!(is_moderation_setting(" moderation: hate=off"));
        assert!(!is_moderation_setting("Be nice."));
    }
}
