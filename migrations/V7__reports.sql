-- Reports (issue 14): rollups of the ledger, kept by a follower of the event log.
--
-- A report over ten million movements cannot read the ledger per request, and the checkout
-- transaction must not write rollups (a hot SKU's row would serialise every checkout). So a
-- background task on every replica follows the event log (`stock.changed` events name their
-- movement) from `report_cursor.position`, adds each movement to the rollups and advances the
-- cursor in one transaction, under the cursor's row lock: each movement is counted exactly
-- once whichever replicas run it. Reports add the few movements the cursor has not reached
-- (events after it, or not yet sequenced), so they include everything committed.

-- What one movement contributes to the reports, defined once for the follower, the seed below
-- and the reports' own reading of the newest movements.
--   received: positive on_hand adjustments with reason restock or return
--   adjusted: every other change of on_hand by an adjustment or a set (signed)
--   sold, revenue: units (and their price) of orders placed, net of their cancellation or
--                  expiry; counted at the hour the order was placed (`placed_at`)
--   out_mark: true when available reached 0, false when it left 0, null otherwise
CREATE VIEW report_movement_facts AS
SELECT m.id,
       m.sku,
       m.version_after AS version,
       m.at,
       CASE WHEN m.kind = 'adjustment' AND m.delta_on_hand > 0 AND m.reason IN ('restock', 'return')
            THEN m.delta_on_hand ELSE 0 END AS received,
       CASE WHEN m.kind = 'set' OR (m.kind = 'adjustment'
                 AND NOT (m.delta_on_hand > 0 AND m.reason IS NOT NULL AND m.reason IN ('restock', 'return')))
            THEN m.delta_on_hand ELSE 0 END AS adjusted,
       CASE WHEN m.kind = 'shipment' THEN -m.delta_on_hand ELSE 0 END AS shipped,
       CASE WHEN m.kind = 'release' THEN -m.delta_reserved ELSE 0 END AS released,
       m.delta_reserved AS reserved_delta,
       o.created_at AS placed_at,
       CASE WHEN o.id IS NOT NULL THEN m.delta_reserved ELSE 0 END AS sold,
       CASE WHEN o.id IS NOT NULL THEN m.delta_reserved * coalesce(l.unit_price, 0) ELSE 0 END AS revenue,
       CASE WHEN m.on_hand_after - m.reserved_after = 0
                 AND (m.on_hand_after - m.delta_on_hand) - (m.reserved_after - m.delta_reserved) > 0 THEN true
            WHEN m.on_hand_after - m.reserved_after > 0
                 AND (m.on_hand_after - m.delta_on_hand) - (m.reserved_after - m.delta_reserved) = 0 THEN false
       END AS out_mark
FROM stock_movements m
LEFT JOIN orders o ON m.kind IN ('reservation', 'release') AND o.id = m.order_id
LEFT JOIN order_lines l ON l.order_id = o.id AND l.sku = m.sku;

-- Sums per SKU per UTC hour, and the same per UTC day (a window of months reads days, not hours).
CREATE TABLE report_hourly (
    sku            text COLLATE "C" NOT NULL,
    hour           timestamptz NOT NULL,
    received       bigint NOT NULL,
    sold           bigint NOT NULL,
    revenue        bigint NOT NULL,
    released       bigint NOT NULL,
    shipped        bigint NOT NULL,
    adjusted       bigint NOT NULL,
    reserved_delta bigint NOT NULL,
    PRIMARY KEY (sku, hour)
);
CREATE INDEX report_hourly_hour ON report_hourly (hour);

CREATE TABLE report_daily (
    sku            text COLLATE "C" NOT NULL,
    day            timestamptz NOT NULL,
    received       bigint NOT NULL,
    sold           bigint NOT NULL,
    revenue        bigint NOT NULL,
    released       bigint NOT NULL,
    shipped        bigint NOT NULL,
    adjusted       bigint NOT NULL,
    reserved_delta bigint NOT NULL,
    PRIMARY KEY (sku, day)
);
CREATE INDEX report_daily_day ON report_daily (day);

-- The moments a SKU's available reached 0 (out) and left it: stockout time comes from these,
-- never from sampling. A SKU is out from its creation until its first mark.
CREATE TABLE report_stock_marks (
    sku     text COLLATE "C" NOT NULL,
    version bigint NOT NULL,
    at      timestamptz NOT NULL,
    out     boolean NOT NULL,
    PRIMARY KEY (sku, version)
);
CREATE INDEX report_stock_marks_at ON report_stock_marks (at);

CREATE TABLE report_last_movement (
    sku text COLLATE "C" PRIMARY KEY,
    at  timestamptz NOT NULL
);

-- `position`: the last event position rolled up. `seeded_through`: movements up to this id
-- were rolled up here, by the seed, and are skipped when their events come by.
CREATE TABLE report_cursor (
    singleton      boolean PRIMARY KEY DEFAULT true CONSTRAINT report_cursor_singleton CHECK (singleton),
    position       bigint NOT NULL,
    seeded_through bigint NOT NULL
);

-- The seed: the ledger as it stands, events older than the retention included. Writers are
-- held off meanwhile, so every movement up to max(id) is committed and in the seed, and every
-- later one gets a higher id (a DO block is one transaction, also under psql's autocommit).
DO $$
BEGIN
    LOCK TABLE stock_movements IN SHARE MODE;
    INSERT INTO report_hourly
    SELECT sku, hour, sum(received), sum(sold), sum(revenue), sum(released), sum(shipped), sum(adjusted),
           sum(reserved_delta)
    FROM (
        SELECT sku, date_trunc('hour', at, 'UTC') AS hour, received, 0 AS sold, 0 AS revenue, released, shipped,
               adjusted, reserved_delta
        FROM report_movement_facts
        UNION ALL
        SELECT sku, date_trunc('hour', placed_at, 'UTC'), 0, sold, revenue, 0, 0, 0, 0
        FROM report_movement_facts WHERE sold <> 0
    ) c
    GROUP BY sku, hour;
    INSERT INTO report_daily
    SELECT sku, date_trunc('day', hour, 'UTC'), sum(received), sum(sold), sum(revenue), sum(released), sum(shipped),
           sum(adjusted), sum(reserved_delta)
    FROM report_hourly GROUP BY 1, 2;
    INSERT INTO report_stock_marks
    SELECT sku, version, at, out_mark FROM report_movement_facts WHERE out_mark IS NOT NULL;
    INSERT INTO report_last_movement SELECT sku, max(at) FROM stock_movements GROUP BY sku;
    INSERT INTO report_cursor (position, seeded_through) VALUES (
        (SELECT value FROM event_log_marks WHERE name = 'sequenced'),
        (SELECT coalesce(max(id), 0) FROM stock_movements));
END
$$;
