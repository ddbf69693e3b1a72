-- Following a queue: one target status for calls `tag --follow` saw but had not sent anything
-- for when it was stopped (its normal end).
--
-- * `unprocessed`: seen, not sent; nothing to resume.
-- SQLite cannot alter a CHECK constraint, so `targets` is rebuilt with the same columns.

CREATE TABLE targets_new (
    id               INTEGER PRIMARY KEY,
    run_id           TEXT    NOT NULL REFERENCES runs (id) ON DELETE CASCADE ON UPDATE CASCADE,
    seq              INTEGER NOT NULL,               -- position in the plan
    conversation_id  TEXT    NOT NULL,
    participant_id   TEXT,                           -- NULL when nothing was matched
    selector         TEXT    NOT NULL,
    purpose          TEXT,
    input_lines      TEXT    NOT NULL DEFAULT '',    -- e.g. "desired.csv:12,13"
    status           TEXT    NOT NULL
                     CHECK (status IN ('planned', 'unchanged', 'skipped', 'stale', 'sending',
                                       'applied', 'verified', 'drift', 'failed',
                                       'not_applied', 'unknown', 'unprocessed')),
    reason           TEXT,                           -- why skipped / stale / failed
    before           TEXT    NOT NULL DEFAULT '{}'
                     CHECK (json_valid(before) AND json_type(before) = 'object'),
    desired          TEXT    NOT NULL DEFAULT '{}'
                     CHECK (json_valid(desired) AND json_type(desired) = 'object'),
    observed         TEXT    CHECK (observed IS NULL OR json_type(observed) = 'object'),
    http_status      INTEGER,
    error_code       TEXT,
    error_message    TEXT,
    correlation_id   TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    sent_at          INTEGER,                        -- last durable `sending` mark
    UNIQUE (run_id, seq)
) STRICT;

INSERT INTO targets_new SELECT * FROM targets;
DROP TABLE targets;
ALTER TABLE targets_new RENAME TO targets;

CREATE INDEX targets_run_status ON targets (run_id, status);
CREATE INDEX targets_conversation ON targets (conversation_id, participant_id);
CREATE INDEX targets_participant ON targets (participant_id);
CREATE INDEX targets_updated_at ON targets (updated_at);
