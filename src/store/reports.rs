//! The reports' SQL: the rollup follower's step, and the reads that reports combine with the
//! newest movements (`tail`). Migration V7 explains the tables and `report_movement_facts`,
//! the one definition of what a movement contributes.
//!
//! Rollup rows under the SKU `*` (not a valid SKU) sum every SKU, so a series over the whole
//! catalog reads one row per bucket instead of one per SKU. Window sums per SKU (stock health,
//! best sellers) read the running totals of V12 instead: the last row minus the last row
//! before the window, whatever its length. The running totals are written per completed hour
//! (V15), so the step spares most movements that upsert; the few hours not yet written are
//! summed from `report_hourly`.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

/// Where the rollups stand: every movement up to `seeded_through`, and every movement whose
/// event is at or before `position`, is in them. `report_running` is exact for the hours before
/// `running_from` only (V15); later hours are read from `report_hourly`.
#[derive(Debug, Clone, Copy)]
pub struct Cursor {
    pub position: i64,
    pub seeded_through: i64,
    pub running_from: DateTime<Utc>,
}

/// What the follower did in one step.
#[derive(Debug, Clone, Copy, Default)]
pub struct Step {
    /// Events read (of every type): the cursor moved this far.
    pub events: i64,
    /// Movements added to the rollups.
    pub movements: i64,
}

