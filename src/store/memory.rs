//! Shopper memory: recently viewed products (per cart, so per shopper) and view counts.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

use super::products::Product;
use crate::domain::Currency;

/// Most products a shopper's list keeps.
pub const RECENT_LIMIT: i64 = 20;

/// A product read by a shopper that records the view.
pub struct RecordedRead {
    /// Which of the batch's requests (its index in the arrays given) this answers.
    pub index: usize,
    pub product: Product,
    /// The view is in the shopper's list: false for a token that is no live session (the read
    /// then simply records nothing).
    pub recorded: bool,
}

/// The product reads of a batch of shoppers (`memory::reads`), request `i` being `skus[i]`
/// read with `token_hashes[i]`, in one statement: authenticates the sessions, records the
/// views (keeping each list at `RECENT_LIMIT`) and reads the products. Recording cannot add a
/// round trip to the read this way, and a read on another replica right after it sees the
/// view. A request whose product does not exist has no answer.
pub async fn read_and_record(
    pool: &PgPool,
    token_hashes: &[Vec<u8>],
    skus: &[String],
) -> Result<Vec<RecordedRead>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"WITH asked AS (
               SELECT a.n, a.token_hash, a.sku
               FROM unnest($1::bytea[], $2::text[]) WITH ORDINALITY AS a (token_hash, sku, n)
           ), product AS (
               SELECT p.sku, p.name, p.price_amount, p.price_currency, s.low_stock_threshold,
                      s.on_hand - s.reserved AS available
               FROM products p JOIN stock_levels s ON s.sku = p.sku
               WHERE p.sku = ANY($2)
           ), viewer AS (
               -- `= ANY($1)` on sessions itself, so that they are found by their index: the
               -- join alone is planned as a scan of every session.
               SELECT a.n, s.cart_id FROM sessions s JOIN asked a ON a.token_hash = s.token_hash
               WHERE s.token_hash = ANY($1) AND s.expires_at > now()
           ), fresh AS (
               -- Each cart's views in the batch: its products, each once (at its latest
               -- request), latest first. One list row per cart: ON CONFLICT DO UPDATE may not
               -- touch a row twice in one statement.
               SELECT cart_id, array_agg(sku ORDER BY n DESC) AS skus FROM (
                   SELECT DISTINCT ON (w.cart_id, a.sku) w.cart_id, a.sku, a.n
                   FROM asked a JOIN viewer w ON w.n = a.n JOIN product ON product.sku = a.sku
                   ORDER BY w.cart_id, a.sku, a.n DESC
               ) latest
               GROUP BY cart_id
           ), seen AS (
               -- A view is one update of its cart's list row, in place (a HOT update: V14):
               -- the batch's views first, then the list's other products, RECENT_LIMIT in
               -- all. A cart's views of one batch are a microsecond apart, in the order they
               -- arrived, so that the order is never a tie; the latest one is at the
               -- statement's clock, after every view acknowledged before it was sent, and
               -- after the list's newest (a batch that took the row's lock before this one
               -- may have read the clock later). Rows are locked in key order, so two batches
               -- touching the same lists cannot deadlock on them.
               INSERT INTO recent_view_lists AS l (cart_id, skus, viewed_at)
               SELECT f.cart_id, f.skus[:$3::int8::int4],
                      array(SELECT at.now - (i - 1) * interval '1 microsecond'
                            FROM generate_series(1, least(cardinality(f.skus), $3)) i)
               FROM fresh f, (SELECT clock_timestamp() AS now) at
               ORDER BY f.cart_id
               ON CONFLICT (cart_id) DO UPDATE SET (skus, viewed_at) = (
                   SELECT array_agg(k.sku ORDER BY k.ord), array_agg(k.at ORDER BY k.ord) FROM (
                       SELECT e.sku, e.ord,
                              e.at + greatest(interval '0', l.viewed_at[1] + interval '1 microsecond'
                                                            - EXCLUDED.viewed_at[cardinality(EXCLUDED.viewed_at)]) AS at
                       FROM unnest(EXCLUDED.skus, EXCLUDED.viewed_at) WITH ORDINALITY e (sku, at, ord)
                       UNION ALL
                       SELECT o.sku, $3 + o.ord, o.at
                       FROM unnest(l.skus, l.viewed_at) WITH ORDINALITY o (sku, at, ord)
                       WHERE o.sku <> ALL (EXCLUDED.skus)
                       ORDER BY 2 LIMIT $3
                   ) k
               )
               RETURNING l.cart_id, l.skus
           )
           SELECT a.n AS "n!", product.sku AS "sku!", product.name AS "name!",
                  product.price_amount AS "price_amount!", product.price_currency AS "price_currency!: Currency",
                  product.low_stock_threshold AS "low_stock_threshold!", product.available AS "available!",
                  EXISTS (
                      SELECT 1 FROM viewer w JOIN seen ON seen.cart_id = w.cart_id
                      WHERE w.n = a.n AND a.sku = ANY (seen.skus)
                  ) AS "recorded!"
           FROM asked a JOIN product ON product.sku = a.sku"#,
        token_hashes,
        skus,
        RECENT_LIMIT
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| RecordedRead {
            // WITH ORDINALITY counts from 1.
            index: r.n as usize - 1,
            product: Product {
                sku: r.sku,
                name: r.name,
                price_amount: r.price_amount,
                price_currency: r.price_currency,
                low_stock_threshold: r.low_stock_threshold,
                available: r.available,
            },
            recorded: r.recorded,
        })
        .collect())
}

