-- Closing an account (DELETE /api/auth/me) keeps its row, since versions, changelogs and
-- notifications name it as their actor, but erases what identified the person: the email,
-- the full name and the password hash go (NULL), and the username becomes
-- `deleted-user-<id>`. The username and the email are then free to be registered again (the
-- unique indexes ignore NULLs; the old name is no longer in the row). A live account has an
-- email and a password hash still.
-- A name of the form `deleted-user-<n>` is reserved: only account <n> may hold it, so the
-- rename of a closing account can never collide with someone's username and nobody can
-- pass for a closed account in a history. (This fails on a database where a live user
-- already has such a name: rename them first.)
-- depends: 0010.allow-zero-length-events
ALTER TABLE users
    ALTER COLUMN email DROP NOT NULL,
    ALTER COLUMN password_hash DROP NOT NULL,
    ADD CONSTRAINT users_live_check
        CHECK (deleted_at IS NOT NULL OR (email IS NOT NULL AND password_hash IS NOT NULL)),
    ADD CONSTRAINT users_username_reserved_check
        CHECK (lower(username) NOT LIKE 'deleted-user-%' OR username = 'deleted-user-' || id);
