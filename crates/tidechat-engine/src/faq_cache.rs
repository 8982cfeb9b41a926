//! Per-process cache of FAQ indexes, keyed by the workspace's FAQ version.
//!
//! Every FAQ write bumps `workspaces.faq_version` in the database, and every
//! lookup reads it (one indexed row), so an edit made through any process is
//! used by every process on its next turn.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tidechat_domain::WorkspaceId;
use tidechat_llm::{FaqDoc, FaqIndex};
use tidechat_store::Store;

use crate::EngineError;

#[derive(Default)]
pub(crate) struct FaqCache {
    indexes: Mutex<HashMap<WorkspaceId, (i64, Arc<FaqIndex>)>>,
}

impl FaqCache {
    pub(crate) async fn index(
        &self,
        store: &Store,
        ws: &WorkspaceId,
    ) -> Result<Arc<FaqIndex>, EngineError> {
        let version = store.faq_version(ws).await?;
        if let Some(index) = self.cached(ws, version) {
            return Ok(index);
        }
        let docs = store
            .workspace_faqs(ws)
            .await?
            .into_iter()
            .map(|e| FaqDoc {
                id: e.id.into_string(),
                question: e.question,
                answer: e.answer,
                organization_id: e.organization_id,
            })
            .collect();
        let index = Arc::new(
            tokio::task::spawn_blocking(move || FaqIndex::build(docs))
                .await
                .map_err(|e| EngineError::Internal(format!("building the FAQ index: {e}")))?,
        );
        // A write between reading the version and the entries leaves an index
        // newer than its recorded version; the next lookup simply rebuilds.
        if let Ok(mut map) = self.indexes.lock() {
            map.insert(ws.clone(), (version, index.clone()));
        }
        Ok(index)
    }

    fn cached(&self, ws: &WorkspaceId, version: i64) -> Option<Arc<FaqIndex>> {
        let map = self.indexes.lock().ok()?;
        map.get(ws)
            .filter(|(v, _)| *v == version)
            .map(|(_, index)| index.clone())
    }
}
