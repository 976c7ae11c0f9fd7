//! The invariant checker's reads (the rules themselves are in `invariants.rs`): every SKU's
//! level beside what orders, the ledger and its last row say, and the rows that name nothing.

use sqlx::PgPool;

/// One SKU's level with everything it must agree with.
pub struct SkuAudit {
    pub sku: String,
    pub on_hand: i64,
    pub reserved: i64,
    pub version: i64,
    /// The quantities of its awaiting_payment and paid orders.
    pub open_quantity: i64,
    pub ledger_on_hand: i64,
    pub ledger_reserved: i64,
    pub movements: i64,
    pub last_on_hand: Option<i64>,
    pub last_reserved: Option<i64>,
    pub last_version: Option<i64>,
}

/// Rows that name something that does not exist.
pub struct Orphans {
    /// Ledger movements of no stock level.
    pub movements: i64,
    /// Idempotency keys naming no order.
    pub keys: i64,
    /// Order lines naming no order, or a SKU with no stock level (their writer keeps both: V18).
    pub order_lines: i64,
    /// Cart lines naming no product (their writer keeps it: V18).
    pub cart_lines: i64,
}

/// Reads both in one REPEATABLE READ snapshot, so concurrent traffic cannot make the checker
/// see a torn state.
pub async fn audit(pool: &PgPool) -> Result<(Vec<SkuAudit>, Orphans), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query!("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY").execute(&mut *tx).await?;
    // The pool's statement_timeout is sized for requests; reading a large database whole may
    // take longer (its route has a longer deadline to match, `edge::SLOW_ADMIN_LIMIT`).
    sqlx::query("SET LOCAL statement_timeout = '300s'").execute(&mut *tx).await?;
    let skus = sqlx::query_as!(
        SkuAudit,
        r#"WITH open_orders AS (
               SELECT l.sku, sum(l.quantity)::bigint AS quantity
               FROM order_lines l JOIN orders o ON o.id = l.order_id
               WHERE o.status IN ('awaiting_payment', 'paid')
               GROUP BY l.sku
           ), ledger AS (
               SELECT sku, sum(delta_on_hand)::bigint AS on_hand, sum(delta_reserved)::bigint AS reserved,
                      count(*) AS movements, max(version_after) AS last_version
               FROM stock_movements GROUP BY sku
           ), last_movement AS (
               SELECT DISTINCT ON (sku) sku, on_hand_after, reserved_after, version_after
               FROM stock_movements ORDER BY sku, version_after DESC
           )
           SELECT s.sku, s.on_hand, s.reserved, s.version,
                  coalesce(o.quantity, 0) AS "open_quantity!",
                  coalesce(g.on_hand, 0) AS "ledger_on_hand!",
                  coalesce(g.reserved, 0) AS "ledger_reserved!",
                  coalesce(g.movements, 0) AS "movements!",
                  m.on_hand_after AS "last_on_hand?", m.reserved_after AS "last_reserved?", m.version_after AS "last_version?"
           FROM stock_levels s
           LEFT JOIN open_orders o ON o.sku = s.sku
           LEFT JOIN ledger g ON g.sku = s.sku
           LEFT JOIN last_movement m ON m.sku = s.sku
           ORDER BY s.sku"#
    )
    .fetch_all(&mut *tx)
    .await?;
    let orphans = sqlx::query_as!(
        Orphans,
        r#"SELECT (SELECT count(*) FROM stock_movements m
                   WHERE NOT EXISTS (SELECT 1 FROM stock_levels s WHERE s.sku = m.sku)) AS "movements!",
                  (SELECT count(*) FROM idempotency_keys i
                   WHERE i.order_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.id = i.order_id)) AS "keys!",
                  (SELECT count(*) FROM order_lines l
                   WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.id = l.order_id)
                      OR NOT EXISTS (SELECT 1 FROM stock_levels s WHERE s.sku = l.sku)) AS "order_lines!",
                  (SELECT count(*) FROM cart_lines l
                   WHERE NOT EXISTS (SELECT 1 FROM products p WHERE p.sku = l.sku)) AS "cart_lines!""#
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((skus, orphans))
}
