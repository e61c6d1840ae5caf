DROP INDEX event_permissions_user_long_idx;
DROP INDEX event_permissions_user_short_idx;
ALTER TABLE event_permissions DROP COLUMN long, DROP COLUMN version;
