//! The organization's knowledge beyond FAQ entries (documents split into
//! chunks), the embeddings of entries and chunks, and retrieval with a
//! query embedding.
//!
//! # Embeddings
//! With an embedder configured ([`EngineConfig::embedder`]), every FAQ entry
//! and document chunk gets a passage embedding when it is written (stored
//! with the embedder's id and a hash of the embedded text), and every
//! retrieval costs one query embedding, computed beside the index lookup.
//! What is missing (entries written before the embedder was configured, an
//! embedder that was down, a model change) is embedded in the background on
//! the next lookup, one workspace at a time; until then those items are
//! ranked lexically. A failing embedder never fails a turn or a write:
//! retrieval falls back to lexical ranking and says so in the log.
//!
//! Remote embedders are metered (a usage event per call, billed to the
//! caller's key, counted by usage reports and monthly quotas); the built-in
//! local model runs in process and is not.
//!
//! [`EngineConfig::embedder`]: crate::EngineConfig::embedder

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Utc;
use sha2::{Digest, Sha256};
use tidechat_domain::{
    validate, ApiKeyId, Citation, Document, DocumentChunk, DocumentFormat, DocumentId, FaqEntry,
    FaqId, OrgId, WorkspaceId,
};
use tidechat_llm::{ChunkRef, EmbedKind, Embedder, FaqHit, Retrieval};
use tidechat_store::{chunk_item_id, DocumentWrite, NewEmbedding, PageRequest, UsageEvent};

use crate::extract::{self, ExtractError};
use crate::faq_cache::Knowledge;
use crate::page::{Cursor, Page};
use crate::{EngineError, Principal};

/// Characters per chunk the chunker aims at: a few paragraphs, small enough
/// that a hit points at the passage that answers, large enough to carry it.
pub const CHUNK_TARGET_CHARS: usize = 800;
/// Texts per embedding call when writing (the provider may split further).
const EMBED_WRITE_BATCH: usize = 64;

/// Called with `(chunks embedded so far, chunks)` while a document is
/// embedded (the CLI's progress line).
pub type Progress = dyn Fn(usize, usize) + Send + Sync;

/// Who pays for an embedding call.
#[derive(Debug, Clone)]
pub(crate) struct Billing {
    pub org_id: OrgId,
    pub key: Option<ApiKeyId>,
}

impl Billing {
    pub(crate) fn of(who: &Principal) -> Self {
        Self {
            org_id: who.org_id.clone(),
            key: who.billing_key.clone(),
        }
    }
}

/// The text a FAQ entry is embedded as.
pub(crate) fn faq_passage(question: &str, answer: &str) -> String {
    format!("{question}\n{answer}")
}

/// The text a document chunk is embedded as.
pub(crate) fn chunk_passage(heading: &str, content: &str) -> String {
    format!("{heading}\n{content}")
}

/// A short hash of an embedded text: a stored embedding whose hash differs
/// from its item's current text is stale.
pub(crate) fn content_hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    hex_prefix(&digest[..16])
}

