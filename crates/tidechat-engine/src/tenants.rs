//! Organizations, API keys, personas and FAQ entries.

use chrono::Utc;
use tidechat_domain::{
    validate, ApiKey, ApiKeyId, FaqDraft, FaqEntry, FaqId, KeyScope, OrgId, Organization, Persona,
    PersonaDraft, PersonaId, Workspace, WorkspaceId,
};
use tidechat_store::{repo, PageRequest, StoreError};

use crate::auth::{generate_api_key, Principal};
use crate::knowledge::Billing;
use crate::page::{Cursor, Page};
use crate::{Engine, EngineError};

/// What creating an organization produces. `api_key` is shown once.
#[derive(Debug, Clone)]
pub struct OrgBundle {
    pub org: Organization,
    pub workspace: Workspace,
    pub persona: Persona,
    pub key: ApiKey,
    pub api_key: String,
}

/// A new API key with its secret, which is never shown again.
#[derive(Debug, Clone)]
pub struct CreatedKey {
    pub key: ApiKey,
    pub secret: String,
}

const DEFAULT_PERSONA_PROMPT: &str =
    "You are a friendly, concise support assistant. Answer from the company's FAQ when you can.";

/// The persona every new organization starts with: the built-in FAQ model.
pub fn default_persona_draft() -> PersonaDraft {
    PersonaDraft {
        name: "Support assistant".to_owned(),
        system_prompt: DEFAULT_PERSONA_PROMPT.to_owned(),
        model_id: tidechat_llm::FAQ_MODEL_ID.to_owned(),
        temperature: 0.7,
        max_output_tokens: 1024,
        guardrails: Vec::new(),
        fallback_reply: PersonaDraft::DEFAULT_FALLBACK.to_owned(),
        faq_threshold: PersonaDraft::DEFAULT_FAQ_THRESHOLD,
        redact_pii: false,
        drift_threshold: None,
    }
}

fn persona_from_draft(org: &OrgId, ws: &WorkspaceId, draft: PersonaDraft) -> Persona {
    let now = Utc::now();
    Persona {
        id: PersonaId::generate(),
        org_id: org.clone(),
        workspace_id: ws.clone(),
        name: draft.name,
        system_prompt: draft.system_prompt,
        model_id: draft.model_id,
        temperature: draft.temperature,
        max_output_tokens: draft.max_output_tokens,
        guardrails: draft.guardrails,
        fallback_reply: draft.fallback_reply,
        faq_threshold: draft.faq_threshold,
        redact_pii: draft.redact_pii,
        drift_threshold: draft.drift_threshold,
        created_at: now,
        updated_at: now,
    }
}

fn faq_from_draft(org: &OrgId, ws: &WorkspaceId, draft: FaqDraft) -> FaqEntry {
    let now = Utc::now();
    FaqEntry {
        id: FaqId::generate(),
        org_id: org.clone(),
        workspace_id: ws.clone(),
        question: draft.question,
        answer: draft.answer,
        organization_id: draft.organization_id,
        tags: draft.tags,
        created_at: now,
        updated_at: now,
    }
}

impl Engine {
    // ---- organizations (operator commands, no principal) ----

    /// Creates an organization with a default workspace, persona and API key.
    pub async fn create_org(&self, name: &str) -> Result<OrgBundle, EngineError> {
        validate::required_text("name", name, validate::NAME_MAX_CHARS)?;
        let now = Utc::now();
        let org = Organization {
            id: OrgId::generate(),
            name: name.trim().to_owned(),
            created_at: now,
        };
        let mut workspace = Workspace {
            id: WorkspaceId::generate(),
            org_id: org.id.clone(),
            name: "Default".to_owned(),
            default_persona_id: None,
            faq_version: 0,
            created_at: now,
        };
        let persona = persona_from_draft(&org.id, &workspace.id, default_persona_draft());
        workspace.default_persona_id = Some(persona.id.clone());
        let generated = generate_api_key();
        let key = ApiKey {
            id: ApiKeyId::generate(),
            org_id: org.id.clone(),
            workspace_id: workspace.id.clone(),
            name: "default".to_owned(),
            prefix: generated.display_prefix,
            scope: KeyScope::Admin,
            created_at: now,
            revoked_at: None,
        };
        // One transaction: a tenant exists with its workspace, default
        // persona and first key, or not at all.
        let hash = &generated.hash;
        self.inner
            .store
            .transaction(async |c| {
                repo::orgs::insert_org(c, &org).await?;
                repo::orgs::insert_workspace(c, &workspace).await?;
                repo::personas::insert_persona(c, &persona).await?;
                repo::keys::insert_api_key(c, &key, hash).await
            })
            .await?;
        Ok(OrgBundle {
            org,
            workspace,
            persona,
            key,
            api_key: generated.secret,
        })
    }

