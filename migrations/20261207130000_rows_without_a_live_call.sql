-- Rows that select calls by number (customer_number, dialed_number) and matched no live call:
-- they cost no request and have no target. Such a row is recorded (with `--results` only, like a
-- row whose call ended) so that the result files list it as skipped.

ALTER TABLE input_rows ADD COLUMN no_live_call INTEGER NOT NULL DEFAULT 0
    CHECK (no_live_call IN (0, 1));

-- How many such rows a run had: a count, like `ended_rows`, not a target row each.
ALTER TABLE runs ADD COLUMN no_live_call_rows INTEGER NOT NULL DEFAULT 0
    CHECK (no_live_call_rows >= 0);
