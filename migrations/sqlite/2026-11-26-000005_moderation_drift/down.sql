ALTER TABLE personas DROP COLUMN drift_threshold;
ALTER TABLE personas DROP COLUMN redact_pii;
ALTER TABLE sessions DROP COLUMN drift_ewma;
ALTER TABLE messages DROP COLUMN original_content;
DROP TABLE moderation_records;
