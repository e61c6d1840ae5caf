DROP TABLE idempotency_keys;
DROP TABLE event_versions;
DROP TABLE event_permissions;
DROP TABLE events;
DROP EXTENSION IF EXISTS btree_gist;
