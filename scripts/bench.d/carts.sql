-- :n sessions, each with a cart ready for checkout: 3 distinct random SKUs of the 10,000
-- (:hot = 0), or one unit of the hot SKU LG-00000 (:hot = 1). Prints the tokens.
-- Each session is as its last add to cart left it: just slid to now + the default TTL (30d),
-- so the checkout does not slide it again (it would if the shopper had paused for a minute).
CREATE TEMP TABLE ready AS
SELECT 'ready_' || g || '_' || md5(random()::text) AS token, gen_random_uuid() AS cart_id FROM generate_series(1, :n) g;
INSERT INTO carts (id, version) SELECT cart_id, 1 FROM ready;
INSERT INTO sessions (id, token_hash, cart_id, expires_at)
SELECT gen_random_uuid(), sha256(convert_to(token, 'UTF8')), cart_id, now() + interval '30 days' FROM ready;
INSERT INTO cart_lines (cart_id, sku, quantity)
SELECT cart_id, sku, 1 FROM (
    SELECT DISTINCT r.cart_id, CASE WHEN :hot = 1 THEN 'LG-00000' ELSE 'LG-' || lpad(floor(random() * 10000)::int::text, 5, '0') END AS sku
    FROM ready r, generate_series(1, CASE WHEN :hot = 1 THEN 1 ELSE 3 END) l
) picked;
ANALYZE carts; ANALYZE sessions; ANALYZE cart_lines;
\copy (SELECT token FROM ready) TO pstdout
