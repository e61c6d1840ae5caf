-- Tokens: a refresh-token family per login, each refresh token of it (rotation marks the
-- old one used, so a second use exposes theft and revokes the family), and the access
-- tokens killed by logout before they expire. Access tokens carry their family id, so
-- revoking a family stops its access tokens too.
-- depends: 0001.create-users
CREATE TABLE token_families (
    id uuid CONSTRAINT token_families_pkey PRIMARY KEY,
    user_id bigint NOT NULL CONSTRAINT token_families_user_id_fkey REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz,
    revoked_reason text
);
CREATE INDEX token_families_user_id_idx ON token_families (user_id);
CREATE INDEX token_families_expires_at_idx ON token_families (expires_at);

CREATE TABLE refresh_tokens (
    jti uuid CONSTRAINT refresh_tokens_pkey PRIMARY KEY,
    family_id uuid NOT NULL CONSTRAINT refresh_tokens_family_id_fkey REFERENCES token_families (id) ON DELETE CASCADE,
    issued_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    rotated_at timestamptz
);
CREATE INDEX refresh_tokens_family_id_idx ON refresh_tokens (family_id);

CREATE TABLE revoked_access_tokens (
    jti uuid CONSTRAINT revoked_access_tokens_pkey PRIMARY KEY,
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX revoked_access_tokens_expires_at_idx ON revoked_access_tokens (expires_at);
