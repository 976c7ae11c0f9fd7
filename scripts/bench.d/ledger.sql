-- A year of ledger for the reports benchmark, written set-based (generate_series, window sums):
--   psql -v skus=10000 -v per_sku=1001 -f scripts/bench.d/ledger.sql   (10,010,000 movements)
-- into a migrated, empty database. SKUs L00001..; each starts with a `set` to a safety stock of
-- 3..12 units, then repeats a 10-movement cycle spread evenly over the year:
--   restock q1+q2+q3 | reserve q1, q2, q3, q4 (four orders) | ship q1, q2 | release q4 (the
--   fourth order cancelled) | ship q3 | correction +1 or -1
-- so levels stay within their constraints, SKUs with the smallest safety stock touch 0 (stock
-- marks), every order is shipped or cancelled (nothing stays reserved), and the levels, versions
-- and orders match the ledger for `stockcart check-invariants`. Each movement gets a sequenced
-- `stock.changed` event naming it, as stock.rs writes it; the rollups are left to the follower.
\set ON_ERROR_STOP on
SET synchronous_commit = off;
SET work_mem = '1GB';
SET maintenance_work_mem = '1GB';

BEGIN;
CREATE TEMP TABLE gen_steps AS
WITH raw AS (
    SELECT s, i,
           (i - 1) / 10 AS c,
           (i - 1) % 10 AS k,
           3 + (s * 7) % 10 AS safety,
           100 + (s * 7919) % 9900 AS price
    FROM generate_series(1, :skus) s, generate_series(0, :per_sku - 1) i
), q AS (
    SELECT raw.*,
           1 + (s * 31 + c * 17 + 1 * 7) % 3 AS q1,
           1 + (s * 31 + c * 17 + 2 * 7) % 3 AS q2,
           1 + (s * 31 + c * 17 + 3 * 7) % 3 AS q3,
           1 + (s * 31 + c * 17 + 4 * 7) % 3 AS q4
    FROM raw
)
SELECT s, i, c, k, price,
       format('L%s', lpad(s::text, 5, '0')) AS sku,
       CASE WHEN i = 0 THEN 'set'
            WHEN k IN (0, 9) THEN 'adjustment'
            WHEN k BETWEEN 1 AND 4 THEN 'reservation'
            WHEN k = 7 THEN 'release'
            ELSE 'shipment' END AS kind,
       CASE WHEN i = 0 THEN safety
            WHEN k = 0 THEN q1 + q2 + q3
            WHEN k = 5 THEN -q1 WHEN k = 6 THEN -q2 WHEN k = 8 THEN -q3
            WHEN k = 9 THEN CASE WHEN c % 2 = 0 THEN 1 ELSE -1 END
            ELSE 0 END AS d_on_hand,
       CASE WHEN i = 0 THEN 0
            WHEN k = 1 THEN q1 WHEN k = 2 THEN q2 WHEN k = 3 THEN q3 WHEN k = 4 THEN q4
            WHEN k = 5 THEN -q1 WHEN k = 6 THEN -q2 WHEN k = 7 THEN -q4 WHEN k = 8 THEN -q3
            ELSE 0 END AS d_reserved,
       CASE WHEN i = 0 THEN NULL WHEN k = 0 THEN 'restock' WHEN k = 9 THEN 'correction' END AS reason,
       -- The order a movement belongs to: reservation k (1..4), its shipment or release.
       CASE WHEN i = 0 THEN NULL
            WHEN k BETWEEN 1 AND 4 THEN k
            WHEN k = 5 THEN 1 WHEN k = 6 THEN 2 WHEN k = 8 THEN 3 WHEN k = 7 THEN 4 END AS ord,
       now() - interval '366 days' + (i * (interval '365 days' / :per_sku)) + ((s % 1000) * interval '10 seconds') AS at
FROM q;

INSERT INTO products (sku, name, price_amount, price_currency, created_at, updated_at)
SELECT sku, format('Ledger product %s', s), price, 'EUR', now() - interval '367 days', now() - interval '367 days'
FROM gen_steps WHERE i = 0;

-- Orders, at the time of their reservation: the first three shipped, the fourth cancelled.
INSERT INTO orders (id, session_id, status, total_amount, currency, created_at, expires_at, updated_at)
SELECT md5(format('%s/%s/%s', s, c, ord))::uuid, '00000000-0000-0000-0000-000000000000',
       CASE WHEN ord = 4 THEN 'cancelled' ELSE 'shipped' END, d_reserved * price, 'EUR',
       at, at + interval '15 minutes', at
FROM gen_steps WHERE kind = 'reservation';
INSERT INTO order_lines (order_id, position, sku, name, quantity, unit_price, line_total)
SELECT md5(format('%s/%s/%s', s, c, ord))::uuid, 0, sku, format('Ledger product %s', s), d_reserved, price,
       d_reserved * price
FROM gen_steps WHERE kind = 'reservation';

INSERT INTO stock_movements
    (sku, kind, delta_on_hand, delta_reserved, on_hand_after, reserved_after, version_after, reason, order_id, at)
SELECT sku, kind, d_on_hand, d_reserved,
       sum(d_on_hand) OVER w, sum(d_reserved) OVER w, i + 1, reason,
       CASE WHEN ord IS NOT NULL THEN md5(format('%s/%s/%s', s, c, ord))::uuid END, at
FROM gen_steps
WINDOW w AS (PARTITION BY s ORDER BY i)
ORDER BY at, sku;

INSERT INTO stock_levels (sku, on_hand, reserved, version, low_stock_threshold)
SELECT sku, sum(d_on_hand), sum(d_reserved), count(*), 5 FROM gen_steps GROUP BY sku;

-- One sequenced stock.changed event per movement, in ledger order.
INSERT INTO outbox_events (topic, payload, position)
SELECT 'stock.changed',
       jsonb_build_object('sku', m.sku, 'kind', m.kind, 'on_hand', m.on_hand_after, 'reserved', m.reserved_after,
                          'available', m.on_hand_after - m.reserved_after, 'version', m.version_after,
                          'previous_version', m.version_after - 1, 'delta_on_hand', m.delta_on_hand,
                          'delta_reserved', m.delta_reserved, 'order_id', m.order_id, 'movement_id', m.id),
       (SELECT value FROM event_log_marks WHERE name = 'sequenced') + row_number() OVER (ORDER BY m.id)
FROM stock_movements m WHERE m.sku LIKE 'L%';
UPDATE event_log_marks SET value = (SELECT max(position) FROM outbox_events) WHERE name = 'sequenced';
COMMIT;
ANALYZE;
