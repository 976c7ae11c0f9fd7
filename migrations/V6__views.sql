-- Derived facts written once, in the schema, instead of in every query that needs them.

-- Whether an order is overdue: unpaid at or past its payment deadline. A function of the
-- orders row, so queries read it like a column (`o.due`); being a one-expression SQL function
-- it is inlined, so `WHERE o.due` still uses the orders_awaiting_expiry index. It is true from
-- the deadline until someone (the expiry task, or whoever touches the order first) moves the
-- order to `expired`.
CREATE FUNCTION due(orders) RETURNS boolean
    LANGUAGE sql STABLE
    AS $$ SELECT $1.status = 'awaiting_payment' AND $1.expires_at <= now() $$;

-- The key of a placed order names the order its own transaction inserts later (see V3), which
-- an immediate foreign key refused. Checked at commit, when both rows exist, it holds again:
-- the database, not only `stockcart check-invariants`, refuses a key naming no order.
ALTER TABLE idempotency_keys
    ADD CONSTRAINT idempotency_keys_order_id_fkey FOREIGN KEY (order_id) REFERENCES orders (id)
    DEFERRABLE INITIALLY DEFERRED;

-- A cart line as every cart read shows it: with its product's current name and price (a cart
-- never freezes prices; checkout does). Simple views are inlined, so each read plans as if it
-- had spelled out the join.
CREATE VIEW cart_contents AS
    SELECT l.cart_id, l.position, l.sku, l.quantity, p.name, p.price_amount, p.price_currency
    FROM cart_lines l JOIN products p ON p.sku = l.sku;

-- A product as a cart change needs it: its price and what is available now.
CREATE VIEW product_offers AS
    SELECT p.sku, p.name, p.price_amount, p.price_currency, s.on_hand - s.reserved AS available
    FROM products p JOIN stock_levels s ON s.sku = p.sku;
