//! The invariant checker: what must hold between stock, orders and the ledger at every moment.
//! Tests call it after concurrent workloads; operators run `stockcart check-invariants` or
//! `GET /v1/admin/invariants`.

use serde::Serialize;
use sqlx::PgPool;

use crate::store::invariants;

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
/// Reads one snapshot (`store/invariants.rs`).
pub async fn check(pool: &PgPool) -> Result<Report, sqlx::Error> {
    let (rows, orphans) = invariants::audit(pool).await?;
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
    // These references have no foreign key (their writers keep them, see migrations/V18).
    if orphans.movements > 0 {
        violations.push(format!("{} ledger movements name no stock level", orphans.movements));
    }
    if orphans.order_lines > 0 {
        violations.push(format!("{} order lines name no order or no stock level", orphans.order_lines));
    }
    if orphans.cart_lines > 0 {
        violations.push(format!("{} cart lines name no product", orphans.cart_lines));
    }
    // Checkout writes a key before the order it names, in the same transaction (migration V3);
    // no foreign key checks it since V20, so this catches a key written around that writer (a
    // manual insert, a partial restore).
    if orphans.keys > 0 {
        violations.push(format!("{} idempotency keys name an order that does not exist", orphans.keys));
    }
    Ok(Report { skus_checked: rows.len() as i64, violations })
}
