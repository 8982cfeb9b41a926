DROP INDEX messages_key_idx;
ALTER TABLE messages DROP COLUMN api_key_id;
ALTER TABLE api_keys DROP COLUMN scope;
DROP TABLE limits;
