-- Notifications, derived from the log by the notifier (its checkpoint commits with its rows):
-- in-app ones for users, and the outbox of messages to send (admin alerts on Telegram), each
-- sent at least once by the sender job, with retries.
CREATE TABLE notifications (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    position   INTEGER NOT NULL,
    user_id    BLOB   NOT NULL,
    kind       TEXT   NOT NULL,
    message    TEXT   NOT NULL,
    created_at INTEGER NOT NULL,
    read_at    INTEGER,
    UNIQUE (position, user_id)
);

CREATE INDEX notifications_by_user ON notifications (user_id, id DESC);

CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    position        INTEGER NOT NULL,
    channel         TEXT   NOT NULL,
    recipient       TEXT   NOT NULL,
    body            TEXT   NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    sent_at         INTEGER,
    last_error      TEXT,
    UNIQUE (position, channel, recipient)
);

CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE sent_at IS NULL;
