ALTER TABLE messages DROP COLUMN first_token_ms;
DROP TABLE tools;
