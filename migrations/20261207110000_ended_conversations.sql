-- History is nearly free: what a run learns about conversations that ended, and what it did
-- with the rows that named them.
--
-- * `ended_conversations`: every conversation a run saw ended (analytics' `conversationEnd`, or
--   a read with every participant gone). A conversation that ended never becomes live again, so
--   later runs never look it up. Not tied to a run: it outlives pruned runs.
-- * `runs.ended_rows`: the run's desired rows whose conversation had ended; they are a count,
--   not a target row each.
-- * `input_rows.conversation_ended`: such a row, recorded (with `--results` only) so that the
--   result files list it as skipped.

CREATE TABLE ended_conversations (
    conversation_id  TEXT    PRIMARY KEY NOT NULL,
    ended_at         INTEGER,                        -- when it ended (Unix ms), when known
    seen_at          INTEGER NOT NULL                -- when a run first saw it ended (Unix ms)
) STRICT, WITHOUT ROWID;

ALTER TABLE runs ADD COLUMN ended_rows INTEGER NOT NULL DEFAULT 0 CHECK (ended_rows >= 0);

ALTER TABLE input_rows ADD COLUMN conversation_ended INTEGER NOT NULL DEFAULT 0
    CHECK (conversation_ended IN (0, 1));
