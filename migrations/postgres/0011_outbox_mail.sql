-- The outbox also carries what is not derived from one event: mail sent on request
-- (verification, password reset) and alerts from jobs (a provider's balance running low).
-- Those rows have no log position. `subject` is the mail's subject line (empty for Telegram);
-- `dedupe`, when set, is unique, so a job's alert is queued once per key across instances.
ALTER TABLE outbox ALTER COLUMN position DROP NOT NULL;
ALTER TABLE outbox ADD COLUMN subject TEXT NOT NULL DEFAULT '';
ALTER TABLE outbox ADD COLUMN dedupe TEXT UNIQUE;
