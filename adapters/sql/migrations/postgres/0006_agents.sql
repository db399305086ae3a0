-- kefu schema version 6 (PostgreSQL): the people who answer customers — their accounts
-- (kefu agents add) and their log-in sessions for the console.

CREATE TABLE agent_accounts (
    name          TEXT PRIMARY KEY,           -- what they log in with, and appear as
    role          TEXT    NOT NULL,           -- agent | admin
    password_hash TEXT    NOT NULL,           -- Argon2id, PHC string
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    BIGINT NOT NULL
);

CREATE TABLE agent_sessions (
    token_hash TEXT PRIMARY KEY,              -- SHA-256 of the session cookie's token (hex)
    agent      TEXT    NOT NULL REFERENCES agent_accounts (name),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX agent_sessions_by_agent ON agent_sessions (agent);
