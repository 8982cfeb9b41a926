-- Quota held by running turns: a turn reserves its input plus its
-- maxOutputTokens (and their cost) before it starts and releases the hold
-- once its reply is stored, so concurrent turns see each other's spending.
-- Holds of a process that died expire (expires_at) instead of blocking the
-- quota for the rest of the month.
CREATE TABLE quota_reservations (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    api_key_id TEXT,
    tokens BIGINT NOT NULL,
    cost_usd_micros BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX quota_reservations_org_idx ON quota_reservations (org_id, expires_at);
