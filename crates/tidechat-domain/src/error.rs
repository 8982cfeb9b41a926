use std::fmt;

/// One rejected field of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    pub field: &'static str,
    pub message: String,
}

impl ValidationError {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Errors of the domain rules, independent of any transport.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DomainError {
    #[error("{0}")]
    Validation(ValidationError),
    #[error("unknown model `{0}`")]
    UnknownModel(String),
    #[error("unknown tool `{0}`")]
    UnknownTool(String),
}

impl From<ValidationError> for DomainError {
    fn from(value: ValidationError) -> Self {
        Self::Validation(value)
    }
}
