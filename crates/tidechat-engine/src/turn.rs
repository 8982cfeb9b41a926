//! The turn pipeline: one user message in, one assistant reply out.
//!
//! `start_turn` does everything that can fail with a client error before the
//! reply starts (auth, validation, session state, model lookup) and reads the
//! context; generation then runs in a tracked task that sends [`TurnEvent`]s.
//! The user message is written beside the model call, so the first delta never
//! waits for it; the assistant message is written when generation ends, also
//! when the client has gone (status `partial`).

use std::time::Instant;

use chrono::Utc;
use futures_util::StreamExt;
use tidechat_domain::{
    validate, Message, MessageId, MessageStatus, Persona, Role, Session, SessionStatus,
};
use tidechat_guard::{Assessment, GuardPolicy, Verdict};
use tidechat_llm::{tokens, ChatMessage, ModelEntry, ModelEvent, ModelRequest, Retrieval, Usage};
use tidechat_store::NewMessage;
use tokio::sync::mpsc;

use crate::auth::Principal;
use crate::{Engine, EngineError};

/// How many FAQ entries retrieval hands to the model.
const RETRIEVAL_TOP_K: usize = 5;
/// Deltas buffered between the model and a slow client.
const EVENT_BUFFER: usize = 64;

/// `POST /v1/chat/sessions/{id}/messages` input, transport-neutral.
#[derive(Debug, Clone, Default)]
pub struct TurnRequest {
    pub user_text: String,
    pub model_id: Option<String>,
    pub history_limit: Option<i64>,
    pub temperature: Option<f64>,
    pub max_output_tokens: Option<i64>,
    pub tool_names: Vec<String>,
    pub memory_digest: Option<String>,
    pub extra_guardrails: Vec<String>,
}

/// What a running turn reports, in order: zero or more `Delta`s, then exactly
/// one `Completed` or `Failed`.
#[derive(Debug)]
pub enum TurnEvent {
    /// Reply text released to the client.
    Delta(String),
    Completed(Box<TurnOutcome>),
    /// Generation failed; what was stored (if anything) is in the outcome.
    Failed {
        error: EngineError,
        outcome: Option<Box<TurnOutcome>>,
    },
}

/// The persisted result of a turn.
#[derive(Debug, Clone)]
pub struct TurnOutcome {
    pub user_message: Message,
    pub assistant_message: Message,
    pub session: Session,
    pub retrieval: Option<Retrieval>,
}

/// A running turn. Dropping it tells the engine the client has gone:
/// generation stops and the partial reply is stored.
pub struct Turn {
    events: mpsc::Receiver<TurnEvent>,
}

impl Turn {
    pub async fn next(&mut self) -> Option<TurnEvent> {
        self.events.recv().await
    }

    /// Waits for the end of the turn, ignoring deltas.
    pub async fn finish(mut self) -> Result<TurnOutcome, EngineError> {
        while let Some(event) = self.events.recv().await {
            match event {
                TurnEvent::Delta(_) => {}
                TurnEvent::Completed(outcome) => return Ok(*outcome),
                TurnEvent::Failed { error, .. } => return Err(error),
            }
        }
        Err(EngineError::ShuttingDown)
    }
}

/// Everything a turn needs once it has been accepted.
struct Prepared {
    session: Session,
    persona: Persona,
    model: ModelEntry,
    request: ModelRequest,
    user_text: String,
    policy: GuardPolicy,
    input: Assessment,
}

impl Engine {
    /// Validates and starts a turn. Errors here are client errors or storage
    /// failures; once this returns, the outcome arrives as events.
    pub async fn start_turn(
        &self,
        who: &Principal,
        session: &str,
        req: TurnRequest,
    ) -> Result<Turn, EngineError> {
        if self.inner.turns.is_closed() {
            return Err(EngineError::ShuttingDown);
        }
        let prepared = self.prepare(who, session, req).await?;
        let (tx, rx) = mpsc::channel(EVENT_BUFFER);
        let engine = self.clone();
        self.inner
            .turns
            .spawn(async move { engine.run(prepared, tx).await });
        Ok(Turn { events: rx })
    }

