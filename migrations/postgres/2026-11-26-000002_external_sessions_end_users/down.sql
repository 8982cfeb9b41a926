DROP TABLE end_users;
DROP INDEX sessions_org_external_idx;
ALTER TABLE sessions DROP COLUMN external_id;