/// Rolls up the movements of the next `limit` events after the cursor, and advances it, in one
/// transaction under the cursor's row lock. `None` when another replica holds the lock: it is
/// doing the same work, and waiting for it would only make this replica redo nothing.
pub async fn roll_up(conn: &mut PgConnection, limit: i64) -> Result<Option<Step>, sqlx::Error> {
    // Not waiting for the WAL flush: the rollups are derived, and the cursor moves in the same
    // transaction, so a crash that loses this commit loses the step whole and it is done again.
    // No request waits for a step, so the requests' statement timeout does not apply: a step
    // that timed out would be retried over the same events and time out again, forever.
    let mut tx = sqlx::Connection::begin_with(
        &mut *conn,
        "BEGIN; SET LOCAL synchronous_commit = off; SET LOCAL statement_timeout = '10min'",
    )
    .await?;
    let Some(cursor) = sqlx::query_as!(
        Cursor,
        "SELECT position, seeded_through, running_from FROM report_cursor FOR UPDATE SKIP LOCKED"
    )
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Ok(None);
    };
    let running_from = complete_hours(&mut tx, cursor.running_from).await?;
    let step = sqlx::query_as!(
        Step,
        r#"WITH batch AS (
               SELECT position, topic, payload FROM outbox_events
               WHERE position > $1 ORDER BY position LIMIT $2
           ), facts AS (
               SELECT f.* FROM batch b
               JOIN report_movement_facts f ON f.id = (b.payload ->> 'movement_id')::bigint
               WHERE b.topic = 'stock.changed' AND f.id > $3
           ), contrib AS (
               SELECT sku, date_trunc('hour', at, 'UTC') AS hour, received, 0::int8 AS sold, 0::int8 AS revenue,
                      released, shipped, adjusted, reserved_delta
               FROM facts
               UNION ALL
               SELECT sku, date_trunc('hour', placed_at, 'UTC'), 0, sold, revenue, 0, 0, 0, 0
               FROM facts WHERE sold <> 0
           ), hourly_sums AS (
               SELECT s.sku, hour, sum(received)::int8 AS received, sum(sold)::int8 AS sold,
                      sum(revenue)::int8 AS revenue, sum(released)::int8 AS released,
                      sum(shipped)::int8 AS shipped, sum(adjusted)::int8 AS adjusted,
                      sum(reserved_delta)::int8 AS reserved_delta
               FROM contrib CROSS JOIN LATERAL (VALUES (contrib.sku), ('*')) AS s (sku)
               GROUP BY s.sku, hour
           ), hourly AS (
               INSERT INTO report_hourly AS r
               SELECT * FROM hourly_sums
               ON CONFLICT (sku, hour) DO UPDATE SET
                   received = r.received + EXCLUDED.received, sold = r.sold + EXCLUDED.sold,
                   revenue = r.revenue + EXCLUDED.revenue, released = r.released + EXCLUDED.released,
                   shipped = r.shipped + EXCLUDED.shipped, adjusted = r.adjusted + EXCLUDED.adjusted,
                   reserved_delta = r.reserved_delta + EXCLUDED.reserved_delta
           ), changes AS (
               SELECT sku, hour, sold, received, revenue FROM hourly_sums
               WHERE sku <> '*' AND (sold <> 0 OR received <> 0 OR revenue <> 0)
           ), touched AS (
               -- The hours whose running totals change: those of the batch, and every later
               -- row of the SKU (a sale counts at the hour its order was placed, maybe long ago).
               -- Only hours before running_from: later ones are read from report_hourly (V15),
               -- which spares the common case, a movement of the current hour, this upsert.
               SELECT sku, hour, sum(sold) AS sold, sum(received) AS received, sum(revenue) AS revenue FROM (
                   SELECT sku, hour, sold, received, revenue FROM changes WHERE hour < $4
                   UNION ALL
                   SELECT r.sku, r.hour, 0, 0, 0
                   FROM report_running r
                   JOIN (SELECT sku, min(hour) AS hour FROM changes WHERE hour < $4 GROUP BY sku) f
                     ON r.sku = f.sku AND r.hour > f.hour AND r.hour < $4
               ) t GROUP BY sku, hour
           ), running AS (
               INSERT INTO report_running AS r (sku, hour, sold, received, revenue)
               SELECT t.sku, t.hour, coalesce(b.sold, 0) + t.sold, coalesce(b.received, 0) + t.received,
                      coalesce(b.revenue, 0) + t.revenue
               FROM (
                   SELECT sku, hour, sum(sold) OVER w AS sold, sum(received) OVER w AS received,
                          sum(revenue) OVER w AS revenue
                   FROM touched WINDOW w AS (PARTITION BY sku ORDER BY hour)
               ) t
               LEFT JOIN LATERAL (
                   SELECT sold, received, revenue FROM report_running p
                   WHERE p.sku = t.sku AND p.hour <= t.hour ORDER BY p.hour DESC LIMIT 1
               ) b ON true
               ON CONFLICT (sku, hour) DO UPDATE SET
                   sold = EXCLUDED.sold, received = EXCLUDED.received, revenue = EXCLUDED.revenue
           ), new_marks AS (
               SELECT sku, version, at, out_mark AS out, lag(at) OVER w AS prev_at, lag(out_mark) OVER w AS prev_out
               FROM facts WHERE out_mark IS NOT NULL
               WINDOW w AS (PARTITION BY sku ORDER BY version)
           ), marks AS (
               -- Each mark's running time out of stock: the SKU's last mark before the batch (or
               -- its creation, out of stock) plus the spans out since, never negative.
               INSERT INTO report_stock_marks (sku, version, at, out, out_micros)
               SELECT n.sku, n.version, n.at, n.out,
                      coalesce(b.out_micros, 0) + sum(
                          CASE WHEN coalesce(n.prev_out, b.out, true)
                               THEN greatest(0, (extract(epoch FROM n.at - coalesce(n.prev_at, b.at, p.created_at, n.at))
                                                 * 1000000)::int8)
                               ELSE 0 END) OVER (PARTITION BY n.sku ORDER BY n.version)::int8
               FROM new_marks n
               LEFT JOIN LATERAL (
                   SELECT at, out, out_micros FROM report_stock_marks c
                   WHERE c.sku = n.sku ORDER BY c.version DESC LIMIT 1
               ) b ON true
               LEFT JOIN products p ON p.sku = n.sku
               RETURNING sku, version, at, out, out_micros
           ), last AS (
               -- Per SKU: its last movement, its totals now and its last mark (V12).
               INSERT INTO report_last_movement AS r
                   (sku, at, sold, received, revenue, mark_version, mark_at, mark_out, mark_out_micros)
               SELECT f.sku, f.at, coalesce(c.sold, 0), coalesce(c.received, 0), coalesce(c.revenue, 0),
                      m.version, m.at, m.out, m.out_micros
               FROM (SELECT sku, max(at) AS at FROM facts GROUP BY sku) f
               LEFT JOIN (
                   SELECT sku, sum(sold)::int8 AS sold, sum(received)::int8 AS received, sum(revenue)::int8 AS revenue
                   FROM changes GROUP BY sku
               ) c ON c.sku = f.sku
               LEFT JOIN (
                   SELECT DISTINCT ON (sku) sku, version, at, out, out_micros FROM marks ORDER BY sku, version DESC
               ) m ON m.sku = f.sku
               ON CONFLICT (sku) DO UPDATE SET
                   at = greatest(r.at, EXCLUDED.at), sold = r.sold + EXCLUDED.sold,
                   received = r.received + EXCLUDED.received, revenue = r.revenue + EXCLUDED.revenue,
                   mark_version = coalesce(EXCLUDED.mark_version, r.mark_version),
                   mark_at = CASE WHEN EXCLUDED.mark_version IS NULL THEN r.mark_at ELSE EXCLUDED.mark_at END,
                   mark_out = CASE WHEN EXCLUDED.mark_version IS NULL THEN r.mark_out ELSE EXCLUDED.mark_out END,
                   mark_out_micros = CASE WHEN EXCLUDED.mark_version IS NULL THEN r.mark_out_micros
                                          ELSE EXCLUDED.mark_out_micros END
           ), advanced AS (
               UPDATE report_cursor SET position = (SELECT max(position) FROM batch)
               WHERE EXISTS (SELECT 1 FROM batch)
           )
           SELECT (SELECT count(*) FROM batch) AS "events!", (SELECT count(*) FROM facts) AS "movements!""#,
        cursor.position,
        limit,
        cursor.seeded_through,
        running_from
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(step))
}

