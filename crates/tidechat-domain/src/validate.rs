//! Validation rules shared by every API surface. Limits are public constants
//! so docs and error messages can quote them.

use serde_json::{Map, Value};

use crate::entities::{FaqDraft, PersonaDraft};
use crate::error::ValidationError;

/// Longest accepted `userText`, in Unicode scalar values.
pub const USER_TEXT_MAX_CHARS: usize = 16_000;
pub const TEMPERATURE_MIN: f64 = 0.0;
pub const TEMPERATURE_MAX: f64 = 2.0;
pub const HISTORY_LIMIT_MAX: i64 = 200;
pub const HISTORY_LIMIT_DEFAULT: i64 = 20;
pub const MAX_OUTPUT_TOKENS_MAX: i64 = 128_000;
pub const MEMORY_DIGEST_MAX_CHARS: usize = 16_000;
pub const GUARDRAILS_MAX: usize = 32;
pub const GUARDRAIL_MAX_CHARS: usize = 2_000;
pub const TOOL_NAMES_MAX: usize = 32;
pub const TITLE_MAX_CHARS: usize = 200;
pub const USER_ID_MAX_CHARS: usize = 256;
pub const METADATA_MAX_BYTES: usize = 16 * 1024;
pub const PAGE_LIMIT_MAX: i64 = 200;
pub const PAGE_LIMIT_DEFAULT: i64 = 50;
pub const NAME_MAX_CHARS: usize = 100;
pub const SYSTEM_PROMPT_MAX_CHARS: usize = 32_000;
pub const FALLBACK_MAX_CHARS: usize = 4_000;
pub const FAQ_QUESTION_MAX_CHARS: usize = 1_000;
pub const FAQ_ANSWER_MAX_CHARS: usize = 20_000;
/// Extracted text of one knowledge document (about 8 MB of UTF-8 at most).
pub const DOCUMENT_TEXT_MAX_CHARS: usize = 4_000_000;
/// Size of an uploaded document file (before text extraction).
pub const DOCUMENT_FILE_MAX_BYTES: usize = 16 * 1024 * 1024;
pub const FAQ_TAGS_MAX: usize = 20;
pub const FAQ_TAG_MAX_CHARS: usize = 64;
pub const FAQ_IMPORT_MAX_ENTRIES: usize = 5_000;
pub const TOOL_NAME_MAX_CHARS: usize = 64;
pub const TOOL_DESCRIPTION_MAX_CHARS: usize = 1_000;
pub const TOOL_PARAMETERS_MAX_BYTES: usize = 16 * 1024;
pub const TOOL_SECRET_MIN_CHARS: usize = 16;

fn err(field: &'static str, message: impl Into<String>) -> ValidationError {
    ValidationError::new(field, message)
}

/// Non-empty after trimming, and at most `max` characters.
pub fn required_text(field: &'static str, value: &str, max: usize) -> Result<(), ValidationError> {
    if value.trim().is_empty() {
        return Err(err(field, "must not be empty or whitespace only"));
    }
    optional_text(field, value, max)
}

pub fn optional_text(field: &'static str, value: &str, max: usize) -> Result<(), ValidationError> {
    if value.chars().count() > max {
        return Err(err(field, format!("must be at most {max} characters")));
    }
    if value.contains('\0') {
        return Err(err(field, "must not contain NUL characters"));
    }
    Ok(())
}

pub fn user_text(value: &str) -> Result<(), ValidationError> {
    required_text("userText", value, USER_TEXT_MAX_CHARS)
}

pub fn temperature(field: &'static str, value: f64) -> Result<(), ValidationError> {
    if !value.is_finite() || !(TEMPERATURE_MIN..=TEMPERATURE_MAX).contains(&value) {
        return Err(err(
            field,
            format!("must be between {TEMPERATURE_MIN} and {TEMPERATURE_MAX}"),
        ));
    }
    Ok(())
}

pub fn max_output_tokens(field: &'static str, value: i64) -> Result<(), ValidationError> {
    if value <= 0 || value > MAX_OUTPUT_TOKENS_MAX {
        return Err(err(
            field,
            format!("must be between 1 and {MAX_OUTPUT_TOKENS_MAX}"),
        ));
    }
    Ok(())
}

pub fn history_limit(value: i64) -> Result<(), ValidationError> {
    if value <= 0 || value > HISTORY_LIMIT_MAX {
        return Err(err(
            "historyLimit",
            format!("must be between 1 and {HISTORY_LIMIT_MAX}"),
        ));
    }
    Ok(())
}

pub fn page_limit(value: i64) -> Result<(), ValidationError> {
    if value <= 0 || value > PAGE_LIMIT_MAX {
        return Err(err(
            "limit",
            format!("must be between 1 and {PAGE_LIMIT_MAX}"),
        ));
    }
    Ok(())
}

