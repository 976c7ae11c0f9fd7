-- The client's log (JSON lines of `stockcart loadgen --client-log`, on stdin) against the
-- database: what was acknowledged must be there, with its reservation, and nothing else; no
-- 500; no answer later than the deadline; and, around a fault, how long checkouts stopped.
-- Reads only; what it creates is temporary (this connection's). Run by `scripts/faults verify`:
--   psql URL -v deadline_ms=N -v fault_start=MS -v fault_end=MS -f verify.sql < LOG
-- (fault_start/fault_end: Unix milliseconds, or 0 when the run had no fault.)
\set ON_ERROR_STOP on
\pset footer off
SET client_min_messages = warning;

CREATE TEMP TABLE client_log (line text);
-- A JSON line has no field separator or quote: CSV with two control characters as both
-- reads each line whole, backslashes included.
\copy client_log (line) FROM pstdin WITH (FORMAT csv, DELIMITER E'\x02', QUOTE E'\x01')

CREATE TEMP TABLE answers AS
SELECT (j->>'at')::float8 AS at, j->>'op' AS op, (j->>'status')::int AS status, (j->>'ms')::float8 AS ms,
       j->>'code' AS code, j->>'key' AS key, j->>'base' AS base, (j->>'order')::uuid AS order_id, j->'lines' AS lines
FROM (SELECT line::jsonb AS j FROM client_log WHERE line <> '') l;

CREATE TEMP TABLE violations (what text);

-- Every answer but a 503 `database_unavailable` is the service's own: a 500 (or another 5xx)
-- is a bug. A network error (status 0) is allowed (an instance was killed) but not a slow one.
INSERT INTO violations
SELECT format('%s answers %s to %s (code %s)', count(*), status, op, coalesce(code, '-'))
FROM answers WHERE status >= 500 AND status <> 503 GROUP BY status, op, code;

INSERT INTO violations
SELECT format('%s answers to %s later than %s ms (status %s, slowest %s ms)',
              count(*), op, :deadline_ms, status, round(max(ms)))
FROM answers WHERE ms > :deadline_ms GROUP BY op, status;

-- A definitive answer other than the one each step expects (503 and network errors are retried).
INSERT INTO violations
SELECT format('%s unexpected answers %s to %s (code %s)', count(*), status, op, coalesce(code, '-'))
FROM answers
WHERE status NOT IN (0, 503)
  AND NOT (op = 'session' AND status = 201)
  AND NOT (op = 'set' AND status = 200)
  AND NOT (op = 'checkout' AND (status = 201 OR code = 'idempotency_in_progress'))
  AND NOT (op = 'burst' AND status = 200)
  AND op <> 'checkout_abandoned'
GROUP BY status, op, code;

INSERT INTO violations
SELECT format('%s checkouts abandoned without a definitive answer', count(*))
FROM answers WHERE op = 'checkout_abandoned' HAVING count(*) > 0;

-- One key, one order: a retried checkout is answered with the order of its first attempt.
INSERT INTO violations
SELECT format('key %s was acknowledged with %s different orders', key, count(DISTINCT order_id))
FROM answers WHERE order_id IS NOT NULL GROUP BY key HAVING count(DISTINCT order_id) > 1;

-- Acknowledged orders, with the lines their 201 showed.
CREATE TEMP TABLE acknowledged AS
SELECT DISTINCT ON (order_id) order_id, lines FROM answers WHERE op = 'checkout' AND status = 201
ORDER BY order_id, at;

INSERT INTO violations
SELECT format('acknowledged order %s is not in the database', a.order_id)
FROM acknowledged a WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.id = a.order_id);

INSERT INTO violations
SELECT format('acknowledged order %s: its lines in the database differ from its 201', a.order_id)
FROM acknowledged a
WHERE EXISTS (SELECT 1 FROM orders o WHERE o.id = a.order_id)
  AND EXISTS (
    (SELECT l->>'sku', (l->>'quantity')::int FROM jsonb_array_elements(a.lines) l
     EXCEPT SELECT sku, quantity FROM order_lines WHERE order_id = a.order_id)
    UNION ALL
    (SELECT sku, quantity FROM order_lines WHERE order_id = a.order_id
     EXCEPT SELECT l->>'sku', (l->>'quantity')::int FROM jsonb_array_elements(a.lines) l));