/// The session's recently viewed products, most recent first, as product reads render them.
/// `None` when the token is no live session.
pub async fn recently_viewed(
    conn: &mut PgConnection,
    token_hash: &[u8],
    limit: i64,
) -> Result<Option<Vec<Product>>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"WITH viewer AS (SELECT cart_id FROM sessions WHERE token_hash = $1 AND expires_at > now())
           SELECT (SELECT count(*) FROM viewer) AS "live!", p.sku AS "sku?", p.name AS "name?",
                  p.price_amount AS "price_amount?", p.price_currency AS "price_currency?: Currency",
                  s.low_stock_threshold AS "low_stock_threshold?", s.on_hand - s.reserved AS "available?"
           FROM (SELECT 1) one
           LEFT JOIN LATERAL (
               SELECT v.sku, v.pos
               FROM recent_view_lists l JOIN viewer ON l.cart_id = viewer.cart_id,
                    unnest(l.skus) WITH ORDINALITY AS v (sku, pos)
               ORDER BY v.pos LIMIT $2
           ) v ON true
           LEFT JOIN products p ON p.sku = v.sku
           LEFT JOIN stock_levels s ON s.sku = v.sku
           ORDER BY v.pos"#,
        token_hash,
        limit
    )
    .fetch_all(conn)
    .await?;
    if rows.first().is_none_or(|r| r.live == 0) {
        return Ok(None);
    }
    Ok(Some(
        rows.into_iter()
            .filter_map(|r| {
                Some(Product {
                    sku: r.sku?,
                    name: r.name?,
                    price_amount: r.price_amount?,
                    price_currency: r.price_currency?,
                    low_stock_threshold: r.low_stock_threshold?,
                    available: r.available?,
                })
            })
            .collect(),
    ))
}

