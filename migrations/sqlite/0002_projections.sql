-- Read models. Amounts are exact decimal text (SQLite has no exact decimal type);
-- arithmetic on them happens in Rust, never in SQL.
CREATE TABLE projection_checkpoints (
    name       TEXT    PRIMARY KEY,
    position   INTEGER NOT NULL,
    updated_at INTEGER NOT NULL DEFAULT (unixepoch())
);

CREATE TABLE balances (
    user_id   BLOB    NOT NULL,
    currency  TEXT    NOT NULL,
    available TEXT    NOT NULL,
    held      TEXT    NOT NULL,
    position  INTEGER NOT NULL,
    PRIMARY KEY (user_id, currency)
);

CREATE TABLE statement_lines (
    user_id          BLOB    NOT NULL,
    currency         TEXT    NOT NULL,
    position         INTEGER NOT NULL,
    event_type       TEXT    NOT NULL,
    reference        TEXT,
    available_change TEXT    NOT NULL,
    held_change      TEXT    NOT NULL,
    available_after  TEXT    NOT NULL,
    held_after       TEXT    NOT NULL,
    recorded_at      INTEGER NOT NULL,
    PRIMARY KEY (user_id, currency, position)
);

CREATE TABLE trial_balance (
    account  TEXT    NOT NULL,
    currency TEXT    NOT NULL,
    balance  TEXT    NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (account, currency)
);
