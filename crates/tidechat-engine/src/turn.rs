//! The turn pipeline: one user message in, one assistant reply out.
//!
//! `start_turn` does everything that can fail with a client error before the
//! reply starts (auth, quotas, validation, session state, model and tool
//! lookup) and reads the context; generation then runs in a tracked task that
//! sends [`TurnEvent`]s:
//!
//! 1. the user message is written beside the model call (the first delta
//!    never waits for it) with its input-moderation findings;
//! 2. the model streams through the output scanner: text reaches the client
//!    only once its window has passed moderation; a violation stops the
//!    upstream and replaces the reply with the persona's fallback;
//! 3. tool calls run server-side (bounded steps) and are stored as `tool`
//!    messages; the model continues with their results;
//! 4. the reply is stored with its verdict, drift score, tokens, cost, latency
//!    and time to first token — also when the client has gone (`partial`).

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use futures_util::StreamExt;
use serde_json::{json, Value};
use tidechat_domain::{
    validate, Message, MessageId, MessageStatus, ModerationRecord, Persona, Role, Session,
    SessionStatus,
};
use tidechat_guard::{
    Action, Assessment, DriftModel, Finding, GuardPolicy, ModerationSettings, OutputScanner,
    ScanStep, Stage, Verdict, DEFAULT_DRIFT_ALPHA,
};
use tidechat_llm::{
    tokens, ChatMessage, LlmError, ModelEntry, ModelEvent, ModelRequest, Pricing, Retrieval,
    ToolCall, Usage, FAQ_MODEL_ID,
};
use tidechat_store::NewMessage;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::auth::Principal;
use crate::plan::{History, ModelChoice};
use crate::tools::{ToolContext, ToolOutcome, ToolSet};
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
    /// Offer the model the handoff tool (when the model is an LLM, not the
    /// built-in FAQ model): the widget's visitors can be handed to a person.
    pub offer_handoff: bool,
    /// The id the client sent the message with (the widget's `message_id`),
    /// stored on the user message so a retry finds it and its reply.
    pub client_message_id: Option<String>,
}

/// What a running turn reports, in order: one `Retrieval`, zero or more
/// `Delta`s, at most one `Replaced`, then exactly one of `Completed`,
/// `Unrecorded` or `Failed`.
#[derive(Debug)]
pub enum TurnEvent {
    /// What FAQ retrieval found for the user's text, before any reply text.
    Retrieval(Retrieval),
    /// The user message has been stored (recorded turns only). Written beside
    /// the model call, so it may come before or after the first deltas.
    UserStored(Box<Message>),
    /// Reply text released to the client (it has passed moderation).
    Delta(String),
    /// Moderation stopped the reply: the client should show this text (the
    /// persona's fallback) instead of what it has received so far.
    Replaced(String),
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
                TurnEvent::Retrieval(_)
                | TurnEvent::UserStored(_)
                | TurnEvent::Delta(_)
                | TurnEvent::Replaced(_) => {}
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
    /// The API key the turn is billed to.
    pub(crate) billing_key: Option<tidechat_domain::ApiKeyId>,
    pub(crate) tools: ToolSet,
    pub(crate) drift: Arc<DriftModel>,
    /// Stored on the user message (see [`TurnRequest::client_message_id`]).
    pub(crate) client_message_id: Option<String>,
    /// The turn's hold on the monthly quotas, released when `Prepared` is
    /// dropped at the end of the turn (after its reply is stored).
    pub(crate) quota: Option<crate::limits::QuotaHold>,
}

/// Context a turn is built from, shared by every surface.
pub(crate) struct Context<'a> {
    pub(crate) persona: &'a Persona,
    pub(crate) model: &'a ModelEntry,
    pub(crate) policy: &'a GuardPolicy,
    pub(crate) memory_digest: Option<&'a str>,
    /// Oldest first.
    pub(crate) history: Vec<Message>,
    pub(crate) user_text: &'a str,
    pub(crate) retrieval: &'a Retrieval,
    pub(crate) temperature: f64,
    pub(crate) max_output_tokens: i64,
}

