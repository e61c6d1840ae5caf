-- Closed accounts get placeholders the older schema accepts: an address under the reserved
-- .invalid domain (unique, as the username is) and a hash that matches no password.
UPDATE users SET email = username || '@closed.invalid' WHERE email IS NULL;
UPDATE users SET password_hash = '!' WHERE password_hash IS NULL;
ALTER TABLE users
    DROP CONSTRAINT users_username_reserved_check,
    DROP CONSTRAINT users_live_check,
    ALTER COLUMN email SET NOT NULL,
    ALTER COLUMN password_hash SET NOT NULL;
