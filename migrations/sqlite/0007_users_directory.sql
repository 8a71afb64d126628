-- The users directory: one row per account for admins to search, the `UserRow` as JSON plus
-- the columns it is searched by. Times are milliseconds since the Unix epoch.
CREATE TABLE users_directory (
    user_id       BLOB    PRIMARY KEY,
    email         TEXT    NOT NULL,
    role          TEXT    NOT NULL,
    blocked       INTEGER NOT NULL,
    registered_at INTEGER NOT NULL,
    position      INTEGER NOT NULL,
    view          TEXT    NOT NULL
);

CREATE INDEX users_directory_by_registration ON users_directory (registered_at DESC, user_id DESC);
