//! Expires unpaid orders past their deadline and releases their stock, exactly once.

use std::sync::Arc;

use sqlx::PgPool;

use crate::{state::AppState, store::orders};

pub async fn run(state: Arc<AppState>) {
    let mut tick = super::every(state.settings.expiry_interval);
    loop {
        tick.tick().await;
        match expire_due_orders(&state.pool).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(expired = n, "expired unpaid orders"),
            Err(e) => tracing::warn!(error = %e, "order expiry failed; retrying next tick"),
        }
    }
}

/// One pass: each due order in its own short transaction, so one slow order cannot hold
/// the others and stock rows are locked in SKU order per order. Returns how many this
/// replica expired.
pub async fn expire_due_orders(pool: &PgPool) -> Result<u64, String> {
    let mut expired = 0;
    loop {
        let mut conn = pool.acquire().await.map_err(|e| e.to_string())?;
        let due = orders::due_for_expiry(&mut conn, 100).await.map_err(|e| e.to_string())?;
        drop(conn);
        if due.is_empty() {
            return Ok(expired);
        }
        let mut progressed = false;
        for id in &due {
            let mut tx = pool.begin().await.map_err(|e| e.to_string())?;
            match orders::expire_if_due(&mut tx, *id).await {
                Ok(true) => {
                    crate::store::commit(tx).await.map_err(|e| e.to_string())?;
                    expired += 1;
                    progressed = true;
                }
                Ok(false) => {}
                Err(e) => return Err(format!("{e:?}")),
            }
        }
        if !progressed || due.len() < 100 {
            return Ok(expired);
        }
    }
}
