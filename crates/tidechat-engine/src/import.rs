//! FAQ import files, shared by `tidechat faq import` and `POST /v1/faqs/import`.
//!
//! - JSON: an array of `{question, answer, organizationId?, tags?}` objects,
//!   or an object with that array under `entries` or `items`.
//! - CSV: a header row naming `question` and `answer` columns, optionally
//!   `organizationId` (or `organization_id`) and `tags` (separated by `;` or `|`).

use serde::Deserialize;
use tidechat_domain::FaqDraft;

use crate::EngineError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportFormat {
    Json,
    Csv,
}

impl ImportFormat {
    /// Guesses from a file name, falling back to sniffing the content.
    pub fn detect(file_name: Option<&str>, content: &[u8]) -> Self {
        if let Some(name) = file_name {
            let lower = name.to_ascii_lowercase();
            if lower.ends_with(".csv") {
                return Self::Csv;
            }
            if lower.ends_with(".json") {
                return Self::Json;
            }
        }
        match content.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'[') | Some(b'{') => Self::Json,
            _ => Self::Csv,
        }
    }

    pub fn parse(self, content: &[u8]) -> Result<Vec<FaqDraft>, EngineError> {
        match self {
            Self::Json => parse_faq_json(content),
            Self::Csv => parse_faq_csv(content),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonEntry {
    question: String,
    answer: String,
    #[serde(default, alias = "organization_id")]
    organization_id: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum JsonFile {
    List(Vec<JsonEntry>),
    Wrapped {
        #[serde(alias = "items")]
        entries: Vec<JsonEntry>,
    },
}

pub fn parse_faq_json(content: &[u8]) -> Result<Vec<FaqDraft>, EngineError> {
    // Parse as a value first so a bad entry gets a precise message.
    let value: serde_json::Value = serde_json::from_slice(content)
        .map_err(|e| EngineError::validation("body", format!("is not valid JSON: {e}")))?;
    let file: JsonFile = serde_json::from_value(value).map_err(|e| {
        EngineError::validation(
            "entries",
            format!(
                "expected an array of {{question, answer, organizationId?, tags?}} objects ({e})"
            ),
        )
    })?;
    let entries = match file {
        JsonFile::List(entries) | JsonFile::Wrapped { entries } => entries,
    };
    Ok(entries
        .into_iter()
        .map(|e| FaqDraft {
            question: e.question,
            answer: e.answer,
            organization_id: e.organization_id,
            tags: e.tags,
        })
        .collect())
}

pub fn parse_faq_csv(content: &[u8]) -> Result<Vec<FaqDraft>, EngineError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::Headers)
        .flexible(false)
        .from_reader(content);
    let headers = reader
        .headers()
        .map_err(|e| EngineError::validation("csv", format!("unreadable header row: {e}")))?
        .clone();
    let column = |names: &[&str]| {
        headers
            .iter()
            .position(|h| names.iter().any(|n| h.eq_ignore_ascii_case(n)))
    };
    let question = column(&["question"]).ok_or_else(|| {
        EngineError::validation("csv", "the header row must name a `question` column")
    })?;
    let answer = column(&["answer"]).ok_or_else(|| {
        EngineError::validation("csv", "the header row must name an `answer` column")
    })?;
    let organization = column(&["organizationId", "organization_id"]);
    let tags = column(&["tags"]);

    let mut drafts = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let line = i + 2;
        let record =
            record.map_err(|e| EngineError::validation("csv", format!("line {line}: {e}")))?;
        let field = |idx: usize| record.get(idx).unwrap_or_default().to_owned();
        let organization_id = organization.map(field).filter(|s| !s.trim().is_empty());
        let tags = tags
            .map(field)
            .map(|t| {
                t.split([';', '|'])
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        drafts.push(FaqDraft {
            question: field(question),
            answer: field(answer),
            organization_id,
            tags,
        });
    }
    Ok(drafts)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn json_list_and_wrapped() {
        let a = parse_faq_json(br#"[{"question":"q","answer":"a","tags":["x"]}]"#).unwrap();
        assert_eq!(a[0].tags, vec!["x"]);
        let b =
            parse_faq_json(br#"{"entries":[{"question":"q","answer":"a","organizationId":"eu"}]}"#)
                .unwrap();
        assert_eq!(b[0].organization_id.as_deref(), Some("eu"));
        assert!(parse_faq_json(br#"[{"question":1}]"#).is_err());
        assert!(parse_faq_json(b"not json").is_err());
    }

    #[test]
    fn csv_with_quotes_unicode_and_tags() {
        let csv = "question,answer,tags\n\"Wie setze ich mein Passwort zurück?\",\"Über die Seite, \"\"Konto\"\"\",de;account\n비밀번호?,설정 메뉴 🔑,\n";
        let drafts = parse_faq_csv(csv.as_bytes()).unwrap();
        assert_eq!(drafts.len(), 2);
        assert_eq!(drafts[0].answer, "Über die Seite, \"Konto\"");
        assert_eq!(drafts[0].tags, vec!["de", "account"]);
        assert_eq!(drafts[1].answer, "설정 메뉴 🔑");
        assert!(parse_faq_csv(b"foo,bar\n1,2\n").is_err());
        assert!(parse_faq_csv(b"question,answer\n1,2,3\n").is_err());
    }

    #[test]
    fn detect_format() {
        assert_eq!(
            ImportFormat::detect(Some("x.CSV"), b"[]"),
            ImportFormat::Csv
        );
        assert_eq!(ImportFormat::detect(None, b"  [{}]"), ImportFormat::Json);
        assert_eq!(
            ImportFormat::detect(None, b"question,answer"),
            ImportFormat::Csv
        );
    }
}
