-- kefu schema version 2 (SQLite): a turn commits as one statement list (one call into SQLite
-- instead of five), which needs the database itself to refuse what must not be stored, and
-- leaner tables for what every turn writes.

-- A conversation's version moves on by exactly one per write. There is no chance to look at a
-- row count between the statements of a turn; this trigger is what refuses a write from a turn
-- that started on an older version (kefu runs such a turn again on the new state).
CREATE TRIGGER conversations_version_step
BEFORE UPDATE OF version ON conversations
WHEN NEW.version <> OLD.version + 1
BEGIN
    SELECT RAISE(ABORT, 'kefu: conversation version conflict');
END;

-- Processed message ids: the key is the whole row, so one b-tree instead of a table and its
-- index.
CREATE TABLE processed_messages_v2 (
    channel         TEXT    NOT NULL,
    conversation_id TEXT    NOT NULL,
    message_id      TEXT    NOT NULL,
    at              INTEGER NOT NULL,
    PRIMARY KEY (channel, conversation_id, message_id)
) WITHOUT ROWID;
INSERT INTO processed_messages_v2 (channel, conversation_id, message_id, at)
    SELECT channel, conversation_id, message_id, at FROM processed_messages;
DROP TABLE processed_messages;
ALTER TABLE processed_messages_v2 RENAME TO processed_messages;

-- Transcript lines: ids still grow with every line (lines are never deleted from the end), without
-- AUTOINCREMENT's extra write to sqlite_sequence on every insert.
CREATE TABLE transcript_lines_v2 (
    id              INTEGER PRIMARY KEY,
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
INSERT INTO transcript_lines_v2 (id, channel, conversation_id, at, speaker, message_id, text,
                                 decision, confidence, entry, kind)
    SELECT id, channel, conversation_id, at, speaker, message_id, text, decision, confidence,
           entry, kind
    FROM transcript_lines;
DROP TABLE transcript_lines;
ALTER TABLE transcript_lines_v2 RENAME TO transcript_lines;
CREATE INDEX transcript_by_conversation ON transcript_lines (channel, conversation_id, id);
