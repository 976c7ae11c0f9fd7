//! Purges expired sessions (and their guest carts), idempotency keys older than a day, and
//! the recently viewed products of carts that are gone.

use std::sync::Arc;

use crate::{
    state::AppState,
    store::{idempotency, memory, sessions},
};

pub async fn run(state: Arc<AppState>) {
    let mut tick = super::every(state.settings.purge_interval);
    loop {
        tick.tick().await;
        if let Err(e) = purge_once(&state).await {
            tracing::warn!(error = %e, "purge failed; retrying next tick");
        }
    }
}

async fn purge_once(state: &AppState) -> Result<(), sqlx::Error> {
    // Bounded batches keep each transaction short; stop at a partial batch.
    while sessions::purge_expired(&state.pool, 500).await? == 500 {}
    let mut conn = state.pool.acquire().await?;
    while idempotency::purge_older_than_a_day(&mut conn, 1000).await? == 1000 {}
    // Recently viewed products go with their cart, whichever way the cart went.
    while memory::purge_orphans(&mut conn, 1000).await? == 1000 {}
    Ok(())
}
