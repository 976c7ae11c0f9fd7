-- Order history and bench sessions, as the ceilings seed theirs: with empty order tables,
-- plans cached by every backend distort checkout throughput. Run after `loadgen` created
-- the LG-* catalog. :tokens sessions get a cart of three lines for the warm cart read.
INSERT INTO orders (id, session_id, status, total_amount, currency, created_at, expires_at)
SELECT gen_random_uuid(), gen_random_uuid(), 'shipped', 300, 'EUR', now() - interval '1 day', now()
FROM generate_series(1, 10000);
INSERT INTO order_lines (order_id, position, sku, name, quantity, unit_price, line_total)
SELECT o.id, l, 'LG-' || lpad(((abs(hashtext(o.id::text)) + l) % 100)::text, 5, '0'), 'history', 1, 100, 100
FROM orders o, generate_series(0, 2) l
WHERE NOT EXISTS (SELECT 1 FROM order_lines x WHERE x.order_id = o.id);
CREATE TEMP TABLE bench_tokens AS
SELECT 'bench_' || g || '_' || md5(random()::text) AS token, gen_random_uuid() AS cart_id FROM generate_series(1, :tokens) g;
INSERT INTO carts (id) SELECT cart_id FROM bench_tokens;
INSERT INTO sessions (id, token_hash, cart_id, expires_at)
SELECT gen_random_uuid(), sha256(convert_to(token, 'UTF8')), cart_id, now() + interval '1 day' FROM bench_tokens;
INSERT INTO cart_lines (cart_id, sku, quantity)
SELECT cart_id, 'LG-' || lpad(l::text, 5, '0'), 1 FROM bench_tokens, generate_series(100, 102) l;
UPDATE carts SET version = 3 WHERE id IN (SELECT cart_id FROM bench_tokens);
\copy (SELECT token FROM bench_tokens) TO pstdout
ANALYZE;
