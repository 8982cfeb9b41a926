//! Prefixed, time-sortable identifiers (`chs_01j…`): a type prefix and a
//! lower-case ULID, so ids sort by creation time and say what they name.

use std::fmt;
use std::str::FromStr;

use ulid::Ulid;

/// The text is not an id of the expected kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not a valid {kind} id")]
pub struct InvalidId {
    pub kind: &'static str,
    pub value: String,
}

macro_rules! prefixed_id {
    ($(#[$meta:meta])* $name:ident, $prefix:literal) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A new id for the current instant.
            pub fn generate() -> Self {
                Self(format!("{}_{}", $prefix, Ulid::new().to_string().to_ascii_lowercase()))
            }

            /// Parses and validates an id coming from outside.
            pub fn parse(value: &str) -> Result<Self, InvalidId> {
                let invalid = || InvalidId { kind: $prefix, value: value.chars().take(64).collect() };
                let rest = value
                    .strip_prefix($prefix)
                    .and_then(|r| r.strip_prefix('_'))
                    .ok_or_else(invalid)?;
                if rest.len() != 26 {
                    return Err(invalid());
                }
                Ulid::from_string(rest).map_err(|_| invalid())?;
                Ok(Self(value.to_ascii_lowercase()))
            }

            /// Wraps an id read back from our own storage.
            pub fn from_trusted(value: String) -> Self {
                Self(value)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

prefixed_id!(/// A tenant.
    OrgId, "org");
prefixed_id!(/// A workspace inside a tenant.
    WorkspaceId, "wsp");
prefixed_id!(/// An assistant persona.
    PersonaId, "per");
prefixed_id!(/// A chat session.
    SessionId, "chs");
prefixed_id!(/// A message inside a session.
    MessageId, "msg");
prefixed_id!(/// An API key (the id, never the secret).
    ApiKeyId, "key");
prefixed_id!(/// An FAQ entry.
    FaqId, "faq");
prefixed_id!(/// An end user of a tenant.
    EndUserId, "usr");
prefixed_id!(/// An organization's HTTP tool.
    ToolId, "tol");
prefixed_id!(/// A website that embeds the widget.
    SiteId, "sit");
prefixed_id!(/// A proactive (nudge) message of a site.
    ProactiveId, "pro");
prefixed_id!(/// A knowledge document (Markdown, HTML, text or PDF) split into chunks.
    DocumentId, "doc");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_round_trip_and_sort_by_time() {
        let a = SessionId::generate();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = SessionId::generate();
        assert!(a < b);
        assert_eq!(SessionId::parse(a.as_str()), Ok(a.clone()));
        assert!(a.as_str().starts_with("chs_"));
    }

    #[test]
    fn parse_rejects_other_kinds_and_garbage() {
        let m = MessageId::generate();
        assert!(SessionId::parse(m.as_str()).is_err());
        assert!(SessionId::parse("chs_").is_err());
        assert!(SessionId::parse("chs_not-a-ulid-at-all-xxxxxxxx").is_err());
        assert!(SessionId::parse("").is_err());
    }
}
