-- Cheaper candidates for the conflict check (measured in bench/conflict_check.py: 1,000,000
-- events, 100 owners). In the GiST index of all permission rows, the unbounded envelopes of
-- series widen the keys of every page they share with short events: probing half an hour of
-- one calendar visited about 40 index pages for 25 rows. So the check's overlap query reads
-- two GiST indexes split by the span of the envelope: `long` rows (more than 24 hours: every
-- series, the rare long event), a small index, and the short ones, whose keys stay narrow.
-- Each permission row also carries a copy of its event's version (kept with the other
-- copies by every write), so a check can use the series it met before, cached by the process
-- under (event id, version), instead of reading them again at every check.
-- depends: 0004.add-events-last-start
ALTER TABLE event_permissions
    ADD COLUMN version integer NOT NULL DEFAULT 1,
    ADD COLUMN long boolean NOT NULL
        GENERATED ALWAYS AS (upper_inf(during) OR upper(during) - lower(during) > interval '24 hours') STORED;

UPDATE event_permissions p SET version = e.version FROM events e WHERE e.id = p.event_id AND p.version <> e.version;

CREATE INDEX event_permissions_user_short_idx ON event_permissions USING gist (user_id, during) WHERE live AND NOT long;
CREATE INDEX event_permissions_user_long_idx ON event_permissions USING gist (user_id, during) WHERE live AND long;

-- statistics for the planner before the first check uses the new indexes
ANALYZE event_permissions;
