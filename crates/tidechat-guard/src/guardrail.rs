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
}

/// A guardrail string as the guard reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Parsed<'a> {
    Regex(&'a str),
    Terms(Vec<&'a str>),
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
}

impl CompiledRules {
    /// Compiles what can be compiled. Invalid guardrails are skipped with a
    /// warning here: they should have been rejected by [`validate_guardrail`].
    pub(crate) fn compile(guardrails: &[String]) -> Self {
        let mut rules = Self::default();
        let mut items = Vec::new();
        for g in guardrails {
            match parse(g) {
                Parsed::Instruction => {}
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
}
