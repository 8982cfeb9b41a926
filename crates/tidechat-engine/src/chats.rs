//! The chats REST + WebSocket surface's operations. A chat is a session, so a
//! conversation started here is readable through `/v1` and the other way
//! round.

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use serde_json::{Map, Value};
use tidechat_domain::{validate, Message, MessageId, Session, SessionId, SessionStatus};
use tidechat_store::SortOrder;

use crate::auth::{generate_signing_secret, hash_api_key, Principal, PrincipalKind};
use crate::sessions::NewSession;
use crate::{Engine, EngineError};

/// How long a WebSocket ticket can be used.
pub const WS_TICKET_TTL_SECS: i64 = 60;
/// Messages replayed to a reconnecting client at most.
pub const REPLAY_MAX: i64 = 500;

/// One page of a chat's messages, with the total count.
#[derive(Debug, Clone)]
pub struct ChatMessages {
    pub messages: Vec<Message>,
    pub total: i64,
    pub offset: i64,
    pub limit: i64,
    pub has_more: bool,
}

/// A chat opened by a WebSocket connection.
#[derive(Debug, Clone)]
pub struct OpenedChat {
    pub session: Session,
    /// The user id was new to the tenant.
    pub user_created: bool,
    /// The chat was created for this connection (no `chat_id` given).
    pub chat_created: bool,
}

impl Engine {
    /// Creates a chat for `user_id` with the workspace's default persona.
    /// Returns it and whether the user was new to the tenant.
    pub async fn create_chat(
        &self,
        who: &Principal,
        user_id: &str,
        title: Option<String>,
        metadata: Option<Map<String, Value>>,
    ) -> Result<(Session, bool), EngineError> {
        validate::required_text("user_id", user_id, validate::USER_ID_MAX_CHARS)?;
        let session = self
            .create_session(
                who,
                NewSession {
                    persona_id: None,
                    user_id: Some(user_id.to_owned()),
                    title,
                    metadata,
                },
            )
            .await?;
        let user_created = self.touch_user(who, user_id).await;
        Ok((session, user_created))
    }

    /// Records the end user; true when they were new. A failure is logged:
    /// it must not stop the conversation.
    async fn touch_user(&self, who: &Principal, user_id: &str) -> bool {
        match self
            .inner
            .store
            .touch_end_user(&who.org_id, user_id, Utc::now())
            .await
        {
            Ok((_, created)) => created,
            Err(e) => {
                tracing::warn!(error = ?e, "could not record the end user");
                false
            }
        }
    }

    /// Deletes a chat and its messages; later reads are 404.
    pub async fn delete_chat(&self, who: &Principal, id: &str) -> Result<(), EngineError> {
        who.require_api_key()?;
        let id = SessionId::parse(id).map_err(|_| EngineError::NotFound("chat"))?;
        if self.inner.store.delete_session(&who.org_id, &id).await? {
            Ok(())
        } else {
            Err(EngineError::NotFound("chat"))
        }
    }

    /// Offset pagination over a chat's messages.
    pub async fn chat_messages(
        &self,
        who: &Principal,
        id: &str,
        offset: i64,
        limit: i64,
        order: SortOrder,
    ) -> Result<ChatMessages, EngineError> {
        if offset < 0 {
            return Err(EngineError::validation("offset", "must be 0 or more"));
        }
        validate::page_limit(limit)?;
        let session = self.get_session(who, id).await?;
        let (messages, total) = self
            .inner
            .store
            .messages_page(&session.id, offset, limit, order)
            .await?;
        let has_more =
            offset.saturating_add(i64::try_from(messages.len()).unwrap_or(i64::MAX)) < total;
        Ok(ChatMessages {
            messages,
            total,
            offset,
            limit,
            has_more,
        })
    }

