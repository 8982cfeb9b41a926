-- Fixture for bench/turn.sql: one organization, workspace and persona, and
-- :nsessions active sessions `chs_pgb_1` … on a database migrated by
-- `tidechat migrate`. Run with: psql -v nsessions=512 -f bench/pgbench-setup.sql
INSERT INTO organizations (id, name, created_at) VALUES ('org_pgbench', 'pgbench', now());
INSERT INTO workspaces (id, org_id, name, default_persona_id, faq_version, created_at)
VALUES ('wsp_pgbench', 'org_pgbench', 'default', 'per_pgbench', 0, now());
INSERT INTO personas (id, org_id, workspace_id, name, system_prompt, model_id, temperature,
                      max_output_tokens, guardrails, fallback_reply, faq_threshold, created_at, updated_at)
VALUES ('per_pgbench', 'org_pgbench', 'wsp_pgbench', 'Support', 'You help.', 'fast', 0.2, 1024, '[]',
        'Sorry.', 0.35, now(), now());
INSERT INTO sessions (id, org_id, workspace_id, persona_id, user_id, title, status, metadata,
                      started_at, last_active_at)
SELECT 'chs_pgb_' || g, 'org_pgbench', 'wsp_pgbench', 'per_pgbench', 'bench-' || g, NULL, 'active',
       '{}', now(), now()
FROM generate_series(1, :nsessions) g;
ANALYZE;
