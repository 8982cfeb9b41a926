//! The website widget: sites (public site keys), the visitor side (scoped by
//! site key + the widget's session id, no credential) and the operator side
//! (API keys): takeover, replies, handback, blocking, proactive messages.
//!
//! A widget conversation is a session plus its widget state; operator
//! replies are stored as assistant messages whose `model` is `operator`.

use std::time::Duration;

use chrono::Utc;
use tidechat_domain::{
    validate, ConversationMode, KeyScope, Message, MessageId, MessageStatus, PersonaId,
    ProactiveId, ProactiveMessage, Role, Session, SessionId, Site, SiteId, SiteSettings,
    WidgetConversation,
};
use tidechat_store::{repo, NewMessage, OperatorUpdate, VisitorUpdate};

use crate::auth::{generate_signing_secret, Principal, PrincipalKind};
use crate::{Engine, EngineError, Turn, TurnRequest};

/// The `model` of operator messages.
pub const OPERATOR_MODEL: &str = "operator";
/// Longest widget session id.
const VISITOR_KEY_MAX: usize = 128;
const CONTACT_MAX: usize = 254;
/// Operator messages one visitor poll delivers at most (the rest come with
/// the next poll).
const OPERATOR_POLL_MAX: i64 = 200;
/// Conversations the operator's list shows at most.
const CONVERSATIONS_MAX: i64 = 500;
/// How long a retried send waits for the first attempt's reply.
const REPLAY_WAIT: Duration = Duration::from_secs(20);
/// How often a retried send looks for it (one indexed lookup each time).
const REPLAY_POLL: Duration = Duration::from_millis(200);
/// The `model` of visitor messages queued for an operator.
const QUEUED_MODEL: &str = "widget";

/// A site as created or replaced through the API.
#[derive(Debug, Clone, Default)]
pub struct SiteDraft {
    pub name: String,
    pub persona_id: Option<String>,
    pub allowed_origins: Vec<String>,
    pub settings: SiteSettings,
}

/// What a visitor's message led to.
pub enum WidgetSend {
    /// The AI answers: stream this turn.
    Reply { turn: Turn, conversation: SessionId },
    /// A retried `message_id`: the reply stored for the first attempt.
    Replay {
        text: String,
        conversation: SessionId,
    },
    /// The conversation is with an operator: the message waits for them.
    Queued {
        conversation: SessionId,
        handed_off: bool,
        /// The visitor's stored message.
        message: Box<Message>,
    },
}

/// Filters for the operator's conversation list (applied in the query).
pub use tidechat_store::ConversationFilter;

/// A conversation as the operator sees it.
#[derive(Debug, Clone)]
pub struct ConversationView {
    pub conversation: WidgetConversation,
    pub session: Session,
    pub last_message: Option<Message>,
}

fn origin_ok(origin: &str) -> bool {
    (origin.starts_with("https://") || origin.starts_with("http://"))
        && !origin[origin.find("://").map_or(0, |i| i + 3)..].contains('/')
}

fn check_site(draft: &SiteDraft) -> Result<(), EngineError> {
    validate::required_text("name", &draft.name, validate::NAME_MAX_CHARS)?;
    if draft.allowed_origins.len() > 50 {
        return Err(EngineError::validation(
            "allowedOrigins",
            "at most 50 origins",
        ));
    }
    for o in &draft.allowed_origins {
        if !origin_ok(o) {
            return Err(EngineError::validation(
                "allowedOrigins",
                format!(
                    "`{}` is not an origin like https://example.com",
                    o.chars().take(100).collect::<String>()
                ),
            ));
        }
    }
    if let Some(g) = &draft.settings.greeting {
        validate::optional_text("settings.greeting", g, validate::FALLBACK_MAX_CHARS)?;
    }
    for c in [
        &draft.settings.primary_color,
        &draft.settings.background_color,
        &draft.settings.text_color,
    ]
    .into_iter()
    .flatten()
    {
        let hex = c.strip_prefix('#').unwrap_or("");
        if !(hex.len() == 3 || hex.len() == 6) || !hex.chars().all(|ch| ch.is_ascii_hexdigit()) {
            return Err(EngineError::validation(
                "settings",
                "colours are #rgb or #rrggbb",
            ));
        }
    }
    for p in &draft.settings.handoff_phrases {
        validate::required_text("settings.handoffPhrases", p, 200)?;
    }
    Ok(())
}