    pub async fn organization_count(&self) -> Result<i64, EngineError> {
        Ok(self.inner.store.count_orgs().await?)
    }

    /// Resolves an organization id given on the command line.
    pub async fn org_workspace(&self, org: &str) -> Result<(OrgId, WorkspaceId), EngineError> {
        let org_id = OrgId::parse(org).map_err(|_| EngineError::NotFound("organization"))?;
        let ws = self
            .inner
            .store
            .default_workspace(&org_id)
            .await?
            .ok_or(EngineError::NotFound("organization"))?;
        Ok((org_id, ws.id))
    }

    // ---- API keys ----

    /// Creates a key for the organization's default workspace (operator path).
    pub async fn create_key_for_org(
        &self,
        org: &OrgId,
        ws: &WorkspaceId,
        name: Option<&str>,
        scope: KeyScope,
    ) -> Result<CreatedKey, EngineError> {
        let name = name
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .unwrap_or("api key");
        validate::required_text("name", name, validate::NAME_MAX_CHARS)?;
        let generated = generate_api_key();
        let key = ApiKey {
            id: ApiKeyId::generate(),
            org_id: org.clone(),
            workspace_id: ws.clone(),
            name: name.to_owned(),
            prefix: generated.display_prefix,
            scope,
            created_at: Utc::now(),
            revoked_at: None,
        };
        self.inner
            .store
            .insert_api_key(&key, &generated.hash)
            .await?;
        Ok(CreatedKey {
            key,
            secret: generated.secret,
        })
    }

    pub async fn create_key(
        &self,
        who: &Principal,
        name: Option<&str>,
        scope: Option<&str>,
    ) -> Result<CreatedKey, EngineError> {
        who.require_admin()?;
        let scope = match scope {
            None => KeyScope::Admin,
            Some(s) => KeyScope::parse(s)
                .ok_or_else(|| EngineError::validation("scope", "must be admin or chat"))?,
        };
        self.create_key_for_org(&who.org_id, &who.workspace_id, name, scope)
            .await
    }

    pub async fn list_keys(&self, who: &Principal) -> Result<Vec<ApiKey>, EngineError> {
        who.require_admin()?;
        Ok(self.inner.store.list_api_keys(&who.org_id).await?)
    }

    pub async fn revoke_key(&self, who: &Principal, id: &str) -> Result<ApiKey, EngineError> {
        who.require_admin()?;
        let id = ApiKeyId::parse(id).map_err(|_| EngineError::NotFound("api key"))?;
        self.inner
            .store
            .revoke_api_key(&who.org_id, &id, Utc::now())
            .await?
            .ok_or(EngineError::NotFound("api key"))
    }

    // ---- personas ----

    pub async fn create_persona(
        &self,
        who: &Principal,
        draft: PersonaDraft,
    ) -> Result<Persona, EngineError> {
        who.require_admin()?;
        self.check_persona(&draft)?;
        let persona = persona_from_draft(&who.org_id, &who.workspace_id, draft);
        self.inner.store.insert_persona(&persona).await?;
        Ok(persona)
    }

    fn check_persona(&self, draft: &PersonaDraft) -> Result<(), EngineError> {
        validate::persona(draft)?;
        for rule in &draft.guardrails {
            tidechat_guard::validate_guardrail(rule)
                .map_err(|e| EngineError::validation("guardrails", e.to_string()))?;
        }
        if self.inner.models.get(&draft.model_id).is_none() {
            return Err(EngineError::UnknownModel(draft.model_id.clone()));
        }
        Ok(())
    }

    pub async fn get_persona(&self, who: &Principal, id: &str) -> Result<Persona, EngineError> {
        who.require_admin()?;
        let id = PersonaId::parse(id).map_err(|_| EngineError::NotFound("persona"))?;
        self.inner
            .store
            .get_persona(&who.org_id, &id)
            .await?
            .ok_or(EngineError::NotFound("persona"))
    }

    pub async fn list_personas(
        &self,
        who: &Principal,
        cursor: &Cursor,
    ) -> Result<Page<Persona>, EngineError> {
        who.require_admin()?;
        let limit = cursor.limit()?;
        let page = PageRequest {
            limit: limit + 1,
            after_id: cursor.after_id(PersonaId::parse)?,
        };
        let rows = self.inner.store.list_personas(&who.org_id, &page).await?;
        Ok(Page::from_rows(rows, limit, |p| p.id.to_string()))
    }

    pub async fn update_persona(
        &self,
        who: &Principal,
        id: &str,
        draft: PersonaDraft,
    ) -> Result<Persona, EngineError> {
        who.require_admin()?;
        let id = PersonaId::parse(id).map_err(|_| EngineError::NotFound("persona"))?;
        self.check_persona(&draft)?;
        self.inner
            .store
            .update_persona(&who.org_id, &id, &draft, Utc::now())
            .await?
            .ok_or(EngineError::NotFound("persona"))
    }