/// Writes the running totals of the hours completed since `from` (`report_running` is exact
/// before `running_from`, V15) once the clock has passed into a new hour, and moves
/// `running_from` up to it; returns it. Once an hour: the SKUs that moved since `from`, one row
/// per hour that changed their totals. Any replica's clock will do: an hour written early only
/// means its later movements go to `report_running` in the step, as older hours' do.
async fn complete_hours(conn: &mut PgConnection, from: DateTime<Utc>) -> Result<DateTime<Utc>, sqlx::Error> {
    let now = Utc::now();
    let hour = chrono::DurationRound::duration_trunc(now, chrono::TimeDelta::hours(1)).unwrap_or(now);
    if hour <= from {
        return Ok(from);
    }
    // Rows from `from` on are unread and may be stale (an older binary may have written them).
    sqlx::query!(
        "DELETE FROM report_running r USING report_last_movement m WHERE m.at >= $1 AND r.sku = m.sku AND r.hour >= $1",
        from
    )
    .execute(&mut *conn)
    .await?;
    // A sale counts at the hour its order was placed, never after the movement: every SKU with
    // an hourly row from `from` on has its last movement from `from` on.
    sqlx::query!(
        "INSERT INTO report_running (sku, hour, sold, received, revenue)
         SELECT h.sku, h.hour, coalesce(b.sold, 0) + sum(h.sold) OVER w, coalesce(b.received, 0) + sum(h.received) OVER w,
                coalesce(b.revenue, 0) + sum(h.revenue) OVER w
         FROM report_last_movement m
         JOIN report_hourly h ON h.sku = m.sku AND h.hour >= $1 AND h.hour < $2
                                AND (h.sold <> 0 OR h.received <> 0 OR h.revenue <> 0)
         LEFT JOIN LATERAL (
             SELECT sold, received, revenue FROM report_running p
             WHERE p.sku = m.sku AND p.hour < $1 ORDER BY p.hour DESC LIMIT 1
         ) b ON true
         WHERE m.at >= $1
         WINDOW w AS (PARTITION BY h.sku ORDER BY h.hour)",
        from,
        hour
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!("UPDATE report_cursor SET running_from = $1", hour).execute(&mut *conn).await?;
    Ok(hour)
}

/// Opens the snapshot a report reads: the rollups, their cursor and the newest movements must
/// be seen at one instant, or a movement could be counted twice or not at all.
pub async fn begin_snapshot(conn: &mut PgConnection) -> Result<Cursor, sqlx::Error> {
    sqlx::query!("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *conn).await?;
    report_settings(conn).await?;
    sqlx::query_as!(Cursor, "SELECT position, seeded_through, running_from FROM report_cursor")
        .fetch_one(&mut *conn)
        .await
}

/// A report's plan over 10,000 SKUs costs enough for JIT, whose compilation (15 ms or more)
/// takes longer than the query it would speed up. And one statement serves a page of a few SKUs
/// and every SKU (`stock_rows`): a generic plan cached for one would be wrong for the other, so
/// each is planned for its parameters (about a millisecond).
async fn report_settings(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"SELECT set_config('jit', 'off', true) AS "jit!",
                  set_config('plan_cache_mode', 'force_custom_plan', true) AS "plans!""#
    )
    .fetch_one(conn)
    .await?;
    Ok(())
}

/// Opens on `other` a transaction that sees exactly what `conn`'s report snapshot sees
/// (`pg_export_snapshot`), so a read over every SKU can be split between two connections and
/// two cores; PostgreSQL's own parallel query does not run the reports' per-SKU lookups.
pub async fn share_snapshot<'c>(
    conn: &mut PgConnection,
    other: &'c mut PgConnection,
) -> Result<sqlx::Transaction<'c, sqlx::Postgres>, sqlx::Error> {
    let id = sqlx::query_scalar!(r#"SELECT pg_export_snapshot() AS "id!""#).fetch_one(&mut *conn).await?;
    // SET TRANSACTION SNAPSHOT takes no parameters; the id is the server's own, checked anyway.
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
        return Err(sqlx::Error::Protocol(format!("unexpected snapshot id {id:?}")));
    }
    let mut tx = sqlx::Connection::begin(other).await?;
    sqlx::query!("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
    sqlx::query(&format!("SET TRANSACTION SNAPSHOT '{id}'")).execute(&mut *tx).await?;
    report_settings(&mut tx).await?;
    Ok(tx)
}