/// A change of the conversation's mode only.
fn mode(mode: ConversationMode) -> OperatorUpdate {
    OperatorUpdate {
        mode: Some(mode),
        blocked: None,
    }
}

/// `*` matches any run of characters; everything else literally.
pub fn url_matches(pattern: &str, url: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let mut rest = url;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else {
                return false;
            };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(pos) => rest = &rest[pos + part.len()..],
                None => return false,
            }
        }
    }
    rest.is_empty()
}

impl Engine {
    // ---- sites (API keys, admin) ----

    pub async fn create_site(
        &self,
        who: &Principal,
        draft: SiteDraft,
    ) -> Result<Site, EngineError> {
        who.require_admin()?;
        check_site(&draft)?;
        let persona = self.site_persona(who, draft.persona_id.as_deref()).await?;
        let now = Utc::now();
        let site = Site {
            id: SiteId::generate(),
            org_id: who.org_id.clone(),
            workspace_id: who.workspace_id.clone(),
            persona_id: persona,
            site_key: format!("sk_{}", &generate_signing_secret()[..32]),
            name: draft.name.trim().to_owned(),
            allowed_origins: draft.allowed_origins,
            settings: draft.settings,
            created_at: now,
            updated_at: now,
        };
        self.inner.store.insert_site(&site).await?;
        Ok(site)
    }

    async fn site_persona(
        &self,
        who: &Principal,
        persona: Option<&str>,
    ) -> Result<PersonaId, EngineError> {
        Ok(self.resolve_persona(&who.org_id, persona).await?.id)
    }

    pub async fn list_sites(&self, who: &Principal) -> Result<Vec<Site>, EngineError> {
        who.require_admin()?;
        Ok(self.inner.store.list_sites(&who.org_id).await?)
    }

    /// A site of the caller's organization. Sites, their conversations and
    /// everything an operator does with them need an admin-scoped key: chat
    /// keys only hold conversations (the visitors' contact details are not
    /// theirs to read).
    pub async fn get_site(&self, who: &Principal, id: &str) -> Result<Site, EngineError> {
        who.require_admin()?;
        let id = SiteId::parse(id).map_err(|_| EngineError::NotFound("site"))?;
        self.inner
            .store
            .get_site(&who.org_id, &id)
            .await?
            .ok_or(EngineError::NotFound("site"))
    }

    pub async fn update_site(
        &self,
        who: &Principal,
        id: &str,
        draft: SiteDraft,
    ) -> Result<Site, EngineError> {
        who.require_admin()?;
        check_site(&draft)?;
        let mut site = self.get_site(who, id).await?;
        site.persona_id = self.site_persona(who, draft.persona_id.as_deref()).await?;
        site.name = draft.name.trim().to_owned();
        site.allowed_origins = draft.allowed_origins;
        site.settings = draft.settings;
        site.updated_at = Utc::now();
        self.inner.store.update_site(&site).await?;
        Ok(site)
    }

    // ---- the visitor side (public) ----

    /// The site of a public key; unknown keys are not found.
    pub async fn site_for_key(&self, site_key: &str) -> Result<Site, EngineError> {
        if site_key.chars().any(char::is_control) {
            return Err(EngineError::validation(
                "site_key",
                "must not contain control characters",
            ));
        }
        if site_key.is_empty() || site_key.len() > 100 {
            return Err(EngineError::UnknownSite);
        }
        self.inner
            .store
            .site_by_key(site_key)
            .await?
            .ok_or(EngineError::UnknownSite)
    }

    /// Whether some site allows this browser origin (CORS preflight).
    pub async fn origin_allowed_anywhere(&self, origin: &str) -> Result<bool, EngineError> {
        Ok(origin_ok(origin) && self.inner.store.origin_allowed_anywhere(origin).await?)
    }

