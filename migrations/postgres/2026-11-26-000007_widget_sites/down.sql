DROP TABLE proactive_deliveries;
DROP TABLE proactive_messages;
DROP TABLE widget_message_ids;
DROP TABLE widget_conversations;
DROP TABLE sites;
