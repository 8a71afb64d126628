-- The outbox also carries what is not derived from one event: mail sent on request
-- (verification, password reset) and alerts from jobs (a provider's balance running low).
-- Those rows have no log position. `subject` is the mail's subject line (empty for Telegram);
-- `dedupe`, when set, is unique, so a job's alert is queued once per key across instances.
-- SQLite cannot drop a NOT NULL or add a UNIQUE column in place: the table is copied.
CREATE TABLE outbox_next (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    position        INTEGER,
    channel         TEXT    NOT NULL,
    recipient       TEXT    NOT NULL,
    subject         TEXT    NOT NULL DEFAULT '',
    body            TEXT    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    sent_at         INTEGER,
    last_error      TEXT,
    dedupe          TEXT    UNIQUE,
    UNIQUE (position, channel, recipient)
);

INSERT INTO outbox_next (id, position, channel, recipient, body, attempts, next_attempt_at, sent_at, last_error)
SELECT id, position, channel, recipient, body, attempts, next_attempt_at, sent_at, last_error FROM outbox;

DROP TABLE outbox;
ALTER TABLE outbox_next RENAME TO outbox;
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE sent_at IS NULL;