    fn check_visitor_key(key: &str) -> Result<(), EngineError> {
        validate::required_text("session_id", key, VISITOR_KEY_MAX)?;
        Ok(())
    }

    /// The visitor's conversation, if it exists.
    pub async fn visitor(
        &self,
        site: &Site,
        visitor_key: &str,
    ) -> Result<Option<(WidgetConversation, Session)>, EngineError> {
        Self::check_visitor_key(visitor_key)?;
        Ok(self
            .inner
            .store
            .widget_conversation(&site.id, visitor_key)
            .await?)
    }

    /// The visitor's conversation, created on first use.
    pub async fn visitor_or_new(
        &self,
        site: &Site,
        visitor_key: &str,
    ) -> Result<(WidgetConversation, Session), EngineError> {
        if let Some(found) = self.visitor(site, visitor_key).await? {
            return Ok(found);
        }
        let now = Utc::now();
        let session = Session {
            title: Some(format!("Widget: {}", site.name)),
            ..Session::new(
                site.org_id.clone(),
                site.workspace_id.clone(),
                site.persona_id.clone(),
                now,
            )
        };
        let conversation = WidgetConversation {
            session_id: session.id.clone(),
            org_id: site.org_id.clone(),
            site_id: site.id.clone(),
            visitor_key: visitor_key.to_owned(),
            mode: ConversationMode::Ai,
            email: None,
            phone: None,
            name: None,
            rating: None,
            rating_comment: None,
            blocked: false,
            operator_read_seq: -1,
            created_at: now,
            updated_at: now,
        };
        let created = self
            .inner
            .store
            .transaction(async |c| {
                repo::sessions::insert_session(c, &session).await?;
                repo::widget::insert_conversation(c, &conversation).await
            })
            .await;
        match created {
            Ok(()) => Ok((conversation, session)),
            // Two first requests raced: use the winner's.
            Err(_) => self
                .visitor(site, visitor_key)
                .await?
                .ok_or_else(|| EngineError::Internal("conversation vanished".to_owned())),
        }
    }

    /// A principal that may only use this conversation's session.
    fn visitor_principal(site: &Site, session: &SessionId) -> Principal {
        Principal {
            org_id: site.org_id.clone(),
            workspace_id: site.workspace_id.clone(),
            kind: PrincipalKind::SessionToken(session.clone()),
            scope: KeyScope::Chat,
            billing_key: None,
            limits: None,
        }
    }

    /// A visitor's message. In AI mode the persona answers (`lang` asks for
    /// the reply language); in operator mode it waits for the operator; a
    /// configured handoff phrase switches to operator mode. A retried
    /// `message_id` replays the first attempt's reply instead of asking the
    /// model again.
    pub async fn widget_send(
        &self,
        site: &Site,
        visitor_key: &str,
        message: &str,
        lang: Option<&str>,
        message_id: Option<&str>,
    ) -> Result<WidgetSend, EngineError> {
        validate::user_text(message)?;
        if let Some(lang) = lang {
            validate::required_text("lang", lang, 35)?;
        }
        let (conversation, session) = self.visitor_or_new(site, visitor_key).await?;
        if conversation.blocked {
            return Err(EngineError::Forbidden("this visitor is blocked"));
        }
        let claimed_at = Utc::now();
        // The one write in front of the first token on this surface, on
        // purpose: claiming the id first is what makes two racing retries
        // produce one answer. (A visitor's first message also creates the
        // conversation here; every other write runs beside the model call.)
        if let Some(id) = message_id.filter(|m| !m.is_empty()) {
            validate::required_text("message_id", id, 128)?;
            if !self
                .inner
                .store
                .claim_client_message_id(&session.id, id, claimed_at)
                .await?
            {
                return self.replayed(session.id, id).await;
            }
        }
        let message_id = message_id.filter(|m| !m.is_empty());
        let lower = message.to_lowercase();
        let handoff = conversation.mode == ConversationMode::Ai
            && site
                .settings
                .handoff_phrases
                .iter()
                .any(|p| lower.contains(&p.to_lowercase()));
        if handoff {
            let update = mode(ConversationMode::Operator);
            self.inner
                .store
                .update_conversation(&session.org_id, &session.id, update, Utc::now())
                .await?;
        }
        if handoff || conversation.mode == ConversationMode::Operator {
            let stored = self
                .store_plain(&session, Role::User, message, QUEUED_MODEL, message_id)
                .await?;
            return Ok(WidgetSend::Queued {
                conversation: session.id,
                handed_off: handoff,
                message: Box::new(stored),
            });
        }
        let who = Self::visitor_principal(site, &session.id);
        let extra = lang
            .map(|l| vec![format!("Reply in the language with code `{l}`.")])
            .unwrap_or_default();
        let request = TurnRequest {
            user_text: message.to_owned(),
            extra_guardrails: extra,
            // An LLM persona may hand the chat to a person itself.
            offer_handoff: true,
            client_message_id: message_id.map(str::to_owned),
            ..TurnRequest::default()
        };
        let turn = match self.start_turn(&who, session.id.as_str(), request).await {
            Ok(turn) => turn,
            Err(refused) => {
                // Nothing was answered: a retry with the same id must run
                // again instead of waiting for a reply that never comes.
                if let Some(id) = message_id {
                    if let Err(e) = self
                        .inner
                        .store
                        .release_client_message_id(&session.id, id)
                        .await
                    {
                        tracing::warn!(error = ?e, "could not release a refused message id");
                    }
                }
                return Err(refused);
            }
        };
        Ok(WidgetSend::Reply {
            turn,
            conversation: session.id,
        })
    }

