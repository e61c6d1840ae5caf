-- An event may last no time (a deadline, a reminder): end_time >= start_time. Such an event
-- occupies nothing (no conflict, not busy); its envelope (`during`) is the microsecond after
-- its start, so the range indexes still find it in a window that holds its start. Adding
-- the check scans the table under its lock: about a quarter of a second for 1,000,000 rows
-- (docs/deploy.md).
-- depends: 0009.notification-counts
ALTER TABLE events DROP CONSTRAINT events_times_check;
ALTER TABLE events ADD CONSTRAINT events_times_check
    CHECK (end_time >= start_time AND end_time - start_time <= interval '366 days');
