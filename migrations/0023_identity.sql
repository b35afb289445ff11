-- verity:repeatable
-- Read models of principals and API tokens (issue 18). Disposable: rebuilt from the events.
-- A token is checked on every request by its id (the primary key), joined to its principal.
CREATE TABLE IF NOT EXISTS rm_principals (
    id uuid PRIMARY KEY,
    name text NOT NULL UNIQUE,
    kind text NOT NULL,
    role text NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz,
    created_by text NOT NULL
);

CREATE TABLE IF NOT EXISTS rm_api_tokens (
    id uuid PRIMARY KEY,
    name text NOT NULL,
    role text,
    principal text,
    digest text NOT NULL,
    expires_at timestamptz,
    revoked_at timestamptz,
    created_at timestamptz NOT NULL,
    created_by text NOT NULL,
    revoked_by text
);
