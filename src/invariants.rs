//! The invariant checker: what must hold between stock, orders and the ledger at every moment.
//! Tests call it after concurrent workloads; operators run `stockcart check-invariants` or
//! `GET /v1/admin/invariants`.

use serde::Serialize;
use sqlx::PgPool;

#[derive(Debug, Serialize)]
pub struct Report {
    pub skus_checked: i64,
    pub violations: Vec<String>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Checks, for every SKU: reserved = the quantities of its awaiting_payment and paid orders;
/// the ledger's deltas sum to on_hand and reserved; the version equals the number of ledger
/// rows and the last row's values equal the level; no negative stock; and every idempotency key
/// that names an order names one that exists.
/// Runs in one REPEATABLE READ snapshot, so concurrent traffic cannot make it see a torn state.
pub async fn check(pool: &PgPool) -> Result<Report, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query!("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY").execute(&mut *tx).await?;
    let rows = sqlx::query!(
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
    let orphans = sqlx::query!(
        r#"SELECT (SELECT count(*) FROM stock_movements m
                   WHERE NOT EXISTS (SELECT 1 FROM stock_levels s WHERE s.sku = m.sku)) AS "movements!",
                  (SELECT count(*) FROM idempotency_keys i
                   WHERE i.order_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.id = i.order_id)) AS "keys!""#
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;

    let mut violations = Vec::new();
    for r in &rows {
        let sku = &r.sku;
        if r.reserved < 0 || r.on_hand < r.reserved {
            violations.push(format!("{sku}: negative stock (on_hand {}, reserved {})", r.on_hand, r.reserved));
        }
        if r.reserved != r.open_quantity {
            violations.push(format!("{sku}: reserved {} but open orders hold {}", r.reserved, r.open_quantity));
        }
        if r.on_hand != r.ledger_on_hand || r.reserved != r.ledger_reserved {
            violations.push(format!(
                "{sku}: level is on_hand {} reserved {}, the ledger sums to {} and {}",
                r.on_hand, r.reserved, r.ledger_on_hand, r.ledger_reserved
            ));
        }
        if r.version != r.movements {
            violations.push(format!("{sku}: version {} but {} ledger movements", r.version, r.movements));
        }
        if r.movements > 0
            && (r.last_on_hand != Some(r.on_hand)
                || r.last_reserved != Some(r.reserved)
                || r.last_version != Some(r.version))
        {
            violations.push(format!("{sku}: the last ledger movement does not match the level"));
        }
    }
    if orphans.movements > 0 {
        violations.push(format!("{} ledger movements name no stock level", orphans.movements));
    }
    // Checkout writes a key before the order it names (see migrations/V3 and V6): the deferred
    // foreign key checks it at commit; this catches a database whose constraint was bypassed
    // (disabled triggers, a partial restore).
    if orphans.keys > 0 {
        violations.push(format!("{} idempotency keys name an order that does not exist", orphans.keys));
    }
    Ok(Report { skus_checked: rows.len() as i64, violations })
}
