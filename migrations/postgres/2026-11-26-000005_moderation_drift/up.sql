-- Moderation records per message, the original text of replaced replies
-- (audit), persona moderation settings and the session's drift aggregate.
CREATE TABLE moderation_records (
    id BIGINT NOT NULL,
    message_id TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    org_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    stage TEXT NOT NULL,
    category TEXT NOT NULL,
    rule TEXT NOT NULL,
    action TEXT NOT NULL,
    excerpt TEXT NOT NULL,
    PRIMARY KEY (message_id, id)
);

ALTER TABLE messages ADD COLUMN original_content TEXT;
ALTER TABLE sessions ADD COLUMN drift_ewma DOUBLE PRECISION;
ALTER TABLE personas ADD COLUMN redact_pii BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE personas ADD COLUMN drift_threshold DOUBLE PRECISION;
