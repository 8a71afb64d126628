-- Who did what: one row per event whose metadata names an actor, for admins to read.
-- Times are microseconds since the Unix epoch.
CREATE TABLE activity_log (
    position    BIGINT PRIMARY KEY,
    recorded_at BIGINT NOT NULL,
    actor       TEXT   NOT NULL,
    event_type  TEXT   NOT NULL,
    stream_id   TEXT   NOT NULL,
    ip          TEXT,
    request_id  TEXT
);

CREATE INDEX activity_log_by_actor ON activity_log (actor, position DESC);
