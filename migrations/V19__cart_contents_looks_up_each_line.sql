-- Each cart line looks up its own product, by primary key, whatever the planner guesses.
--
-- Cart reads name a few carts (`cart_id = ANY($1)`, or one cart joined by id) and are prepared
-- statements, which PostgreSQL switches to a generic plan after five runs. The generic plan
-- guesses the lines per cart from the statistics, and a table holding some long carts (the bench's
-- 2,000 carts of about 50 lines after its add-to-cart run) tips that guess past the point where a
-- hash join of the whole catalog looks cheaper than one index lookup a line. Checkout's read of
-- its batch's lines then scanned all 10,000 products each batch: 3.6 ms instead of 0.2 ms
-- (EXPLAIN ANALYZE, a batch of 8 carts), 2.9 s of PostgreSQL's 11 s of statement time in a
-- 10 s spread run, and checkout spread fell from about 2,200 to 800-2,000 orders/s after that run.
--
-- `OFFSET 0` keeps the lateral subquery from being flattened into a plain join, so it can only
-- run as a parameterised index scan per line. Same columns, same rows (a line without its
-- product shows in neither).
CREATE OR REPLACE VIEW cart_contents AS
    SELECT l.cart_id, l.position, l.sku, l.quantity, p.name, p.price_amount, p.price_currency
    FROM cart_lines l
    CROSS JOIN LATERAL (
        SELECT p.name, p.price_amount, p.price_currency FROM products p WHERE p.sku = l.sku OFFSET 0
    ) p;
