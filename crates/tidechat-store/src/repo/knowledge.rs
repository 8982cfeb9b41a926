//! Knowledge beyond FAQ entries: documents and their chunks, the stored
//! embeddings of entries and chunks, and usage that is not a reply
//! (embedding calls). Every write that changes what retrieval sees bumps the
//! workspace's `faq_version`, so every process rebuilds its index on its
//! next lookup.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde_json::{json, Value};
use tidechat_domain::{
    ApiKeyId, Citation, Document, DocumentChunk, DocumentFormat, DocumentId, FaqId, OrgId,
    StoredEmbedding, WorkspaceId,
};

use super::{on, scope, Conn};
use crate::error::{corrupt, StoreError};
use crate::models::{from_db_ts, to_db_ts};
use crate::schema::*;
use crate::{PageRequest, Store};

/// Insert-or-replace of one embedding row inside a transaction (same SQL on
/// both backends: `ON CONFLICT (item_id, model) DO UPDATE`).
macro_rules! upsert_embedding {
    ($conn:ident, $row:expr) => {{
        let row: &EmbeddingRow = $row;
        diesel::insert_into(knowledge_embeddings::table)
            .values(row)
            .on_conflict((knowledge_embeddings::item_id, knowledge_embeddings::model))
            .do_update()
            .set((
                knowledge_embeddings::content_hash.eq(&row.content_hash),
                knowledge_embeddings::vector.eq(&row.vector),
                knowledge_embeddings::workspace_id.eq(&row.workspace_id),
                knowledge_embeddings::created_at.eq(row.created_at),
            ))
            .execute($conn)
            .await?;
    }};
}

