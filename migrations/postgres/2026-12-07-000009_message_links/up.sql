-- Links between messages, so a retried widget message finds its own reply:
-- the user message keeps the id the client sent it with, the reply names
-- the message it answers. Operator messages are read by model after the
-- visitor's read mark.
ALTER TABLE messages ADD COLUMN client_message_id TEXT;
ALTER TABLE messages ADD COLUMN reply_to TEXT;
CREATE UNIQUE INDEX messages_client_message_idx ON messages (session_id, client_message_id);
CREATE INDEX messages_reply_to_idx ON messages (reply_to);
CREATE INDEX messages_session_model_idx ON messages (session_id, model, seq);