impl Context<'_> {
    /// The model request: instructions (persona, guardrails, memory digest,
    /// FAQ context), then as much recent history as fits, then the new turn.
    /// History is trimmed oldest-first so that the prompt plus
    /// `max_output_tokens` fits the model's context window.
    pub(crate) fn request(self) -> ModelRequest {
        let mut system = system_prompt(self.persona, self.policy, self.memory_digest);
        // Models other than the built-in one answer from the matching FAQ
        // entries (retrieval-augmented); the `faq` model reads them itself.
        if self.model.id != FAQ_MODEL_ID && !self.retrieval.out_of_scope {
            system.push_str(
                "\n\nAnswer from these FAQ entries and document passages when they are relevant:",
            );
            for hit in &self.retrieval.hits {
                match &hit.chunk {
                    Some(chunk) => system.push_str(&format!(
                        "\nSource: {} (document {}, part {})\n{}",
                        hit.question,
                        chunk.document_id,
                        chunk.index + 1,
                        hit.answer
                    )),
                    None => system.push_str(&format!("\nQ: {}\nA: {}", hit.question, hit.answer)),
                }
            }
        }
        let system = ChatMessage::system(system);
        let user = ChatMessage::user(self.user_text.to_owned());
        let output = u64::try_from(self.max_output_tokens.max(0)).unwrap_or(0);
        let budget = u64::from(self.model.context_window).saturating_sub(output);
        let mut used = tokens::count_messages(&[system.clone(), user.clone()]);
        let mut kept = Vec::new();
        for m in self.history.into_iter().rev() {
            let usable = matches!(m.role, Role::User | Role::Assistant)
                && m.status != MessageStatus::Failed
                && m.moderation_verdict != Verdict::Blocked.as_str();
            if !usable {
                continue;
            }
            // Counted exactly as `tokens::count_messages` counts the rest.
            let cost = tokens::TOKENS_PER_MESSAGE
                + tokens::count(m.role.as_str())
                + tokens::count(&m.content);
            if used + cost > budget {
                break;
            }
            used += cost;
            kept.push(ChatMessage::new(m.role, m.content));
        }
        kept.reverse();
        let mut messages = Vec::with_capacity(kept.len() + 2);
        messages.push(system);
        messages.extend(kept);
        messages.push(user);
        ModelRequest {
            messages,
            temperature: self.temperature.min(self.model.max_temperature),
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
        let prepared = self.prepare_session_turn(who, session, req).await?;
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

    /// The `/v1` (and chats, widget) side of a turn: the request's own
    /// checks, the session and its persona, tools and quota; the plan does
    /// the rest.
    async fn prepare_session_turn(
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
        for rule in &req.extra_guardrails {
            tidechat_guard::validate_guardrail(rule)
                .map_err(|e| EngineError::validation("extraGuardrails", e.to_string()))?;
        }
        if req.tool_names.len() > validate::TOOL_NAMES_MAX {
            return Err(EngineError::validation(
                "toolNames",
                format!("at most {} tools", validate::TOOL_NAMES_MAX),
            ));
        }
        if let Some(id) = &req.model_id {
            self.model(id)?;
        }

        let (session, persona) = self.get_session_with_persona(who, session).await?;
        if session.status != SessionStatus::Active {
            return Err(EngineError::SessionNotActive(session.status));
        }
        let mut tool_names = req.tool_names;
        let model_id = req.model_id.as_deref().unwrap_or(&persona.model_id);
        if req.offer_handoff
            && model_id != FAQ_MODEL_ID
            && !tool_names.iter().any(|n| n == crate::tools::HANDOFF)
        {
            tool_names.push(crate::tools::HANDOFF.to_owned());
        }
        let tools = self.resolve_tools(&who.org_id, &tool_names).await?;
        let mut plan = self.plan(
            persona,
            ModelChoice {
                model_id: req.model_id.as_deref(),
                temperature: req.temperature,
                max_output_tokens: req.max_output_tokens,
            },
        )?;
        plan.session = Some(session);
        plan.history = History::Required(history_limit);
        plan.memory_digest = req.memory_digest;
        plan.extra_guardrails = req.extra_guardrails;
        plan.tools = tools;
        plan.client_message_id = req.client_message_id;
        let mut prepared = self.prepare(who, plan, req.user_text).await?;
        self.reserve_quota(who, &mut prepared).await?;
        Ok(prepared)
    }

    pub(crate) fn model(&self, id: &str) -> Result<ModelEntry, EngineError> {
        self.inner
            .models
            .get(id)
            .cloned()
            .ok_or_else(|| EngineError::UnknownModel(id.chars().take(64).collect()))
    }

    /// Input moderation: the built-in guard, then the external classifier
    /// when one is configured.
    pub(crate) async fn check_input(&self, text: &str, policy: &GuardPolicy) -> Assessment {
        let mut assessment = self.inner.guard.check_input(text, policy);
        if assessment.verdict != Verdict::Blocked {
            if let Some(classifier) = &self.inner.classifier {
                let settings = ModerationSettings::from_guardrails(&policy.guardrails);
                let (findings, _latency) =
                    classifier.check_with(text, Stage::Input, &settings).await;
                if !findings.is_empty() {
                    assessment.findings.extend(findings);
                    assessment.verdict = Verdict::from_findings(&assessment.findings);
                }
            }
        }
        assessment
    }

    async fn run(self, p: Prepared, tx: mpsc::Sender<TurnEvent>) {
        let started = Instant::now();
        let mut recorder = Recorder::start(&self, &p, &tx);
        let _ = tx.send(TurnEvent::Retrieval(p.retrieval.clone())).await;

        let canned = p.input.verdict == Verdict::Blocked || p.answer_with_fallback;
        let mut g = Generation {
            moderation: ModerationSettings::from_guardrails(&p.policy.guardrails),
            ..Generation::default()
        };
        if canned {
            g.release(p.persona.fallback_reply.clone(), &tx, started)
                .await;
        } else {
            self.generate(&p, &tx, &mut recorder, started, &mut g).await;
        }
        let latency_ms = elapsed_ms(started);

        // What is stored: the delivered text, or the fallback that replaced it.
        let mut findings: Vec<Finding> = Vec::new();
        let (content, mut verdict, original) = if p.input.verdict == Verdict::Blocked {
            (g.text.clone(), Verdict::Blocked, None)
        } else if let Some(finding) = g.blocked.take() {
            let fallback = p.persona.fallback_reply.clone();
            let _ = tx.send(TurnEvent::Replaced(fallback.clone())).await;
            findings.append(&mut g.findings);
            findings.push(finding);
            (fallback, Verdict::Blocked, Some(g.raw.clone()))
        } else {
            findings.append(&mut g.findings);
            (g.text.clone(), g.verdict, None)
        };
        let drift = if canned || verdict == Verdict::Blocked {
            0.0
        } else {
            p.drift.score(&content)
        };
        if let Some(threshold) = p.persona.drift_threshold {
            if drift > threshold && verdict == Verdict::Allowed {
                verdict = Verdict::Flagged;
                findings.push(Finding {
                    category: "drift".to_owned(),
                    rule: format!("driftScore {drift:.3} > {threshold}"),
                    stage: Stage::Output,
                    action: Action::Flag,
                    excerpt: String::new(),
                    span: 0..0,
                });
            }
        }
        // Without the provider's usage, estimate only when the model produced
        // something; a turn that failed before any output (and any tool
        // round) is not billed at all.
        let produced = !canned && !g.raw.is_empty();
        let nothing = Usage {
            input_tokens: 0,
            output_tokens: 0,
            estimated: true,
        };
        let usage = if g.status == MessageStatus::Failed && g.tool_rounds == 0 {
            nothing
        } else {
            g.usage.clone().unwrap_or_else(|| Usage {
                input_tokens: if produced {
                    tokens::count_messages(&p.request.messages)
                } else {
                    0
                },
                output_tokens: if produced { tokens::count(&g.raw) } else { 0 },
                estimated: true,
            })
        };
        let model_id = g.model_id.clone().unwrap_or_else(|| p.model.id.clone());
        let pricing = g.pricing.unwrap_or(p.model.pricing);
        let status = g.status;

        let Some(session) = p.session.as_ref() else {
            let event = match g.error.take() {
                Some(error) => TurnEvent::Failed {
                    error,
                    outcome: None,
                },
                None => TurnEvent::Unrecorded,
            };
            let _ = tx.send(event).await;
            return;
        };
        let assistant = NewMessage {
            id: MessageId::generate(),
            session_id: session.id.clone(),
            org_id: session.org_id.clone(),
            role: Role::Assistant,
            content,
            input_tokens: to_i64(usage.input_tokens),
            output_tokens: to_i64(usage.output_tokens),
            tokens_estimated: usage.estimated,
            model: model_id,
            latency_ms,
            cost_usd_micros: pricing.cost_usd_micros(&usage),
            moderation_verdict: verdict.as_str().to_owned(),
            drift_score: drift,
            status,
            created_at: Utc::now(),
            billed: true,
            api_key_id: p.billing_key.clone(),
            first_token_ms: g.first_token_ms,
            original_content: original,
            // What the reply was grounded in: the `faq` model sends the top
            // hit, other models saw every hit; fallbacks cite nothing.
            citations: if canned || verdict == Verdict::Blocked {
                Vec::new()
            } else {
                crate::knowledge::citations(&p.retrieval, p.model.id == FAQ_MODEL_ID)
            },
            moderation: records(&findings),
            // Replies replaced by moderation or canned fallbacks say nothing
            // about drift; only model replies feed the session's aggregate.
            drift_alpha: (!canned && verdict != Verdict::Blocked).then_some(DEFAULT_DRIFT_ALPHA),
            client_message_id: None,
            reply_to: None,
        };
        let stored = match recorder.user_message().await {
            Ok(user) => self
                .inner
                .store
                .append_message(&NewMessage {
                    reply_to: Some(user.id.clone()),
                    ..assistant
                })
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
                let event = match (p.recording, g.error.take()) {
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
        let event = match g.error.take() {
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

    /// Runs the model (and its tool calls) through the output scanner.
    async fn generate(
        &self,
        p: &Prepared,
        tx: &mpsc::Sender<TurnEvent>,
        recorder: &mut Recorder,
        started: Instant,
        g: &mut Generation,
    ) {
        let mut scanner = self.inner.guard.output_scanner(&p.policy);
        let mut request = p.request.clone();
        let steps = if p.tools.is_empty() {
            1
        } else {
            self.inner.config.max_tool_steps.max(1)
        };
        for step in 0..steps {
            let (calls, step_text) = self
                .stream_step(&p.model, request.clone(), scanner.as_mut(), tx, started, g)
                .await;
            if g.stopped() || calls.is_empty() {
                break;
            }
            let Some(session) = p.session.as_ref() else {
                break;
            };
            if step + 1 == steps {
                tracing::info!(session = %session.id, "tool step limit reached; ending the reply");
                break;
            }
            // Tool messages follow the user message in the session.
            if let Err(e) = recorder.user_message().await {
                g.error = Some(e);
                g.status = if g.text.is_empty() {
                    MessageStatus::Failed
                } else {
                    MessageStatus::Partial
                };
                break;
            }
            g.tool_rounds += 1;
            let ctx = ToolContext {
                session,
                workspace: &session.workspace_id,
                faq_threshold: p.persona.faq_threshold,
                billing_key: p.billing_key.as_ref(),
            };
            request
                .messages
                .push(ChatMessage::assistant_tool_calls(step_text, calls.clone()));
            for call in &calls {
                let outcome = self.run_tool(&p.tools, &ctx, call).await;
                recorder
                    .store_tool(&self.inner.store, &p.model.id, call, &outcome)
                    .await;
                request
                    .messages
                    .push(ChatMessage::tool_result(call.id.clone(), outcome.content));
            }
        }
        if !g.stopped() {
            match scanner.finish() {
                ScanStep::Release(text) => {
                    if !g.release(text, tx, started).await {
                        g.status = MessageStatus::Partial;
                    }
                }
                ScanStep::Block(finding) => g.blocked = Some(finding),
            }
        }
        let assessment = scanner.assessment();
        g.findings = assessment.findings;
        g.findings.append(&mut g.classifier_findings);
        g.verdict = if g.findings.is_empty() {
            assessment.verdict
        } else {
            Verdict::from_findings(&g.findings)
        };
    }

    /// One model call. Returns the tool calls it asked for and its raw text.
    async fn stream_step(
        &self,
        model: &ModelEntry,
        request: ModelRequest,
        scanner: &mut dyn OutputScanner,
        tx: &mpsc::Sender<TurnEvent>,
        started: Instant,
        g: &mut Generation,
    ) -> (Vec<ToolCall>, String) {
        let mut calls = Vec::new();
        let mut step_text = String::new();
        let mut stream = model.model.stream(request);
        loop {
            let event = tokio::select! {
                biased;
                _ = self.inner.stop.cancelled() => { g.status = MessageStatus::Partial; break; }
                _ = tx.closed() => { g.status = MessageStatus::Partial; break; }
                event = stream.next() => event,
            };
            match event {
                None => break,
                Some(Ok(ModelEvent::Delta(delta))) => {
                    if delta.is_empty() {
                        continue;
                    }
                    g.raw.push_str(&delta);
                    step_text.push_str(&delta);
                    match scanner.push(&delta) {
                        ScanStep::Release(text) => {
                            let released = self.classify_release(text, g).await;
                            match released {
                                Ok(text) => {
                                    if !g.release(text, tx, started).await {
                                        g.status = MessageStatus::Partial;
                                        break;
                                    }
                                }
                                Err(finding) => {
                                    g.blocked = Some(finding);
                                    break;
                                }
                            }
                        }
                        ScanStep::Block(finding) => {
                            g.blocked = Some(finding);
                            break;
                        }
                    }
                }
                Some(Ok(ModelEvent::ToolCall(call))) => calls.push(call),
                Some(Ok(ModelEvent::Usage(usage))) => g.add_usage(usage),
                Some(Ok(ModelEvent::Model { id, pricing })) => {
                    g.model_id = Some(id);
                    g.pricing = Some(pricing);
                }
                Some(Ok(ModelEvent::Fallback { from, to, reason })) => {
                    tracing::info!(%from, %to, %reason, "model fell back");
                }
                Some(Ok(ModelEvent::Done { .. })) => {}
                Some(Err(e)) => {
                    tracing::warn!(model = %model.id, error = %e, "model stream failed");
                    g.status = if g.raw.is_empty() {
                        MessageStatus::Failed
                    } else {
                        MessageStatus::Partial
                    };
                    g.error = Some(match e {
                        LlmError::Timeout => EngineError::UpstreamTimeout,
                        other => EngineError::Upstream(other.to_string()),
                    });
                    break;
                }
            }
        }
        (calls, step_text)
    }

    /// Passes a released window through the external classifier, if any.
    async fn classify_release(&self, text: String, g: &mut Generation) -> Result<String, Finding> {
        let Some(classifier) = &self.inner.classifier else {
            return Ok(text);
        };
        if text.trim().is_empty() {
            return Ok(text);
        }
        let (findings, _latency) = classifier
            .check_with(&text, Stage::Output, &g.moderation)
            .await;
        if let Some(block) = findings.iter().find(|f| f.action == Action::Block).cloned() {
            return Err(block);
        }
        g.classifier_findings.extend(findings);
        Ok(text)
    }
}

/// The persona's guardrails followed by the request's extra ones.
pub(crate) fn policy(persona: &Persona, extra_guardrails: &[String]) -> GuardPolicy {
    let mut guardrails = persona.guardrails.clone();
    // Moderation settings are the persona's alone: a request cannot loosen them.
    guardrails.extend(
        extra_guardrails
            .iter()
            .filter(|g| !tidechat_guard::is_moderation_setting(g))
            .cloned(),
    );
    GuardPolicy {
        guardrails,
        redact_pii: persona.redact_pii,
    }
}

/// Writes the user message beside generation, then tool messages in order.
struct Recorder {
    pending: Option<JoinHandle<Result<(Message, Session), tidechat_store::StoreError>>>,
    user: Option<Result<Message, String>>,
    session: Option<Session>,
    billing_key: Option<tidechat_domain::ApiKeyId>,
}

impl Recorder {
    fn start(engine: &Engine, p: &Prepared, tx: &mpsc::Sender<TurnEvent>) -> Self {
        let pending = p.session.as_ref().map(|session| {
            let store = engine.inner.store.clone();
            let message = NewMessage {
                id: MessageId::generate(),
                session_id: session.id.clone(),
                org_id: session.org_id.clone(),
                role: Role::User,
                // What the model saw (personal data redacted when the persona
                // asks), so later turns' history never carries it either.
                content: p.input.text.clone(),
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
                api_key_id: p.billing_key.clone(),
                first_token_ms: None,
                original_content: (p.input.text != p.user_text).then(|| p.user_text.clone()),
                citations: Vec::new(),
                moderation: records(&p.input.findings),
                drift_alpha: None,
                client_message_id: p.client_message_id.clone(),
                reply_to: None,
            };
            // Written beside the model call: the first delta does not wait for it.
            let tx = tx.clone();
            tokio::spawn(async move {
                let stored = store.append_message(&message).await;
                if let Ok((message, _)) = &stored {
                    let _ = tx
                        .send(TurnEvent::UserStored(Box::new(message.clone())))
                        .await;
                }
                stored
            })
        });
        Self {
            pending,
            user: None,
            session: p.session.clone(),
            billing_key: p.billing_key.clone(),
        }
    }

    /// The stored user message (waits for the write once).
    async fn user_message(&mut self) -> Result<Message, EngineError> {
        if self.user.is_none() {
            let result = match self.pending.take() {
                Some(handle) => match handle.await {
                    Ok(Ok((message, _))) => Ok(message),
                    Ok(Err(e)) => Err(format!("{e:?}")),
                    Err(e) => Err(format!("user message task: {e}")),
                },
                None => Err("this turn is not recorded".to_owned()),
            };
            self.user = Some(result);
        }
        match &self.user {
            Some(Ok(m)) => Ok(m.clone()),
            Some(Err(e)) => Err(EngineError::Internal(e.clone())),
            None => Err(EngineError::Internal("no user message".to_owned())),
        }
    }

    /// Stores a tool call and its result as a `tool` message (best effort:
    /// a failure is logged; the reply goes on).
    async fn store_tool(
        &self,
        store: &tidechat_store::Store,
        model: &str,
        call: &ToolCall,
        outcome: &ToolOutcome,
    ) {
        let Some(session) = &self.session else { return };
        let arguments: Value =
            serde_json::from_str(&call.arguments).unwrap_or(Value::String(call.arguments.clone()));
        let result: Value = serde_json::from_str(&outcome.content)
            .unwrap_or(Value::String(outcome.content.clone()));
        let content = json!({
            "tool": call.name,
            "callId": call.id,
            "arguments": arguments,
            "result": result,
            "isError": outcome.is_error,
        })
        .to_string();
        let message = NewMessage {
            id: MessageId::generate(),
            session_id: session.id.clone(),
            org_id: session.org_id.clone(),
            role: Role::Tool,
            content,
            input_tokens: 0,
            output_tokens: 0,
            tokens_estimated: false,
            model: model.to_owned(),
            latency_ms: 0,
            cost_usd_micros: 0,
            moderation_verdict: Verdict::Allowed.as_str().to_owned(),
            drift_score: 0.0,
            status: if outcome.is_error {
                MessageStatus::Failed
            } else {
                MessageStatus::Complete
            },
            created_at: Utc::now(),
            billed: false,
            api_key_id: self.billing_key.clone(),
            first_token_ms: None,
            original_content: None,
            citations: Vec::new(),
            moderation: Vec::new(),
            drift_alpha: None,
            client_message_id: None,
            reply_to: None,
        };
        if let Err(e) = store.append_message(&message).await {
            tracing::error!(error = ?e, session = %session.id, "could not store a tool message");
        }
    }
}

/// What generation produced so far.
struct Generation {
    /// Text released to the client.
    text: String,
    /// Everything the model wrote (kept for audit when moderation replaces it).
    raw: String,
    usage: Option<Usage>,
    status: MessageStatus,
    error: Option<EngineError>,
    /// The model that answered (after fallbacks) and its prices.
    model_id: Option<String>,
    pricing: Option<Pricing>,
    first_token_ms: Option<i64>,
    /// Set when moderation stopped the reply.
    blocked: Option<Finding>,
    verdict: Verdict,
    findings: Vec<Finding>,
    classifier_findings: Vec<Finding>,
    /// The persona's `moderation:` settings (external classifier failure policy).
    moderation: ModerationSettings,
    /// Tool rounds run (their model calls are billed even if a later call fails).
    tool_rounds: usize,
}

impl Default for Generation {
    fn default() -> Self {
        Self {
            text: String::new(),
            raw: String::new(),
            usage: None,
            status: MessageStatus::Complete,
            error: None,
            model_id: None,
            pricing: None,
            first_token_ms: None,
            blocked: None,
            verdict: Verdict::Allowed,
            findings: Vec::new(),
            classifier_findings: Vec::new(),
            moderation: ModerationSettings::default(),
            tool_rounds: 0,
        }
    }
}

impl Generation {
    /// Sends released text; false when the client is gone.
    async fn release(
        &mut self,
        text: String,
        tx: &mpsc::Sender<TurnEvent>,
        started: Instant,
    ) -> bool {
        if text.is_empty() {
            return true;
        }
        if self.first_token_ms.is_none() {
            self.first_token_ms = Some(elapsed_ms(started));
        }
        self.text.push_str(&text);
        tx.send(TurnEvent::Delta(text)).await.is_ok()
    }

    /// Sums usage over the steps of a tool loop.
    fn add_usage(&mut self, usage: Usage) {
        self.usage = Some(match self.usage.take() {
            None => usage,
            Some(sum) => Usage {
                input_tokens: sum.input_tokens + usage.input_tokens,
                output_tokens: sum.output_tokens + usage.output_tokens,
                estimated: sum.estimated || usage.estimated,
            },
        });
    }

    /// True when nothing more should be generated.
    fn stopped(&self) -> bool {
        self.blocked.is_some() || self.error.is_some() || self.status != MessageStatus::Complete
    }
}

/// Findings as stored moderation records.
fn records(findings: &[Finding]) -> Vec<ModerationRecord> {
    findings
        .iter()
        .map(|f| ModerationRecord {
            stage: match f.stage {
                Stage::Input => "input",
                Stage::Output => "output",
            }
            .to_owned(),
            category: f.category.clone(),
            rule: f.rule.chars().take(200).collect(),
            action: match f.action {
                Action::Block => "block",
                Action::Redact => "redact",
                Action::Flag => "flag",
                Action::Note => "note",
            }
            .to_owned(),
            excerpt: f.excerpt.clone(),
        })
        .collect()
}

fn elapsed_ms(started: Instant) -> i64 {
    i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX)
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn system_prompt(persona: &Persona, policy: &GuardPolicy, memory_digest: Option<&str>) -> String {
    let mut prompt = persona.system_prompt.clone();
    // `moderation:` lines configure the guard, they are not instructions.
    let rules: Vec<&String> = policy
        .guardrails
        .iter()
        .filter(|r| !tidechat_guard::is_moderation_setting(r))
        .collect();
    if !rules.is_empty() {
        prompt.push_str("\n\nRules you must follow:");
        for rule in rules {
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
