-- The order monitor reads only the orders it must act on: those waiting for an SMS (a number
-- assigned, or another SMS asked for) and those past their expiry. `waiting` is filled from
-- the stored views; the projector writes it from now on.
ALTER TABLE orders ADD COLUMN waiting BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE orders SET waiting = (status = 'number_assigned'
    OR (status = 'sms_received' AND COALESCE((view::jsonb ->> 'awaiting_another_sms')::boolean, FALSE)));
CREATE INDEX orders_waiting ON orders (expires_at, order_id) WHERE waiting;