// ---------------------------------------------------------------- rows

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = documents)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
struct DocumentInsertRow {
    id: String,
    org_id: String,
    workspace_id: String,
    title: String,
    format: String,
    source_name: Option<String>,
    organization_id: Option<String>,
    text: String,
    text_chars: i64,
    chunk_count: i32,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

/// A document row without its text (listings never load the text).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = documents)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
struct DocumentRow {
    id: String,
    org_id: String,
    workspace_id: String,
    title: String,
    format: String,
    source_name: Option<String>,
    organization_id: Option<String>,
    text_chars: i64,
    chunk_count: i32,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

impl DocumentRow {
    fn into_domain(self) -> Result<Document, StoreError> {
        let format = DocumentFormat::parse(&self.format)
            .ok_or_else(|| corrupt("documents", &self.id, "unknown format"))?;
        Ok(Document {
            id: DocumentId::from_trusted(self.id),
            org_id: OrgId::from_trusted(self.org_id),
            workspace_id: WorkspaceId::from_trusted(self.workspace_id),
            title: self.title,
            format,
            source_name: self.source_name,
            organization_id: self.organization_id,
            chars: self.text_chars,
            chunk_count: self.chunk_count,
            created_at: from_db_ts(self.created_at),
            updated_at: from_db_ts(self.updated_at),
        })
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = document_chunks)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
struct ChunkRow {
    document_id: String,
    idx: i32,
    org_id: String,
    workspace_id: String,
    heading: String,
    content: String,
    organization_id: Option<String>,
}

impl ChunkRow {
    fn into_domain(self) -> DocumentChunk {
        DocumentChunk {
            document_id: DocumentId::from_trusted(self.document_id),
            index: self.idx,
            heading: self.heading,
            content: self.content,
            organization_id: self.organization_id,
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = knowledge_embeddings)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
struct EmbeddingRow {
    item_id: String,
    model: String,
    workspace_id: String,
    content_hash: String,
    vector: Vec<u8>,
    created_at: NaiveDateTime,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = usage_events)]
struct UsageEventRow {
    id: String,
    org_id: String,
    api_key_id: Option<String>,
    kind: String,
    model: String,
    input_tokens: i64,
    cost_usd_micros: i64,
    created_at: NaiveDateTime,
}

// ---------------------------------------------------------------- inputs

/// An embedding to store for a FAQ entry or document chunk.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEmbedding {
    /// See [`StoredEmbedding::item_id`].
    pub item_id: String,
    pub model: String,
    /// A hash of the text that was embedded: an embedding whose hash differs
    /// from the item's current text is stale.
    pub content_hash: String,
    pub vector: Vec<f32>,
}

/// A stored embedding with the hash of the text it was made from.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingRecord {
    pub embedding: StoredEmbedding,
    pub content_hash: String,
}

/// Usage that is not a reply: an embedding call (`kind` "embedding").
#[derive(Debug, Clone, PartialEq)]
pub struct UsageEvent {
    pub org_id: OrgId,
    pub api_key_id: Option<ApiKeyId>,
    pub kind: String,
    pub model: String,
    pub input_tokens: i64,
    pub cost_usd_micros: i64,
    pub created_at: DateTime<Utc>,
}

/// A document with its chunks and their embeddings, as written together.
#[derive(Debug, Clone)]
pub struct DocumentWrite<'a> {
    pub document: &'a Document,
    pub text: &'a str,
    pub chunks: &'a [DocumentChunk],
    pub embeddings: &'a [NewEmbedding],
}

/// The embedding item id of chunk `index` of `document`.
pub fn chunk_item_id(document: &DocumentId, index: i32) -> String {
    format!("{}#{index}", document.as_str())
}

fn chunk_item_pattern(document: &str) -> String {
    format!("{document}#%")
}

fn vector_to_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn vector_from_bytes(item: &str, bytes: &[u8]) -> Result<Vec<f32>, StoreError> {
    if !bytes.len().is_multiple_of(4) {
        return Err(corrupt(
            "knowledge_embeddings",
            item,
            "vector length is not a multiple of 4",
        ));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

// ---------------------------------------------------------------- citations

pub(crate) fn citations_to_json(citations: &[Citation]) -> String {
    Value::Array(
        citations
            .iter()
            .map(|c| match c {
                Citation::Faq { id } => json!({"type": "faq", "id": id.as_str()}),
                Citation::Document { id, chunk, title } => {
                    json!({"type": "document", "id": id.as_str(), "chunk": chunk, "title": title})
                }
            })
            .collect(),
    )
    .to_string()
}

pub(crate) fn citations_from_json(message: &str, text: &str) -> Result<Vec<Citation>, StoreError> {
    let bad = |why: &str| corrupt("messages", message, format!("citations: {why}"));
    let value: Value = serde_json::from_str(text).map_err(|e| bad(&e.to_string()))?;
    let Value::Array(items) = value else {
        return Err(bad("expected an array"));
    };
    items
        .iter()
        .map(|item| {
            let id = item
                .get("id")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("missing id"))?;
            match item.get("type").and_then(Value::as_str) {
                Some("faq") => Ok(Citation::Faq {
                    id: FaqId::from_trusted(id.to_owned()),
                }),
                Some("document") => Ok(Citation::Document {
                    id: DocumentId::from_trusted(id.to_owned()),
                    chunk: item
                        .get("chunk")
                        .and_then(Value::as_u64)
                        .and_then(|c| u32::try_from(c).ok())
                        .ok_or_else(|| bad("missing chunk"))?,
                    title: item
                        .get("title")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                }),
                _ => Err(bad("unknown type")),
            }
        })
        .collect()
}

fn chunk_rows(write: &DocumentWrite<'_>) -> Vec<ChunkRow> {
    let d = write.document;
    write
        .chunks
        .iter()
        .map(|c| ChunkRow {
            document_id: d.id.as_str().to_owned(),
            idx: c.index,
            org_id: d.org_id.as_str().to_owned(),
            workspace_id: d.workspace_id.as_str().to_owned(),
            heading: c.heading.clone(),
            content: c.content.clone(),
            organization_id: c.organization_id.clone(),
        })
        .collect()
}

fn embedding_rows(
    ws: &WorkspaceId,
    items: &[NewEmbedding],
    at: NaiveDateTime,
) -> Vec<EmbeddingRow> {
    items
        .iter()
        .map(|e| EmbeddingRow {
            item_id: e.item_id.clone(),
            model: e.model.clone(),
            workspace_id: ws.as_str().to_owned(),
            content_hash: e.content_hash.clone(),
            vector: vector_to_bytes(&e.vector),
            created_at: at,
        })
        .collect()
}

use super::not_in_org;

/// Inserts a document with its chunks and their embeddings, all or
/// nothing, and bumps the workspace's `faq_version`. The workspace must
/// belong to the document's organization (`Err(Conflict)` otherwise).
pub async fn insert_document(c: &mut Conn<'_>, write: DocumentWrite<'_>) -> Result<(), StoreError> {
    let d = write.document;
    let row = DocumentInsertRow {
        id: d.id.as_str().to_owned(),
        org_id: d.org_id.as_str().to_owned(),
        workspace_id: d.workspace_id.as_str().to_owned(),
        title: d.title.clone(),
        format: d.format.as_str().to_owned(),
        source_name: d.source_name.clone(),
        organization_id: d.organization_id.clone(),
        text: write.text.to_owned(),
        text_chars: d.chars,
        chunk_count: d.chunk_count,
        created_at: to_db_ts(d.created_at),
        updated_at: to_db_ts(d.updated_at),
    };
    let chunks = chunk_rows(&write);
    let embeddings = embedding_rows(&d.workspace_id, write.embeddings, to_db_ts(Utc::now()));
    let (row, chunks, embeddings) = (&row, &chunks, &embeddings);
    on!(c, conn => scope(async {
        let bumped = diesel::update(
            workspaces::table
                .filter(workspaces::id.eq(&row.workspace_id))
                .filter(workspaces::org_id.eq(&row.org_id)),
        )
        .set(workspaces::faq_version.eq(workspaces::faq_version + 1))
        .execute(conn)
        .await?;
        if bumped == 0 {
            return Err(not_in_org("workspace"));
        }
        diesel::insert_into(documents::table).values(row).execute(conn).await?;
        // Row by row: diesel_async's SQLite connection has no multi-row
        // insert; inside one transaction this is cheap on both backends.
        for chunk in chunks {
            diesel::insert_into(document_chunks::table).values(chunk).execute(conn).await?;
        }
        for e in embeddings {
            upsert_embedding!(conn, e);
        }
        Ok(())
    }).await)
}

/// Replaces a document's title, text, chunks and embeddings (the old
/// chunks and their embeddings are deleted) and bumps `faq_version`.
/// `None` when the document is not in the organization.
pub async fn replace_document(
    c: &mut Conn<'_>,
    org: &OrgId,
    write: DocumentWrite<'_>,
) -> Result<Option<Document>, StoreError> {
    let d = write.document;
    let id = d.id.as_str();
    let chunks = chunk_rows(&write);
    let embeddings = embedding_rows(&d.workspace_id, write.embeddings, to_db_ts(Utc::now()));
    let pattern = chunk_item_pattern(id);
    let (chunks, embeddings, pattern) = (&chunks, &embeddings, &pattern);
    let row: Option<DocumentRow> = on!(c, conn => scope(async {
        let row: Option<DocumentRow> = diesel::update(
            documents::table
                .filter(documents::id.eq(id))
                .filter(documents::org_id.eq(org.as_str())),
        )
        .set((
            documents::title.eq(&d.title),
            documents::format.eq(d.format.as_str()),
            documents::source_name.eq(&d.source_name),
            documents::organization_id.eq(&d.organization_id),
            documents::text.eq(write.text),
            documents::text_chars.eq(d.chars),
            documents::chunk_count.eq(d.chunk_count),
            documents::updated_at.eq(to_db_ts(d.updated_at)),
        ))
        .returning(DocumentRow::as_returning())
        .get_result(conn)
        .await
        .optional()?;
        let Some(row) = row else {
            return Ok(None);
        };
        diesel::delete(document_chunks::table.filter(document_chunks::document_id.eq(id)))
            .execute(conn)
            .await?;
        diesel::delete(
            knowledge_embeddings::table.filter(knowledge_embeddings::item_id.like(pattern)),
        )
        .execute(conn)
        .await?;
        for chunk in chunks {
            diesel::insert_into(document_chunks::table).values(chunk).execute(conn).await?;
        }
        for e in embeddings {
            upsert_embedding!(conn, e);
        }
        diesel::update(workspaces::table.find(&row.workspace_id))
            .set(workspaces::faq_version.eq(workspaces::faq_version + 1))
            .execute(conn)
            .await?;
        Ok(Some(row))
    }).await)?;
    row.map(DocumentRow::into_domain).transpose()
}

/// Deletes a document, its chunks and their embeddings; bumps
/// `faq_version`. `false` when it is not in the organization.
pub async fn delete_document(
    c: &mut Conn<'_>,
    org: &OrgId,
    id: &DocumentId,
) -> Result<bool, StoreError> {
    let pattern = chunk_item_pattern(id.as_str());
    let pattern = &pattern;
    on!(c, conn => scope(async {
        let ws: Option<String> = diesel::delete(
            documents::table
                .filter(documents::id.eq(id.as_str()))
                .filter(documents::org_id.eq(org.as_str())),
        )
        .returning(documents::workspace_id)
        .get_result(conn)
        .await
        .optional()?;
        let Some(ws) = ws else {
            return Ok(false);
        };
        diesel::delete(
            document_chunks::table.filter(document_chunks::document_id.eq(id.as_str())),
        )
        .execute(conn)
        .await?;
        diesel::delete(
            knowledge_embeddings::table.filter(knowledge_embeddings::item_id.like(pattern)),
        )
        .execute(conn)
        .await?;
        diesel::update(workspaces::table.find(&ws))
            .set(workspaces::faq_version.eq(workspaces::faq_version + 1))
            .execute(conn)
            .await?;
        Ok(true)
    }).await)
}

pub async fn get_document(
    c: &mut Conn<'_>,
    org: &OrgId,
    id: &DocumentId,
) -> Result<Option<Document>, StoreError> {
    let row: Option<DocumentRow> = on!(c, conn => {
        documents::table
            .filter(documents::id.eq(id.as_str()))
            .filter(documents::org_id.eq(org.as_str()))
            .select(DocumentRow::as_select())
            .first(conn)
            .await
            .optional()?
    });
    row.map(DocumentRow::into_domain).transpose()
}

/// The extracted text of a document of the organization.
pub async fn document_text(
    c: &mut Conn<'_>,
    org: &OrgId,
    id: &DocumentId,
) -> Result<Option<String>, StoreError> {
    on!(c, conn => {
        Ok(documents::table
            .filter(documents::id.eq(id.as_str()))
            .filter(documents::org_id.eq(org.as_str()))
            .select(documents::text)
            .first::<String>(conn)
            .await
            .optional()?)
    })
}

/// Documents of the organization, newest first (keyset on id).
pub async fn list_documents(
    c: &mut Conn<'_>,
    org: &OrgId,
    page: &PageRequest,
) -> Result<Vec<Document>, StoreError> {
    let rows: Vec<DocumentRow> = on!(c, conn => {
        let mut q = documents::table
            .filter(documents::org_id.eq(org.as_str()))
            .select(DocumentRow::as_select())
            .order(documents::id.desc())
            .limit(page.limit.max(0))
            .into_boxed();
        if let Some(after) = &page.after_id {
            q = q.filter(documents::id.lt(after.as_str()));
        }
        q.load(conn).await?
    });
    rows.into_iter().map(DocumentRow::into_domain).collect()
}

/// The chunks of a document of the organization, in order.
pub async fn document_chunks(
    c: &mut Conn<'_>,
    org: &OrgId,
    id: &DocumentId,
) -> Result<Vec<DocumentChunk>, StoreError> {
    let rows: Vec<ChunkRow> = on!(c, conn => {
        document_chunks::table
            .filter(document_chunks::document_id.eq(id.as_str()))
            .filter(document_chunks::org_id.eq(org.as_str()))
            .select(ChunkRow::as_select())
            .order(document_chunks::idx.asc())
            .load(conn)
            .await?
    });
    Ok(rows.into_iter().map(ChunkRow::into_domain).collect())
}

/// Every document chunk of the workspace (for its retrieval index).
pub async fn workspace_chunks(
    c: &mut Conn<'_>,
    ws: &WorkspaceId,
) -> Result<Vec<DocumentChunk>, StoreError> {
    let rows: Vec<ChunkRow> = on!(c, conn => {
        document_chunks::table
            .filter(document_chunks::workspace_id.eq(ws.as_str()))
            .select(ChunkRow::as_select())
            .order((document_chunks::document_id.asc(), document_chunks::idx.asc()))
            .load(conn)
            .await?
    });
    Ok(rows.into_iter().map(ChunkRow::into_domain).collect())
}

/// The workspace's stored embeddings made by `model`.
pub async fn workspace_embeddings(
    c: &mut Conn<'_>,
    ws: &WorkspaceId,
    model: &str,
) -> Result<Vec<EmbeddingRecord>, StoreError> {
    let rows: Vec<EmbeddingRow> = on!(c, conn => {
        knowledge_embeddings::table
            .filter(knowledge_embeddings::workspace_id.eq(ws.as_str()))
            .filter(knowledge_embeddings::model.eq(model))
            .select(EmbeddingRow::as_select())
            .load(conn)
            .await?
    });
    rows.into_iter()
        .map(|r| {
            let vector = vector_from_bytes(&r.item_id, &r.vector)?;
            Ok(EmbeddingRecord {
                embedding: StoredEmbedding {
                    item_id: r.item_id,
                    model: r.model,
                    vector,
                },
                content_hash: r.content_hash,
            })
        })
        .collect()
}

/// Stores (or replaces) embeddings of the workspace's items and bumps its
/// `faq_version`, so indexes built without them are rebuilt.
pub async fn put_embeddings(
    c: &mut Conn<'_>,
    ws: &WorkspaceId,
    items: &[NewEmbedding],
) -> Result<(), StoreError> {
    if items.is_empty() {
        return Ok(());
    }
    let rows = embedding_rows(ws, items, to_db_ts(Utc::now()));
    let rows = &rows;
    on!(c, conn => scope(async {
        diesel::update(workspaces::table.find(ws.as_str()))
            .set(workspaces::faq_version.eq(workspaces::faq_version + 1))
            .execute(conn)
            .await?;
        for e in rows {
            upsert_embedding!(conn, e);
        }
        Ok(())
    }).await)
}

/// Records usage that is not a reply (counted by usage reports and
/// monthly quotas).
pub async fn insert_usage_event(c: &mut Conn<'_>, event: &UsageEvent) -> Result<(), StoreError> {
    let row = UsageEventRow {
        id: format!("use_{}", ulid::Ulid::new().to_string().to_ascii_lowercase()),
        org_id: event.org_id.as_str().to_owned(),
        api_key_id: event.api_key_id.as_ref().map(|k| k.as_str().to_owned()),
        kind: event.kind.clone(),
        model: event.model.clone(),
        input_tokens: event.input_tokens,
        cost_usd_micros: event.cost_usd_micros,
        created_at: to_db_ts(event.created_at),
    };
    let row = &row;
    on!(c, conn => scope(async {
        diesel::insert_into(usage_events::table).values(row).execute(conn).await?;
        Ok(())
    }).await)
}

impl Store {
    pub async fn insert_document(&self, write: DocumentWrite<'_>) -> Result<(), StoreError> {
        self.transaction(async move |c| insert_document(c, write).await)
            .await
    }

    pub async fn replace_document(
        &self,
        org: &OrgId,
        write: DocumentWrite<'_>,
    ) -> Result<Option<Document>, StoreError> {
        self.transaction(async move |c| replace_document(c, org, write).await)
            .await
    }

    pub async fn delete_document(&self, org: &OrgId, id: &DocumentId) -> Result<bool, StoreError> {
        self.transaction(async move |c| delete_document(c, org, id).await)
            .await
    }

    pub async fn get_document(
        &self,
        org: &OrgId,
        id: &DocumentId,
    ) -> Result<Option<Document>, StoreError> {
        self.read(async move |c| get_document(c, org, id).await)
            .await
    }

    pub async fn document_text(
        &self,
        org: &OrgId,
        id: &DocumentId,
    ) -> Result<Option<String>, StoreError> {
        self.read(async move |c| document_text(c, org, id).await)
            .await
    }

    pub async fn list_documents(
        &self,
        org: &OrgId,
        page: &PageRequest,
    ) -> Result<Vec<Document>, StoreError> {
        self.read(async move |c| list_documents(c, org, page).await)
            .await
    }

    pub async fn document_chunks(
        &self,
        org: &OrgId,
        id: &DocumentId,
    ) -> Result<Vec<DocumentChunk>, StoreError> {
        self.read(async move |c| document_chunks(c, org, id).await)
            .await
    }

    pub async fn workspace_chunks(
        &self,
        ws: &WorkspaceId,
    ) -> Result<Vec<DocumentChunk>, StoreError> {
        self.read(async move |c| workspace_chunks(c, ws).await)
            .await
    }

    pub async fn workspace_embeddings(
        &self,
        ws: &WorkspaceId,
        model: &str,
    ) -> Result<Vec<EmbeddingRecord>, StoreError> {
        self.read(async move |c| workspace_embeddings(c, ws, model).await)
            .await
    }

    pub async fn put_embeddings(
        &self,
        ws: &WorkspaceId,
        items: &[NewEmbedding],
    ) -> Result<(), StoreError> {
        self.transaction(async move |c| put_embeddings(c, ws, items).await)
            .await
    }

    pub async fn insert_usage_event(&self, event: &UsageEvent) -> Result<(), StoreError> {
        self.transaction(async move |c| insert_usage_event(c, event).await)
            .await
    }
}