    pub async fn delete_persona(&self, who: &Principal, id: &str) -> Result<(), EngineError> {
        who.require_admin()?;
        let id = PersonaId::parse(id).map_err(|_| EngineError::NotFound("persona"))?;
        match self.inner.store.delete_persona(&who.org_id, &id).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(EngineError::NotFound("persona")),
            Err(StoreError::Conflict(_)) => Err(EngineError::Conflict(
                "the persona is in use by sessions or is the workspace default".to_owned(),
            )),
            Err(e) => Err(e.into()),
        }
    }

    // ---- FAQ entries ----

    pub async fn create_faq(
        &self,
        who: &Principal,
        draft: FaqDraft,
    ) -> Result<FaqEntry, EngineError> {
        who.require_admin()?;
        let mut created = self
            .import_faqs_for(&who.org_id, &who.workspace_id, vec![draft])
            .await?;
        created
            .pop()
            .ok_or_else(|| EngineError::Internal("insert returned nothing".to_owned()))
    }

    /// Inserts all entries or none; the error names the first bad entry.
    pub async fn import_faqs_for(
        &self,
        org: &OrgId,
        ws: &WorkspaceId,
        drafts: Vec<FaqDraft>,
    ) -> Result<Vec<FaqEntry>, EngineError> {
        if drafts.is_empty() {
            return Err(EngineError::validation("entries", "no FAQ entries given"));
        }
        if drafts.len() > validate::FAQ_IMPORT_MAX_ENTRIES {
            return Err(EngineError::validation(
                "entries",
                format!(
                    "at most {} entries per import",
                    validate::FAQ_IMPORT_MAX_ENTRIES
                ),
            ));
        }
        for (i, draft) in drafts.iter().enumerate() {
            validate::faq(draft).map_err(|e| {
                let many = drafts.len() > 1;
                let message = if many {
                    format!("entry {}: {}", i + 1, e.message)
                } else {
                    e.message.clone()
                };
                EngineError::validation(e.field, message)
            })?;
        }
        let entries: Vec<FaqEntry> = drafts
            .into_iter()
            .map(|d| faq_from_draft(org, ws, d))
            .collect();
        self.inner.store.insert_faqs(&entries).await?;
        // Embedded when written (a failure is retried on the next lookup).
        let billing = Billing {
            org_id: org.clone(),
            key: None,
        };
        self.embed_after_write(ws, &billing).await;
        Ok(entries)
    }

    pub async fn import_faqs(
        &self,
        who: &Principal,
        drafts: Vec<FaqDraft>,
    ) -> Result<Vec<FaqEntry>, EngineError> {
        who.require_admin()?;
        self.import_faqs_for(&who.org_id, &who.workspace_id, drafts)
            .await
    }

    pub async fn get_faq(&self, who: &Principal, id: &str) -> Result<FaqEntry, EngineError> {
        who.require_admin()?;
        let id = FaqId::parse(id).map_err(|_| EngineError::NotFound("faq entry"))?;
        self.inner
            .store
            .get_faq(&who.org_id, &id)
            .await?
            .ok_or(EngineError::NotFound("faq entry"))
    }

    pub async fn list_faqs(
        &self,
        who: &Principal,
        cursor: &Cursor,
    ) -> Result<Page<FaqEntry>, EngineError> {
        who.require_admin()?;
        let limit = cursor.limit()?;
        let page = PageRequest {
            limit: limit + 1,
            after_id: cursor.after_id(FaqId::parse)?,
        };
        let rows = self.inner.store.list_faqs(&who.org_id, &page).await?;
        Ok(Page::from_rows(rows, limit, |f| f.id.to_string()))
    }

    pub async fn update_faq(
        &self,
        who: &Principal,
        id: &str,
        draft: FaqDraft,
    ) -> Result<FaqEntry, EngineError> {
        who.require_admin()?;
        let id = FaqId::parse(id).map_err(|_| EngineError::NotFound("faq entry"))?;
        validate::faq(&draft)?;
        let entry = self
            .inner
            .store
            .update_faq(&who.org_id, &id, &draft, Utc::now())
            .await?
            .ok_or(EngineError::NotFound("faq entry"))?;
        self.embed_after_write(&entry.workspace_id, &Billing::of(who))
            .await;
        Ok(entry)
    }

    pub async fn delete_faq(&self, who: &Principal, id: &str) -> Result<(), EngineError> {
        who.require_admin()?;
        let id = FaqId::parse(id).map_err(|_| EngineError::NotFound("faq entry"))?;
        if self.inner.store.delete_faq(&who.org_id, &id).await? {
            Ok(())
        } else {
            Err(EngineError::NotFound("faq entry"))
        }
    }
}
