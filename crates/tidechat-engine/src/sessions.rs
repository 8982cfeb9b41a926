//! Authentication, sessions and message history.

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use serde_json::{Map, Value};
use tidechat_domain::{validate, Message, Persona, Session, SessionId, SessionStatus};
use tidechat_store::{MessagePage, PageRequest, SessionFilter, SortOrder};

use crate::auth::{hash_api_key, Principal, PrincipalKind, API_KEY_PREFIX};
use crate::page::{Cursor, Page};
use crate::{Engine, EngineError};

/// `POST /v1/chat/sessions` input.
#[derive(Debug, Clone, Default)]
pub struct NewSession {
    pub persona_id: Option<String>,
    pub user_id: Option<String>,
    pub title: Option<String>,
    pub metadata: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, Default)]
pub struct SessionQuery {
    pub user_id: Option<String>,
    pub status: Option<String>,
    pub page: Cursor,
}

#[derive(Debug, Clone, Default)]
pub struct MessageQuery {
    /// `asc` (default) or `desc`.
    pub order: Option<String>,
    pub page: Cursor,
}

/// A minted session token.
#[derive(Debug, Clone)]
pub struct SessionToken {
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

/// Parses a session id the caller may use: an unparsable id is 404 like an
/// unknown one; a session token may only name its own session.
fn own_session_id(who: &Principal, id: &str) -> Result<SessionId, EngineError> {
    let id = SessionId::parse(id).map_err(|_| EngineError::NotFound("session"))?;
    who.require_session(&id)?;
    Ok(id)
}

impl Engine {
    /// Resolves the bearer credential: an API key (`tc_…`) or a session token.
    pub async fn authenticate(&self, credential: &str) -> Result<Principal, EngineError> {
        let credential = credential.trim();
        if credential.is_empty() {
            return Err(EngineError::Unauthenticated("missing credentials"));
        }
        if !credential.starts_with(API_KEY_PREFIX) {
            let principal = self.inner.tokens.verify(credential)?;
            // Revoking a key also ends the session tokens it minted.
            if let Some(key) = &principal.billing_key {
                let minted_by = self.inner.store.get_api_key(&principal.org_id, key).await?;
                if minted_by.is_none_or(|k| k.revoked_at.is_some()) {
                    return Err(EngineError::Unauthenticated(
                        "the key that minted this token was revoked",
                    ));
                }
            }
            return Ok(principal);
        }
        let (key, limits) = self
            .inner
            .store
            .find_api_key_with_limits(&hash_api_key(credential))
            .await?
            .ok_or(EngineError::Unauthenticated("invalid API key"))?;
        if key.revoked_at.is_some() {
            return Err(EngineError::Unauthenticated(
                "this API key has been revoked",
            ));
        }
        Ok(Principal {
            org_id: key.org_id,
            workspace_id: key.workspace_id,
            scope: key.scope,
            billing_key: Some(key.id.clone()),
            kind: PrincipalKind::ApiKey(key.id),
            limits: Some(limits),
        })
    }

    pub async fn create_session(
        &self,
        who: &Principal,
        input: NewSession,
    ) -> Result<Session, EngineError> {
        who.require_api_key()?;
        if let Some(user_id) = &input.user_id {
            validate::required_text("userId", user_id, validate::USER_ID_MAX_CHARS)?;
        }
        if let Some(title) = &input.title {
            validate::optional_text("title", title, validate::TITLE_MAX_CHARS)?;
        }
        let metadata = input.metadata.unwrap_or_default();
        validate::metadata(&metadata)?;
        let persona = self
            .resolve_persona(&who.org_id, input.persona_id.as_deref())
            .await?;
        let session = Session {
            user_id: input.user_id,
            title: input.title,
            metadata,
            ..Session::new(
                who.org_id.clone(),
                persona.workspace_id.clone(),
                persona.id,
                Utc::now(),
            )
        };
        self.inner.store.insert_session(&session).await?;
        Ok(session)
    }

    /// Reads a session the caller may see; others' sessions are not found.
    pub async fn get_session(&self, who: &Principal, id: &str) -> Result<Session, EngineError> {
        let id = own_session_id(who, id)?;
        self.inner
            .store
            .get_session(&who.org_id, &id)
            .await?
            .ok_or(EngineError::NotFound("session"))
    }

    /// [`Self::get_session`] with the session's persona (one statement).
    pub(crate) async fn get_session_with_persona(
        &self,
        who: &Principal,
        id: &str,
    ) -> Result<(Session, Persona), EngineError> {
        let id = own_session_id(who, id)?;
        let (session, persona) = self
            .inner
            .store
            .get_session_with_persona(&who.org_id, &id)
            .await?
            .ok_or(EngineError::NotFound("session"))?;
        let persona = persona.ok_or_else(|| {
            EngineError::Internal(format!("session {} has no persona", session.id))
        })?;
        Ok((session, persona))
    }

