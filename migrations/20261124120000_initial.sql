-- Audit store of attrsync: runs, one row per target per run, every HTTP attempt, and the run lock.
--
-- Conventions:
-- * Every timestamp is INTEGER milliseconds since the Unix epoch, UTC. One representation keeps
--   comparisons (--since/--until) and arithmetic (durations, requests per second) exact and
--   indexable; the binary renders RFC 3339 at the edge.
-- * Attribute values are JSON objects in TEXT columns, checked with json_valid.
-- * No column ever holds a credential or a bearer token.
-- * STRICT tables: a wrongly typed value is an error, not a silent coercion.

CREATE TABLE runs (
    id               TEXT    PRIMARY KEY NOT NULL,  -- sortable: 20261124T101530Z-ab12cd
    started_at       INTEGER NOT NULL,
    finished_at      INTEGER,
    status           TEXT    NOT NULL
                     CHECK (status IN ('running', 'completed', 'failed', 'interrupted')),
    exit_code        INTEGER,
    command          TEXT    NOT NULL,
    source_path      TEXT,
    source_sha256    TEXT,
    options          TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(options)),
    tool_version     TEXT    NOT NULL,
    host             TEXT    NOT NULL,
    pid              INTEGER NOT NULL,               -- with host: tells a crashed run from a live one
    operator         TEXT,
    rate_per_minute  REAL,                           -- configured budget, drawn in the report
    resumed_count    INTEGER NOT NULL DEFAULT 0,
    CHECK (finished_at IS NULL OR finished_at >= started_at)
) STRICT;

CREATE INDEX runs_started_at ON runs (started_at);
CREATE INDEX runs_running ON runs (status) WHERE status = 'running';

CREATE TABLE targets (
    id               INTEGER PRIMARY KEY,
    run_id           TEXT    NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq              INTEGER NOT NULL,               -- position in the plan
    conversation_id  TEXT    NOT NULL,
    participant_id   TEXT,                           -- NULL when nothing was matched
    selector         TEXT    NOT NULL,
    purpose          TEXT,
    input_lines      TEXT    NOT NULL DEFAULT '',    -- e.g. "desired.csv:12,13"
    status           TEXT    NOT NULL
                     CHECK (status IN ('planned', 'unchanged', 'skipped', 'stale', 'sending',
                                       'applied', 'verified', 'drift', 'failed')),
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

CREATE INDEX targets_run_status ON targets (run_id, status);
CREATE INDEX targets_conversation ON targets (conversation_id, participant_id);
CREATE INDEX targets_participant ON targets (participant_id);
CREATE INDEX targets_updated_at ON targets (updated_at);

-- One row per HTTP attempt: the report's timeline and the evidence for resume analysis.
CREATE TABLE requests (
    id               INTEGER PRIMARY KEY,
    run_id           TEXT    NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    at               INTEGER NOT NULL,
    method           TEXT    NOT NULL,
    route            TEXT    NOT NULL,               -- templated path, never a query string
    conversation_id  TEXT,
    participant_id   TEXT,
    status           INTEGER,                        -- NULL: transport error, no response
    latency_ms       INTEGER NOT NULL,
    attempt          INTEGER NOT NULL,
    retry_after_ms   INTEGER,
    error_class      TEXT,
    correlation_id   TEXT,
    token_slot       INTEGER                         -- index in the token pool, not the token
) STRICT;

CREATE INDEX requests_run_at ON requests (run_id, at);

-- Named advisory locks, e.g. "one reconcile at a time per audit store".
CREATE TABLE locks (
    name             TEXT    PRIMARY KEY NOT NULL,
    lease_id         TEXT    NOT NULL,               -- random, identifies the holder's lease
    holder_pid       INTEGER NOT NULL,
    holder_host      TEXT    NOT NULL,
    acquired_at      INTEGER NOT NULL,
    heartbeat_at     INTEGER NOT NULL
) STRICT;
