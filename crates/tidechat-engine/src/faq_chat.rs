//! The FAQ chat surface's operations: a turn keyed by the client's own
//! session id, recorded only when there is one and never at the cost of the
//! reply, plus the tenant's public configuration and a user's sessions.

use chrono::Utc;
use tidechat_domain::{validate, Organization, Session, SessionId, SessionStatus};
use tidechat_store::{PageRequest, SessionFilter};

use crate::auth::Principal;
use crate::knowledge::Billing;
use crate::turn::{policy, Context, Prepared, Recording, RETRIEVAL_TOP_K};
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
        validate::user_text(&req.query)?;
        if let Some(key) = &req.session_key {
            validate::required_text("sessionId", key, SESSION_KEY_MAX_CHARS)?;
        }
        if let Some(user) = &req.user_id {
            validate::required_text("userId", user, validate::USER_ID_MAX_CHARS)?;
        }
        self.check_quota(who).await?;
        let store = &self.inner.store;
        let workspace = store
            .default_workspace(&who.org_id)
            .await?
            .ok_or(EngineError::NotFound("workspace"))?;
        let persona_id = workspace.default_persona_id.ok_or_else(|| {
            EngineError::Internal("the workspace has no default persona".to_owned())
        })?;
        let persona = store
            .get_persona(&who.org_id, &persona_id)
            .await?
            .ok_or_else(|| EngineError::Internal("the default persona is missing".to_owned()))?;
        let model = self.model(&persona.model_id)?;

        // The user record is written beside the answer, never in front of it.
        if let Some(user) = req.user_id.clone() {
            let (store, org) = (store.clone(), who.org_id.clone());
            tokio::spawn(async move {
                if let Err(e) = store.touch_end_user(&org, &user, Utc::now()).await {
                    tracing::warn!(error = ?e, "could not record the end user; answering anyway");
                }
            });
        }
        let session = match &req.session_key {
            Some(key) => {
                self.recorded_session(who, &persona, key, req.user_id.as_deref(), &req.query)
                    .await
            }
            None => None,
        };
        let history = match &session {
            Some(s) => store
                .recent_messages(&s.id, validate::HISTORY_LIMIT_DEFAULT)
                .await
                .unwrap_or_else(|e| {
                    tracing::warn!(error = ?e, "could not read the history; answering without it");
                    Vec::new()
                }),
            None => Vec::new(),
        };

        let policy = policy(&persona, &[]);
        let input = self.check_input(&req.query, &policy).await;
        // The query is what the model sees (PII redacted): it may go to a
        // remote embedding endpoint.
        let (knowledge, retrieval, _) = self
            .retrieve(
                &Billing::of(who),
                &workspace.id,
                &input.text,
                RETRIEVAL_TOP_K,
                req.organization_id.as_deref(),
                persona.faq_threshold,
            )
            .await?;
        let drift = self.inner.faqs.drift_model(&persona, &knowledge);
        let request = Context {
            persona: &persona,
            model: &model,
            policy: &policy,
            memory_digest: None,
            history,
            user_text: &input.text,
            retrieval: &retrieval,
            temperature: persona.temperature,
            max_output_tokens: i64::from(persona.max_output_tokens)
                .min(i64::from(model.max_output_tokens)),
        }
        .request();
        let answer_with_fallback = retrieval.out_of_scope;
        Ok(self.launch(Prepared {
            session,
            recording: Recording::BestEffort,
            persona,
            model,
            request,
            retrieval,
            user_text: req.query,
            policy,
            input,
            answer_with_fallback,
            billing_key: who.billing_key.clone(),
            tools: Default::default(),
            drift,
            client_message_id: None,
        }))
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
        let now = Utc::now();
        let session = Session {
            id: SessionId::generate(),
            org_id: who.org_id.clone(),
            workspace_id: persona.workspace_id.clone(),
            persona_id: persona.id.clone(),
            user_id: user_id.map(str::to_owned),
            title: Some(title_from(first_question)),
            status: SessionStatus::Active,
            message_count: 0,
            input_tokens: 0,
            output_tokens: 0,
            cost_usd_micros: 0,
            metadata: serde_json::Map::new(),
            drift_score: None,
            external_id: Some(key.to_owned()),
            started_at: now,
            last_active_at: now,
            ended_at: None,
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
