//! The FAQ chat surface's operations: a turn keyed by the client's own
//! session id, recorded only when there is one and never at the cost of the
//! reply, plus the tenant's public configuration and a user's sessions.

use chrono::Utc;
use tidechat_domain::{validate, Organization, Session, SessionStatus};
use tidechat_store::{PageRequest, SessionFilter};

use crate::auth::Principal;
use crate::plan::{History, ModelChoice};
use crate::turn::Recording;
use crate::{Engine, EngineError, Turn};

/// Longest client session id accepted.
pub const SESSION_KEY_MAX_CHARS: usize = 128;

/// A question asked on the FAQ chat surface.
#[derive(Debug, Clone, Default)]
pub struct FaqChatRequest {
    pub query: String,
    /// The client's session id; turns are recorded only when it is given.
    pub session_key: Option<String>,
    /// The host site's user id; a user record is kept only when given.
    pub user_id: Option<String>,
    /// Restricts retrieval to FAQ entries of this organization.
    pub organization_id: Option<String>,
}

impl Engine {
    /// Starts an FAQ chat turn. Errors here mean nothing can be answered
    /// (bad request, the FAQ cannot be searched); recording problems are
    /// logged and never stop the reply.
    pub async fn start_faq_chat(
        &self,
        who: &Principal,
        req: FaqChatRequest,
    ) -> Result<Turn, EngineError> {
        who.require_api_key()?;
        self.accepting()?;
        validate::required_text("query", &req.query, validate::USER_TEXT_MAX_CHARS)?;
        if let Some(key) = &req.session_key {
            validate::required_text("sessionId", key, SESSION_KEY_MAX_CHARS)?;
        }
        if let Some(user) = &req.user_id {
            validate::required_text("userId", user, validate::USER_ID_MAX_CHARS)?;
        }
        let persona = self.resolve_persona(&who.org_id, None).await?;
        let mut plan = self.plan(persona, ModelChoice::default())?;

        // The user record is written beside the answer, never in front of it.
        if let Some(user) = req.user_id.clone() {
            let (store, org) = (self.inner.store.clone(), who.org_id.clone());
            tokio::spawn(async move {
                if let Err(e) = store.touch_end_user(&org, &user, Utc::now()).await {
                    tracing::warn!(error = ?e, "could not record the end user; answering anyway");
                }
            });
        }
        if let Some(key) = &req.session_key {
            plan.session = self
                .recorded_session(who, &plan.persona, key, req.user_id.as_deref(), &req.query)
                .await;
        }
        plan.recording = Recording::BestEffort;
        plan.history = History::BestEffort(validate::HISTORY_LIMIT_DEFAULT);
        plan.retrieval_org = req.organization_id;
        plan.fallback_when_out_of_scope = true;
        let mut prepared = self.prepare(who, plan, req.query).await?;
        self.reserve_quota(who, &mut prepared).await?;
        Ok(self.launch(prepared))
    }

    /// Finds or creates the session a client names; `None` (and a log line)
    /// when it cannot be recorded.
    async fn recorded_session(
        &self,
        who: &Principal,
        persona: &tidechat_domain::Persona,
        key: &str,
        user_id: Option<&str>,
        first_question: &str,
    ) -> Option<Session> {
        let store = &self.inner.store;
        let found = match store.find_session_by_external(&who.org_id, key).await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(error = ?e, "could not look up the session; answering without recording");
                return None;
            }
        };
        if let Some(session) = found {
            if session.status == SessionStatus::Active {
                return Some(session);
            }
            tracing::info!(session = %session.id, "the session is no longer active; this turn is not recorded");
            return None;
        }
        let session = Session {
            user_id: user_id.map(str::to_owned),
            title: Some(title_from(first_question)),
            external_id: Some(key.to_owned()),
            ..Session::new(
                who.org_id.clone(),
                persona.workspace_id.clone(),
                persona.id.clone(),
                Utc::now(),
            )
        };
        match store.insert_session(&session).await {
            Ok(()) => Some(session),
            // Two first messages of one session raced: use the winner's.
            Err(_) => store
                .find_session_by_external(&who.org_id, key)
                .await
                .ok()
                .flatten()
                .or_else(|| {
                    tracing::warn!("could not create the session; answering without recording");
                    None
                }),
        }
    }

    /// The tenant's public display configuration.
    pub async fn tenant(&self, who: &Principal) -> Result<Organization, EngineError> {
        self.inner
            .store
            .get_org(&who.org_id)
            .await?
            .ok_or(EngineError::NotFound("organization"))
    }

    /// A user's sessions (chats) in the tenant, newest first (at most 200):
    /// the FAQ chat history and the chats REST list.
    pub async fn user_sessions(
        &self,
        who: &Principal,
        user_id: &str,
    ) -> Result<Vec<Session>, EngineError> {
        who.require_api_key()?;
        validate::required_text("userId", user_id, validate::USER_ID_MAX_CHARS)?;
        let filter = SessionFilter {
            user_id: Some(user_id.to_owned()),
            status: None,
        };
        let page = PageRequest {
            limit: validate::PAGE_LIMIT_MAX,
            after_id: None,
        };
        Ok(self
            .inner
            .store
            .list_sessions(&who.org_id, &filter, &page)
            .await?)
    }
}

/// Sessions created by the FAQ surface are titled by their first question.
fn title_from(question: &str) -> String {
    const TITLE_CHARS: usize = 80;
    let question = question.trim();
    let mut title: String = question.chars().take(TITLE_CHARS).collect();
    if question.chars().count() > TITLE_CHARS {
        title.push('…');
    }
    title
}
