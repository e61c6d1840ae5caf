-- Events, who may see them, every version of each, and idempotency keys (issue 3).
-- An event's `during` is its envelope: first start to last end of the whole series
-- (upper bound infinite for an endless rule), moved occurrences included. The permission
-- rows carry a copy of it and of the start, so "the events a user can see, in start order"
-- and "the user's calendar overlapping this range" are each one index scan of
-- event_permissions (btree (user_id, starts_at, event_id) and GiST (user_id, during)).
-- Occurrence exceptions live in the event row (jsonb keyed by the original start in UTC), so
-- every version snapshot, and so every rollback, includes them.
-- depends: 0002.create-auth-tokens
CREATE EXTENSION IF NOT EXISTS btree_gist;

CREATE TABLE events (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT events_pkey PRIMARY KEY,
    owner_id bigint NOT NULL CONSTRAINT events_owner_id_fkey REFERENCES users (id),
    title text NOT NULL CONSTRAINT events_title_check CHECK (char_length(title) BETWEEN 1 AND 200),
    description text NOT NULL DEFAULT ''
        CONSTRAINT events_description_check CHECK (char_length(description) <= 10000),
    location text CONSTRAINT events_location_check CHECK (char_length(location) <= 500),
    start_time timestamptz NOT NULL,
    end_time timestamptz NOT NULL,
    timezone text NOT NULL DEFAULT 'UTC',
    all_day boolean NOT NULL DEFAULT false,
    rrule text,
    exdates timestamptz[] NOT NULL DEFAULT '{}',
    rdates timestamptz[] NOT NULL DEFAULT '{}',
    exceptions jsonb NOT NULL DEFAULT '{}',
    during tstzrange NOT NULL,
    version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by bigint NOT NULL CONSTRAINT events_updated_by_fkey REFERENCES users (id),
    deleted_at timestamptz,
    CONSTRAINT events_times_check
        CHECK (end_time > start_time AND end_time - start_time <= interval '366 days'),
    CONSTRAINT events_during_check CHECK (NOT isempty(during) AND lower(during) <= start_time)
);
CREATE INDEX events_owner_id_idx ON events (owner_id);

CREATE TABLE event_permissions (
    event_id bigint NOT NULL CONSTRAINT event_permissions_event_id_fkey REFERENCES events (id) ON DELETE CASCADE,
    user_id bigint NOT NULL CONSTRAINT event_permissions_user_id_fkey REFERENCES users (id) ON DELETE CASCADE,
    role text NOT NULL CONSTRAINT event_permissions_role_check CHECK (role IN ('owner', 'editor', 'viewer')),
    granted_by bigint CONSTRAINT event_permissions_granted_by_fkey REFERENCES users (id),
    granted_at timestamptz NOT NULL DEFAULT now(),
    starts_at timestamptz NOT NULL,   -- copy of events.start_time
    during tstzrange NOT NULL,        -- copy of events.during
    live boolean NOT NULL DEFAULT true, -- false while the event is deleted
    CONSTRAINT event_permissions_pkey PRIMARY KEY (event_id, user_id)
);
CREATE UNIQUE INDEX event_permissions_owner_key ON event_permissions (event_id) WHERE role = 'owner';
CREATE INDEX event_permissions_user_start_idx ON event_permissions (user_id, starts_at, event_id) WHERE live;
CREATE INDEX event_permissions_user_during_idx ON event_permissions USING gist (user_id, during) WHERE live;

CREATE TABLE event_versions (
    event_id bigint NOT NULL CONSTRAINT event_versions_event_id_fkey REFERENCES events (id) ON DELETE CASCADE,
    version integer NOT NULL,
    kind text NOT NULL CONSTRAINT event_versions_kind_check CHECK (kind IN (
        'created', 'updated', 'occurrence_changed', 'occurrence_cancelled', 'deleted', 'rolled_back')),
    snapshot jsonb NOT NULL,
    changed_fields text[] NOT NULL DEFAULT '{}',
    actor_id bigint NOT NULL CONSTRAINT event_versions_actor_id_fkey REFERENCES users (id),
    at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT event_versions_pkey PRIMARY KEY (event_id, version)
);

CREATE TABLE idempotency_keys (
    user_id bigint NOT NULL CONSTRAINT idempotency_keys_user_id_fkey REFERENCES users (id) ON DELETE CASCADE,
    key text NOT NULL CONSTRAINT idempotency_keys_key_check CHECK (char_length(key) BETWEEN 1 AND 255),
    route text NOT NULL,
    request_hash bytea NOT NULL,
    status integer NOT NULL,
    content_type text NOT NULL,
    body bytea NOT NULL,
    location text,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT idempotency_keys_pkey PRIMARY KEY (user_id, key)
);
CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at);
