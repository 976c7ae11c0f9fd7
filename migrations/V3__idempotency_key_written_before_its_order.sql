-- A checkout now writes its idempotency key once, before it reserves stock, with the answer
-- it will give if it places its order (201 and that order's pre-chosen id); only a checkout
-- that does not place one rewrites its key. The key row therefore names an order that its
-- own transaction inserts later, which an immediate foreign key refuses. Both rows commit
-- together or not at all; `stockcart check-invariants` verifies that every key's order exists.
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_order_id_fkey;
