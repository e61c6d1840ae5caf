DROP INDEX event_permissions_user_irregular_idx;
ALTER TABLE event_permissions DROP COLUMN irregular;
