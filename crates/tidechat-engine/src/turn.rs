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
use tidechat_llm::{
    tokens, ChatMessage, ModelEntry, ModelEvent, ModelRequest, Retrieval, Usage, FAQ_MODEL_ID,
};
use tidechat_store::NewMessage;
use tokio::sync::mpsc;

use crate::auth::Principal;
use crate::{Engine, EngineError};

/// How many FAQ entries retrieval hands to the model.
pub(crate) const RETRIEVAL_TOP_K: usize = 5;
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

/// What a running turn reports, in order: one `Retrieval`, zero or more
/// `Delta`s, then exactly one of `Completed`, `Unrecorded` or `Failed`.
#[derive(Debug)]
pub enum TurnEvent {
    /// What FAQ retrieval found for the user's text, before any reply text.
    Retrieval(Retrieval),
    /// Reply text released to the client.
    Delta(String),
    /// The reply is complete and stored.
    Completed(Box<TurnOutcome>),
    /// The reply is complete but was not stored: the surface keeps no record
    /// for this turn, or recording failed where it is best-effort.
    Unrecorded,
    /// Generation failed or was cut short; what was stored (if anything) is
    /// in the outcome.
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

    /// Waits for the end of a recorded turn, ignoring deltas.
    pub async fn finish(mut self) -> Result<TurnOutcome, EngineError> {
        while let Some(event) = self.events.recv().await {
            match event {
                TurnEvent::Retrieval(_) | TurnEvent::Delta(_) => {}
                TurnEvent::Completed(outcome) => return Ok(*outcome),
                TurnEvent::Unrecorded => {
                    return Err(EngineError::Internal(
                        "a recorded turn was not recorded".to_owned(),
                    ))
                }
                TurnEvent::Failed { error, .. } => return Err(error),
            }
        }
        Err(EngineError::ShuttingDown)
    }
}

/// Whether a storage failure fails the turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recording {
    /// The `/v1` API: the client gets stored ids, so storing must succeed.
    Required,
    /// Surfaces whose reference says a recording failure never affects the
    /// reply: failures are logged and the reply still streams.
    BestEffort,
}

/// Everything a turn needs once it has been accepted.
pub(crate) struct Prepared {
    /// Where to record the turn; `None` keeps no record.
    pub(crate) session: Option<Session>,
    pub(crate) recording: Recording,
    pub(crate) persona: Persona,
    pub(crate) model: ModelEntry,
    pub(crate) request: ModelRequest,
    pub(crate) retrieval: Retrieval,
    pub(crate) user_text: String,
    pub(crate) policy: GuardPolicy,
    pub(crate) input: Assessment,
    /// Answer with the persona's fallback without calling the model.
    pub(crate) answer_with_fallback: bool,
}

/// Context a turn is built from, shared by every surface.
pub(crate) struct Context<'a> {
    pub(crate) persona: &'a Persona,
    pub(crate) model: &'a ModelEntry,
    pub(crate) policy: &'a GuardPolicy,
    pub(crate) memory_digest: Option<&'a str>,
    pub(crate) history: Vec<Message>,
    pub(crate) user_text: &'a str,
    pub(crate) retrieval: &'a Retrieval,
    pub(crate) temperature: f64,
    pub(crate) max_output_tokens: i64,
}

impl Context<'_> {
    pub(crate) fn request(self) -> ModelRequest {
        let mut system = system_prompt(self.persona, self.policy, self.memory_digest);
        // Models other than the built-in one answer from the matching FAQ
        // entries (retrieval-augmented); the `faq` model reads them itself.
        if self.model.id != FAQ_MODEL_ID && !self.retrieval.out_of_scope {
            system.push_str("\n\nAnswer from these FAQ entries when they are relevant:");
            for hit in &self.retrieval.hits {
                system.push_str(&format!("\nQ: {}\nA: {}", hit.question, hit.answer));
            }
        }
        let mut messages = vec![ChatMessage::system(system)];
        messages.extend(
            self.history
                .into_iter()
                .filter(|m| {
                    m.status != MessageStatus::Failed
                        && m.moderation_verdict != Verdict::Blocked.as_str()
                })
                .map(|m| ChatMessage::new(m.role, m.content)),
        );
        messages.push(ChatMessage::user(self.user_text.to_owned()));
        ModelRequest {
            messages,
            temperature: self.temperature,
            max_output_tokens: u32::try_from(self.max_output_tokens)
                .unwrap_or(self.model.max_output_tokens),
            retrieval: Some(self.retrieval.clone()),
            fallback_reply: self.persona.fallback_reply.clone(),
            ..ModelRequest::default()
        }
    }
}

impl Engine {
    /// Validates and starts a `/v1` turn. Errors here are client errors or
    /// storage failures; once this returns, the outcome arrives as events.
    pub async fn start_turn(
        &self,
        who: &Principal,
        session: &str,
        req: TurnRequest,
    ) -> Result<Turn, EngineError> {
        self.accepting()?;
        let prepared = self.prepare(who, session, req).await?;
        Ok(self.launch(prepared))
    }

    pub(crate) fn accepting(&self) -> Result<(), EngineError> {
        if self.inner.turns.is_closed() {
            return Err(EngineError::ShuttingDown);
        }
        Ok(())
    }

