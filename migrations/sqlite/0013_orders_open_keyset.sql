-- The order monitor pages the open orders by (deadline, id) and acts on those waiting for an
-- SMS or past their deadline. One index in that order serves every page as a range that
-- stops at the page's end; before, the deadline-only index and the waiting one made each page
-- read every open order before its key again (decision 0034).
DROP INDEX orders_open;
DROP INDEX orders_waiting;
CREATE INDEX orders_open ON orders (expires_at, order_id)
    WHERE status IN ('placed', 'number_assigned', 'sms_received');