fn hex_prefix(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The id under which a chunk appears in the index (and in hits).
pub(crate) fn chunk_doc_id(document: &DocumentId, index: i32) -> String {
    chunk_item_id(document, index)
}

/// The citations of a reply: what the reply was grounded in.
pub(crate) fn citations(retrieval: &Retrieval, answering_with_top_hit_only: bool) -> Vec<Citation> {
    if retrieval.out_of_scope {
        return Vec::new();
    }
    let take = if answering_with_top_hit_only {
        1
    } else {
        usize::MAX
    };
    retrieval
        .hits
        .iter()
        .take(take)
        .filter_map(citation)
        .collect()
}

fn citation(hit: &FaqHit) -> Option<Citation> {
    match &hit.chunk {
        Some(ChunkRef { document_id, index }) => Some(Citation::Document {
            id: DocumentId::parse(document_id).ok()?,
            chunk: *index,
            title: hit.question.clone(),
        }),
        None => Some(Citation::Faq {
            id: FaqId::parse(&hit.id).ok()?,
        }),
    }
}

/// A document as uploaded.
#[derive(Debug, Clone)]
pub struct DocumentUpload {
    /// `None`: the document's own title (first heading, `<title>`, PDF
    /// metadata), else the file name.
    pub title: Option<String>,
    /// `None`: guessed from the file name, the content type and the bytes.
    pub format: Option<DocumentFormat>,
    pub file_name: Option<String>,
    pub content_type: Option<String>,
    pub organization_id: Option<String>,
    pub bytes: Vec<u8>,
}

/// What "try a question" shows: the ranking and its verdict.
#[derive(Debug, Clone)]
pub struct KnowledgeSearch {
    pub retrieval: Retrieval,
    pub threshold: f64,
    /// `"hybrid"` when the query was embedded, else `"lexical"`.
    pub mode: &'static str,
}

struct Prepared {
    document: Document,
    text: String,
    chunks: Vec<DocumentChunk>,
}

fn extract_error(e: ExtractError) -> EngineError {
    EngineError::validation("file", e.to_string())
}

impl crate::Engine {
    /// The deployment's embedder, if any.
    pub fn embedder(&self) -> Option<&Arc<dyn Embedder>> {
        self.inner.config.embedder.as_ref()
    }

    /// The query's embedding, `None` without an embedder or when it fails
    /// (then retrieval is lexical). Remote calls are metered.
    pub(crate) async fn query_embedding(&self, billing: &Billing, text: &str) -> Option<Vec<f32>> {
        let embedder = self.embedder()?.clone();
        match embedder
            .embed(vec![text.to_owned()], EmbedKind::Query)
            .await
        {
            Ok(out) => {
                self.meter_embedding(billing, embedder.as_ref(), out.input_tokens);
                out.vectors.into_iter().next()
            }
            Err(e) => {
                tracing::warn!(error = %e, embedder = embedder.id(), "query embedding failed; ranking lexically");
                None
            }
        }
    }

    /// Records a remote embedding call as usage, beside the caller's work.
    fn meter_embedding(&self, billing: &Billing, embedder: &dyn Embedder, tokens: u64) {
        if is_local(embedder) || tokens == 0 {
            return;
        }
        let tokens = i64::try_from(tokens).unwrap_or(i64::MAX);
        let event = UsageEvent {
            org_id: billing.org_id.clone(),
            api_key_id: billing.key.clone(),
            kind: "embedding".to_owned(),
            model: embedder.id().to_owned(),
            input_tokens: tokens,
            cost_usd_micros: embedder.pricing().cost_usd_micros(&tidechat_llm::Usage {
                input_tokens: u64::try_from(tokens).unwrap_or(0),
                output_tokens: 0,
                estimated: false,
            }),
            created_at: Utc::now(),
        };
        let store = self.inner.store.clone();
        tokio::spawn(async move {
            if let Err(e) = store.insert_usage_event(&event).await {
                tracing::warn!(error = ?e, "could not record embedding usage");
            }
        });
    }

    /// Embeds passages in batches; `None` (logged) when the embedder fails.
    async fn embed_passages(
        &self,
        billing: &Billing,
        texts: Vec<String>,
        progress: Option<&Progress>,
    ) -> Option<(String, Vec<Vec<f32>>)> {
        use futures_util::StreamExt;
        let embedder = self.embedder()?.clone();
        // A local model is CPU-bound: one batch per core. A remote endpoint
        // gets one batch at a time (providers rate-limit bursts).
        let parallel = if is_local(embedder.as_ref()) {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            1
        };
        let total = texts.len();
        let batches: Vec<Vec<String>> = texts
            .chunks(EMBED_WRITE_BATCH)
            .map(<[String]>::to_vec)
            .collect();
        let mut results = futures_util::stream::iter(batches.into_iter().map(|batch| {
            let embedder = embedder.clone();
            async move {
                let n = batch.len();
                (n, embedder.embed(batch, EmbedKind::Passage).await)
            }
        }))
        .buffered(parallel);
        let mut vectors = Vec::with_capacity(total);
        if let Some(progress) = progress {
            progress(0, total);
        }
        while let Some((n, result)) = results.next().await {
            match result {
                Ok(out) if out.vectors.len() == n => {
                    self.meter_embedding(billing, embedder.as_ref(), out.input_tokens);
                    vectors.extend(out.vectors);
                    if let Some(progress) = progress {
                        progress(vectors.len(), total);
                    }
                }
                Ok(_) => {
                    tracing::warn!(
                        embedder = embedder.id(),
                        "embedder returned the wrong number of vectors"
                    );
                    return None;
                }
                Err(e) => {
                    tracing::warn!(error = %e, embedder = embedder.id(), "embedding failed; these items are ranked lexically until it works");
                    return None;
                }
            }
        }
        Some((embedder.id().to_owned(), vectors))
    }

    /// Embeds and stores whatever the workspace's index lacks (entries
    /// written without an embedder, a failed call, a model change).
    pub(crate) async fn embed_missing(
        &self,
        ws: &WorkspaceId,
        billing: &Billing,
    ) -> Result<(), EngineError> {
        let Some(embedder) = self.embedder() else {
            return Ok(());
        };
        let store = &self.inner.store;
        let (entries, chunks, stored) = tokio::try_join!(
            store.workspace_faqs(ws),
            store.workspace_chunks(ws),
            store.workspace_embeddings(ws, embedder.id()),
        )?;
        let have: HashMap<String, String> = stored
            .into_iter()
            .map(|r| (r.embedding.item_id, r.content_hash))
            .collect();
        let mut items: Vec<(String, String)> = Vec::new();
        for e in &entries {
            let text = faq_passage(&e.question, &e.answer);
            if have.get(e.id.as_str()) != Some(&content_hash(&text)) {
                items.push((e.id.as_str().to_owned(), text));
            }
        }
        for c in &chunks {
            let id = chunk_doc_id(&c.document_id, c.index);
            let text = chunk_passage(&c.heading, &c.content);
            if have.get(&id) != Some(&content_hash(&text)) {
                items.push((id, text));
            }
        }
        if items.is_empty() {
            return Ok(());
        }
        let texts: Vec<String> = items.iter().map(|(_, t)| t.clone()).collect();
        let Some((model, vectors)) = self.embed_passages(billing, texts, None).await else {
            return Ok(());
        };
        let rows: Vec<NewEmbedding> = items
            .into_iter()
            .zip(vectors)
            .map(|((item_id, text), vector)| NewEmbedding {
                item_id,
                model: model.clone(),
                content_hash: content_hash(&text),
                vector,
            })
            .collect();
        store.put_embeddings(ws, &rows).await?;
        Ok(())
    }

    /// [`embed_missing`](Self::embed_missing) after a write: a failure is
    /// logged, never the writer's error (the entry is searchable lexically
    /// and embedded again on the next lookup).
    pub(crate) async fn embed_after_write(&self, ws: &WorkspaceId, billing: &Billing) {
        if let Err(e) = self.embed_missing(ws, billing).await {
            tracing::warn!(error = ?e, "could not store embeddings; retrying on the next lookup");
        }
    }

    /// The workspace's index and the retrieval for `query`: the index
    /// lookup and the query embedding run side by side.
    pub(crate) async fn retrieve(
        &self,
        billing: &Billing,
        ws: &WorkspaceId,
        query: &str,
        limit: usize,
        organization_id: Option<&str>,
        threshold: f64,
    ) -> Result<(Arc<Knowledge>, Retrieval, bool), EngineError> {
        let (knowledge, embedding) = tokio::join!(
            self.inner.faqs.index(self, ws, billing),
            self.query_embedding(billing, query)
        );
        let knowledge = knowledge?;
        let retrieval = knowledge.index.retrieve(
            query,
            embedding.as_deref(),
            limit,
            organization_id,
            threshold,
        );
        Ok((knowledge, retrieval, embedding.is_some()))
    }

    // ---- documents ----

    fn prepare_document(
        &self,
        org: &OrgId,
        ws: &WorkspaceId,
        upload: DocumentUpload,
        existing: Option<&Document>,
    ) -> Result<Prepared, EngineError> {
        if upload.bytes.len() > validate::DOCUMENT_FILE_MAX_BYTES {
            return Err(EngineError::validation(
                "file",
                format!(
                    "documents are at most {} MiB",
                    validate::DOCUMENT_FILE_MAX_BYTES / (1024 * 1024)
                ),
            ));
        }
        if let Some(org) = &upload.organization_id {
            validate::optional_text("organizationId", org, validate::USER_ID_MAX_CHARS)?;
        }
        let format = match upload.format {
            Some(f) => f,
            None => extract::guess_format(
                upload.file_name.as_deref(),
                upload.content_type.as_deref(),
                &upload.bytes,
            )
            .ok_or_else(|| {
                EngineError::validation(
                    "format",
                    "could not tell the format: give `format` (markdown, html, text or pdf) or a file name with its extension",
                )
            })?,
        };
        let extracted = extract::extract(format, &upload.bytes).map_err(extract_error)?;
        if extracted.text.chars().count() > validate::DOCUMENT_TEXT_MAX_CHARS {
            return Err(EngineError::validation(
                "file",
                format!(
                    "a document's text is at most {} characters",
                    validate::DOCUMENT_TEXT_MAX_CHARS
                ),
            ));
        }
        let title = upload
            .title
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .or_else(|| extracted.title.clone())
            .or_else(|| upload.file_name.clone())
            .unwrap_or_else(|| "Untitled document".to_owned());
        validate::required_text("title", &title, validate::TITLE_MAX_CHARS)?;
        let id = existing.map_or_else(DocumentId::generate, |d| d.id.clone());
        let chunks: Vec<DocumentChunk> = extract::chunk(&title, &extracted, CHUNK_TARGET_CHARS)
            .into_iter()
            .enumerate()
            .map(|(i, c)| DocumentChunk {
                document_id: id.clone(),
                index: i32::try_from(i).unwrap_or(i32::MAX),
                heading: c.heading,
                content: c.content,
                organization_id: upload.organization_id.clone(),
            })
            .collect();
        let now = Utc::now();
        let document = Document {
            id,
            org_id: org.clone(),
            workspace_id: ws.clone(),
            title,
            format,
            source_name: upload.file_name,
            organization_id: upload.organization_id,
            chars: i64::try_from(extracted.text.chars().count()).unwrap_or(i64::MAX),
            chunk_count: i32::try_from(chunks.len()).unwrap_or(i32::MAX),
            created_at: existing.map_or(now, |d| d.created_at),
            updated_at: now,
        };
        Ok(Prepared {
            document,
            text: extracted.text,
            chunks,
        })
    }

    async fn chunk_embeddings(
        &self,
        billing: &Billing,
        chunks: &[DocumentChunk],
        progress: Option<&Progress>,
    ) -> Vec<NewEmbedding> {
        let texts: Vec<String> = chunks
            .iter()
            .map(|c| chunk_passage(&c.heading, &c.content))
            .collect();
        let hashes: Vec<String> = texts.iter().map(|t| content_hash(t)).collect();
        let Some((model, vectors)) = self.embed_passages(billing, texts, progress).await else {
            return Vec::new();
        };
        chunks
            .iter()
            .zip(vectors)
            .zip(hashes)
            .map(|((c, vector), hash)| NewEmbedding {
                item_id: chunk_doc_id(&c.document_id, c.index),
                model: model.clone(),
                content_hash: hash,
                vector,
            })
            .collect()
    }

    /// Extracts, chunks and embeds a document and stores it (one
    /// transaction: the document, its chunks and their embeddings).
    pub async fn create_document(
        &self,
        who: &Principal,
        upload: DocumentUpload,
    ) -> Result<Document, EngineError> {
        who.require_admin()?;
        self.create_document_for(
            &who.org_id,
            &who.workspace_id,
            &Billing::of(who),
            upload,
            None,
        )
        .await
    }

    /// [`create_document`](Self::create_document) for an organization (CLI),
    /// reporting `(chunks embedded, chunks)` as embedding goes on.
    pub async fn create_document_in(
        &self,
        org: &OrgId,
        ws: &WorkspaceId,
        upload: DocumentUpload,
        progress: Option<&Progress>,
    ) -> Result<Document, EngineError> {
        let billing = Billing {
            org_id: org.clone(),
            key: None,
        };
        self.create_document_for(org, ws, &billing, upload, progress)
            .await
    }

    async fn create_document_for(
        &self,
        org: &OrgId,
        ws: &WorkspaceId,
        billing: &Billing,
        upload: DocumentUpload,
        progress: Option<&Progress>,
    ) -> Result<Document, EngineError> {
        let prepared = {
            let (engine, org, ws) = (self.clone(), org.clone(), ws.clone());
            tokio::task::spawn_blocking(move || engine.prepare_document(&org, &ws, upload, None))
                .await
                .map_err(|e| EngineError::Internal(format!("document extraction: {e}")))??
        };
        let embeddings = self
            .chunk_embeddings(billing, &prepared.chunks, progress)
            .await;
        if let Some(progress) = progress {
            progress(prepared.chunks.len(), prepared.chunks.len());
        }
        self.inner
            .store
            .insert_document(DocumentWrite {
                document: &prepared.document,
                text: &prepared.text,
                chunks: &prepared.chunks,
                embeddings: &embeddings,
            })
            .await?;
        Ok(prepared.document)
    }

    /// Replaces a document's content (and title); its chunks and embeddings
    /// are rebuilt.
    pub async fn replace_document(
        &self,
        who: &Principal,
        id: &str,
        upload: DocumentUpload,
    ) -> Result<Document, EngineError> {
        who.require_admin()?;
        let existing = self.get_document(who, id).await?;
        let billing = Billing::of(who);
        let prepared = {
            let (engine, org, ws) = (self.clone(), who.org_id.clone(), who.workspace_id.clone());
            let existing = existing.clone();
            tokio::task::spawn_blocking(move || {
                engine.prepare_document(&org, &ws, upload, Some(&existing))
            })
            .await
            .map_err(|e| EngineError::Internal(format!("document extraction: {e}")))??
        };
        let embeddings = self
            .chunk_embeddings(&billing, &prepared.chunks, None)
            .await;
        self.inner
            .store
            .replace_document(
                &who.org_id,
                DocumentWrite {
                    document: &prepared.document,
                    text: &prepared.text,
                    chunks: &prepared.chunks,
                    embeddings: &embeddings,
                },
            )
            .await?
            .ok_or(EngineError::NotFound("document"))
    }

    pub async fn get_document(&self, who: &Principal, id: &str) -> Result<Document, EngineError> {
        who.require_admin()?;
        let id = DocumentId::parse(id).map_err(|_| EngineError::NotFound("document"))?;
        self.inner
            .store
            .get_document(&who.org_id, &id)
            .await?
            .ok_or(EngineError::NotFound("document"))
    }

    /// A document with its text and chunks.
    pub async fn document_content(
        &self,
        who: &Principal,
        id: &str,
    ) -> Result<(Document, String, Vec<DocumentChunk>), EngineError> {
        let document = self.get_document(who, id).await?;
        let store = &self.inner.store;
        let (text, chunks) = tokio::try_join!(
            store.document_text(&who.org_id, &document.id),
            store.document_chunks(&who.org_id, &document.id)
        )?;
        Ok((document, text.unwrap_or_default(), chunks))
    }

    pub async fn list_documents(
        &self,
        who: &Principal,
        cursor: &Cursor,
    ) -> Result<Page<Document>, EngineError> {
        who.require_admin()?;
        let limit = cursor.limit()?;
        let page = PageRequest {
            limit: limit + 1,
            after_id: cursor.after_id(DocumentId::parse)?,
        };
        let rows = self.inner.store.list_documents(&who.org_id, &page).await?;
        Ok(Page::from_rows(rows, limit, |d| d.id.to_string()))
    }

    /// Every document of an organization, newest first (CLI).
    pub async fn documents_of(&self, org: &OrgId) -> Result<Vec<Document>, EngineError> {
        const PAGE: i64 = 200;
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = PageRequest {
                limit: PAGE,
                after_id: after.clone(),
            };
            let rows = self.inner.store.list_documents(org, &page).await?;
            let full = rows.len() as i64 == PAGE;
            after = rows.last().map(|d| d.id.to_string());
            all.extend(rows);
            if !full {
                return Ok(all);
            }
        }
    }

    pub async fn delete_document(&self, who: &Principal, id: &str) -> Result<(), EngineError> {
        who.require_admin()?;
        let id = DocumentId::parse(id).map_err(|_| EngineError::NotFound("document"))?;
        if self.inner.store.delete_document(&who.org_id, &id).await? {
            Ok(())
        } else {
            Err(EngineError::NotFound("document"))
        }
    }

    /// Ranks the organization's FAQ entries and document chunks for a
    /// question, as a turn would (for "try a question").
    pub async fn search_knowledge(
        &self,
        who: &Principal,
        query: &str,
        organization_id: Option<&str>,
        limit: usize,
        threshold: Option<f64>,
    ) -> Result<KnowledgeSearch, EngineError> {
        who.require_admin()?;
        validate::required_text("query", query, validate::USER_TEXT_MAX_CHARS)?;
        let threshold = threshold.unwrap_or(tidechat_llm::DEFAULT_CONFIDENCE_THRESHOLD);
        if !(0.0..=1.0).contains(&threshold) {
            return Err(EngineError::validation(
                "threshold",
                "must be between 0 and 1",
            ));
        }
        let (_, retrieval, embedded) = self
            .retrieve(
                &Billing::of(who),
                &who.workspace_id,
                query,
                limit.clamp(1, 50),
                organization_id,
                threshold,
            )
            .await?;
        Ok(KnowledgeSearch {
            retrieval,
            threshold,
            mode: if embedded { "hybrid" } else { "lexical" },
        })
    }
}