    pub(crate) fn launch(&self, prepared: Prepared) -> Turn {
        let (tx, rx) = mpsc::channel(EVENT_BUFFER);
        let engine = self.clone();
        self.inner
            .turns
            .spawn(async move { engine.run(prepared, tx).await });
        Turn { events: rx }
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
        let model = self.model(&model_id)?;
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

        let policy = policy(&persona, &req.extra_guardrails);
        let input = self.inner.guard.check_input(&req.user_text, &policy);
        let (history, index) = tokio::join!(
            store.recent_messages(&session.id, history_limit),
            self.inner.faqs.index(store, &session.workspace_id)
        );
        let retrieval =
            index?.retrieve(&req.user_text, RETRIEVAL_TOP_K, None, persona.faq_threshold);
        let request = Context {
            persona: &persona,
            model: &model,
            policy: &policy,
            memory_digest: req.memory_digest.as_deref(),
            history: history?,
            user_text: &input.text,
            retrieval: &retrieval,
            temperature: req.temperature.unwrap_or(persona.temperature),
            max_output_tokens: max_output,
        }
        .request();
        Ok(Prepared {
            session: Some(session),
            recording: Recording::Required,
            persona,
            model,
            request,
            retrieval,
            user_text: req.user_text,
            policy,
            input,
            answer_with_fallback: false,
        })
    }

    pub(crate) fn model(&self, id: &str) -> Result<ModelEntry, EngineError> {
        self.inner
            .models
            .get(id)
            .cloned()
            .ok_or_else(|| EngineError::UnknownModel(id.chars().take(64).collect()))
    }

    async fn run(self, p: Prepared, tx: mpsc::Sender<TurnEvent>) {
        let started = Instant::now();
        let recording = p.recording;
        // Written beside the model call: the first delta does not wait for it.
        let user_insert = p.session.as_ref().map(|session| {
            let store = self.inner.store.clone();
            let message = NewMessage {
                id: MessageId::generate(),
                session_id: session.id.clone(),
                org_id: session.org_id.clone(),
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
            tokio::spawn(async move { store.append_message(&message).await })
        });

        let _ = tx.send(TurnEvent::Retrieval(p.retrieval.clone())).await;
        let canned = p.input.verdict == Verdict::Blocked || p.answer_with_fallback;
        let generation = if canned {
            let text = p.persona.fallback_reply.clone();
            let _ = tx.send(TurnEvent::Delta(text.clone())).await;
            Generation {
                text,
                ..Generation::default()
            }
        } else {
            self.generate(&p.model, p.request.clone(), &tx).await
        };
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
            input_tokens: if canned {
                0
            } else {
                tokens::count_messages(&p.request.messages)
            },
            output_tokens: if canned {
                0
            } else {
                tokens::count(&generation.text)
            },
            estimated: true,
        });
        let status = generation.status;

        let Some((session, user_insert)) = p.session.as_ref().zip(user_insert) else {
            let event = match generation.error {
                Some(error) => TurnEvent::Failed {
                    error,
                    outcome: None,
                },
                None => TurnEvent::Unrecorded,
            };
            let _ = tx.send(event).await;
            return;
        };
        let stored_user = match user_insert.await {
            Ok(Ok((message, _))) => Ok(message),
            Ok(Err(e)) => Err(EngineError::from(e)),
            Err(e) => Err(EngineError::Internal(format!("user message task: {e}"))),
        };
        let assistant = NewMessage {
            id: MessageId::generate(),
            session_id: session.id.clone(),
            org_id: session.org_id.clone(),
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
        let stored = match stored_user {
            Ok(user) => self
                .inner
                .store
                .append_message(&assistant)
                .await
                .map(|(reply, session)| (user, reply, session))
                .map_err(EngineError::from),
            Err(e) => Err(e),
        };
        let outcome = match stored {
            Ok((user_message, assistant_message, session)) => Box::new(TurnOutcome {
                user_message,
                assistant_message,
                session,
                retrieval: Some(p.retrieval.clone()),
            }),
            Err(error) => {
                tracing::error!(error = ?error, session = %session.id, "the turn could not be stored");
                let event = match (recording, generation.error) {
                    (_, Some(error)) => TurnEvent::Failed {
                        error,
                        outcome: None,
                    },
                    (Recording::Required, None) => TurnEvent::Failed {
                        error,
                        outcome: None,
                    },
                    (Recording::BestEffort, None) => TurnEvent::Unrecorded,
                };
                let _ = tx.send(event).await;
                return;
            }
        };
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
                // Tool calls and the answering model are handled by the LLM
                // orchestration work; until then they carry nothing to store.
                Some(Ok(ModelEvent::Done { .. }))
                | Some(Ok(ModelEvent::ToolCall(_)))
                | Some(Ok(ModelEvent::Model { .. }))
                | Some(Ok(ModelEvent::Fallback { .. })) => {}
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

/// The persona's guardrails followed by the request's extra ones.
pub(crate) fn policy(persona: &Persona, extra_guardrails: &[String]) -> GuardPolicy {
    let mut guardrails = persona.guardrails.clone();
    guardrails.extend(extra_guardrails.iter().cloned());
    GuardPolicy { guardrails }
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
