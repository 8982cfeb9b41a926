//! Turn preparation: the one path from "a surface accepted a message" to a
//! [`Prepared`] turn, used by `/v1`, the FAQ chat, the chats WebSocket and
//! the widget.
//!
//! A surface decides only what is its own: which session (if any) records
//! the turn and how strictly, which persona answers (through
//! [`Engine::resolve_persona`], the one persona resolution), and the
//! caller's options. [`Engine::plan`] then fixes the model and its limits
//! (the errors a client can cause, before anything is written), and
//! [`Engine::prepare`] does the rest the same way for every surface: the
//! guardrail policy, input moderation, history, retrieval, the model request
//! and the drift model.

use tidechat_domain::{OrgId, Persona, PersonaId, Session};
use tidechat_llm::ModelEntry;

use crate::auth::Principal;
use crate::knowledge::Billing;
use crate::tools::ToolSet;
use crate::turn::{policy, Context, Prepared, Recording, RETRIEVAL_TOP_K};
use crate::{Engine, EngineError};

/// Which earlier messages the model sees.
#[derive(Debug, Clone, Copy)]
pub(crate) enum History {
    /// None (a turn with no session).
    None,
    /// Up to this many; a read failure fails the turn.
    Required(i64),
    /// Up to this many; a read failure is logged and the turn goes on
    /// without history.
    BestEffort(i64),
}

/// The caller's say over the model (all optional; the persona decides the rest).
#[derive(Debug, Clone, Default)]
pub(crate) struct ModelChoice<'a> {
    pub(crate) model_id: Option<&'a str>,
    pub(crate) temperature: Option<f64>,
    pub(crate) max_output_tokens: Option<i64>,
}

/// A turn being planned: built by [`Engine::plan`], adjusted by the surface,
/// turned into a [`Prepared`] turn by [`Engine::prepare`].
pub(crate) struct TurnPlan {
    pub(crate) persona: Persona,
    pub(crate) model: ModelEntry,
    pub(crate) temperature: f64,
    pub(crate) max_output_tokens: i64,
    /// Where the turn is recorded; `None` keeps no record.
    pub(crate) session: Option<Session>,
    pub(crate) recording: Recording,
    pub(crate) history: History,
    pub(crate) memory_digest: Option<String>,
    pub(crate) extra_guardrails: Vec<String>,
    pub(crate) tools: ToolSet,
    /// Restricts retrieval to FAQ entries of this organization.
    pub(crate) retrieval_org: Option<String>,
    /// Answer with the persona's fallback, without calling the model, when
    /// retrieval finds nothing in scope.
    pub(crate) fallback_when_out_of_scope: bool,
    /// The id the client sent the message with (stored on the user message).
    pub(crate) client_message_id: Option<String>,
}

impl Engine {
    /// The persona that answers: the one named (an unknown or foreign id is
    /// `UnknownPersona`), else the organization's default one.
    pub(crate) async fn resolve_persona(
        &self,
        org: &OrgId,
        id: Option<&str>,
    ) -> Result<Persona, EngineError> {
        let store = &self.inner.store;
        match id {
            Some(id) => {
                let unknown = || EngineError::UnknownPersona(id.chars().take(64).collect());
                let pid = PersonaId::parse(id).map_err(|_| unknown())?;
                store.get_persona(org, &pid).await?.ok_or_else(unknown)
            }
            None => {
                let missing = || {
                    EngineError::validation(
                        "personaId",
                        "the workspace has no default persona; give one",
                    )
                };
                let workspace = store
                    .default_workspace(org)
                    .await?
                    .ok_or(EngineError::NotFound("workspace"))?;
                let pid = workspace.default_persona_id.ok_or_else(missing)?;
                store.get_persona(org, &pid).await?.ok_or_else(missing)
            }
        }
    }