    pub async fn list_sessions(
        &self,
        who: &Principal,
        query: &SessionQuery,
    ) -> Result<Page<Session>, EngineError> {
        who.require_api_key()?;
        let status = match query.status.as_deref() {
            None | Some("") => None,
            Some(s) => Some(SessionStatus::parse(s).ok_or_else(|| {
                EngineError::validation("status", "must be one of active, ended, archived")
            })?),
        };
        if let Some(user_id) = &query.user_id {
            validate::optional_text("userId", user_id, validate::USER_ID_MAX_CHARS)?;
        }
        let limit = query.page.limit()?;
        let page = PageRequest {
            limit: limit + 1,
            after_id: query.page.after_id(SessionId::parse)?,
        };
        let filter = SessionFilter {
            user_id: query.user_id.clone().filter(|u| !u.is_empty()),
            status,
        };
        let rows = self
            .inner
            .store
            .list_sessions(&who.org_id, &filter, &page)
            .await?;
        Ok(Page::from_rows(rows, limit, |s| s.id.to_string()))
    }

    pub async fn end_session(&self, who: &Principal, id: &str) -> Result<Session, EngineError> {
        self.set_status(who, id, SessionStatus::Ended).await
    }

    pub async fn archive_session(&self, who: &Principal, id: &str) -> Result<Session, EngineError> {
        self.set_status(who, id, SessionStatus::Archived).await
    }

    async fn set_status(
        &self,
        who: &Principal,
        id: &str,
        status: SessionStatus,
    ) -> Result<Session, EngineError> {
        who.require_api_key()?;
        let id = SessionId::parse(id).map_err(|_| EngineError::NotFound("session"))?;
        let store = &self.inner.store;
        let current = store
            .get_session(&who.org_id, &id)
            .await?
            .ok_or(EngineError::NotFound("session"))?;
        // Ending an archived session would un-archive it; refuse instead.
        if status == SessionStatus::Ended && current.status == SessionStatus::Archived {
            return Err(EngineError::SessionNotActive(current.status));
        }
        store
            .set_session_status(&who.org_id, &id, status, Utc::now())
            .await?
            .ok_or(EngineError::NotFound("session"))
    }

    pub async fn list_messages(
        &self,
        who: &Principal,
        session: &str,
        query: &MessageQuery,
    ) -> Result<Page<Message>, EngineError> {
        let id = own_session_id(who, session)?;
        let order = match query.order.as_deref() {
            None | Some("") | Some("asc") => SortOrder::Asc,
            Some("desc") => SortOrder::Desc,
            Some(_) => return Err(EngineError::validation("order", "must be asc or desc")),
        };
        let limit = query.page.limit()?;
        let after_seq = match query.page.cursor.as_deref().filter(|c| !c.is_empty()) {
            None => None,
            Some(c) => Some(c.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                EngineError::validation("cursor", "is not a cursor from this listing")
            })?),
        };
        let page = MessagePage {
            limit: limit + 1,
            order,
            after_seq,
        };
        // The page query is scoped to the caller's organization, so a page
        // with messages proves the session is theirs; only an empty page
        // needs the session looked up (to tell "no messages" from 404).
        let store = &self.inner.store;
        let rows = store.list_messages(&who.org_id, &id, &page).await?;
        if rows.is_empty() && store.get_session(&who.org_id, &id).await?.is_none() {
            return Err(EngineError::NotFound("session"));
        }
        Ok(Page::from_rows(rows, limit, |m| m.seq.to_string()))
    }

    /// Mints a token that may read and post to this one session only.
    pub async fn mint_session_token(
        &self,
        who: &Principal,
        session: &str,
        ttl_seconds: Option<i64>,
    ) -> Result<SessionToken, EngineError> {
        who.require_api_key()?;
        let session = self.get_session(who, session).await?;
        let max =
            i64::try_from(self.inner.config.session_token_ttl_max.as_secs()).unwrap_or(86_400);
        let ttl = match ttl_seconds {
            None => i64::try_from(self.inner.config.session_token_ttl_default.as_secs())
                .unwrap_or(3600)
                .min(max),
            Some(t) if (1..=max).contains(&t) => t,
            Some(_) => {
                return Err(EngineError::validation(
                    "ttlSeconds",
                    format!("must be between 1 and {max}"),
                ))
            }
        };
        let now = Utc::now();
        let expires_at = now + ChronoDuration::seconds(ttl);
        let token = self.inner.tokens.mint(
            &session.org_id,
            &session.workspace_id,
            &session.id,
            who.billing_key.as_ref(),
            now,
            expires_at,
        )?;
        Ok(SessionToken { token, expires_at })
    }

    /// A message's moderation record: its findings and, when moderation
    /// replaced it, the original text. API keys only.
    pub async fn message_moderation(
        &self,
        who: &Principal,
        session: &str,
        message: &str,
    ) -> Result<(Message, Vec<tidechat_domain::ModerationRecord>), EngineError> {
        who.require_api_key()?;
        let session = self.get_session(who, session).await?;
        let id = tidechat_domain::MessageId::parse(message)
            .map_err(|_| EngineError::NotFound("message"))?;
        match self
            .inner
            .store
            .moderation_records(&who.org_id, &id)
            .await?
        {
            Some((m, records)) if m.session_id == session.id => Ok((m, records)),
            _ => Err(EngineError::NotFound("message")),
        }
    }
}
