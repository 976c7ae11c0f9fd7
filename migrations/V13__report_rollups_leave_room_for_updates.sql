-- The rollup follower's step, made cheaper (issue 14: checkout with the follower on was 0.89x
-- of checkout with it off; every step competes with checkout for the same CPU and WAL).
--
-- 1. Room for updates. The follower updates the same rows step after step: a SKU's hourly and
--    running-total rows of the current hour, and its report_last_movement row, once per step
--    in which it moved. At the default fillfactor (100) pages are full, so every such update
--    writes the new row version on another page with a new entry in each of the table's
--    indexes. Free room on the page lets PostgreSQL update in place (a HOT update: no index
--    entry; old versions pruned on the page). 70 for the tables that grow with the ledger (a
--    row per SKU per hour: about 30 % more pages), 50 for the one row per SKU. Only pages
--    written from now on leave the room; this does not rewrite a large table.
-- 2. No daily rollup. report_daily held the same sums as report_hourly per UTC day, one more
--    upsert per SKU in every step; a daily series now sums the hours of its days (a year of one
--    SKU, or of `*`, is at most 8,784 hourly rows, read by the primary key).
-- 3. No index on report_hourly (hour): no query reads by hour across SKUs, and each new row
--    paid an entry in it.
--
-- Measured (BENCHMARKS.md, "Rollup step cost"): one step of 5,000 events (3,753 movements of a
-- spread checkout over 10,000 SKUs) took 128 ms before, 100 ms with (1) alone.
--
-- Deploying: replicas on an older binary read and write report_daily; stop their follower
-- (STOCKCART_ROLLUP_INTERVAL=0) and their daily series before applying this, as for V12.
ALTER TABLE report_hourly SET (fillfactor = 70);
ALTER TABLE report_running SET (fillfactor = 70);
ALTER TABLE report_last_movement SET (fillfactor = 50);
DROP TABLE report_daily;
DROP INDEX report_hourly_hour;