    /// What the first attempt of a retried message led to: the reply to
    /// the user message stored with that client id (found by id, not by
    /// text), or the queued message in operator mode. Waits (one indexed
    /// lookup per poll) while the first attempt is still being answered.
    async fn replayed(
        &self,
        conversation: SessionId,
        client_message_id: &str,
    ) -> Result<WidgetSend, EngineError> {
        let deadline = tokio::time::Instant::now() + REPLAY_WAIT;
        loop {
            let found = self
                .inner
                .store
                .client_message_reply(&conversation, client_message_id)
                .await?;
            match found {
                Some((_, Some(reply))) => {
                    return Ok(WidgetSend::Replay {
                        text: reply.content,
                        conversation,
                    })
                }
                Some((sent, None)) if sent.model == QUEUED_MODEL => {
                    return Ok(WidgetSend::Queued {
                        conversation,
                        handed_off: false,
                        message: Box::new(sent),
                    })
                }
                _ => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(EngineError::InProgress(
                    "this message is still being answered; retry later".to_owned(),
                ));
            }
            tokio::time::sleep(REPLAY_POLL).await;
        }
    }

    async fn store_plain(
        &self,
        session: &Session,
        role: Role,
        content: &str,
        model: &str,
        client_message_id: Option<&str>,
    ) -> Result<Message, EngineError> {
        let message = NewMessage {
            id: MessageId::generate(),
            session_id: session.id.clone(),
            org_id: session.org_id.clone(),
            role,
            content: content.to_owned(),
            input_tokens: 0,
            output_tokens: 0,
            tokens_estimated: false,
            model: model.to_owned(),
            latency_ms: 0,
            cost_usd_micros: 0,
            moderation_verdict: "allowed".to_owned(),
            drift_score: 0.0,
            status: MessageStatus::Complete,
            created_at: Utc::now(),
            billed: false,
            api_key_id: None,
            first_token_ms: None,
            original_content: None,
            citations: Vec::new(),
            moderation: Vec::new(),
            drift_alpha: None,
            client_message_id: client_message_id.map(str::to_owned),
            reply_to: None,
        };
        Ok(self.inner.store.append_message(&message).await?.0)
    }

