-- kefu schema version 2 (PostgreSQL): a conversation's version moves on by exactly one per
-- write, as on SQLite, where this rule is what refuses a turn that started on an older version.
CREATE FUNCTION kefu_conversations_version_step() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.version <> OLD.version + 1 THEN
        RAISE EXCEPTION 'kefu: conversation version conflict'
            USING ERRCODE = 'serialization_failure';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER conversations_version_step
BEFORE UPDATE OF version ON conversations
FOR EACH ROW EXECUTE FUNCTION kefu_conversations_version_step();
