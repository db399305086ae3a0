-- kefu schema version 3 (SQLite): limited attempts counted in the database, and side effects
-- that happen once per customer message even when a turn is run again.

-- One row per attempt (an ownership proof tried, card keys shown) under each counter it counts
-- against. Checking a counter and adding to it happen in one write transaction.
CREATE TABLE attempts (
    space       TEXT    NOT NULL,   -- customer_proofs | order_proofs | key_views
    subject     TEXT    NOT NULL,   -- channel:user, or a normalised order number
    attempt     TEXT    NOT NULL,   -- the attempt's id (derived from the message)
    at          INTEGER NOT NULL,
    PRIMARY KEY (space, subject, attempt)
) WITHOUT ROWID;
CREATE INDEX attempts_by_counter ON attempts (space, subject, at);
CREATE INDEX attempts_by_id ON attempts (attempt);
CREATE INDEX attempts_by_time ON attempts (at);

-- Audit events recorded once per key.
ALTER TABLE audit_log ADD COLUMN dedupe_key TEXT;
CREATE UNIQUE INDEX audit_once ON audit_log (dedupe_key) WHERE dedupe_key IS NOT NULL;

-- Tickets opened once per key.
ALTER TABLE tickets ADD COLUMN idempotency_key TEXT;
CREATE UNIQUE INDEX tickets_once ON tickets (idempotency_key) WHERE idempotency_key IS NOT NULL;

-- Cancellations and refunds made by key, with their outcome, so a repeat answers the same.
CREATE TABLE order_changes (
    idempotency_key TEXT    PRIMARY KEY,
    order_no        TEXT    NOT NULL,
    action          TEXT    NOT NULL,   -- cancel | refund
    done            INTEGER NOT NULL,   -- 1: made; 0: refused by the order's status
    status          TEXT    NOT NULL,   -- the order's status after the call
    at              INTEGER NOT NULL
) WITHOUT ROWID;
