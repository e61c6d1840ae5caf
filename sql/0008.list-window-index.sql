-- The caller's events in a window, in start order (GET /api/events?start=...), without
-- walking every row before the window (measured in bench/load.py: a user who sees 100,000
-- events over two years, 13 weeks from the middle: the (user_id, starts_at) walk discarded
-- about 50,000 rows, 41 ms in the server, 85 requests a second). A row whose envelope
-- (`during`) lasts at most 24 hours and starts at the event's start can only overlap a
-- window starting at W if it starts after W - 24 hours, so the walk starts there; the
-- other rows (`irregular`: series, long events, and the rare short series whose first
-- start was excluded or moved) are few and come from a GiST index of their own.
-- depends: 0007.create-notifications
ALTER TABLE event_permissions
    ADD COLUMN irregular boolean NOT NULL GENERATED ALWAYS AS (
        upper_inf(during) OR upper(during) - lower(during) > interval '24 hours'
        OR lower(during) IS DISTINCT FROM starts_at) STORED;

CREATE INDEX event_permissions_user_irregular_idx ON event_permissions USING gist (user_id, during)
    WHERE live AND irregular;

ANALYZE event_permissions;