    /// Opens the chat a WebSocket names, or creates one when none is named.
    /// A chat of another user or tenant is not found.
    pub async fn open_chat(
        &self,
        who: &Principal,
        user_id: &str,
        chat_id: Option<&str>,
    ) -> Result<OpenedChat, EngineError> {
        validate::required_text("user_id", user_id, validate::USER_ID_MAX_CHARS)?;
        let user_created = self.touch_user(who, user_id).await;
        let (session, chat_created) = match chat_id.filter(|c| !c.is_empty()) {
            Some(id) => {
                let session = self.get_session(who, id).await.map_err(|e| match e {
                    EngineError::Forbidden(_) => EngineError::NotFound("chat"),
                    other => other,
                })?;
                if session.user_id.as_deref() != Some(user_id) {
                    return Err(EngineError::NotFound("chat"));
                }
                if session.status != SessionStatus::Active {
                    return Err(EngineError::SessionNotActive(session.status));
                }
                (session, false)
            }
            None => {
                let session = self
                    .create_session(
                        who,
                        NewSession {
                            persona_id: None,
                            user_id: Some(user_id.to_owned()),
                            title: None,
                            metadata: None,
                        },
                    )
                    .await?;
                (session, true)
            }
        };
        Ok(OpenedChat {
            session,
            user_created,
            chat_created,
        })
    }

    /// The messages stored after `last_message_id` (for a reconnecting client).
    pub async fn missed_messages(
        &self,
        session: &Session,
        last_message_id: &str,
    ) -> Result<Vec<Message>, EngineError> {
        let id = MessageId::parse(last_message_id).map_err(|_| {
            EngineError::validation("last_message_id", "is not a message id of this chat")
        })?;
        self.inner
            .store
            .messages_after(&session.id, &id, REPLAY_MAX)
            .await?
            .ok_or_else(|| {
                EngineError::validation("last_message_id", "is not a message id of this chat")
            })
    }

    /// A single-use ticket that opens one WebSocket for this API key's
    /// tenant within a minute, so the key never has to be in a URL.
    pub async fn create_ws_ticket(
        &self,
        who: &Principal,
    ) -> Result<(String, DateTime<Utc>), EngineError> {
        let PrincipalKind::ApiKey(key) = &who.kind else {
            return Err(EngineError::Forbidden(
                "only API keys can create WebSocket tickets",
            ));
        };
        let ticket = format!("wst_{}", generate_signing_secret());
        let expires_at = Utc::now() + ChronoDuration::seconds(WS_TICKET_TTL_SECS);
        self.inner
            .store
            .create_ws_ticket(&hash_api_key(&ticket), &who.org_id, key, expires_at)
            .await?;
        Ok((ticket, expires_at))
    }

    /// Redeems a ticket: the principal of the key that created it.
    pub async fn authenticate_ticket(&self, ticket: &str) -> Result<Principal, EngineError> {
        let invalid = || EngineError::Unauthenticated("invalid, used or expired ticket");
        let (org, key) = self
            .inner
            .store
            .redeem_ws_ticket(&hash_api_key(ticket.trim()), Utc::now())
            .await?
            .ok_or_else(invalid)?;
        let key = self
            .inner
            .store
            .get_api_key(&org, &key)
            .await?
            .ok_or_else(invalid)?;
        if key.revoked_at.is_some() {
            return Err(invalid());
        }
        Ok(Principal {
            org_id: key.org_id,
            workspace_id: key.workspace_id,
            scope: key.scope,
            billing_key: Some(key.id.clone()),
            kind: PrincipalKind::ApiKey(key.id),
            limits: None,
        })
    }
}

/// Parses `order=asc|desc` (default `asc`).
pub fn sort_order(value: Option<&str>) -> Result<SortOrder, EngineError> {
    match value {
        None | Some("") | Some("asc") => Ok(SortOrder::Asc),
        Some("desc") => Ok(SortOrder::Desc),
        Some(_) => Err(EngineError::validation("order", "must be asc or desc")),
    }
}
