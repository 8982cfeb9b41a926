//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]`
//! attributes and the wire types. `tidechat openapi` prints it and the
//! committed copy in `openapi/openapi.json` is checked against it by a test.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::dto::*;
use crate::error::{error_table_markdown, ErrorBody, ErrorDetail};
use crate::routes::{
    chats, documents, faq_chat, faqs, keys, limits, personas, sessions, sites, system, tools,
};

#[derive(OpenApi)]
#[openapi(
    info(title = "tidechat API", description = "tidechat"),
    paths(
        sessions::create_session, sessions::list_sessions, sessions::get_session, sessions::end_session,
        sessions::archive_session, sessions::create_token, sessions::send_message, sessions::list_messages, sessions::message_moderation,
        personas::create_persona, personas::list_personas, personas::get_persona, personas::update_persona,
        personas::delete_persona,
        faqs::create_faq, faqs::import_faqs, faqs::list_faqs, faqs::get_faq, faqs::update_faq, faqs::delete_faq,
        documents::create_document, documents::list_documents, documents::get_document, documents::replace_document,
        documents::delete_document, documents::search_knowledge,
        keys::create_key, keys::list_keys, keys::revoke_key,
        system::healthz, system::readyz, system::openapi,
        faq_chat::chat, faq_chat::config, faq_chat::history,
        limits::get_limits, limits::set_limits, limits::patch_limits, limits::get_key_limits, limits::set_key_limits, limits::patch_key_limits, limits::usage,
        chats::create_chat, chats::user_chats, chats::get_chat, chats::delete_chat, chats::chat_messages,
        chats::create_ticket,
        sites::create_site, sites::list_sites, sites::get_site, sites::update_site, sites::conversations,
        sites::conversation, sites::takeover, sites::handback, sites::block, sites::unblock, sites::reply,
        sites::create_proactive, sites::list_proactive, sites::delete_proactive,
        tools::create_tool, tools::list_tools, tools::get_tool, tools::update_tool, tools::delete_tool,
    ),
    components(schemas(ErrorBody, ErrorDetail, DeltaEvent, ReplaceEvent)),
    modifiers(&Customize),
    tags(
        (name = "chat", description = "Chat sessions and messages"),
        (name = "personas", description = "How the assistant behaves"),
        (name = "faqs", description = "The FAQ the built-in model answers from"),
        (name = "knowledge", description = "Documents searched together with the FAQ, and \"try a question\""),
        (name = "api-keys", description = "Credentials"),
        (name = "tools", description = "HTTP tools the models may call"),
        (name = "limits", description = "Rate limits, quotas and usage"),
        (name = "sites", description = "Websites embedding the widget, and the operator side of their conversations"),
        (name = "chats", description = "Chats REST (snake_case, offset pagination, errors `{\"error\":{code,message,details}}`) and the WebSocket `GET /ws/chat` (see docs/api.md)"),
        (name = "system", description = "Health and this document"),
        (name = "faq-chat", description = "The FAQ chat surface: FAQ-grounded answers over SSE (its own error shape: `{\"error\": code}`)"),
    )
)]
pub struct ApiDoc;

struct Customize;

const DESCRIPTION: &str = "Self-hosted, multi-tenant AI chat backend.

Authenticate with `Authorization: Bearer <API key>` (keys start with `tc_`) or a
session token from `POST /v1/chat/sessions/{id}/token`, which may only read and
post to its own session. Every id of another organization is `404`.

Lists use keyset pagination: pass `nextCursor` back as `cursor` while `hasMore`
is true. Timestamps are RFC 3339 in UTC.

`POST /v1/chat/sessions/{id}/messages` with `\"stream\": true` answers with
server-sent events: `delta` (`{\"text\"}`; released a moderation window at a
time), `replace` (`{\"text\",\"moderationVerdict\":\"blocked\"}`: moderation stopped
the reply, show this fallback instead), then `done` (`{userMessage,
assistantMessage, session}`) or `error` (`{\"error\":{code,message}}` plus the
stored messages when a partial reply was kept).

