-- kefu schema version 5 (PostgreSQL): the buttons offered with a bot's message are kept with its
-- transcript line (a reloaded web chat shows them again), and settings the service makes
-- for itself once (the web chat's cookie key), shared by every process on the database.

ALTER TABLE transcript_lines ADD COLUMN quick_replies TEXT;   -- JSON array of {label, payload}

CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
