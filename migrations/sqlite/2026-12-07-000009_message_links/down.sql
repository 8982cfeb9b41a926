DROP INDEX messages_session_model_idx;
DROP INDEX messages_reply_to_idx;
DROP INDEX messages_client_message_idx;
ALTER TABLE messages DROP COLUMN reply_to;
ALTER TABLE messages DROP COLUMN client_message_id;