/// Which SKUs a read over all of them covers: those from `from` (inclusive) to `to` (exclusive,
/// or no end). Ranges, not a hash: each part walks its SKUs in order, as the whole read does,
/// so neighbouring SKUs share the index pages just read; and the planner, knowing the bounds,
/// estimates the part's rows from the statistics.
#[derive(Debug, Clone, Default)]
pub struct Part {
    pub from: String,
    pub to: Option<String>,
}

impl Part {
    pub fn all() -> Part {
        Part::default()
    }
}

/// The SKU that splits the catalog in two halves (`None` when it is empty).
pub async fn middle_sku(conn: &mut PgConnection) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar!("SELECT sku FROM products ORDER BY sku OFFSET (SELECT count(*) / 2 FROM products) LIMIT 1")
        .fetch_optional(conn)
        .await
}

/// One movement the rollups do not hold yet, as `report_movement_facts` defines it.
#[derive(Debug, Clone)]
pub struct Fact {
    pub sku: String,
    pub version: i64,
    pub at: DateTime<Utc>,
    pub received: i64,
    pub adjusted: i64,
    pub shipped: i64,
    pub released: i64,
    pub reserved_delta: i64,
    pub placed_at: Option<DateTime<Utc>>,
    pub sold: i64,
    pub revenue: i64,
    pub out_mark: Option<bool>,
}

