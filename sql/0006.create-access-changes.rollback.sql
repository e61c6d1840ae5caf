DROP TABLE event_access_changes;
ALTER TABLE event_versions DROP COLUMN seq;
DROP SEQUENCE event_changes_seq;
