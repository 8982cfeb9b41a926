//! Moderation and drift scoring.
//!
//! The engine asks a [`Guard`] about every user turn before any model call and
//! about every assistant reply before it is stored. This crate currently ships
//! [`PassThrough`], which allows everything and reports no drift; the
//! moderation issue replaces it with real checks behind the same interface.

/// What moderation decided about one piece of text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Delivered unchanged.
    Allowed,
    /// Delivered, but something was noted or redacted.
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
}

/// The outcome of checking one text.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    pub verdict: Verdict,
    /// The text to deliver (may differ from the input when redacted).
    pub text: String,
    /// Names of the categories that matched, e.g. `pii.email`.
    pub categories: Vec<String>,
}

impl Assessment {
    pub fn allowed(text: &str) -> Self {
        Self {
            verdict: Verdict::Allowed,
            text: text.to_owned(),
            categories: Vec::new(),
        }
    }
}

/// The instructions moderation applies for one turn.
#[derive(Debug, Clone, Default)]
pub struct GuardPolicy {
    /// Persona guardrails followed by the request's `extraGuardrails`.
    pub guardrails: Vec<String>,
}

/// Checks text and scores how far a reply drifts from its persona.
pub trait Guard: Send + Sync + 'static {
    fn check_input(&self, text: &str, policy: &GuardPolicy) -> Assessment;
    fn check_output(&self, text: &str, policy: &GuardPolicy) -> Assessment;
    /// 0 = on topic for the persona, 1 = unrelated.
    fn drift(&self, system_prompt: &str, user_text: &str, reply: &str) -> f64;
}

/// Allows everything; drift is always 0.
#[derive(Debug, Clone, Copy, Default)]
pub struct PassThrough;

impl Guard for PassThrough {
    fn check_input(&self, text: &str, _policy: &GuardPolicy) -> Assessment {
        Assessment::allowed(text)
    }

    fn check_output(&self, text: &str, _policy: &GuardPolicy) -> Assessment {
        Assessment::allowed(text)
    }

    fn drift(&self, _system_prompt: &str, _user_text: &str, _reply: &str) -> f64 {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pass_through_allows_and_reports_no_drift() {
        let guard = PassThrough;
        let policy = GuardPolicy::default();
        let a = guard.check_input("hello", &policy);
        assert_eq!(a.verdict, Verdict::Allowed);
        assert_eq!(a.text, "hello");
        assert_eq!(guard.check_output("x", &policy).verdict.as_str(), "allowed");
        assert_eq!(guard.drift("p", "u", "r"), 0.0);
    }
}