/// The movements committed after the rollups' cursor: their events come after its position or
/// have no position yet (committed, not yet sequenced). In SKU and version order.
pub async fn tail(conn: &mut PgConnection, cursor: Cursor) -> Result<Vec<Fact>, sqlx::Error> {
    sqlx::query_as!(
        Fact,
        r#"WITH newer AS (
               SELECT payload FROM outbox_events WHERE position > $1 AND topic = 'stock.changed'
               UNION ALL
               SELECT payload FROM outbox_events WHERE position IS NULL AND topic = 'stock.changed'
           )
           SELECT f.sku AS "sku!", f.version AS "version!", f.at AS "at!", f.received AS "received!",
                  f.adjusted AS "adjusted!", f.shipped AS "shipped!", f.released AS "released!",
                  f.reserved_delta AS "reserved_delta!", f.placed_at, f.sold AS "sold!", f.revenue AS "revenue!",
                  f.out_mark
           FROM newer n JOIN report_movement_facts f ON f.id = (n.payload ->> 'movement_id')::bigint
           WHERE f.id > $2
           ORDER BY f.sku, f.version"#,
        cursor.position,
        cursor.seeded_through
    )
    .fetch_all(conn)
    .await
}

/// A SKU's figures from the rollups, over hours from `start` (see `Window`).
#[derive(Debug, Clone)]
pub struct StockRow {
    pub sku: String,
    pub name: String,
    pub on_hand: i64,
    pub reserved: i64,
    pub low_stock_threshold: i64,
    pub units_sold: i64,
    pub units_received: i64,
    /// Seconds in `[start, now]` with available at 0, as if the last rolled-up mark held until now.
    pub stockout_seconds: f64,
    pub last_movement_at: Option<DateTime<Utc>>,
}

/// The SKUs after `after` in SKU order, `limit` of them (all when `None`), each with its sums
/// over the window from `start` (an hour): its running totals now minus those before `start`,
/// and its time out of stock likewise from its marks' running figures (V12). Whatever the
/// window: a join with the per-SKU row of totals now and an index probe per SKU (the totals
/// before `start`; the mark before it too for SKUs marked since), so a page in SKU order costs
/// its own SKUs only.
pub async fn stock_rows(
    conn: &mut PgConnection,
    cursor: Cursor,
    start: DateTime<Utc>,
    now: DateTime<Utc>,
    after: Option<&str>,
    limit: Option<i64>,
    part: Part,
) -> Result<Vec<StockRow>, sqlx::Error> {
    sqlx::query_as!(
        StockRow,
        r#"SELECT p.sku, p.name, s.on_hand, s.reserved, s.low_stock_threshold,
                  -- The hours before the window not yet in report_running (V15): none unless the
                  -- window starts after running_from, and then no probe is made (CASE).
                  (coalesce(l.sold, 0) - coalesce(b.sold, 0)
                   - CASE WHEN $1::timestamptz > $3::timestamptz
                          THEN coalesce((SELECT sum(h.sold) FROM report_hourly h
                                         WHERE h.sku = p.sku AND h.hour >= $3 AND h.hour < $1), 0)
                          ELSE 0 END)::int8 AS "units_sold!",
                  (coalesce(l.received, 0) - coalesce(b.received, 0)
                   - CASE WHEN $1::timestamptz > $3::timestamptz
                          THEN coalesce((SELECT sum(h.received) FROM report_hourly h
                                         WHERE h.sku = p.sku AND h.hour >= $3 AND h.hour < $1), 0)
                          ELSE 0 END)::int8 AS "units_received!",
                  -- Out of stock from creation until the first mark; the last mark holds until now.
                  ((coalesce(l.mark_out_micros, 0)
                    + CASE WHEN coalesce(l.mark_out, true)
                           THEN greatest(0, (extract(epoch FROM $2 - coalesce(l.mark_at, p.created_at)) * 1000000)::int8)
                           ELSE 0 END
                    - CASE WHEN bm.version IS NOT NULL
                           THEN bm.out_micros
                                + CASE WHEN bm.out THEN greatest(0, (extract(epoch FROM $1 - bm.at) * 1000000)::int8)
                                       ELSE 0 END
                           WHEN p.created_at < $1
                           THEN (extract(epoch FROM $1 - p.created_at) * 1000000)::int8
                           ELSE 0 END)::float8 / 1e6) AS "stockout_seconds!",
                  l.at AS "last_movement_at?"
           FROM products p
           JOIN stock_levels s ON s.sku = p.sku
           LEFT JOIN report_last_movement l ON l.sku = p.sku
           LEFT JOIN LATERAL report_running_before(p.sku, least($1::timestamptz, $3::timestamptz)) b ON true
           -- The mark before the window: the SKU's last mark when that is older, as it mostly
           -- is; only SKUs marked within the window are looked up.
           LEFT JOIN LATERAL (
               SELECT version, at, out, out_micros FROM report_stock_marks m
               WHERE l.mark_at >= $1 AND m.sku = p.sku AND m.at < $1 ORDER BY m.version DESC LIMIT 1
           ) found ON true
           CROSS JOIN LATERAL (
               SELECT CASE WHEN l.mark_at < $1 THEN l.mark_version ELSE found.version END AS version,
                      CASE WHEN l.mark_at < $1 THEN l.mark_at ELSE found.at END AS at,
                      CASE WHEN l.mark_at < $1 THEN l.mark_out ELSE found.out END AS out,
                      CASE WHEN l.mark_at < $1 THEN l.mark_out_micros ELSE found.out_micros END AS out_micros
           ) bm
           WHERE p.sku > $4 AND p.sku >= $6 AND ($7::text IS NULL OR p.sku < $7)
           ORDER BY p.sku
           LIMIT $5"#,
        start,
        now,
        cursor.running_from,
        after.unwrap_or(""),
        limit,
        part.from,
        part.to
    )
    .fetch_all(conn)
    .await
}

