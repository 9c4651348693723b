-- sessionware session tables (MySQL 8, MariaDB 10.5+). Times are milliseconds since the Unix epoch.
CREATE TABLE IF NOT EXISTS `sessionware_sessions` (
    -- SHA-256 digest of the session ID (32 bytes), never the ID itself
    id                BINARY(32) NOT NULL PRIMARY KEY,
    -- the earlier of the idle and absolute deadlines
    expires_at        BIGINT NOT NULL,
    absolute_deadline BIGINT NOT NULL,
    last_seen         BIGINT NOT NULL,
    -- the logged-in user (NULL when anonymous) and the session's public handle, compared byte for byte
    user_id           BLOB,
    handle            VARBINARY(255) NOT NULL,
    -- JSON of the record (format, metadata, data); the columns above are authoritative
    record            LONGTEXT CHARACTER SET utf8mb4 NOT NULL,
    INDEX `sessionware_sessions_expires_at_idx` (expires_at),
    INDEX `sessionware_sessions_user_id_idx` (user_id(255))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
-- exclusive leases of sessions (Session::lock), keyed like the sessions
CREATE TABLE IF NOT EXISTS `sessionware_sessions_locks` (
    id          BINARY(32) NOT NULL PRIMARY KEY,
    token       VARBINARY(255) NOT NULL,
    lease_until BIGINT NOT NULL
) ENGINE=InnoDB;
-- cutoffs (store::Cutoffs): scope 0 ends every session created before not_before (user_id ''),
-- scope 1 the sessions user_id signed in to before it; kept until keep_until.
-- user_id is the SHA-256 digest of the user (UNHEX(SHA2(user, 256))): a user ID has no length limit
CREATE TABLE IF NOT EXISTS `sessionware_sessions_cutoffs` (
    scope      SMALLINT NOT NULL,
    user_id    BINARY(32) NOT NULL,
    not_before BIGINT NOT NULL,
    keep_until BIGINT NOT NULL,
    PRIMARY KEY (scope, user_id)
) ENGINE=InnoDB;