impl crate::Engine {
    /// Runs labelled questions against an organization's FAQ and documents
    /// (what `tidechat faq eval` prints): a lexical report, and a hybrid one
    /// when an embedder is configured. Missing embeddings are computed first.
    pub async fn evaluate_retrieval(
        &self,
        org: &OrgId,
        ws: &WorkspaceId,
        queries: &[tidechat_llm::faq::eval::LabelledQuery],
    ) -> Result<Vec<tidechat_llm::faq::eval::Report>, EngineError> {
        use tidechat_llm::faq::eval::evaluate;
        let billing = Billing {
            org_id: org.clone(),
            key: None,
        };
        self.embed_missing(ws, &billing).await?;
        let knowledge = self.inner.faqs.index(self, ws, &billing).await?;
        let threshold = tidechat_llm::DEFAULT_CONFIDENCE_THRESHOLD;
        let mut reports = vec![evaluate(
            &knowledge.index,
            queries,
            None,
            "lexical",
            threshold,
        )];
        if let Some(embedder) = self.embedder().cloned() {
            let texts: Vec<String> = queries.iter().map(|q| q.query.clone()).collect();
            let mut vectors: HashMap<String, Vec<f32>> = HashMap::new();
            for batch in texts.chunks(EMBED_WRITE_BATCH) {
                let out = embedder
                    .embed(batch.to_vec(), EmbedKind::Query)
                    .await
                    .map_err(|e| EngineError::Internal(format!("embedding the questions: {e}")))?;
                self.meter_embedding(&billing, embedder.as_ref(), out.input_tokens);
                vectors.extend(batch.iter().cloned().zip(out.vectors));
            }
            let lookup = |q: &str| vectors.get(q).cloned();
            reports.push(evaluate(
                &knowledge.index,
                queries,
                Some(&lookup),
                &format!("hybrid ({})", embedder.id()),
                threshold,
            ));
        }
        Ok(reports)
    }
}

