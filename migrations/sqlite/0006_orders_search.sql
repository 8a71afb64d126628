-- Admins search orders by service, country and date too: two more columns, filled from the
-- stored views (the projector writes them from now on).
ALTER TABLE orders ADD COLUMN service TEXT;
ALTER TABLE orders ADD COLUMN country TEXT;
UPDATE orders SET service = json_extract(view, '$.service'), country = json_extract(view, '$.country');
CREATE INDEX orders_by_placed ON orders (placed_at DESC, order_id DESC);
