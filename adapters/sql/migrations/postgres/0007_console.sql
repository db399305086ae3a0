-- kefu schema version 7 (PostgreSQL): the agents' console — VIP and escalated hand-offs, the
-- first human reply and transfer notes (the queue's rows are the hand-off history the
-- service report reads), and agents' status, capacity and skill groups.

ALTER TABLE handoff_queue ADD COLUMN vip BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE handoff_queue ADD COLUMN escalated_at BIGINT;
ALTER TABLE handoff_queue ADD COLUMN first_reply_at BIGINT;
ALTER TABLE handoff_queue ADD COLUMN note TEXT;
CREATE INDEX handoff_held ON handoff_queue (claimed_by) WHERE claimed_by IS NOT NULL AND closed_at IS NULL;
CREATE INDEX handoff_by_time ON handoff_queue (enqueued_at);
CREATE INDEX handoff_by_conversation ON handoff_queue (channel, conversation_id, id);

ALTER TABLE agent_accounts ADD COLUMN status TEXT NOT NULL DEFAULT 'away';  -- available | away
ALTER TABLE agent_accounts ADD COLUMN capacity INTEGER NOT NULL DEFAULT 3;
ALTER TABLE agent_accounts ADD COLUMN groups TEXT NOT NULL DEFAULT '';       -- comma-separated; empty = every group
ALTER TABLE agent_accounts ADD COLUMN seen_at BIGINT;                       -- last sign of a console open

CREATE INDEX transcript_by_time ON transcript_lines (at);
CREATE INDEX conversations_by_update ON conversations (updated_at);
