ALTER TABLE events DROP COLUMN last_start;
