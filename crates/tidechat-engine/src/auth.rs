//! API keys and session tokens: how a caller proves which organization (and
//! possibly which single session) it acts for.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, TimeZone, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tidechat_domain::{ApiKeyId, KeyScope, LimitsPair, OrgId, SessionId, WorkspaceId};

use crate::EngineError;

/// Every API key starts with this, so leaked keys are easy to recognise.
pub const API_KEY_PREFIX: &str = "tc_";
/// Characters of a key shown in listings (the `tc_` prefix plus 8).
const DISPLAY_PREFIX_CHARS: usize = 11;

/// Who is calling, as established from the `Authorization` header.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    pub org_id: OrgId,
    pub workspace_id: WorkspaceId,
    pub kind: PrincipalKind,
    /// What the credential may do (session tokens: `Chat`).
    pub scope: KeyScope,
    /// The key usage is billed to: the API key itself, or the key that
    /// minted the session token.
    pub billing_key: Option<ApiKeyId>,
    /// The limits of the organization and of the billed key, when they were
    /// read together with the credential (API keys); `None` = read them when
    /// needed.
    pub limits: Option<LimitsPair>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PrincipalKind {
    /// Full access to the organization.
    ApiKey(ApiKeyId),
    /// May only read and post to this one session.
    SessionToken(SessionId),
}

impl Principal {
    /// Refuses callers that are limited to a single session.
    pub fn require_api_key(&self) -> Result<&ApiKeyId, EngineError> {
        match &self.kind {
            PrincipalKind::ApiKey(id) => Ok(id),
            PrincipalKind::SessionToken(_) => Err(EngineError::Forbidden(
                "session tokens may only use their own session's messages",
            )),
        }
    }

    /// Refuses session tokens issued for another session.
    pub fn require_session(&self, session: &SessionId) -> Result<(), EngineError> {
        match &self.kind {
            PrincipalKind::ApiKey(_) => Ok(()),
            PrincipalKind::SessionToken(own) if own == session => Ok(()),
            PrincipalKind::SessionToken(_) => Err(EngineError::Forbidden(
                "this session token was issued for another session",
            )),
        }
    }

    /// True for API keys (of any scope).
    pub fn is_api_key(&self) -> bool {
        matches!(self.kind, PrincipalKind::ApiKey(_))
    }

    /// Refuses everything but admin-scoped API keys (management endpoints).
    pub fn require_admin(&self) -> Result<(), EngineError> {
        self.require_api_key()?;
        match self.scope {
            KeyScope::Admin => Ok(()),
            KeyScope::Chat => Err(EngineError::Forbidden(
                "this endpoint needs an admin-scoped API key",
            )),
        }
    }
}

/// A freshly generated API key. `secret` is shown once and never stored.
pub struct GeneratedKey {
    pub secret: String,
    pub hash: String,
    pub display_prefix: String,
}

pub fn generate_api_key() -> GeneratedKey {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret = format!("{API_KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    GeneratedKey {
        hash: hash_api_key(&secret),
        display_prefix: secret.chars().take(DISPLAY_PREFIX_CHARS).collect(),
        secret,
    }
}

/// Keys carry 256 random bits, so a plain SHA-256 is as strong as a slow hash
/// here and keeps per-request lookups cheap.
pub fn hash_api_key(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A random secret for signing session tokens when none is configured.
pub fn generate_signing_secret() -> String {
    let mut bytes = [0u8; 48];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

#[derive(Debug, Serialize, Deserialize)]
struct SessionClaims {
    /// The session id.
    sub: String,
    org: String,
    wsp: String,
    iat: i64,
    exp: i64,
    typ: String,
    /// The API key that minted the token (usage is billed to it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key: Option<String>,
}

const TOKEN_TYPE: &str = "session";

/// Signs and verifies session tokens (HS256 only; `alg: none` and every other
/// algorithm are rejected).
pub struct SessionTokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl SessionTokens {
    pub fn new(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.validate_exp = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        }
    }

    pub fn mint(
        &self,
        org: &OrgId,
        workspace: &WorkspaceId,
        session: &SessionId,
        minted_by: Option<&ApiKeyId>,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<String, EngineError> {
        let claims = SessionClaims {
            sub: session.to_string(),
            org: org.to_string(),
            wsp: workspace.to_string(),
            iat: now.timestamp(),
            exp: expires_at.timestamp(),
            typ: TOKEN_TYPE.to_owned(),
            key: minted_by.map(ApiKeyId::to_string),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| EngineError::Internal(format!("signing a session token: {e}")))
    }

    pub fn verify(&self, token: &str) -> Result<Principal, EngineError> {
        let invalid = || EngineError::Unauthenticated("invalid or expired session token");
        let data = jsonwebtoken::decode::<SessionClaims>(token, &self.decoding, &self.validation)
            .map_err(|_| invalid())?;
        let claims = data.claims;
        if claims.typ != TOKEN_TYPE || Utc.timestamp_opt(claims.exp, 0).single().is_none() {
            return Err(invalid());
        }
        Ok(Principal {
            org_id: OrgId::parse(&claims.org).map_err(|_| invalid())?,
            workspace_id: WorkspaceId::parse(&claims.wsp).map_err(|_| invalid())?,
            kind: PrincipalKind::SessionToken(
                SessionId::parse(&claims.sub).map_err(|_| invalid())?,
            ),
            scope: KeyScope::Chat,
            billing_key: match claims.key {
                Some(key) => Some(ApiKeyId::parse(&key).map_err(|_| invalid())?),
                None => None,
            },
            limits: None,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn ids() -> (OrgId, WorkspaceId, SessionId) {
        (
            OrgId::generate(),
            WorkspaceId::generate(),
            SessionId::generate(),
        )
    }

    #[test]
    fn keys_have_prefix_entropy_and_stable_hash() {
        let a = generate_api_key();
        let b = generate_api_key();
        assert!(a.secret.starts_with(API_KEY_PREFIX));
        assert!(a.secret.len() >= 3 + 43);
        assert_ne!(a.secret, b.secret);
        assert_eq!(a.hash, hash_api_key(&a.secret));
        assert!(a.secret.starts_with(&a.display_prefix));
        assert!(!a.hash.contains(&a.secret));
    }

    #[test]
    fn tokens_round_trip_and_reject_tampering() {
        let tokens = SessionTokens::new(b"secret-one");
        let (org, wsp, ses) = ids();
        let now = Utc::now();
        let token = tokens
            .mint(&org, &wsp, &ses, None, now, now + Duration::hours(1))
            .unwrap();
        let p = tokens.verify(&token).unwrap();
        assert_eq!(p.kind, PrincipalKind::SessionToken(ses.clone()));
        assert_eq!(p.org_id, org);

        let other = SessionTokens::new(b"secret-two");
        assert!(other.verify(&token).is_err(), "wrong signature");

        let expired = tokens
            .mint(&org, &wsp, &ses, None, now, now - Duration::seconds(5))
            .unwrap();
        assert!(tokens.verify(&expired).is_err(), "expired");

        // alg: none with the same claims.
        let payload = token.split('.').nth(1).unwrap();
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        assert!(
            tokens.verify(&format!("{header}.{payload}.")).is_err(),
            "alg none"
        );
    }
}
