-- kefu schema version 4 (SQLite): the outbox — messages to customers that are not the direct
-- answer to their message (agents' replies, ticket notices), written with the change that
-- causes them and delivered by a worker.

CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,  -- grows in the order messages were written
    channel         TEXT    NOT NULL,
    conversation_id TEXT    NOT NULL,
    kind            TEXT    NOT NULL,                   -- the message's kind (agent_message, ...)
    body            TEXT    NOT NULL,                   -- the message as JSON
    state           TEXT    NOT NULL DEFAULT 'pending', -- pending | sent | dead
    attempts        INTEGER NOT NULL DEFAULT 0,         -- claims so far
    not_before      INTEGER NOT NULL DEFAULT 0,         -- due at (ms); 0: at once
    lease_until     INTEGER NOT NULL DEFAULT 0,         -- a worker's claim holds until (ms)
    claim           TEXT,                               -- the live claim's token
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    sent_at         INTEGER
);
-- A conversation's pending messages in order: the claim takes only the oldest.
CREATE INDEX outbox_pending ON outbox (channel, conversation_id, id) WHERE state = 'pending';
CREATE INDEX outbox_by_state ON outbox (state, id);