    /// Starts a plan: the model (the caller's choice or the persona's) and
    /// the limits the caller asked for, checked against it.
    pub(crate) fn plan(
        &self,
        persona: Persona,
        choice: ModelChoice<'_>,
    ) -> Result<TurnPlan, EngineError> {
        let model = self.model(choice.model_id.unwrap_or(&persona.model_id))?;
        if let Some(t) = choice.temperature.filter(|t| *t > model.max_temperature) {
            return Err(EngineError::validation(
                "temperature",
                format!(
                    "model `{}` accepts at most {} (got {t})",
                    model.id, model.max_temperature
                ),
            ));
        }
        let max_output_tokens = choice.max_output_tokens.unwrap_or(
            i64::from(persona.max_output_tokens).min(i64::from(model.max_output_tokens)),
        );
        if max_output_tokens > i64::from(model.max_output_tokens) {
            return Err(EngineError::validation(
                "maxOutputTokens",
                format!(
                    "model `{}` produces at most {} tokens",
                    model.id, model.max_output_tokens
                ),
            ));
        }
        Ok(TurnPlan {
            temperature: choice.temperature.unwrap_or(persona.temperature),
            max_output_tokens,
            persona,
            model,
            session: None,
            recording: Recording::Required,
            history: History::None,
            memory_digest: None,
            extra_guardrails: Vec::new(),
            tools: ToolSet::default(),
            retrieval_org: None,
            fallback_when_out_of_scope: false,
            client_message_id: None,
        })
    }

    /// Everything else a turn needs before it starts, the same for every
    /// surface: policy, input moderation, history and retrieval (side by
    /// side), the model request and the drift model.
    pub(crate) async fn prepare(
        &self,
        who: &Principal,
        plan: TurnPlan,
        user_text: String,
    ) -> Result<Prepared, EngineError> {
        let policy = policy(&plan.persona, &plan.extra_guardrails);
        let input = self.check_input(&user_text, &policy).await;
        let workspace = plan
            .session
            .as_ref()
            .map_or(&plan.persona.workspace_id, |s| &s.workspace_id);
        let store = &self.inner.store;
        let history = async {
            match (plan.history, &plan.session) {
                (History::None, _) | (_, None) => Ok(Vec::new()),
                (History::Required(limit), Some(s)) => store.recent_messages(&s.id, limit).await,
                (History::BestEffort(limit), Some(s)) => {
                    Ok(store.recent_messages(&s.id, limit).await.unwrap_or_else(|e| {
                        tracing::warn!(error = ?e, "could not read the history; answering without it");
                        Vec::new()
                    }))
                }
            }
        };
        // The query is what the model sees (PII redacted): it may go to a
        // remote embedding endpoint.
        let billing = Billing::of(who);
        let (history, retrieved) = tokio::join!(
            history,
            self.retrieve(
                &billing,
                workspace,
                &input.text,
                RETRIEVAL_TOP_K,
                plan.retrieval_org.as_deref(),
                plan.persona.faq_threshold,
            )
        );
        let (knowledge, retrieval, _) = retrieved?;
        let drift = self.inner.faqs.drift_model(&plan.persona, &knowledge);
        let mut request = Context {
            persona: &plan.persona,
            model: &plan.model,
            policy: &policy,
            memory_digest: plan.memory_digest.as_deref(),
            history: history?,
            user_text: &input.text,
            retrieval: &retrieval,
            temperature: plan.temperature,
            max_output_tokens: plan.max_output_tokens,
        }
        .request();
        request.tools = plan.tools.specs.clone();
        Ok(Prepared {
            answer_with_fallback: plan.fallback_when_out_of_scope && retrieval.out_of_scope,
            session: plan.session,
            recording: plan.recording,
            persona: plan.persona,
            model: plan.model,
            request,
            retrieval,
            user_text,
            policy,
            input,
            billing_key: who.billing_key.clone(),
            tools: plan.tools,
            drift,
            client_message_id: plan.client_message_id,
            quota: None,
        })
    }
}
