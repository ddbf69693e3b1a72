-- Reverting a run: `attrsync revert RUN` is a run of its own that names the run it puts back.
--
-- * `reverts_run_id`: the run this one reverts, or NULL. No foreign key: pruning an old run
--   leaves the runs that reverted it readable (they then name a run the store no longer holds).
ALTER TABLE runs ADD COLUMN reverts_run_id TEXT;

CREATE INDEX runs_reverts ON runs (reverts_run_id) WHERE reverts_run_id IS NOT NULL;
