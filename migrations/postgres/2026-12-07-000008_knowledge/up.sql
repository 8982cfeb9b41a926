-- Knowledge documents, their chunks, stored embeddings, citations on
-- messages and usage that is not a reply (embedding calls).
CREATE TABLE documents (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    title TEXT NOT NULL,
    format TEXT NOT NULL,
    source_name TEXT,
    organization_id TEXT,
    text TEXT NOT NULL,
    text_chars BIGINT NOT NULL,
    chunk_count INTEGER NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX documents_org_idx ON documents (org_id, id);
CREATE INDEX documents_workspace_idx ON documents (workspace_id, id);

CREATE TABLE document_chunks (
    document_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    org_id TEXT NOT NULL,
    workspace_id TEXT NOT NULL,
    heading TEXT NOT NULL,
    content TEXT NOT NULL,
    organization_id TEXT,
    PRIMARY KEY (document_id, idx)
);
CREATE INDEX document_chunks_workspace_idx ON document_chunks (workspace_id);

-- item_id: a FAQ entry id or 'doc_…#N'. Deleted with their item by the
-- store (FAQ entries and documents), and with the workspace.
CREATE TABLE knowledge_embeddings (
    item_id TEXT NOT NULL,
    model TEXT NOT NULL,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    content_hash TEXT NOT NULL,
    vector BYTEA NOT NULL,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (item_id, model)
);
CREATE INDEX knowledge_embeddings_workspace_idx ON knowledge_embeddings (workspace_id, model);

ALTER TABLE messages ADD COLUMN citations TEXT NOT NULL DEFAULT '[]';

CREATE TABLE usage_events (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    api_key_id TEXT,
    kind TEXT NOT NULL,
    model TEXT NOT NULL,
    input_tokens BIGINT NOT NULL,
    cost_usd_micros BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX usage_events_org_idx ON usage_events (org_id, created_at);

-- The ranker's confidence was recalibrated (one calibrated confidence for
-- lexical and hybrid ranking): the default threshold moved from 0.35 to
-- 0.65. Personas still at the old default get the new one.
UPDATE personas SET faq_threshold = 0.65 WHERE faq_threshold = 0.35;
