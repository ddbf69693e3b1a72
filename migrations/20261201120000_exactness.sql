-- Exactness: a run's input rows and which processes worked on it, and two target statuses for
-- rows a dead process left behind.
--
-- * `not_applied`: a later run read the live state and the change is not there.
-- * `unknown`: the call had ended before a later run could look.
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
                                       'not_applied', 'unknown')),
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

-- A run's process: with host and pid, the process's start time tells a live holder from a
-- reused pid (in a container every first process is pid 1). `heartbeat_at` is refreshed while
-- the run works, for runs of another host.
ALTER TABLE runs ADD COLUMN pid_start_time INTEGER;
ALTER TABLE runs ADD COLUMN heartbeat_at INTEGER;

-- Every process that worked on a run: the first, and each `--resume`.
CREATE TABLE run_processes (
    id               INTEGER PRIMARY KEY,
    run_id           TEXT    NOT NULL REFERENCES runs (id) ON DELETE CASCADE ON UPDATE CASCADE,
    command          TEXT    NOT NULL,
    host             TEXT    NOT NULL,
    pid              INTEGER NOT NULL,
    pid_start_time   INTEGER,
    started_at       INTEGER NOT NULL,
    finished_at      INTEGER,
    exit_code        INTEGER
) STRICT;

CREATE INDEX run_processes_run ON run_processes (run_id);

-- The input a run was given, row by row, so that result files are written from the record and
-- never by re-reading the source. `cells` is a JSON array of the row's cells, in the order of
-- `runs.input_header`; `problem` is set for a row `--skip-invalid` left out.
ALTER TABLE runs ADD COLUMN input_header TEXT CHECK (input_header IS NULL OR json_valid(input_header));

CREATE TABLE input_rows (
    run_id           TEXT    NOT NULL REFERENCES runs (id) ON DELETE CASCADE ON UPDATE CASCADE,
    line             INTEGER NOT NULL,
    cells            TEXT    NOT NULL CHECK (json_valid(cells) AND json_type(cells) = 'array'),
    problem          TEXT,
    PRIMARY KEY (run_id, line)
) STRICT;
