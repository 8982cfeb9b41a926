DROP TABLE server_secrets;
DROP TABLE faq_entries;
DROP TABLE messages;
DROP TABLE sessions;
DROP TABLE api_keys;
DROP TABLE personas;
DROP TABLE workspaces;
DROP TABLE organizations;
