//! Sites and the operator side of widget conversations (`/v1/sites…`, API keys).

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use tidechat_domain::{ConversationMode, Site, SiteSettings};
use tidechat_engine::{ConversationFilter, ConversationView, SiteDraft};
use utoipa::{IntoParams, ToSchema};

use crate::auth::AdminAuth;
use crate::dto::{timestamp, MessageDto};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Json, OptionalJson};
use crate::state::AppState;

type Result<T> = std::result::Result<T, ApiError>;

#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SiteSettingsDto {
    pub greeting: Option<String>,
    /// `#rgb` or `#rrggbb`.
    pub primary_color: Option<String>,
    pub background_color: Option<String>,
    pub text_color: Option<String>,
    /// Ask visitors for an email address.
    #[serde(default)]
    pub ask_email: bool,
    /// Visitor phrases that hand the conversation to a human (e.g. "talk to a human").
    #[serde(default)]
    pub handoff_phrases: Vec<String>,
}

/// A website embedding the widget.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SiteDto {
    pub site_id: String,
    /// Public: goes into the page (`<tidechat-widget site-key="sk_…">`).
    pub site_key: String,
    pub name: String,
    pub persona_id: String,
    /// Browser origins allowed to use the public widget API.
    pub allowed_origins: Vec<String>,
    pub settings: SiteSettingsDto,
    pub created_at: String,
    pub updated_at: String,
}

