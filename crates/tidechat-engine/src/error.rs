use tidechat_domain::{DomainError, SessionStatus, ValidationError};
use tidechat_store::StoreError;

/// Everything that can go wrong in an engine operation. Transports map these
/// to their own wire errors in one table each.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    Unauthenticated(&'static str),
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A public widget site key that is no site's.
    #[error("unknown site key")]
    UnknownSite,
    #[error("session is {} and accepts no new messages", .0.as_str())]
    SessionNotActive(SessionStatus),
    #[error("{0}")]
    Validation(ValidationError),
    #[error("unknown model `{0}`")]
    UnknownModel(String),
    #[error("unknown tool `{0}`")]
    UnknownTool(String),
    #[error("unknown persona `{0}`")]
    UnknownPersona(String),
    #[error("{0}")]
    Conflict(String),
    /// A retried request whose first attempt is still being answered.
    #[error("{0}")]
    InProgress(String),
    #[error("{message}")]
    QuotaExceeded {
        message: String,
        retry_after_secs: u64,
    },
    #[error("the model provider failed")]
    Upstream(String),
    #[error("the model provider did not answer in time")]
    UpstreamTimeout,
    #[error("the server is shutting down")]
    ShuttingDown,
    #[error("storage error")]
    Store(#[from] StoreError),
    #[error("internal error")]
    Internal(String),
}

impl From<ValidationError> for EngineError {
    fn from(value: ValidationError) -> Self {
        Self::Validation(value)
    }
}

impl From<DomainError> for EngineError {
    fn from(value: DomainError) -> Self {
        match value {
            DomainError::Validation(v) => Self::Validation(v),
            DomainError::UnknownModel(m) => Self::UnknownModel(m),
            DomainError::UnknownTool(t) => Self::UnknownTool(t),
        }
    }
}

impl EngineError {
    pub fn validation(field: &'static str, message: impl Into<String>) -> Self {
        Self::Validation(ValidationError::new(field, message))
    }
}
