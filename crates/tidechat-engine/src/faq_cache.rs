//! Per-process caches of what is derived from a workspace's FAQ: the
//! retrieval index, keyed by the workspace's FAQ version, and each persona's
//! drift model (its instructions plus the FAQ), keyed by the persona's last
//! change and the FAQ version.
//!
//! Every FAQ write bumps `workspaces.faq_version` in the database, and every
//! lookup reads it (one indexed row), so an edit made through any process is
//! used by every process on its next turn.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tidechat_domain::{Persona, PersonaId, Timestamp, WorkspaceId};
use tidechat_guard::DriftModel;
use tidechat_llm::{FaqDoc, FaqIndex};
use tidechat_store::Store;

use crate::EngineError;

/// A workspace's FAQ at one version.
pub(crate) struct Knowledge {
    pub version: i64,
    pub index: FaqIndex,
    /// `question answer` of every entry: the drift references.
    pub texts: Vec<String>,
}

/// A persona's drift model with the persona change time and FAQ version it
/// was built from.
type DriftEntry = (Timestamp, i64, Arc<DriftModel>);

#[derive(Default)]
pub(crate) struct FaqCache {
    knowledge: Mutex<HashMap<WorkspaceId, Arc<Knowledge>>>,
    drift: Mutex<HashMap<PersonaId, DriftEntry>>,
}

impl FaqCache {
    pub(crate) async fn index(
        &self,
        store: &Store,
        ws: &WorkspaceId,
    ) -> Result<Arc<Knowledge>, EngineError> {
        let version = store.faq_version(ws).await?;
        if let Some(found) = self.cached(ws, version) {
            return Ok(found);
        }
        let entries = store.workspace_faqs(ws).await?;
        let knowledge = tokio::task::spawn_blocking(move || {
            let texts = entries
                .iter()
                .map(|e| format!("{} {}", e.question, e.answer))
                .collect();
            let docs = entries
                .into_iter()
                .map(|e| FaqDoc {
                    id: e.id.into_string(),
                    question: e.question,
                    answer: e.answer,
                    organization_id: e.organization_id,
                    embedding: None,
                    chunk: None,
                })
                .collect();
            Knowledge {
                version,
                index: FaqIndex::build(docs),
                texts,
            }
        })
        .await
        .map_err(|e| EngineError::Internal(format!("building the FAQ index: {e}")))?;
        let knowledge = Arc::new(knowledge);
        // A write between reading the version and the entries leaves an index
        // newer than its recorded version; the next lookup simply rebuilds.
        if let Ok(mut map) = self.knowledge.lock() {
            map.insert(ws.clone(), knowledge.clone());
        }
        Ok(knowledge)
    }

    fn cached(&self, ws: &WorkspaceId, version: i64) -> Option<Arc<Knowledge>> {
        let map = self.knowledge.lock().ok()?;
        map.get(ws).filter(|k| k.version == version).cloned()
    }

    /// The drift model of a persona: its system prompt and guardrails, and
    /// the workspace's FAQ entries, as reference texts.
    pub(crate) fn drift_model(&self, persona: &Persona, knowledge: &Knowledge) -> Arc<DriftModel> {
        if let Ok(map) = self.drift.lock() {
            if let Some((changed, version, model)) = map.get(&persona.id) {
                if *changed == persona.updated_at && *version == knowledge.version {
                    return model.clone();
                }
            }
        }
        let mut references = knowledge.texts.clone();
        let mut scope = persona.system_prompt.clone();
        for rule in &persona.guardrails {
            scope.push(' ');
            scope.push_str(rule);
        }
        references.push(scope);
        let model = Arc::new(DriftModel::build(&references));
        if let Ok(mut map) = self.drift.lock() {
            map.insert(
                persona.id.clone(),
                (persona.updated_at, knowledge.version, model.clone()),
            );
        }
        model
    }
}
