-- A checkout's first answer, when it placed an order, is that order as it was placed: keep a
-- reference to it instead of a copy of its JSON (the order's lines, prices and times never
-- change, and its first status is always awaiting_payment), so placing an order writes less.
ALTER TABLE idempotency_keys ADD COLUMN order_id uuid REFERENCES orders (id);
