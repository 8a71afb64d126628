-- The orders view: one row per order, the whole view as JSON plus the columns it is
-- searched by. Times are milliseconds since the Unix epoch, as in the events.
CREATE TABLE orders (
    order_id          BLOB    PRIMARY KEY,
    user_id           BLOB    NOT NULL,
    status            TEXT    NOT NULL,
    provider_id       TEXT,
    provider_order_id TEXT,
    placed_at         INTEGER NOT NULL,
    expires_at        INTEGER NOT NULL,
    position          INTEGER NOT NULL,
    view              TEXT    NOT NULL
);

CREATE INDEX orders_by_user ON orders (user_id, placed_at DESC, order_id DESC);
CREATE INDEX orders_open ON orders (expires_at)
    WHERE status IN ('placed', 'number_assigned', 'sms_received');
CREATE INDEX orders_by_rental ON orders (provider_id, provider_order_id);
