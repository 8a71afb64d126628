-- The system log: what the service's own jobs and integrations did (job runs, provider errors,
-- refused webhooks). Operational records, not ledger events: kept for a retention period.
CREATE TABLE system_log (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      INTEGER NOT NULL,
    kind    TEXT    NOT NULL,
    source  TEXT    NOT NULL,
    level   TEXT    NOT NULL,
    message TEXT    NOT NULL
);

CREATE INDEX system_log_by_time ON system_log (at);
