//! The report rollups' follower, on every replica: rolls up the movements of the event log
//! after the stored cursor. Each step locks the cursor row (skipping it when another replica
//! holds it) and advances it in the transaction that updates the rollups, so every movement
//! is counted exactly once however many replicas run this. It never runs inside a checkout:
//! reports read the newest movements themselves, so no write path has to wait for a rollup.

use std::sync::Arc;

use crate::{
    state::AppState,
    store::reports::{self, Step},
};

/// Events per step. A step's cost is mostly one upsert per SKU it touches, so a larger step
/// costs less per event (measured on a spread checkout's log over 10,000 SKUs: 15-17 us per
/// event in steps of 5,000, 12-14 us in steps of 20,000, 10 us in steps of 40,000). Under a
/// full checkout load (~10,000 events/s) a tick of the default 3 s takes its whole backlog in
/// two steps; the locks it holds are the follower's own rows, which no write path takes. The
/// default is 3 s, not 1 s: checkout spread with the follower on measured 0.82-0.87x of it off
/// at 1 s and 1.02-1.03x at 3 s over eight rounds (BENCHMARKS.md), and reports read the
/// movements not yet rolled up themselves, so a longer tick makes no report stale, only its
/// tail longer under load.
pub const BATCH: i64 = 20_000;

pub async fn run(state: Arc<AppState>) {
    if state.settings.rollup_interval.is_zero() {
        return;
    }
    let mut tick = super::every(state.settings.rollup_interval);
    loop {
        tick.tick().await;
        if let Err(e) = catch_up(&state.pool, BATCH).await {
            tracing::warn!(error = %e, "report rollup failed; retrying next tick");
        }
    }
}

/// Rolls up until the cursor reaches the end of the log (or another replica holds it).
/// Returns the total of what this call did.
pub async fn catch_up(pool: &sqlx::PgPool, batch: i64) -> Result<Step, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let mut total = Step::default();
    while let Some(step) = reports::roll_up(&mut conn, batch).await? {
        total.events += step.events;
        total.movements += step.movements;
        if step.events < batch {
            break;
        }
    }
    Ok(total)
}
