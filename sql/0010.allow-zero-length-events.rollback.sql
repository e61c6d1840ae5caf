-- Back to events that last some time; fails while an event of no length exists.
ALTER TABLE events DROP CONSTRAINT events_times_check;
ALTER TABLE events ADD CONSTRAINT events_times_check
    CHECK (end_time > start_time AND end_time - start_time <= interval '366 days');