/// Moves a guest cart's views to the customer's cart at attach (the newer view of a product
/// both have wins; the newest `RECENT_LIMIT` are kept), in the caller's transaction, before the
/// guest cart is deleted.
pub async fn merge(conn: &mut PgConnection, from_cart: uuid::Uuid, into_cart: uuid::Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"WITH guest AS (
               DELETE FROM recent_view_lists WHERE cart_id = $1 RETURNING skus, viewed_at
           )
           INSERT INTO recent_view_lists AS l (cart_id, skus, viewed_at)
           SELECT $2, skus, viewed_at FROM guest
           ON CONFLICT (cart_id) DO UPDATE SET (skus, viewed_at) = (
               SELECT array_agg(k.sku ORDER BY k.at DESC, k.sku), array_agg(k.at ORDER BY k.at DESC, k.sku) FROM (
                   SELECT sku, at FROM (
                       SELECT DISTINCT ON (sku) sku, at FROM (
                           SELECT * FROM unnest(EXCLUDED.skus, EXCLUDED.viewed_at) AS g (sku, at)
                           UNION ALL
                           SELECT * FROM unnest(l.skus, l.viewed_at) AS c (sku, at)
                       ) both_lists
                       ORDER BY sku, at DESC
                   ) latest
                   ORDER BY at DESC, sku LIMIT $3
               ) k
           )"#,
        from_cart,
        into_cart,
        RECENT_LIMIT
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes the views of up to `limit` carts that no longer exist (purged or revoked guest
/// carts), for the purge task; returns how many carts' views went. A cart a live session
/// names but has not written yet has no row and keeps its views.
pub async fn purge_orphans(conn: &mut PgConnection, limit: i64) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(
        r#"WITH gone AS (
               SELECT l.cart_id FROM recent_view_lists l
               WHERE NOT EXISTS (SELECT 1 FROM carts c WHERE c.id = l.cart_id)
                 AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.cart_id = l.cart_id)
               LIMIT $1
           ), deleted AS (
               DELETE FROM recent_view_lists l USING gone WHERE l.cart_id = gone.cart_id
           )
           SELECT count(*) AS "count!" FROM gone"#,
        limit
    )
    .fetch_one(conn)
    .await
}

/// Adds a replica's counts to the minute and hour buckets and prunes buckets no window reads
/// any more, in one statement.
pub async fn flush_views(
    conn: &mut PgConnection,
    at: DateTime<Utc>,
    skus: &[String],
    views: &[i64],
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"WITH counts (sku, views) AS (SELECT * FROM unnest($2::text[], $3::int8[])),
           minute AS (
               INSERT INTO product_views_minute (bucket, sku, views)
               SELECT date_trunc('minute', $1::timestamptz), sku, views FROM counts
               ON CONFLICT (bucket, sku) DO UPDATE SET views = product_views_minute.views + EXCLUDED.views
           ), hour AS (
               INSERT INTO product_views_hour (bucket, sku, views)
               SELECT date_trunc('hour', $1::timestamptz), sku, views FROM counts
               ON CONFLICT (bucket, sku) DO UPDATE SET views = product_views_hour.views + EXCLUDED.views
           ), old_minutes AS (
               DELETE FROM product_views_minute WHERE bucket < $1::timestamptz - interval '2 hours'
           )
           DELETE FROM product_views_hour WHERE bucket < $1::timestamptz - interval '8 days'"#,
        at,
        skus,
        views
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub struct Popular {
    pub product: Product,
    pub views: i64,
}

/// The most viewed products of the last `window` (one of the contract's: 1h from minute
/// buckets, 24h and 7d from hour buckets, so those start on the hour).
pub async fn popular(conn: &mut PgConnection, window_hours: i64, limit: i64) -> Result<Vec<Popular>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"WITH counted AS (
               SELECT sku, sum(views)::int8 AS views FROM product_views_minute
               WHERE $1::int8 = 1 AND bucket >= date_trunc('minute', now() - interval '1 hour')
               GROUP BY sku
               UNION ALL
               SELECT sku, sum(views)::int8 FROM product_views_hour
               WHERE $1::int8 > 1 AND bucket >= date_trunc('hour', now() - make_interval(hours => $1::int4))
               GROUP BY sku
           )
           SELECT p.sku, p.name, p.price_amount, p.price_currency AS "price_currency: Currency", s.low_stock_threshold,
                  s.on_hand - s.reserved AS "available!", c.views AS "views!"
           FROM counted c JOIN products p ON p.sku = c.sku JOIN stock_levels s ON s.sku = c.sku
           ORDER BY c.views DESC, p.sku
           LIMIT $2"#,
        window_hours,
        limit
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Popular {
            product: Product {
                sku: r.sku,
                name: r.name,
                price_amount: r.price_amount,
                price_currency: r.price_currency,
                low_stock_threshold: r.low_stock_threshold,
                available: r.available,
            },
            views: r.views,
        })
        .collect())
}