#[derive(Debug, Clone)]
pub struct SalesRow {
    pub sku: String,
    pub name: String,
    pub units: i64,
    pub revenue: i64,
}

/// Units sold and their revenue per SKU over the window from `start` (as `stock_rows`), SKUs
/// whose figures in the rollups are not both zero.
pub async fn sales(
    conn: &mut PgConnection,
    cursor: Cursor,
    start: DateTime<Utc>,
    part: Part,
) -> Result<Vec<SalesRow>, sqlx::Error> {
    sqlx::query_as!(
        SalesRow,
        r#"SELECT sku AS "sku!", name AS "name!", units AS "units!", revenue AS "revenue!" FROM (
               SELECT p.sku, p.name,
                      (l.sold - coalesce(b.sold, 0)
                       - CASE WHEN $1::timestamptz > $2::timestamptz
                              THEN coalesce((SELECT sum(h.sold) FROM report_hourly h
                                             WHERE h.sku = p.sku AND h.hour >= $2 AND h.hour < $1), 0)
                              ELSE 0 END)::int8 AS units,
                      (l.revenue - coalesce(b.revenue, 0)
                       - CASE WHEN $1::timestamptz > $2::timestamptz
                              THEN coalesce((SELECT sum(h.revenue) FROM report_hourly h
                                             WHERE h.sku = p.sku AND h.hour >= $2 AND h.hour < $1), 0)
                              ELSE 0 END)::int8 AS revenue
               FROM products p
               JOIN report_last_movement l ON l.sku = p.sku
               LEFT JOIN LATERAL report_running_before(p.sku, least($1::timestamptz, $2::timestamptz)) b ON true
               WHERE p.sku >= $3 AND ($4::text IS NULL OR p.sku < $4)
           ) w
           WHERE units <> 0 OR revenue <> 0
           ORDER BY sku"#,
        start,
        cursor.running_from,
        part.from,
        part.to
    )
    .fetch_all(conn)
    .await
}