Every authenticated response carries `RateLimit-Limit`, `RateLimit-Remaining`
and `RateLimit-Reset` (requests per minute, left now, seconds until the bucket is
full), also spelled `X-RateLimit-*`; a 429 adds `Retry-After` (seconds).

Errors are `{\"error\":{\"code\",\"message\"}}` with these codes:

";

/// Adds the rate-limit headers to every response of every authenticated
/// operation, a 429 where it was not listed, and `Retry-After` on 429s.
fn document_rate_limits(openapi: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::header::HeaderBuilder;
    use utoipa::openapi::{Object, RefOr, Response, Type};
    let header = |description: &str| {
        HeaderBuilder::new()
            .schema(Object::with_type(Type::Integer))
            .description(Some(description))
            .build()
    };
    let rate_headers = [
        (
            "RateLimit-Limit",
            "Requests allowed per minute (the tightest of the key's and the organization's).",
        ),
        ("RateLimit-Remaining", "Requests left right now."),
        (
            "RateLimit-Reset",
            "Seconds until the allowance is full again.",
        ),
        ("X-RateLimit-Limit", "Same as RateLimit-Limit."),
        ("X-RateLimit-Remaining", "Same as RateLimit-Remaining."),
        ("X-RateLimit-Reset", "Same as RateLimit-Reset."),
    ];
    for (path, item) in openapi.paths.paths.iter_mut() {
        if matches!(path.as_str(), "/healthz" | "/readyz" | "/openapi.json") {
            continue;
        }
        let operations = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            let responses = &mut operation.responses.responses;
            responses.entry("429".to_owned()).or_insert_with(|| {
                RefOr::T(Response::new(
                    "Rate limit / quota exceeded (`rate_limited`, `quota_exceeded`)",
                ))
            });
            for (status, response) in responses.iter_mut() {
                // Unauthenticated requests are refused before any limit is counted.
                let RefOr::T(response) = response else {
                    continue;
                };
                if status == "401" {
                    continue;
                }
                for (name, description) in rate_headers {
                    response
                        .headers
                        .insert(name.to_owned(), header(description));
                }
                if status == "429" {
                    response.headers.insert(
                        "Retry-After".to_owned(),
                        header("Seconds to wait before retrying."),
                    );
                }
            }
        }
    }
}

/// Adds `401` and `403` (the `/v1` error body) to every authenticated `/v1`
/// operation that does not list them: any credential may be missing or
/// wrong, and a chat-scoped key or a session token may lack the scope.
fn document_auth_errors(openapi: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
    for (path, item) in openapi.paths.paths.iter_mut() {
        if !path.starts_with("/v1/") {
            continue;
        }
        let operations = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            let authenticated = operation.security.as_ref().is_some_and(|s| !s.is_empty());
            if !authenticated {
                continue;
            }
            for (status, description) in [
                ("401", "Missing or invalid credential (`unauthenticated`)"),
                ("403", "The credential lacks the scope (`forbidden`)"),
            ] {
                operation
                    .responses
                    .responses
                    .entry(status.to_owned())
                    .or_insert_with(|| {
                        RefOr::T(
                            ResponseBuilder::new()
                                .description(description)
                                .content(
                                    "application/json",
                                    ContentBuilder::new()
                                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                                        .build(),
                                )
                                .build(),
                        )
                    });
            }
        }
    }
}

impl Modify for Customize {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        document_auth_errors(openapi);
        document_rate_limits(openapi);
        openapi.info.description = Some(format!("{DESCRIPTION}{}", error_table_markdown()));
        openapi.info.version = env!("CARGO_PKG_VERSION").to_owned();
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API key (`tc_…`) or a session token (JWT)"))
                    .build(),
            ),
        );
    }
}

/// The document as pretty-printed JSON with a trailing newline.
pub fn json() -> String {
    let mut out = ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|_| "{}".to_owned());
    out.push('\n');
    out
}