    /// The visitor's conversation history (empty before the first message).
    pub async fn widget_history(
        &self,
        site: &Site,
        visitor_key: &str,
    ) -> Result<Vec<Message>, EngineError> {
        match self.visitor(site, visitor_key).await? {
            None => Ok(Vec::new()),
            Some((c, s)) => {
                if c.blocked {
                    return Err(EngineError::Forbidden("this visitor is blocked"));
                }
                let messages = self
                    .inner
                    .store
                    .messages_after_seq(&s.id, -1, 1_000)
                    .await?;
                Ok(messages
                    .into_iter()
                    .filter(|m| m.role != Role::Tool && m.role != Role::System)
                    .collect())
            }
        }
    }

    /// Applies a visitor's change to their conversation (created if
    /// needed): only the columns the change names are written, and only
    /// while the conversation is not blocked (checked in the same statement).
    async fn update_visitor(
        &self,
        site: &Site,
        visitor_key: &str,
        update: VisitorUpdate,
    ) -> Result<(), EngineError> {
        let (c, _) = self.visitor_or_new(site, visitor_key).await?;
        let updated = !c.blocked
            && self
                .inner
                .store
                .update_visitor(&site.id, visitor_key, &update, Utc::now())
                .await?;
        if updated {
            Ok(())
        } else {
            Err(EngineError::Forbidden("this visitor is blocked"))
        }
    }

    /// Saves contact details; at least an email or a phone number.
    pub async fn widget_contact(
        &self,
        site: &Site,
        visitor_key: &str,
        email: Option<String>,
        phone: Option<String>,
        name: Option<String>,
    ) -> Result<(), EngineError> {
        let email = email.map(|e| e.trim().to_owned()).filter(|e| !e.is_empty());
        let phone = phone.map(|p| p.trim().to_owned()).filter(|p| !p.is_empty());
        let name = name.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
        if email.is_none() && phone.is_none() {
            return Err(EngineError::validation(
                "email",
                "give an email address or a phone number",
            ));
        }
        if let Some(e) = &email {
            let valid = e.len() <= CONTACT_MAX
                && e.split_once('@').is_some_and(|(l, d)| {
                    !l.is_empty() && d.contains('.') && !d.starts_with('.') && !d.ends_with('.')
                })
                && !e.contains(|c: char| c.is_whitespace() || c.is_control());
            if !valid {
                return Err(EngineError::validation("email", "is not an email address"));
            }
        }
        if let Some(p) = &phone {
            let digits = p.chars().filter(char::is_ascii_digit).count();
            if !(7..=15).contains(&digits)
                || !p
                    .chars()
                    .all(|c| c.is_ascii_digit() || " +-().".contains(c))
            {
                return Err(EngineError::validation(
                    "phone",
                    "is not a phone number (7–15 digits)",
                ));
            }
        }
        if let Some(n) = &name {
            validate::optional_text("name", n, 100)?;
        }
        let update = VisitorUpdate {
            email,
            phone,
            name,
            ..VisitorUpdate::default()
        };
        self.update_visitor(site, visitor_key, update).await
    }

    pub async fn widget_rate(
        &self,
        site: &Site,
        visitor_key: &str,
        score: i64,
    ) -> Result<(), EngineError> {
        if !(1..=5).contains(&score) {
            return Err(EngineError::validation("score", "must be 1 to 5"));
        }
        let update = VisitorUpdate {
            rating: Some(score),
            ..VisitorUpdate::default()
        };
        self.update_visitor(site, visitor_key, update).await
    }

    pub async fn widget_rate_comment(
        &self,
        site: &Site,
        visitor_key: &str,
        comment: &str,
    ) -> Result<(), EngineError> {
        validate::required_text("comment", comment, 2_000)?;
        let comment = comment.trim().to_owned();
        let update = VisitorUpdate {
            rating_comment: Some(comment),
            ..VisitorUpdate::default()
        };
        self.update_visitor(site, visitor_key, update).await
    }