/// Names of SKUs (for SKUs that only the tail mentions).
pub async fn names(conn: &mut PgConnection, skus: &[String]) -> Result<Vec<(String, String)>, sqlx::Error> {
    let rows = sqlx::query!("SELECT sku, name FROM products WHERE sku = ANY($1)", skus).fetch_all(conn).await?;
    Ok(rows.into_iter().map(|r| (r.sku, r.name)).collect())
}

pub async fn sku_exists(conn: &mut PgConnection, sku: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(r#"SELECT EXISTS (SELECT 1 FROM products WHERE sku = $1) AS "exists!""#, sku)
        .fetch_one(conn)
        .await
}

#[derive(Debug, Clone, Default)]
pub struct Bucket {
    pub start: DateTime<Utc>,
    pub received: i64,
    pub sold: i64,
    pub released: i64,
    pub shipped: i64,
    pub adjusted: i64,
    pub reserved_delta: i64,
}

/// Rolled-up buckets of one SKU (or `*`, all) starting in `[from, to)`, hourly or daily.
pub async fn buckets(
    conn: &mut PgConnection,
    sku: &str,
    daily: bool,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<Bucket>, sqlx::Error> {
    if daily {
        // Days are summed from hours (V13 dropped the daily rollup: one upsert fewer per SKU
        // in every follower step, and a year of one SKU is at most 8,784 hourly rows). A day
        // starting before `to` counts whole, as a bucket does.
        let day = chrono::TimeDelta::days(1);
        let through = chrono::DurationRound::duration_trunc(to, day).unwrap_or(to);
        let through = if through < to { through + day } else { through };
        sqlx::query_as!(
            Bucket,
            r#"SELECT date_trunc('day', hour, 'UTC') AS "start!", sum(received)::int8 AS "received!",
                      sum(sold)::int8 AS "sold!", sum(released)::int8 AS "released!",
                      sum(shipped)::int8 AS "shipped!", sum(adjusted)::int8 AS "adjusted!",
                      sum(reserved_delta)::int8 AS "reserved_delta!"
               FROM report_hourly WHERE sku = $1 AND hour >= $2 AND hour < $3
               GROUP BY 1 ORDER BY 1"#,
            sku,
            from,
            through
        )
        .fetch_all(conn)
        .await
    } else {
        sqlx::query_as!(
            Bucket,
            r#"SELECT hour AS start, received, sold, released, shipped, adjusted, reserved_delta
               FROM report_hourly WHERE sku = $1 AND hour >= $2 AND hour < $3 ORDER BY hour"#,
            sku,
            from,
            to
        )
        .fetch_all(conn)
        .await
    }
}

#[derive(Debug, Clone)]
pub struct Reservations {
    pub open_orders: i64,
    pub units: i64,
    pub oldest_at: Option<DateTime<Utc>>,
    pub age_p50_seconds: Option<f64>,
    pub age_p90_seconds: Option<f64>,
    pub expiring_within_5m: i64,
}

/// Orders that hold reserved stock now: awaiting payment (overdue ones too, until expiry
/// releases them) or paid and not yet shipped.
pub async fn reservations(conn: &mut PgConnection, now: DateTime<Utc>) -> Result<Reservations, sqlx::Error> {
    sqlx::query_as!(
        Reservations,
        r#"WITH open AS (
               SELECT o.id, o.status, o.created_at, o.expires_at,
                      (SELECT sum(quantity) FROM order_lines l WHERE l.order_id = o.id)::int8 AS units
               FROM orders o WHERE o.status IN ('awaiting_payment', 'paid')
           )
           SELECT count(*) AS "open_orders!", coalesce(sum(units), 0)::int8 AS "units!",
                  min(created_at) AS oldest_at,
                  percentile_disc(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM $1 - created_at))::float8
                      AS age_p50_seconds,
                  percentile_disc(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM $1 - created_at))::float8
                      AS age_p90_seconds,
                  count(*) FILTER (WHERE status = 'awaiting_payment' AND expires_at <= $1 + interval '5 minutes')
                      AS "expiring_within_5m!"
           FROM open"#,
        now
    )
    .fetch_one(conn)
    .await
}