/// Whether an embedder runs in process (free, not metered).
fn is_local(embedder: &dyn Embedder) -> bool {
    embedder.id().starts_with("local:")
}

/// The index documents of a workspace's entries and chunks, with their
/// stored embeddings where those are current.
pub(crate) fn index_docs(
    entries: Vec<FaqEntry>,
    chunks: Vec<DocumentChunk>,
    embeddings: HashMap<String, (String, Arc<[f32]>)>,
) -> (Vec<tidechat_llm::FaqDoc>, usize) {
    let mut missing = 0;
    let mut current = |id: &str, text: &str| -> Option<Arc<[f32]>> {
        match embeddings.get(id) {
            Some((hash, v)) if *hash == content_hash(text) => Some(v.clone()),
            _ => {
                missing += 1;
                None
            }
        }
    };
    let mut docs = Vec::with_capacity(entries.len() + chunks.len());
    for e in entries {
        let embedding = current(e.id.as_str(), &faq_passage(&e.question, &e.answer));
        docs.push(tidechat_llm::FaqDoc {
            id: e.id.into_string(),
            question: e.question,
            answer: e.answer,
            organization_id: e.organization_id,
            embedding,
            chunk: None,
        });
    }
    for c in chunks {
        let id = chunk_doc_id(&c.document_id, c.index);
        let embedding = current(&id, &chunk_passage(&c.heading, &c.content));
        docs.push(tidechat_llm::FaqDoc {
            id,
            question: c.heading,
            answer: c.content,
            organization_id: c.organization_id,
            embedding,
            chunk: Some(ChunkRef {
                document_id: c.document_id.into_string(),
                index: u32::try_from(c.index).unwrap_or(0),
            }),
        });
    }
    (docs, missing)
}

#[cfg(test)]
mod tests {
    #[test]
    fn persona_default_threshold_is_the_rankers() {
        assert_eq!(
            tidechat_domain::PersonaDraft::DEFAULT_FAQ_THRESHOLD,
            tidechat_llm::DEFAULT_CONFIDENCE_THRESHOLD
        );
    }
}
