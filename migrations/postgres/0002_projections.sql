-- Read models. Each projector writes its rows and its checkpoint in one transaction.
CREATE TABLE projection_checkpoints (
    name       TEXT        PRIMARY KEY,
    position   BIGINT      NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE balances (
    user_id   UUID    NOT NULL,
    currency  TEXT    NOT NULL,
    available NUMERIC NOT NULL,
    held      NUMERIC NOT NULL,
    position  BIGINT  NOT NULL,
    PRIMARY KEY (user_id, currency)
);

CREATE TABLE statement_lines (
    user_id          UUID        NOT NULL,
    currency         TEXT        NOT NULL,
    position         BIGINT      NOT NULL,
    event_type       TEXT        NOT NULL,
    reference        TEXT,
    available_change NUMERIC     NOT NULL,
    held_change      NUMERIC     NOT NULL,
    available_after  NUMERIC     NOT NULL,
    held_after       NUMERIC     NOT NULL,
    recorded_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, currency, position)
);

CREATE TABLE trial_balance (
    account  TEXT    NOT NULL,
    currency TEXT    NOT NULL,
    balance  NUMERIC NOT NULL,
    position BIGINT  NOT NULL,
    PRIMARY KEY (account, currency)
);
