-- Sharing (issue 4): every change of who may see an event, with its actor, for the changelog;
-- and one order over all the changes of an event. A shared sequence numbers both the content
-- versions and the access changes as they are written, so the changelog lists them
-- in the order they happened, even within one transaction.
-- depends: 0005.split-calendar-candidates
CREATE SEQUENCE event_changes_seq AS bigint;

ALTER TABLE event_versions ADD COLUMN seq bigint;
UPDATE event_versions v SET seq = o.n
FROM (SELECT event_id, version, row_number() OVER (ORDER BY at, event_id, version) AS n FROM event_versions) o
WHERE o.event_id = v.event_id AND o.version = v.version;
-- (in a DO block: yoyo prints the rows of a SELECT to stdout, at every service start that migrates)
DO $$ BEGIN
    PERFORM setval('event_changes_seq', coalesce((SELECT max(seq) FROM event_versions), 0) + 1, false);
END $$;
ALTER TABLE event_versions
    ALTER COLUMN seq SET DEFAULT nextval('event_changes_seq'),
    ALTER COLUMN seq SET NOT NULL;

CREATE TABLE event_access_changes (
    seq bigint NOT NULL DEFAULT nextval('event_changes_seq') CONSTRAINT event_access_changes_pkey PRIMARY KEY,
    event_id bigint NOT NULL CONSTRAINT event_access_changes_event_id_fkey REFERENCES events (id) ON DELETE CASCADE,
    action text NOT NULL CONSTRAINT event_access_changes_action_check
        CHECK (action IN ('shared', 'role_changed', 'ownership_transferred', 'unshared', 'left')),
    user_id bigint NOT NULL CONSTRAINT event_access_changes_user_id_fkey REFERENCES users (id),  -- whose access
    old_role text,  -- NULL: had none
    new_role text,  -- NULL: has none now
    actor_id bigint NOT NULL CONSTRAINT event_access_changes_actor_id_fkey REFERENCES users (id),
    at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX event_access_changes_event_idx ON event_access_changes (event_id, seq);
