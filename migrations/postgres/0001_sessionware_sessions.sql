-- sessionware session tables. Times are milliseconds since the Unix epoch.
CREATE TABLE IF NOT EXISTS "sessionware_sessions" (
    -- SHA-256 digest of the session ID (32 bytes), never the ID itself
    id                BYTEA PRIMARY KEY CHECK (octet_length(id) = 32),
    -- the earlier of the idle and absolute deadlines
    expires_at        BIGINT NOT NULL,
    absolute_deadline BIGINT NOT NULL,
    last_seen         BIGINT NOT NULL,
    -- the logged-in user (NULL when anonymous) and the session's public handle
    user_id           TEXT,
    handle            TEXT NOT NULL,
    -- JSON of the record (format, metadata, data); the columns above are authoritative
    record            TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS "sessionware_sessions_expires_at_idx" ON "sessionware_sessions" (expires_at);
CREATE INDEX IF NOT EXISTS "sessionware_sessions_user_id_idx" ON "sessionware_sessions" (user_id) WHERE user_id IS NOT NULL;
-- exclusive leases of sessions (Session::lock), keyed like the sessions
CREATE TABLE IF NOT EXISTS "sessionware_sessions_locks" (
    id          BYTEA PRIMARY KEY,
    token       TEXT NOT NULL,
    lease_until BIGINT NOT NULL
);
-- cutoffs (store::Cutoffs): scope 0 ends every session created before not_before (user_id ''),
-- scope 1 the sessions user_id signed in to before it; kept until keep_until
CREATE TABLE IF NOT EXISTS "sessionware_sessions_cutoffs" (
    scope      SMALLINT NOT NULL,
    user_id    TEXT NOT NULL,
    not_before BIGINT NOT NULL,
    keep_until BIGINT NOT NULL,
    PRIMARY KEY (scope, user_id)
);