-- Checkout reserves each line: one `reservation` movement per line, naming the order.
INSERT INTO violations
SELECT format('acknowledged order %s: no reservation of %s x %s in the ledger', ol.order_id, ol.quantity, ol.sku)
FROM acknowledged a JOIN order_lines ol ON ol.order_id = a.order_id
WHERE NOT EXISTS (
  SELECT 1 FROM stock_movements m
  WHERE m.order_id = ol.order_id AND m.kind = 'reservation' AND m.sku = ol.sku
    AND m.delta_reserved = ol.quantity AND m.delta_on_hand = 0);

-- Nothing placed that nobody was told about: every order created while the log ran was
-- acknowledged (the buyers are the only writers of orders during a run).
INSERT INTO violations
SELECT format('%s orders were created during the run but never acknowledged (e.g. %s)', count(*), min(o.id::text))
FROM orders o
WHERE o.created_at BETWEEN (SELECT to_timestamp(min(at - ms) / 1000) FROM answers)
                       AND (SELECT to_timestamp(max(at) / 1000) FROM answers)
  AND NOT EXISTS (SELECT 1 FROM acknowledged a WHERE a.order_id = o.id)
HAVING count(*) > 0;

\echo
\echo answers (op, status, code: count, slowest ms)
SELECT op, status, coalesce(code, '') AS code, count(*) AS answers, round(max(ms)) AS slowest_ms
FROM answers GROUP BY op, status, code ORDER BY op, status;

-- Around the fault: when checkouts stopped being acknowledged, and when they came back.
SELECT :fault_start::float8 AS fault_start, :fault_end::float8 AS fault_end \gset
SELECT :fault_start > 0 AS had_fault \gset
\if :had_fault
CREATE TEMP TABLE successes AS SELECT at FROM answers WHERE op = 'checkout' AND status = 201;
SELECT
  round(:fault_end - :fault_start) AS fault_ms,
  (SELECT count(*) FROM successes WHERE at BETWEEN :fault_start AND :fault_end) AS acknowledged_during_fault,
  (SELECT count(*) FROM answers WHERE at BETWEEN :fault_start AND :fault_end AND status IN (0, 503)) AS unavailable_during_fault,
  coalesce(round((SELECT min(at) FROM successes WHERE at >= :fault_end) - :fault_end), -1) AS recovery_ms,
  -- From the fault (or the last acknowledgement before it) to the first one after it.
  (SELECT coalesce(round(max(gap)), -1) FROM (
     SELECT lead(at) OVER (ORDER BY at) - at AS gap FROM (
       SELECT at FROM successes
       WHERE at BETWEEN :fault_start - 10000 AND (SELECT min(at) FROM successes WHERE at >= :fault_end)
       UNION ALL SELECT :fault_start) p) g
  ) AS longest_gap_ms
\gset r_
\echo fault lasted :r_fault_ms ms; checkouts acknowledged during it: :r_acknowledged_during_fault; 503 or network errors during it: :r_unavailable_during_fault
\echo recovery: first acknowledged checkout :r_recovery_ms ms after the fault was lifted; longest time without one: :r_longest_gap_ms ms
INSERT INTO violations SELECT 'no checkout was acknowledged after the fault was lifted' WHERE :r_recovery_ms < 0;
\endif

SELECT count(*) AS acknowledged, (SELECT count(*) FROM answers) AS answers FROM acknowledged \gset
\echo :acknowledged orders acknowledged in :answers answers
SELECT count(*) > 0 AS violated FROM violations \gset
\if :violated
\echo VIOLATIONS:
SELECT what AS violation FROM violations;
DO $$ BEGIN RAISE EXCEPTION 'the client log and the database disagree'; END $$;
\endif
\echo every acknowledged order is in the database with its reservation; nothing else was placed
