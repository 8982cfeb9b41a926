-- Limits and quotas per organization (api_key_id = '') and per API key;
-- key scopes; which key each message was billed to.
CREATE TABLE limits (
    org_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    api_key_id TEXT NOT NULL DEFAULT '',
    requests_per_minute BIGINT,
    max_concurrent_streams BIGINT,
    monthly_tokens BIGINT,
    monthly_cost_usd_micros BIGINT,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (org_id, api_key_id)
);

ALTER TABLE api_keys ADD COLUMN scope TEXT NOT NULL DEFAULT 'admin';

ALTER TABLE messages ADD COLUMN api_key_id TEXT;
CREATE INDEX messages_key_idx ON messages (api_key_id, created_at);