pub fn guardrails(field: &'static str, values: &[String]) -> Result<(), ValidationError> {
    if values.len() > GUARDRAILS_MAX {
        return Err(err(field, format!("at most {GUARDRAILS_MAX} entries")));
    }
    for value in values {
        required_text(field, value, GUARDRAIL_MAX_CHARS)?;
    }
    Ok(())
}

pub fn metadata(value: &Map<String, Value>) -> Result<(), ValidationError> {
    let size = serde_json::to_vec(value)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size > METADATA_MAX_BYTES {
        return Err(err(
            "metadata",
            format!("must be at most {METADATA_MAX_BYTES} bytes of JSON"),
        ));
    }
    Ok(())
}

pub fn persona(draft: &PersonaDraft) -> Result<(), ValidationError> {
    required_text("name", &draft.name, NAME_MAX_CHARS)?;
    optional_text(
        "systemPrompt",
        &draft.system_prompt,
        SYSTEM_PROMPT_MAX_CHARS,
    )?;
    required_text("modelId", &draft.model_id, NAME_MAX_CHARS)?;
    temperature("temperature", draft.temperature)?;
    max_output_tokens("maxOutputTokens", i64::from(draft.max_output_tokens))?;
    guardrails("guardrails", &draft.guardrails)?;
    required_text("fallbackReply", &draft.fallback_reply, FALLBACK_MAX_CHARS)?;
    if !draft.faq_threshold.is_finite() || !(0.0..=1.0).contains(&draft.faq_threshold) {
        return Err(err("faqThreshold", "must be between 0 and 1"));
    }
    if let Some(t) = draft.drift_threshold {
        if !t.is_finite() || !(0.0..=1.0).contains(&t) {
            return Err(err("driftThreshold", "must be between 0 and 1"));
        }
    }
    Ok(())
}

pub fn faq(draft: &FaqDraft) -> Result<(), ValidationError> {
    required_text("question", &draft.question, FAQ_QUESTION_MAX_CHARS)?;
    required_text("answer", &draft.answer, FAQ_ANSWER_MAX_CHARS)?;
    if let Some(org) = &draft.organization_id {
        required_text("organizationId", org, NAME_MAX_CHARS)?;
    }
    if draft.tags.len() > FAQ_TAGS_MAX {
        return Err(err("tags", format!("at most {FAQ_TAGS_MAX} tags")));
    }
    for tag in &draft.tags {
        required_text("tags", tag, FAQ_TAG_MAX_CHARS)?;
    }
    Ok(())
}

/// A tool name: letters, digits, `_` and `-`, starting with a letter (what
/// both OpenAI and Anthropic accept).
pub fn tool(draft: &crate::entities::HttpToolDraft) -> Result<(), ValidationError> {
    required_text("name", &draft.name, TOOL_NAME_MAX_CHARS)?;
    let mut chars = draft.name.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !valid {
        return Err(err(
            "name",
            "must start with a letter and use only letters, digits, `_` and `-`",
        ));
    }
    required_text(
        "description",
        &draft.description,
        TOOL_DESCRIPTION_MAX_CHARS,
    )?;
    if !draft.parameters.is_object() {
        return Err(err("parameters", "must be a JSON schema object"));
    }
    let size = serde_json::to_vec(&draft.parameters)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size > TOOL_PARAMETERS_MAX_BYTES {
        return Err(err(
            "parameters",
            format!("must be at most {TOOL_PARAMETERS_MAX_BYTES} bytes of JSON"),
        ));
    }
    if !(draft.url.starts_with("https://") || draft.url.starts_with("http://")) {
        return Err(err("url", "must be an http:// or https:// URL"));
    }
    optional_text("url", &draft.url, 2_000)?;
    if draft.secret.chars().count() < TOOL_SECRET_MIN_CHARS {
        return Err(err(
            "secret",
            format!("must be at least {TOOL_SECRET_MIN_CHARS} characters"),
        ));
    }
    optional_text("secret", &draft.secret, 512)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_text_limits() {
        assert!(user_text("hi").is_ok());
        assert!(user_text("   \n\t").is_err());
        assert!(user_text("").is_err());
        assert!(user_text(&"é".repeat(USER_TEXT_MAX_CHARS)).is_ok());
        assert!(user_text(&"é".repeat(USER_TEXT_MAX_CHARS + 1)).is_err());
    }

    #[test]
    fn numeric_ranges() {
        assert!(temperature("t", 0.0).is_ok());
        assert!(temperature("t", 2.0).is_ok());
        assert!(temperature("t", 2.01).is_err());
        assert!(temperature("t", -0.1).is_err());
        assert!(temperature("t", f64::NAN).is_err());
        assert!(max_output_tokens("m", 0).is_err());
        assert!(history_limit(0).is_err());
        assert!(history_limit(-3).is_err());
        assert!(page_limit(201).is_err());
    }
}
