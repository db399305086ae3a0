-- kefu schema version 1 (SQLite). Times are milliseconds since the Unix epoch.

-- One row per conversation: the whole state as JSON, plus the columns consoles filter on.
CREATE TABLE conversations (
    channel         TEXT    NOT NULL,
    conversation_id TEXT    NOT NULL,
    customer        TEXT    NOT NULL,
    locale          TEXT    NOT NULL,
    holder          TEXT    NOT NULL,   -- bot | queue | agent
    agent           TEXT,
    flow            TEXT,               -- the flow in progress
    state           TEXT    NOT NULL,   -- kefu_core::Conversation as JSON
    version         INTEGER NOT NULL,   -- turns committed; guards against lost updates
    started_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (channel, conversation_id)
);
CREATE INDEX conversations_by_holder ON conversations (holder, updated_at);

-- Every inbound and outbound message, in commit order.
CREATE TABLE transcript_lines (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    channel         TEXT    NOT NULL,
    conversation_id TEXT    NOT NULL,
    at              INTEGER NOT NULL,
    speaker         TEXT    NOT NULL,   -- customer | bot | agent
    message_id      TEXT,
    text            TEXT    NOT NULL,
    decision        TEXT,
    confidence      REAL,
    entry           TEXT,
    kind            TEXT
);
CREATE INDEX transcript_by_conversation ON transcript_lines (channel, conversation_id, id);

-- Platform message ids already handled: the primary key is what de-duplicates deliveries.
CREATE TABLE processed_messages (
    channel         TEXT    NOT NULL,
    conversation_id TEXT    NOT NULL,
    message_id      TEXT    NOT NULL,
    at              INTEGER NOT NULL,
    PRIMARY KEY (channel, conversation_id, message_id)
);

-- Conversations waiting for, or held by, a person. At most one open item per conversation.
CREATE TABLE handoff_queue (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    channel         TEXT    NOT NULL,
    conversation_id TEXT    NOT NULL,
    customer        TEXT    NOT NULL,
    skill_group     TEXT    NOT NULL,
    priority        INTEGER NOT NULL,   -- 0 low, 1 normal, 2 high, 3 urgent
    reason          TEXT    NOT NULL,
    entry           TEXT,
    locale          TEXT    NOT NULL,
    entities        TEXT    NOT NULL,   -- JSON object
    transcript      TEXT    NOT NULL,   -- JSON array of transcript lines
    enqueued_at     INTEGER NOT NULL,
    claimed_by      TEXT,
    claimed_at      INTEGER,
    closed_at       INTEGER
);
CREATE UNIQUE INDEX handoff_open_per_conversation
    ON handoff_queue (channel, conversation_id) WHERE closed_at IS NULL;
CREATE INDEX handoff_waiting
    ON handoff_queue (skill_group, priority DESC, enqueued_at, id)
    WHERE claimed_by IS NULL AND closed_at IS NULL;

-- Customer messages passed to the person holding a conversation.
CREATE TABLE relayed_messages (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    channel         TEXT    NOT NULL,
    conversation_id TEXT    NOT NULL,
    message_id      TEXT    NOT NULL,
    customer        TEXT    NOT NULL,
    text            TEXT    NOT NULL,
    at              INTEGER NOT NULL,
    UNIQUE (channel, conversation_id, message_id)
);

-- After-sales tickets and their history.
CREATE TABLE tickets (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    number          TEXT UNIQUE,        -- set in the transaction that opens the ticket
    kind            TEXT    NOT NULL,
    order_no        TEXT,
    channel         TEXT,
    conversation_id TEXT,
    customer        TEXT    NOT NULL,
    description     TEXT    NOT NULL,
    skill_group     TEXT    NOT NULL,
    owner           TEXT,
    status          TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    due_at          INTEGER NOT NULL
);
CREATE INDEX tickets_by_order ON tickets (order_no, id);
CREATE INDEX tickets_by_customer ON tickets (channel, customer, id);
CREATE INDEX tickets_open_by_due ON tickets (status, due_at);

CREATE TABLE ticket_events (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    ticket_id       INTEGER NOT NULL REFERENCES tickets (id),
    at              INTEGER NOT NULL,
    status          TEXT    NOT NULL,
    by_whom         TEXT    NOT NULL,
    note            TEXT    NOT NULL
);
CREATE INDEX ticket_events_by_ticket ON ticket_events (ticket_id, id);

-- The shop's own orders (for shops without an order system of their own).
CREATE TABLE orders (
    number              TEXT PRIMARY KEY,
    product             TEXT    NOT NULL,
    status              TEXT    NOT NULL,
    amount_cents        INTEGER NOT NULL,
    currency            TEXT    NOT NULL,
    quantity            INTEGER NOT NULL,
    buyer_email         TEXT,
    buyer_phone         TEXT,
    query_password_hash TEXT,          -- SHA-256 of the order number and the password, hex
    buyer_channel       TEXT,
    buyer_user          TEXT,
    created_at          INTEGER,
    paid_at             INTEGER,
    delivered_at        INTEGER,
    delivery_due_at     INTEGER,
    redeem              TEXT,
    imported_at         INTEGER NOT NULL
);
CREATE INDEX orders_by_buyer ON orders (buyer_channel, buyer_user);

CREATE TABLE card_keys (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    order_no        TEXT    NOT NULL REFERENCES orders (number) ON DELETE CASCADE,
    position        INTEGER NOT NULL,
    code            TEXT    NOT NULL,
    UNIQUE (order_no, position)
);

-- Who saw which card key when, and other sensitive events. Append only.
CREATE TABLE audit_log (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    at              INTEGER NOT NULL,
    actor           TEXT    NOT NULL,
    action          TEXT    NOT NULL,
    subject         TEXT    NOT NULL,
    detail          TEXT    NOT NULL
);
CREATE INDEX audit_by_subject ON audit_log (subject, id);
