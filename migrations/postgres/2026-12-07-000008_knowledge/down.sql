UPDATE personas SET faq_threshold = 0.35 WHERE faq_threshold = 0.65;
DROP TABLE usage_events;
ALTER TABLE messages DROP COLUMN citations;
DROP TABLE knowledge_embeddings;
DROP TABLE document_chunks;
DROP TABLE documents;