    async fn prepare(
        &self,
        who: &Principal,
        session: &str,
        req: TurnRequest,
    ) -> Result<Prepared, EngineError> {
        validate::user_text(&req.user_text)?;
        if let Some(t) = req.temperature {
            validate::temperature("temperature", t)?;
        }
        if let Some(m) = req.max_output_tokens {
            validate::max_output_tokens("maxOutputTokens", m)?;
        }
        let history_limit = req.history_limit.unwrap_or(validate::HISTORY_LIMIT_DEFAULT);
        validate::history_limit(history_limit)?;
        if let Some(digest) = &req.memory_digest {
            validate::optional_text("memoryDigest", digest, validate::MEMORY_DIGEST_MAX_CHARS)?;
        }
        validate::guardrails("extraGuardrails", &req.extra_guardrails)?;
        if req.tool_names.len() > validate::TOOL_NAMES_MAX {
            return Err(EngineError::validation(
                "toolNames",
                format!("at most {} tools", validate::TOOL_NAMES_MAX),
            ));
        }
        // No tools are registered yet, so any named tool is unknown.
        if let Some(tool) = req.tool_names.first() {
            return Err(EngineError::UnknownTool(tool.chars().take(64).collect()));
        }
        if let Some(id) = &req.model_id {
            if self.inner.models.get(id).is_none() {
                return Err(EngineError::UnknownModel(id.chars().take(64).collect()));
            }
        }

        let session = self.get_session(who, session).await?;
        if session.status != SessionStatus::Active {
            return Err(EngineError::SessionNotActive(session.status));
        }
        let store = &self.inner.store;
        let persona = store
            .get_persona(&session.org_id, &session.persona_id)
            .await?
            .ok_or_else(|| {
                EngineError::Internal(format!("session {} has no persona", session.id))
            })?;
        let model_id = req
            .model_id
            .clone()
            .unwrap_or_else(|| persona.model_id.clone());
        let model = self
            .inner
            .models
            .get(&model_id)
            .cloned()
            .ok_or_else(|| EngineError::UnknownModel(model_id.clone()))?;
        let max_output = req
            .max_output_tokens
            .unwrap_or(i64::from(persona.max_output_tokens));
        if max_output > i64::from(model.max_output_tokens) {
            return Err(EngineError::validation(
                "maxOutputTokens",
                format!(
                    "model `{}` produces at most {} tokens",
                    model.id, model.max_output_tokens
                ),
            ));
        }

        let mut guardrails = persona.guardrails.clone();
        guardrails.extend(req.extra_guardrails.iter().cloned());
        let policy = GuardPolicy { guardrails };
        let input = self.inner.guard.check_input(&req.user_text, &policy);

        let (history, index) = tokio::join!(
            store.recent_messages(&session.id, history_limit),
            self.inner.faqs.index(store, &session.workspace_id)
        );
        let retrieval =
            index?.retrieve(&req.user_text, RETRIEVAL_TOP_K, None, persona.faq_threshold);

        let mut messages = vec![ChatMessage::system(system_prompt(
            &persona,
            &policy,
            req.memory_digest.as_deref(),
        ))];
        messages.extend(
            history?
                .into_iter()
                .filter(|m| {
                    m.status != MessageStatus::Failed
                        && m.moderation_verdict != Verdict::Blocked.as_str()
                })
                .map(|m| ChatMessage::new(m.role, m.content)),
        );
        messages.push(ChatMessage::user(input.text.clone()));

        let request = ModelRequest {
            messages,
            temperature: req.temperature.unwrap_or(persona.temperature),
            max_output_tokens: u32::try_from(max_output).unwrap_or(model.max_output_tokens),
            retrieval: Some(retrieval),
            fallback_reply: persona.fallback_reply.clone(),
        };
        Ok(Prepared {
            session,
            persona,
            model,
            request,
            user_text: req.user_text,
            policy,
            input,
        })
    }

    async fn run(self, p: Prepared, tx: mpsc::Sender<TurnEvent>) {
        let started = Instant::now();
        let store = self.inner.store.clone();
        let user_message = NewMessage {
            id: MessageId::generate(),
            session_id: p.session.id.clone(),
            org_id: p.session.org_id.clone(),
            role: Role::User,
            content: p.user_text.clone(),
            input_tokens: to_i64(tokens::count(&p.user_text)),
            output_tokens: 0,
            tokens_estimated: false,
            model: p.model.id.clone(),
            latency_ms: 0,
            cost_usd_micros: 0,
            moderation_verdict: p.input.verdict.as_str().to_owned(),
            drift_score: 0.0,
            status: MessageStatus::Complete,
            created_at: Utc::now(),
            billed: false,
        };
        // Written beside the model call: the first delta does not wait for it.
        let user_insert = tokio::spawn(async move { store.append_message(&user_message).await });

        let retrieval = p.request.retrieval.clone();
        let mut generation = Generation::default();
        if p.input.verdict == Verdict::Blocked {
            generation.text = p.persona.fallback_reply.clone();
            let _ = tx.send(TurnEvent::Delta(generation.text.clone())).await;
        } else {
            generation = self.generate(&p.model, p.request.clone(), &tx).await;
        }
        let latency_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);

