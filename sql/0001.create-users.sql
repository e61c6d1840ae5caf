-- Users: who can log in. Usernames and emails are unique ignoring case; the
-- text_pattern_ops indexes also answer the prefix search of GET /api/users?q=.
CREATE TABLE users (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT users_pkey PRIMARY KEY,
    username text NOT NULL CONSTRAINT users_username_check CHECK (username ~ '^[A-Za-z0-9_.-]{3,32}$'),
    email text NOT NULL CONSTRAINT users_email_check CHECK (length(email) BETWEEN 3 AND 254),
    password_hash text NOT NULL,
    full_name text CONSTRAINT users_full_name_check CHECK (length(full_name) <= 200),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz
);

CREATE UNIQUE INDEX users_username_key ON users (lower(username) text_pattern_ops);
CREATE UNIQUE INDEX users_email_key ON users (lower(email) text_pattern_ops);
