-- The FAQ chat surface identifies sessions by the client's own id, and keeps
-- a record of each end user it sees.
ALTER TABLE sessions ADD COLUMN external_id TEXT;
CREATE UNIQUE INDEX sessions_org_external_idx ON sessions (org_id, external_id);

CREATE TABLE end_users (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    last_seen_at TIMESTAMP NOT NULL,
    UNIQUE (org_id, user_id)
);
