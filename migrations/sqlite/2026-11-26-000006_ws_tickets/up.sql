-- Short-lived, single-use tickets for opening a WebSocket without putting an
-- API key in the URL. Only a hash of the ticket is stored.
CREATE TABLE ws_tickets (
    ticket_hash TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    api_key_id TEXT NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP
);
CREATE INDEX ws_tickets_expiry_idx ON ws_tickets (expires_at);
