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

use std::time::{Duration, Instant};
use tidechat_domain::{Persona, PersonaId, Timestamp, WorkspaceId};
use tidechat_guard::DriftModel;

use tidechat_llm::FaqIndex;

use crate::knowledge::{index_docs, Billing};
use crate::{Engine, EngineError};

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
    /// When a background embedding run last started, per workspace.
    backfill: Mutex<HashMap<WorkspaceId, Instant>>,
}

/// How often a workspace's missing embeddings are retried.
const BACKFILL_INTERVAL: Duration = Duration::from_secs(30);

impl FaqCache {
    /// The workspace's index at its current version: FAQ entries and
    /// document chunks, with their stored embeddings where those are
    /// current. Items without one are embedded in the background (at most
    /// one run per workspace every [`BACKFILL_INTERVAL`]).
    pub(crate) async fn index(
        &self,
        engine: &Engine,
        ws: &WorkspaceId,
        billing: &Billing,
    ) -> Result<Arc<Knowledge>, EngineError> {
        let store = engine.store();
        let version = store.faq_version(ws).await?;
        if let Some(found) = self.cached(ws, version) {
            return Ok(found);
        }
        let embedder_id = engine.embedder().map(|e| e.id().to_owned());
        let (entries, chunks) =
            tokio::try_join!(store.workspace_faqs(ws), store.workspace_chunks(ws))?;
        let embeddings = match &embedder_id {
            Some(model) => store.workspace_embeddings(ws, model).await?,
            None => Vec::new(),
        };
        let (knowledge, missing) = tokio::task::spawn_blocking(move || {
            let texts = entries
                .iter()
                .map(|e| format!("{} {}", e.question, e.answer))
                .collect();
            let embeddings: HashMap<String, (String, Arc<[f32]>)> = embeddings
                .into_iter()
                .map(|r| {
                    (
                        r.embedding.item_id,
                        (r.content_hash, Arc::from(r.embedding.vector)),
                    )
                })
                .collect();
            let (docs, missing) = index_docs(entries, chunks, embeddings);
            let knowledge = Knowledge {
                version,
                index: FaqIndex::build(docs),
                texts,
            };
            (knowledge, missing)
        })
        .await
        .map_err(|e| EngineError::Internal(format!("building the FAQ index: {e}")))?;
        let knowledge = Arc::new(knowledge);
        // A write between reading the version and the entries leaves an index
        // newer than its recorded version; the next lookup simply rebuilds.
        if let Ok(mut map) = self.knowledge.lock() {
            map.insert(ws.clone(), knowledge.clone());
        }
        if missing > 0 && embedder_id.is_some() && self.backfill_due(ws) {
            let (engine, ws, billing) = (engine.clone(), ws.clone(), billing.clone());
            tokio::spawn(async move { engine.embed_after_write(&ws, &billing).await });
        }
        Ok(knowledge)
    }

    /// Whether a background embedding run for `ws` may start now (and
    /// records that it does).
    fn backfill_due(&self, ws: &WorkspaceId) -> bool {
        let Ok(mut map) = self.backfill.lock() else {
            return false;
        };
        let now = Instant::now();
        match map.get(ws) {
            Some(last) if now.duration_since(*last) < BACKFILL_INTERVAL => false,
            _ => {
                map.insert(ws.clone(), now);
                true
            }
        }
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
