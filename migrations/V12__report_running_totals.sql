-- Reports at ten million movements (issue 14): window sums and stockout time from two index
-- probes per SKU instead of a scan of every rollup row in the window.
--
-- Measured at 10 M movements over 10,000 SKUs and a year (BENCHMARKS.md), a stock or top
-- report summed every daily rollup row of its window: about 10,000 rows per day of window
-- (3.6 M for 366 days), and the stock report replayed every stock mark of its window. Both
-- grow with the window; these running totals do not.
--
-- report_running: per SKU, the units sold, received and the revenue of every hour up to and
-- including `hour` (rows only for hours that changed them). A window's sum is the SKU's last
-- row minus its last row before the window. The follower keeps it in the step that updates
-- report_hourly; a contribution to an older hour (an order cancelled days after it was placed
-- counts at the hour it was placed) updates the SKU's rows from that hour on.
CREATE TABLE report_running (
    sku      text COLLATE "C" NOT NULL,
    hour     timestamptz NOT NULL,
    sold     bigint NOT NULL,
    received bigint NOT NULL,
    revenue  bigint NOT NULL,
    PRIMARY KEY (sku, hour)
);

-- report_stock_marks.out_micros: microseconds the SKU spent with available 0 from its creation
-- (out of stock until its first mark) to this mark, summing the spans between consecutive
-- marks in version order as the reports did (a span is never negative). The time out within
-- [start, now] is then the running figure at the last mark (plus now - at if it is out) minus
-- the same at the last mark before start.
ALTER TABLE report_stock_marks ADD COLUMN out_micros bigint;

-- report_last_movement, one row per SKU, also carries what the newest rows above say: the
-- totals now and the last mark, so a report reads them by a join over 10,000 rows rather than
-- by an index probe per SKU (two probes per SKU were left: the totals before the window and
-- the last mark before it).
ALTER TABLE report_last_movement
    ADD COLUMN sold bigint NOT NULL DEFAULT 0,
    ADD COLUMN received bigint NOT NULL DEFAULT 0,
    ADD COLUMN revenue bigint NOT NULL DEFAULT 0,
    ADD COLUMN mark_version bigint,
    ADD COLUMN mark_at timestamptz,
    ADD COLUMN mark_out boolean,
    ADD COLUMN mark_out_micros bigint;

-- Built from the rollups under the cursor's row lock: a follower step in flight commits first,
-- and none starts (they skip a locked cursor) until this commits. Replicas running a binary
-- older than this migration must not follow meanwhile (STOCKCART_ROLLUP_INTERVAL=0 on them,
-- or stop them): they would advance the cursor without these columns.
DO $$
BEGIN
    PERFORM 1 FROM report_cursor FOR UPDATE;
    INSERT INTO report_running (sku, hour, sold, received, revenue)
    SELECT sku, hour, sum(sold) OVER w, sum(received) OVER w, sum(revenue) OVER w
    FROM report_hourly
    WHERE sku <> '*' AND (sold <> 0 OR received <> 0 OR revenue <> 0)
    WINDOW w AS (PARTITION BY sku ORDER BY hour);

    UPDATE report_stock_marks m SET out_micros = c.out_micros
    FROM (
        SELECT sku, version, sum(span) OVER (PARTITION BY sku ORDER BY version)::int8 AS out_micros
        FROM (
            SELECT m.sku, m.version,
                   CASE WHEN coalesce(lag(m.out) OVER w, true)
                        THEN greatest(0, (extract(epoch FROM m.at - coalesce(lag(m.at) OVER w, p.created_at, m.at))
                                          * 1000000)::int8)
                        ELSE 0 END AS span
            FROM report_stock_marks m LEFT JOIN products p ON p.sku = m.sku
            WINDOW w AS (PARTITION BY m.sku ORDER BY m.version)
        ) s
    ) c
    WHERE m.sku = c.sku AND m.version = c.version;

    UPDATE report_last_movement l SET sold = t.sold, received = t.received, revenue = t.revenue
    FROM (SELECT DISTINCT ON (sku) sku, sold, received, revenue FROM report_running ORDER BY sku, hour DESC) t
    WHERE l.sku = t.sku;
    UPDATE report_last_movement l
    SET mark_version = m.version, mark_at = m.at, mark_out = m.out, mark_out_micros = m.out_micros
    FROM (SELECT DISTINCT ON (sku) sku, version, at, out, out_micros FROM report_stock_marks ORDER BY sku, version DESC) m
    WHERE l.sku = m.sku;
END
$$;
ALTER TABLE report_stock_marks ALTER COLUMN out_micros SET NOT NULL;
