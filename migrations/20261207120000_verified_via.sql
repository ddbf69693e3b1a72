-- How a target's values were seen after its change: `event` (a notification event showed the
-- written values) or `read` (a GET of the call). NULL for targets no verification looked at.
ALTER TABLE targets ADD COLUMN verified_via TEXT
    CHECK (verified_via IS NULL OR verified_via IN ('event', 'read'));
