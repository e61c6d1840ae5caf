-- Each user's number of unread notifications, kept by the database as notifications are
-- written, read and deleted (GET /api/notifications answers `unread_count` with every page;
-- counting them was 11 ms of the server's time for a user with 100,000 unread: measured in
-- bench/load.py, 166 requests a second). Statement-level triggers with transition tables: one
-- upsert per statement, whatever the number of rows; deltas, not totals, so concurrent
-- writers and readers add up under READ COMMITTED (writers to the same user already queue on
-- that user's notification lock, migration 0007; a reader marking read queues on the count row).
-- depends: 0008.list-window-index

-- No notification may be written, marked read or deleted between the count below and the
-- triggers (an older release may be serving while this runs): held until this migration
-- commits. Reads go on.
LOCK TABLE notifications IN SHARE ROW EXCLUSIVE MODE;

CREATE TABLE notification_counts (
    user_id bigint CONSTRAINT notification_counts_pkey PRIMARY KEY
        CONSTRAINT notification_counts_user_id_fkey REFERENCES users (id) ON DELETE CASCADE,
    unread bigint NOT NULL
);

INSERT INTO notification_counts (user_id, unread)
SELECT user_id, count(*) FROM notifications WHERE read_at IS NULL GROUP BY user_id;

CREATE FUNCTION notification_counts_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO notification_counts AS c (user_id, unread)
        SELECT user_id, count(*) FROM new_rows WHERE read_at IS NULL GROUP BY user_id ORDER BY user_id
        ON CONFLICT (user_id) DO UPDATE SET unread = c.unread + excluded.unread;
    ELSIF TG_OP = 'DELETE' THEN
        UPDATE notification_counts c SET unread = c.unread - d.n
        FROM (SELECT user_id, count(*) AS n FROM old_rows WHERE read_at IS NULL GROUP BY user_id) d
        WHERE c.user_id = d.user_id;
    ELSE
        INSERT INTO notification_counts AS c (user_id, unread)
        SELECT user_id, sum(n) FROM (
            SELECT user_id, 1 AS n FROM new_rows WHERE read_at IS NULL
            UNION ALL
            SELECT user_id, -1 FROM old_rows WHERE read_at IS NULL
        ) d GROUP BY user_id HAVING sum(n) <> 0 ORDER BY user_id
        ON CONFLICT (user_id) DO UPDATE SET unread = c.unread + excluded.unread;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER notification_counts_insert AFTER INSERT ON notifications
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION notification_counts_apply();
CREATE TRIGGER notification_counts_update AFTER UPDATE ON notifications
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION notification_counts_apply();
CREATE TRIGGER notification_counts_delete AFTER DELETE ON notifications
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION notification_counts_apply();
