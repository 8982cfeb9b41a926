-- Website widget: sites (public site keys), the widget conversation state of
-- a session (mode, contact, rating, block), idempotent message ids and
-- proactive messages.
CREATE TABLE sites (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    persona_id TEXT NOT NULL REFERENCES personas(id),
    site_key TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    allowed_origins TEXT NOT NULL,
    settings TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX sites_org_idx ON sites (org_id, id);

CREATE TABLE widget_conversations (
    session_id TEXT PRIMARY KEY REFERENCES sessions(id) ON DELETE CASCADE,
    org_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    site_id TEXT NOT NULL REFERENCES sites(id) ON DELETE CASCADE,
    visitor_key TEXT NOT NULL,
    mode TEXT NOT NULL,
    email TEXT,
    phone TEXT,
    name TEXT,
    rating BIGINT,
    rating_comment TEXT,
    blocked BOOLEAN NOT NULL,
    operator_read_seq BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (site_id, visitor_key)
);
CREATE INDEX widget_conversations_site_idx ON widget_conversations (site_id, updated_at);

CREATE TABLE widget_message_ids (
    session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    client_message_id TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (session_id, client_message_id)
);

CREATE TABLE proactive_messages (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    site_id TEXT NOT NULL REFERENCES sites(id) ON DELETE CASCADE,
    content TEXT NOT NULL,
    delay_seconds BIGINT NOT NULL,
    url_pattern TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE proactive_deliveries (
    proactive_id TEXT NOT NULL REFERENCES proactive_messages(id) ON DELETE CASCADE,
    visitor_key TEXT NOT NULL,
    delivered_at TIMESTAMP NOT NULL,
    PRIMARY KEY (proactive_id, visitor_key)
);
