-- Cheaper candidates for the conflict check (measured in bench/conflict_check.py: 1,000,000
-- events, 100 owners). In the GiST index of all permission rows, the unbounded envelopes of
-- series widen the keys of every page they share with short events: probing half an hour of
-- one calendar visited about 40 index pages for 25 rows. So rows are split by the span of
-- their envelope. A `long` row (more than 24 hours: every series, the rare long event) is
-- found in a GiST index of its own, a small one. A short row overlaps [L, U) only if the
-- lower bound of its envelope lies in (L - 24 hours, U), a range scan of a btree. (24 hours,
-- not '1 day': subtracting a day from a timestamptz follows the session's time zone.)
-- Each permission row also carries a copy of its event's version (kept with the other
-- copies by every write), so a check can use the series it met before, cached by the process
-- under (event id, version), instead of reading them again at every check.
-- depends: 0004.add-events-last-start
ALTER TABLE event_permissions
    ADD COLUMN version integer NOT NULL DEFAULT 1,
    ADD COLUMN long boolean NOT NULL
        GENERATED ALWAYS AS (upper_inf(during) OR upper(during) - lower(during) > interval '24 hours') STORED;

UPDATE event_permissions p SET version = e.version FROM events e WHERE e.id = p.event_id AND p.version <> e.version;

CREATE INDEX event_permissions_user_short_idx ON event_permissions (user_id, lower(during)) WHERE live AND NOT long;
CREATE INDEX event_permissions_user_long_idx ON event_permissions USING gist (user_id, during) WHERE live AND long;

-- statistics of lower(during) for the planner, before the first check uses the new index
ANALYZE event_permissions;