    /// Operator messages the visitor has not seen yet, and the mode.
    pub async fn widget_operator_messages(
        &self,
        site: &Site,
        visitor_key: &str,
    ) -> Result<(Vec<Message>, ConversationMode), EngineError> {
        let Some((c, s)) = self.visitor(site, visitor_key).await? else {
            return Ok((Vec::new(), ConversationMode::Ai));
        };
        if c.blocked {
            return Err(EngineError::Forbidden("this visitor is blocked"));
        }
        // Filtered in the query: any number of AI messages after the mark
        // cannot hide an operator reply.
        let messages = self
            .inner
            .store
            .messages_by_model_after(
                &s.id,
                Role::Assistant,
                OPERATOR_MODEL,
                c.operator_read_seq,
                OPERATOR_POLL_MAX,
            )
            .await?;
        if let Some(last) = messages.last() {
            self.inner
                .store
                .advance_operator_read(&s.id, last.seq)
                .await?;
        }
        Ok((messages, c.mode))
    }

    pub async fn widget_blocked(
        &self,
        site: &Site,
        visitor_key: &str,
    ) -> Result<bool, EngineError> {
        Ok(self
            .visitor(site, visitor_key)
            .await?
            .is_some_and(|(c, _)| c.blocked))
    }

    /// Proactive messages for this page that the visitor has not had yet
    /// (each is delivered once per visitor).
    pub async fn widget_proactive(
        &self,
        site: &Site,
        visitor_key: &str,
        url: &str,
    ) -> Result<Vec<ProactiveMessage>, EngineError> {
        Self::check_visitor_key(visitor_key)?;
        if self.widget_blocked(site, visitor_key).await? {
            return Err(EngineError::Forbidden("this visitor is blocked"));
        }
        let mut out = Vec::new();
        for p in self.inner.store.list_proactive(&site.id).await? {
            if url_matches(&p.url_pattern, url)
                && self
                    .inner
                    .store
                    .deliver_proactive(&p.id, visitor_key, Utc::now())
                    .await?
            {
                out.push(p);
            }
        }
        Ok(out)
    }

    // ---- the operator side (API keys) ----