        let output = if p.input.verdict == Verdict::Blocked {
            Assessment {
                verdict: Verdict::Blocked,
                text: generation.text.clone(),
                categories: p.input.categories.clone(),
            }
        } else {
            self.inner.guard.check_output(&generation.text, &p.policy)
        };
        let drift = self
            .inner
            .guard
            .drift(&p.persona.system_prompt, &p.user_text, &output.text);
        let usage = generation.usage.clone().unwrap_or_else(|| Usage {
            input_tokens: if p.input.verdict == Verdict::Blocked {
                0
            } else {
                tokens::count_messages(&p.request.messages)
            },
            output_tokens: tokens::count(&generation.text),
            estimated: true,
        });
        let status = generation.status;

        let user_message = match user_insert.await {
            Ok(Ok((message, _))) => message,
            Ok(Err(e)) => return fail(&tx, e.into(), None).await,
            Err(e) => {
                return fail(
                    &tx,
                    EngineError::Internal(format!("user message task: {e}")),
                    None,
                )
                .await
            }
        };
        let assistant = NewMessage {
            id: MessageId::generate(),
            session_id: p.session.id.clone(),
            org_id: p.session.org_id.clone(),
            role: Role::Assistant,
            content: output.text,
            input_tokens: to_i64(usage.input_tokens),
            output_tokens: to_i64(usage.output_tokens),
            tokens_estimated: usage.estimated,
            model: p.model.id.clone(),
            latency_ms,
            cost_usd_micros: p.model.pricing.cost_usd_micros(&usage),
            moderation_verdict: output.verdict.as_str().to_owned(),
            drift_score: drift,
            status,
            created_at: Utc::now(),
            billed: true,
        };
        let (assistant_message, session) = match self.inner.store.append_message(&assistant).await {
            Ok(stored) => stored,
            Err(e) => return fail(&tx, e.into(), None).await,
        };
        let outcome = Box::new(TurnOutcome {
            user_message,
            assistant_message,
            session,
            retrieval,
        });
        let event = match generation.error {
            Some(error) => TurnEvent::Failed {
                error,
                outcome: Some(outcome),
            },
            None if status == MessageStatus::Complete => TurnEvent::Completed(outcome),
            // Cut short by shutdown (a gone client reads nothing more).
            None => TurnEvent::Failed {
                error: EngineError::ShuttingDown,
                outcome: Some(outcome),
            },
        };
        let _ = tx.send(event).await;
    }

    /// Streams the model into `tx` until it ends, fails, the client goes away
    /// or shutdown cancels it. Dropping the model stream cancels upstream work.
    async fn generate(
        &self,
        model: &ModelEntry,
        request: ModelRequest,
        tx: &mpsc::Sender<TurnEvent>,
    ) -> Generation {
        let mut out = Generation::default();
        let mut stream = model.model.stream(request);
        loop {
            let event = tokio::select! {
                biased;
                _ = self.inner.stop.cancelled() => { out.status = MessageStatus::Partial; break; }
                _ = tx.closed() => { out.status = MessageStatus::Partial; break; }
                event = stream.next() => event,
            };
            match event {
                None => break,
                Some(Ok(ModelEvent::Delta(delta))) => {
                    if delta.is_empty() {
                        continue;
                    }
                    out.text.push_str(&delta);
                    if tx.send(TurnEvent::Delta(delta)).await.is_err() {
                        out.status = MessageStatus::Partial;
                        break;
                    }
                }
                Some(Ok(ModelEvent::Usage(usage))) => out.usage = Some(usage),
                Some(Ok(ModelEvent::Done { .. })) => {}
                Some(Err(e)) => {
                    tracing::warn!(model = %model.id, error = %e, "model stream failed");
                    out.status = if out.text.is_empty() {
                        MessageStatus::Failed
                    } else {
                        MessageStatus::Partial
                    };
                    out.error = Some(EngineError::Upstream(e.to_string()));
                    break;
                }
            }
        }
        out
    }
}

struct Generation {
    text: String,
    usage: Option<Usage>,
    status: MessageStatus,
    error: Option<EngineError>,
}

impl Default for Generation {
    fn default() -> Self {
        Self {
            text: String::new(),
            usage: None,
            status: MessageStatus::Complete,
            error: None,
        }
    }
}

async fn fail(tx: &mpsc::Sender<TurnEvent>, error: EngineError, outcome: Option<Box<TurnOutcome>>) {
    tracing::error!(error = ?error, "turn could not be stored");
    let _ = tx.send(TurnEvent::Failed { error, outcome }).await;
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn system_prompt(persona: &Persona, policy: &GuardPolicy, memory_digest: Option<&str>) -> String {
    let mut prompt = persona.system_prompt.clone();
    if !policy.guardrails.is_empty() {
        prompt.push_str("\n\nRules you must follow:");
        for rule in &policy.guardrails {
            prompt.push_str("\n- ");
            prompt.push_str(rule);
        }
    }
    if let Some(digest) = memory_digest.filter(|d| !d.trim().is_empty()) {
        prompt.push_str("\n\nWhat you remember about this conversation so far:\n");
        prompt.push_str(digest);
    }
    prompt
}
