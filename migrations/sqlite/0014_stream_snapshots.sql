-- Snapshots of long-lived streams (wallets): the state folded from a stream's first `version`
-- events, as JSON of the format `format`. A cache, not a record: a process loading the stream
-- starts from its snapshot and reads the events after it; a snapshot of another format is
-- ignored; deleting them all only makes the next loads read whole streams. `verify` checks
-- each against the fold of its stream (decision 0036).
CREATE TABLE stream_snapshots (
    stream_id TEXT   PRIMARY KEY,
    version   BIGINT NOT NULL,
    format    INT    NOT NULL,
    state     TEXT   NOT NULL
);
