-- Analytics per day: (day, metric, key, currency) -> value, added up by the analytics
-- projector. Money metrics carry their currency, counts an empty one.
CREATE TABLE analytics (
    day      TEXT    NOT NULL,
    metric   TEXT    NOT NULL,
    key      TEXT    NOT NULL,
    currency TEXT    NOT NULL,
    value    TEXT    NOT NULL,
    PRIMARY KEY (day, metric, key, currency)
);
