-- The start of a bounded series' last occurrence (NULL for a single event or an endless rule),
-- computed when the event is written. Expanding a stored series then needs no walk of its
-- COUNT occurrences nor a search back from UNTIL: the conflict check expands every series in
-- the owner's calendar whose envelope meets the new event, so this is on its hot path.
-- depends: 0003.create-events
ALTER TABLE events ADD COLUMN last_start timestamptz;
