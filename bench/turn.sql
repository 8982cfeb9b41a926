-- pgbench script: the database writes of one persisted chat turn, as
-- tidechat-store's `append_message` issues them (crates/tidechat-store/src/repo.rs):
-- one transaction for the user message, one for the assistant reply (which is
-- billed and updates the session's drift average). Each transaction:
-- UPDATE sessions … (counters and, for replies, the drift average) RETURNING *
-- (takes the row lock and returns the updated session), INSERT INTO messages …
-- RETURNING *.
-- One pgbench "transaction" of this script = one turn.
-- Run: pgbench -n -M prepared -c 8 -j 2 -T 20 -D nsessions=512 -f bench/turn.sql DB
-- (after psql -v nsessions=512 -f bench/pgbench-setup.sql DB)
\set sid random(1, :nsessions)

-- user message (not billed, no drift)
BEGIN;
UPDATE sessions SET next_seq = next_seq + 1, message_count = message_count + 1,
  last_active_at = CASE WHEN last_active_at < LOCALTIMESTAMP THEN LOCALTIMESTAMP ELSE last_active_at END,
  input_tokens = input_tokens + 0, output_tokens = output_tokens + 0, cost_usd_micros = cost_usd_micros + 0,
  drift_ewma = CASE WHEN false AND drift_ewma IS NULL THEN 0 WHEN false THEN drift_ewma * 1 + 0 * 0 ELSE drift_ewma END
WHERE id = 'chs_pgb_' || :sid AND org_id = 'org_pgbench' RETURNING *, next_seq AS seq \gset
INSERT INTO messages (id, session_id, org_id, seq, role, content, input_tokens, output_tokens,
  tokens_estimated, model, latency_ms, cost_usd_micros, moderation_verdict, drift_score, status,
  created_at, api_key_id, first_token_ms, original_content)
VALUES ('msg_' || md5(random()::text), 'chs_pgb_' || :sid, 'org_pgbench', :seq - 1, 'user', 'hello there',
  2, 0, false, 'fast', 0, 0, 'allowed', 0, 'complete', LOCALTIMESTAMP, 'key_pgbench', NULL, NULL)
RETURNING *;
COMMIT;

-- assistant reply (billed, drift average updated)
BEGIN;
UPDATE sessions SET next_seq = next_seq + 1, message_count = message_count + 1,
  last_active_at = CASE WHEN last_active_at < LOCALTIMESTAMP THEN LOCALTIMESTAMP ELSE last_active_at END,
  input_tokens = input_tokens + 40, output_tokens = output_tokens + 16, cost_usd_micros = cost_usd_micros + 72,
  drift_ewma = CASE WHEN true AND drift_ewma IS NULL THEN 0.4 WHEN true THEN drift_ewma * 0.7 + 0.3 * 0.4 ELSE drift_ewma END
WHERE id = 'chs_pgb_' || :sid AND org_id = 'org_pgbench' RETURNING *, next_seq AS seq \gset
INSERT INTO messages (id, session_id, org_id, seq, role, content, input_tokens, output_tokens,
  tokens_estimated, model, latency_ms, cost_usd_micros, moderation_verdict, drift_score, status,
  created_at, api_key_id, first_token_ms, original_content)
VALUES ('msg_' || md5(random()::text), 'chs_pgb_' || :sid, 'org_pgbench', :seq - 1, 'assistant',
  'token0 token1 token2 token3 token4 token5 token6 token7 token8 token9 token10 token11 token12 token13 token14 token15',
  40, 16, false, 'fast', 3, 72, 'allowed', 0.4, 'complete', LOCALTIMESTAMP, 'key_pgbench', 1, NULL)
RETURNING *;
COMMIT;
