DROP TABLE usage_events;
ALTER TABLE messages DROP COLUMN citations;
DROP TABLE knowledge_embeddings;
DROP TABLE document_chunks;
DROP TABLE documents;
