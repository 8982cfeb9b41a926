//! Domain types for tidechat: prefixed ids, entities, validation rules and
//! domain errors. This crate performs no I/O and knows nothing about HTTP,
//! SQL or wire formats.

pub mod entities;
pub mod error;
pub mod ids;
pub mod validate;

pub use entities::*;
pub use error::{DomainError, ValidationError};
pub use ids::*;
