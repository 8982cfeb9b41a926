//! Store errors. Messages never carry connection URLs, passwords or row data.

use diesel::result::{DatabaseErrorKind, Error as DieselError};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Bad configuration (e.g. an unsupported database URL scheme).
    #[error("store configuration error: {0}")]
    Config(String),
    /// The addressed row does not exist (or belongs to another tenant).
    #[error("not found")]
    NotFound,
    /// A unique or foreign-key constraint (or a store-level ownership rule)
    /// rejected the write.
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("database error")]
    Database(#[source] DieselError),
    /// Could not obtain a pooled connection.
    #[error("connection pool error: {0}")]
    Pool(String),
    #[error("migration failed: {0}")]
    Migration(String),
    /// A stored row cannot be converted to a domain entity.
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

impl From<DieselError> for StoreError {
    fn from(err: DieselError) -> Self {
        match err {
            DieselError::NotFound => StoreError::NotFound,
            DieselError::DatabaseError(kind, info) => match kind {
                DatabaseErrorKind::UniqueViolation => {
                    StoreError::Conflict(constraint_message("unique constraint violated", &*info))
                }
                DatabaseErrorKind::ForeignKeyViolation => StoreError::Conflict(constraint_message(
                    "foreign key constraint violated",
                    &*info,
                )),
                _ => StoreError::Database(DieselError::DatabaseError(kind, info)),
            },
            other => StoreError::Database(other),
        }
    }
}

/// Names the violated constraint (PostgreSQL) or table/column (SQLite's
/// message), but never the offending values (PostgreSQL puts those in
/// `details`, which we drop).
fn constraint_message(
    what: &str,
    info: &(dyn diesel::result::DatabaseErrorInformation + Send + Sync),
) -> String {
    match (info.constraint_name(), info.table_name()) {
        (Some(c), _) => format!("{what}: {c}"),
        (None, Some(t)) => format!("{what} on {t}"),
        (None, None) => format!("{what}: {}", info.message()),
    }
}

impl From<diesel_async::pooled_connection::deadpool::PoolError> for StoreError {
    fn from(err: diesel_async::pooled_connection::deadpool::PoolError) -> Self {
        StoreError::Pool(err.to_string())
    }
}

pub(crate) fn corrupt(table: &str, id: &str, what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{table} row {id}: {what}"))
}

impl StoreError {
    /// Whether the database could not be reached or dropped the connection
    /// (as opposed to rejecting the query): the caller should retry later.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Pool(_) => true,
            StoreError::Database(DieselError::DatabaseError(kind, info)) => {
                matches!(
                    kind,
                    DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand
                ) || {
                    // SQLite reports these as `Unknown` with its own wording.
                    let message = info.message();
                    [
                        "database is locked",
                        "unable to open database",
                        "disk I/O error",
                        "terminating connection",
                    ]
                    .iter()
                    .any(|m| message.contains(m))
                }
            }
            StoreError::Database(DieselError::BrokenTransactionManager) => true,
            _ => false,
        }
    }
}