impl From<Site> for SiteDto {
    fn from(s: Site) -> Self {
        Self {
            site_id: s.id.into_string(),
            site_key: s.site_key,
            name: s.name,
            persona_id: s.persona_id.into_string(),
            allowed_origins: s.allowed_origins,
            settings: SiteSettingsDto {
                greeting: s.settings.greeting,
                primary_color: s.settings.primary_color,
                background_color: s.settings.background_color,
                text_color: s.settings.text_color,
                ask_email: s.settings.ask_email,
                handoff_phrases: s.settings.handoff_phrases,
            },
            created_at: timestamp(&s.created_at),
            updated_at: timestamp(&s.updated_at),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SiteRequest {
    pub name: String,
    /// Defaults to the workspace's default persona.
    pub persona_id: Option<String>,
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    #[serde(default)]
    pub settings: SiteSettingsDto,
}

impl From<SiteRequest> for SiteDraft {
    fn from(r: SiteRequest) -> Self {
        Self {
            name: r.name,
            persona_id: r.persona_id,
            allowed_origins: r.allowed_origins,
            settings: SiteSettings {
                greeting: r.settings.greeting,
                primary_color: r.settings.primary_color,
                background_color: r.settings.background_color,
                text_color: r.settings.text_color,
                ask_email: r.settings.ask_email,
                handoff_phrases: r.settings.handoff_phrases,
            },
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SiteList {
    pub items: Vec<SiteDto>,
}

/// A widget conversation, as operators see it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConversationDto {
    /// The conversation (also a `/v1` session id).
    pub conversation_id: String,
    /// The widget's session id of the visitor.
    pub session_id: String,
    pub site_id: String,
    /// `ai` or `operator`.
    pub mode: String,
    /// The visitor's message is the last one.
    pub waiting_for_reply: bool,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub name: Option<String>,
    pub rating: Option<i64>,
    pub rating_comment: Option<String>,
    pub blocked: bool,
    pub message_count: i64,
    pub last_message: Option<MessageDto>,
    pub updated_at: String,
}

impl From<ConversationView> for ConversationDto {
    fn from(v: ConversationView) -> Self {
        let waiting = v
            .last_message
            .as_ref()
            .is_some_and(|m| m.role == tidechat_domain::Role::User);
        Self {
            conversation_id: v.session.id.into_string(),
            session_id: v.conversation.visitor_key,
            site_id: v.conversation.site_id.into_string(),
            mode: v.conversation.mode.as_str().to_owned(),
            waiting_for_reply: waiting,
            email: v.conversation.email,
            phone: v.conversation.phone,
            name: v.conversation.name,
            rating: v.conversation.rating,
            rating_comment: v.conversation.rating_comment,
            blocked: v.conversation.blocked,
            message_count: v.session.message_count,
            last_message: v.last_message.map(MessageDto::from),
            updated_at: timestamp(&v.session.last_active_at.max(v.conversation.updated_at)),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ConversationList {
    pub items: Vec<ConversationDto>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConversationDetail {
    #[serde(flatten)]
    pub conversation: ConversationDto,
    /// Operator replies have `model: "operator"`.
    pub messages: Vec<MessageDto>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ConversationParams {
    /// `ai` or `operator`.
    pub mode: Option<String>,
    /// Only conversations whose last message is the visitor's (`true`) or not.
    pub waiting: Option<bool>,
    pub rated: Option<bool>,
    pub has_contact: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct OperatorReply {
    pub content: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProactiveDto {
    pub proactive_id: String,
    pub content: String,
    pub delay_seconds: i64,
    /// `*` matches anything, e.g. `https://shop.example/*/checkout`.
    pub url_pattern: String,
    pub created_at: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProactiveRequest {
    pub content: String,
    #[serde(default)]
    pub delay_seconds: i64,
    pub url_pattern: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ProactiveList {
    pub items: Vec<ProactiveDto>,
}

fn proactive(p: tidechat_domain::ProactiveMessage) -> ProactiveDto {
    ProactiveDto {
        proactive_id: p.id.into_string(),
        content: p.content,
        delay_seconds: p.delay_seconds,
        url_pattern: p.url_pattern,
        created_at: timestamp(&p.created_at),
    }
}

/// Create a site (its public `siteKey` goes into the page).
#[utoipa::path(post, path = "/v1/sites", tag = "sites", operation_id = "createSite", request_body = SiteRequest,
    responses((status = 201, description = "Created", body = SiteDto),
        (status = 401, description = "Unauthenticated", body = ErrorBody), (status = 403, description = "Admin keys only", body = ErrorBody),
        (status = 422, description = "Validation error", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_site(
    state: web::Data<AppState>,
    AdminAuth(who): AdminAuth,
    Json(body): Json<SiteRequest>,
) -> Result<HttpResponse> {
    let site = state
        .run(move |e| async move { e.create_site(&who, body.into()).await })
        .await?;
    Ok(HttpResponse::Created().json(SiteDto::from(site)))
}

/// List sites.
#[utoipa::path(get, path = "/v1/sites", tag = "sites", operation_id = "listSites",
    responses((status = 200, description = "The sites", body = SiteList), (status = 401, description = "Unauthenticated", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_sites(
    state: web::Data<AppState>,
    AdminAuth(who): AdminAuth,
) -> Result<HttpResponse> {
    let sites = state
        .run(move |e| async move { e.list_sites(&who).await })
        .await?;
    Ok(HttpResponse::Ok().json(SiteList {
        items: sites.into_iter().map(SiteDto::from).collect(),
    }))
}

/// Get a site.
#[utoipa::path(get, path = "/v1/sites/{id}", tag = "sites", operation_id = "getSite",
    params(("id" = String, Path, description = "Site id (`sit_*`)")),
    responses((status = 200, description = "The site", body = SiteDto), (status = 404, description = "Not found", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_site(
    state: web::Data<AppState>,
    AdminAuth(who): AdminAuth,
    id: web::Path<String>,
) -> Result<HttpResponse> {
    let site = state
        .run(move |e| async move { e.get_site(&who, &id).await })
        .await?;
    Ok(HttpResponse::Ok().json(SiteDto::from(site)))
}

/// Replace a site's name, persona, origins and settings (the key stays).
#[utoipa::path(put, path = "/v1/sites/{id}", tag = "sites", operation_id = "updateSite",
    params(("id" = String, Path, description = "Site id (`sit_*`)")), request_body = SiteRequest,
    responses((status = 200, description = "The site", body = SiteDto), (status = 404, description = "Not found", body = ErrorBody),
        (status = 422, description = "Validation error", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update_site(
    state: web::Data<AppState>,
    AdminAuth(who): AdminAuth,
    id: web::Path<String>,
    Json(body): Json<SiteRequest>,
) -> Result<HttpResponse> {
    let site = state
        .run(move |e| async move { e.update_site(&who, &id, body.into()).await })
        .await?;
    Ok(HttpResponse::Ok().json(SiteDto::from(site)))
}

/// A site's conversations, most recent first, with filters.
#[utoipa::path(get, path = "/v1/sites/{id}/conversations", tag = "sites", operation_id = "listConversations",
    params(("id" = String, Path, description = "Site id"), ConversationParams),
    responses((status = 200, description = "Conversations", body = ConversationList), (status = 404, description = "Not found", body = ErrorBody),
        (status = 422, description = "Bad filter", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn conversations(
    state: web::Data<AppState>,
    AdminAuth(who): AdminAuth,
    id: web::Path<String>,
    params: web::Query<ConversationParams>,
) -> Result<HttpResponse> {
    let p = params.into_inner();
    let mode = match p.mode.as_deref() {
        None | Some("") => None,
        Some(m) => Some(
            ConversationMode::parse(m)
                .ok_or_else(|| ApiError::validation("mode: must be ai or operator"))?,
        ),
    };
    let filter = ConversationFilter {
        mode,
        waiting: p.waiting,
        rated: p.rated,
        has_contact: p.has_contact,
    };
    let items = state
        .run(move |e| async move { e.conversations(&who, &id, &filter).await })
        .await?;
    Ok(HttpResponse::Ok().json(ConversationList {
        items: items.into_iter().map(ConversationDto::from).collect(),
    }))
}

/// One conversation with its messages.
#[utoipa::path(get, path = "/v1/sites/{id}/conversations/{conversationId}", tag = "sites", operation_id = "getConversation",
    params(("id" = String, Path, description = "Site id"), ("conversationId" = String, Path, description = "Conversation id")),
    responses((status = 200, description = "The conversation", body = ConversationDetail), (status = 404, description = "Not found", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn conversation(
    state: web::Data<AppState>,
    AdminAuth(who): AdminAuth,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse> {
    let (site, id) = path.into_inner();
    let (view, messages) = state
        .run(move |e| async move { e.conversation(&who, &site, &id).await })
        .await?;
    Ok(HttpResponse::Ok().json(ConversationDetail {
        conversation: view.into(),
        messages: messages.into_iter().map(MessageDto::with_audit).collect(),
    }))
}

macro_rules! conversation_action {
    ($name:ident, $path:literal, $op:literal, $doc:literal, $call:ident $(, $arg:expr)?) => {
        #[doc = $doc]
        #[utoipa::path(post, path = $path, tag = "sites", operation_id = $op,
            params(("id" = String, Path, description = "Site id"), ("conversationId" = String, Path, description = "Conversation id")),
            responses((status = 200, description = "The conversation", body = ConversationDto), (status = 404, description = "Not found", body = ErrorBody)),
            security(("bearer" = [])))]
        pub async fn $name(state: web::Data<AppState>, AdminAuth(who): AdminAuth, path: web::Path<(String, String)>) -> Result<HttpResponse> {
            let (site, id) = path.into_inner();
            let view = state.run(move |e| async move { e.$call(&who, &site, &id $(, $arg)?).await }).await?;
            Ok(HttpResponse::Ok().json(ConversationDto::from(view)))
        }
    };
}

conversation_action!(
    takeover,
    "/v1/sites/{id}/conversations/{conversationId}/takeover",
    "takeoverConversation",
    "An operator takes over: the AI stays silent and the visitor's messages wait for the operator.",
    takeover
);
conversation_action!(
    handback,
    "/v1/sites/{id}/conversations/{conversationId}/handback",
    "handbackConversation",
    "Hand the conversation back to the AI.",
    handback
);
conversation_action!(
    block,
    "/v1/sites/{id}/conversations/{conversationId}/block",
    "blockVisitor",
    "Block the visitor: every widget endpoint refuses them.",
    set_blocked,
    true
);
conversation_action!(
    unblock,
    "/v1/sites/{id}/conversations/{conversationId}/unblock",
    "unblockVisitor",
    "Unblock the visitor.",
    set_blocked,
    false
);

/// Reply as the operator (takes the conversation over if the AI had it).
#[utoipa::path(post, path = "/v1/sites/{id}/conversations/{conversationId}/reply", tag = "sites", operation_id = "operatorReply",
    params(("id" = String, Path, description = "Site id"), ("conversationId" = String, Path, description = "Conversation id")),
    request_body = OperatorReply,
    responses((status = 201, description = "The stored message", body = MessageDto), (status = 404, description = "Not found", body = ErrorBody),
        (status = 422, description = "Empty content", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn reply(
    state: web::Data<AppState>,
    AdminAuth(who): AdminAuth,
    path: web::Path<(String, String)>,
    Json(body): Json<OperatorReply>,
) -> Result<HttpResponse> {
    let (site, id) = path.into_inner();
    let message = state
        .run(move |e| async move { e.operator_reply(&who, &site, &id, &body.content).await })
        .await?;
    Ok(HttpResponse::Created().json(MessageDto::from(message)))
}

/// Create a proactive message (shown after `delaySeconds` on matching pages, once per visitor).
#[utoipa::path(post, path = "/v1/sites/{id}/proactive", tag = "sites", operation_id = "createProactive",
    params(("id" = String, Path, description = "Site id")), request_body = ProactiveRequest,
    responses((status = 201, description = "Created", body = ProactiveDto), (status = 404, description = "Site not found", body = ErrorBody),
        (status = 422, description = "Validation error", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_proactive(
    state: web::Data<AppState>,
    AdminAuth(who): AdminAuth,
    id: web::Path<String>,
    OptionalJson(body): OptionalJson<Option<ProactiveRequest>>,
) -> Result<HttpResponse> {
    let body = body.ok_or_else(|| {
        ApiError::validation("a JSON body {content, delaySeconds, urlPattern} is required")
    })?;
    let p = state
        .run(move |e| async move {
            e.create_proactive(
                &who,
                &id,
                &body.content,
                body.delay_seconds,
                &body.url_pattern,
            )
            .await
        })
        .await?;
    Ok(HttpResponse::Created().json(proactive(p)))
}

/// List a site's proactive messages.
#[utoipa::path(get, path = "/v1/sites/{id}/proactive", tag = "sites", operation_id = "listProactive",
    params(("id" = String, Path, description = "Site id")),
    responses((status = 200, description = "The messages", body = ProactiveList), (status = 404, description = "Site not found", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_proactive(
    state: web::Data<AppState>,
    AdminAuth(who): AdminAuth,
    id: web::Path<String>,
) -> Result<HttpResponse> {
    let items = state
        .run(move |e| async move { e.list_proactive(&who, &id).await })
        .await?;
    Ok(HttpResponse::Ok().json(ProactiveList {
        items: items.into_iter().map(proactive).collect(),
    }))
}

/// Delete a proactive message.
#[utoipa::path(delete, path = "/v1/sites/{id}/proactive/{proactiveId}", tag = "sites", operation_id = "deleteProactive",
    params(("id" = String, Path, description = "Site id"), ("proactiveId" = String, Path, description = "Proactive message id")),
    responses((status = 204, description = "Deleted"), (status = 404, description = "Not found", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_proactive(
    state: web::Data<AppState>,
    AdminAuth(who): AdminAuth,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse> {
    let (site, id) = path.into_inner();
    state
        .run(move |e| async move { e.delete_proactive(&who, &site, &id).await })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v1/sites")
            .route(web::post().to(create_site))
            .route(web::get().to(list_sites)),
    )
    .service(
        web::resource("/v1/sites/{id}")
            .route(web::get().to(get_site))
            .route(web::put().to(update_site)),
    )
    .service(web::resource("/v1/sites/{id}/conversations").route(web::get().to(conversations)))
    .service(
        web::resource("/v1/sites/{id}/conversations/{conversationId}")
            .route(web::get().to(conversation)),
    )
    .service(
        web::resource("/v1/sites/{id}/conversations/{conversationId}/takeover")
            .route(web::post().to(takeover)),
    )
    .service(
        web::resource("/v1/sites/{id}/conversations/{conversationId}/handback")
            .route(web::post().to(handback)),
    )
    .service(
        web::resource("/v1/sites/{id}/conversations/{conversationId}/block")
            .route(web::post().to(block)),
    )
    .service(
        web::resource("/v1/sites/{id}/conversations/{conversationId}/unblock")
            .route(web::post().to(unblock)),
    )
    .service(
        web::resource("/v1/sites/{id}/conversations/{conversationId}/reply")
            .route(web::post().to(reply)),
    )
    .service(
        web::resource("/v1/sites/{id}/proactive")
            .route(web::post().to(create_proactive))
            .route(web::get().to(list_proactive)),
    )
    .service(
        web::resource("/v1/sites/{id}/proactive/{proactiveId}")
            .route(web::delete().to(delete_proactive)),
    );
}
