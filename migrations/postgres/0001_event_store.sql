-- The event log. Append-only: triggers below reject UPDATE, DELETE and TRUNCATE.
CREATE TABLE events (
    position       BIGINT      PRIMARY KEY,
    stream_id      TEXT        NOT NULL,
    version        BIGINT      NOT NULL CHECK (version >= 1),
    event_id       UUID        NOT NULL UNIQUE,
    event_type     TEXT        NOT NULL,
    schema_version INT         NOT NULL,
    payload        JSONB       NOT NULL,
    metadata       JSONB       NOT NULL,
    recorded_at    TIMESTAMPTZ NOT NULL,
    hash           BYTEA       NOT NULL,
    CONSTRAINT events_stream_version UNIQUE (stream_id, version)
);
-- BRIN: recorded_at grows with position, and a BRIN index costs next to nothing per insert.
CREATE INDEX events_recorded_at ON events USING brin (recorded_at);

-- One row: the newest position and hash. Every append transaction locks it (FOR UPDATE),
-- which makes position order equal commit order.
CREATE TABLE event_head (
    id       INT    PRIMARY KEY CHECK (id = 1),
    position BIGINT NOT NULL,
    hash     BYTEA  NOT NULL
);
INSERT INTO event_head (id, position, hash) VALUES (1, 0, decode(repeat('00', 32), 'hex'));

-- First outcome of every idempotency key; a repeat returns it and appends nothing.
CREATE TABLE idempotency_keys (
    key         TEXT        PRIMARY KEY,
    outcome     JSONB       NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE FUNCTION smsledger_reject_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'table % is append-only: % rejected', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation';
END
$$;

CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION smsledger_reject_change();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION smsledger_reject_change();
CREATE TRIGGER idempotency_keys_append_only BEFORE UPDATE OR DELETE ON idempotency_keys
    FOR EACH ROW EXECUTE FUNCTION smsledger_reject_change();
CREATE TRIGGER idempotency_keys_no_truncate BEFORE TRUNCATE ON idempotency_keys
    FOR EACH STATEMENT EXECUTE FUNCTION smsledger_reject_change();
