-- Notifications: one row per recipient of a change, written in the
-- change's own transaction (a rolled-back change announces nothing; a committed one is
-- never lost). The event stream replays "this user's rows after id N", so ids must be
-- handed out to each user in commit order: the writer takes, just before its insert, a
-- transaction-level advisory lock on each recipient's bucket (user_id % 64, sorted), held
-- to commit; the next writer to those users draws its ids only after that commit. A
-- reader that sees id N of a user has therefore seen every lower id of that user.
-- depends: 0006.create-access-changes
CREATE TABLE notifications (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT notifications_pkey PRIMARY KEY,
    user_id bigint NOT NULL CONSTRAINT notifications_user_id_fkey REFERENCES users (id) ON DELETE CASCADE,
    kind text NOT NULL CONSTRAINT notifications_kind_check CHECK (kind IN (
        'event.updated', 'event.deleted', 'event.restored', 'event.shared',
        'permission.changed', 'permission.revoked')),
    event_id bigint NOT NULL CONSTRAINT notifications_event_id_fkey REFERENCES events (id) ON DELETE CASCADE,
    actor_id bigint NOT NULL CONSTRAINT notifications_actor_id_fkey REFERENCES users (id),
    summary text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    read_at timestamptz
);
-- newest first for the list, "after id N" for the stream
CREATE INDEX notifications_user_id_idx ON notifications (user_id, id);
CREATE INDEX notifications_user_unread_idx ON notifications (user_id, id) WHERE read_at IS NULL;
