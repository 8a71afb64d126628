-- The deposits view: one row per deposit, the whole view as JSON plus the columns it is
-- searched by. Times are milliseconds since the Unix epoch, as in the events.
CREATE TABLE deposits (
    deposit_id  BLOB    PRIMARY KEY,
    user_id     BLOB    NOT NULL,
    method      TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    position    INTEGER NOT NULL,
    view        TEXT    NOT NULL
);

CREATE INDEX deposits_by_user ON deposits (user_id, created_at DESC, deposit_id DESC);
CREATE INDEX deposits_by_status ON deposits (status, method, created_at);