    pub async fn conversations(
        &self,
        who: &Principal,
        site: &str,
        filter: &ConversationFilter,
    ) -> Result<Vec<ConversationView>, EngineError> {
        let site = self.get_site(who, site).await?;
        let rows = self
            .inner
            .store
            .widget_conversations(&who.org_id, &site.id, filter, CONVERSATIONS_MAX)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(conversation, session, last_message)| ConversationView {
                conversation,
                session,
                last_message,
            })
            .collect())
    }

    pub async fn conversation(
        &self,
        who: &Principal,
        site: &str,
        id: &str,
    ) -> Result<(ConversationView, Vec<Message>), EngineError> {
        let site = self.get_site(who, site).await?;
        let id = SessionId::parse(id).map_err(|_| EngineError::NotFound("conversation"))?;
        let (conversation, session) = self
            .inner
            .store
            .widget_conversation_by_session(&who.org_id, &id)
            .await?
            .filter(|(c, _)| c.site_id == site.id)
            .ok_or(EngineError::NotFound("conversation"))?;
        let messages = self
            .inner
            .store
            .messages_after_seq(&session.id, -1, 1_000)
            .await?;
        let last_message = messages.last().cloned();
        Ok((
            ConversationView {
                conversation,
                session,
                last_message,
            },
            messages,
        ))
    }

    /// Applies an operator's change to the conversation's mode or block
    /// (only those columns), then reads it back.
    async fn change_conversation(
        &self,
        who: &Principal,
        site: &str,
        id: &str,
        update: OperatorUpdate,
    ) -> Result<ConversationView, EngineError> {
        who.require_admin()?;
        let site = self.get_site(who, site).await?;
        let id = SessionId::parse(id).map_err(|_| EngineError::NotFound("conversation"))?;
        let store = &self.inner.store;
        let found = store
            .widget_conversation_by_session(&who.org_id, &id)
            .await?
            .filter(|(c, _)| c.site_id == site.id);
        if found.is_none()
            || !store
                .update_conversation(&who.org_id, &id, update, Utc::now())
                .await?
        {
            return Err(EngineError::NotFound("conversation"));
        }
        let (conversation, session) = store
            .widget_conversation_by_session(&who.org_id, &id)
            .await?
            .ok_or(EngineError::NotFound("conversation"))?;
        let last_message = store.recent_messages(&session.id, 1).await?.pop();
        Ok(ConversationView {
            conversation,
            session,
            last_message,
        })
    }

    /// The operator takes over: the AI stays silent.
    pub async fn takeover(
        &self,
        who: &Principal,
        site: &str,
        id: &str,
    ) -> Result<ConversationView, EngineError> {
        self.change_conversation(who, site, id, mode(ConversationMode::Operator))
            .await
    }

    pub async fn handback(
        &self,
        who: &Principal,
        site: &str,
        id: &str,
    ) -> Result<ConversationView, EngineError> {
        self.change_conversation(who, site, id, mode(ConversationMode::Ai))
            .await
    }

    pub async fn set_blocked(
        &self,
        who: &Principal,
        site: &str,
        id: &str,
        blocked: bool,
    ) -> Result<ConversationView, EngineError> {
        let update = OperatorUpdate {
            mode: None,
            blocked: Some(blocked),
        };
        self.change_conversation(who, site, id, update).await
    }

    /// An operator's reply (takes the conversation over if the AI had it).
    pub async fn operator_reply(
        &self,
        who: &Principal,
        site: &str,
        id: &str,
        content: &str,
    ) -> Result<Message, EngineError> {
        validate::required_text("content", content, validate::USER_TEXT_MAX_CHARS)?;
        let view = self
            .change_conversation(who, site, id, mode(ConversationMode::Operator))
            .await?;
        self.store_plain(
            &view.session,
            Role::Assistant,
            content.trim(),
            OPERATOR_MODEL,
            None,
        )
        .await
    }

    pub async fn create_proactive(
        &self,
        who: &Principal,
        site: &str,
        content: &str,
        delay_seconds: i64,
        url_pattern: &str,
    ) -> Result<ProactiveMessage, EngineError> {
        who.require_admin()?;
        let site = self.get_site(who, site).await?;
        validate::required_text("content", content, 2_000)?;
        validate::required_text("urlPattern", url_pattern, 2_000)?;
        if !(0..=3_600).contains(&delay_seconds) {
            return Err(EngineError::validation("delaySeconds", "must be 0 to 3600"));
        }
        let p = ProactiveMessage {
            id: ProactiveId::generate(),
            org_id: who.org_id.clone(),
            site_id: site.id,
            content: content.trim().to_owned(),
            delay_seconds,
            url_pattern: url_pattern.trim().to_owned(),
            created_at: Utc::now(),
        };
        self.inner.store.insert_proactive(&p).await?;
        Ok(p)
    }

    pub async fn list_proactive(
        &self,
        who: &Principal,
        site: &str,
    ) -> Result<Vec<ProactiveMessage>, EngineError> {
        let site = self.get_site(who, site).await?;
        Ok(self.inner.store.list_proactive(&site.id).await?)
    }

    pub async fn delete_proactive(
        &self,
        who: &Principal,
        site: &str,
        id: &str,
    ) -> Result<(), EngineError> {
        who.require_admin()?;
        self.get_site(who, site).await?;
        let id = ProactiveId::parse(id).map_err(|_| EngineError::NotFound("proactive message"))?;
        if self.inner.store.delete_proactive(&who.org_id, &id).await? {
            Ok(())
        } else {
            Err(EngineError::NotFound("proactive message"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_patterns() {
        assert!(url_matches("*", "https://a.test/x"));
        assert!(url_matches(
            "https://a.test/*/checkout",
            "https://a.test/shop/checkout"
        ));
        assert!(!url_matches(
            "https://a.test/*/checkout",
            "https://a.test/shop/cart"
        ));
        assert!(url_matches(
            "https://a.test/pricing",
            "https://a.test/pricing"
        ));
        assert!(!url_matches(
            "https://a.test/pricing",
            "https://a.test/pricing/more"
        ));
        assert!(url_matches("*pricing*", "https://a.test/pricing?x=1"));
    }

    #[test]
    fn origins() {
        assert!(origin_ok("https://example.com"));
        assert!(origin_ok("http://localhost:8080"));
        assert!(!origin_ok("https://example.com/path"));
        assert!(!origin_ok("example.com"));
    }
}
