//! Deletes events older than `STOCKCART_EVENT_RETENTION`, on every replica: bounded batches
//! that skip rows another replica is deleting, so no writer (they only insert) and no other
//! replica ever waits. The ledger is kept forever; only its events go, and the webhook
//! deliveries that carried them once finished.

use std::{sync::Arc, time::Duration};

use crate::{
    state::AppState,
    store::{events, webhooks},
};

/// Often enough that the log never holds much more than the retention, rarely enough to cost
/// nothing: a tenth of the retention, between 1 s and 1 min.
fn interval(retention: Duration) -> Duration {
    (retention / 10).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

pub async fn run(state: Arc<AppState>) {
    let mut tick = super::every(interval(state.settings.event_retention));
    loop {
        tick.tick().await;
        if let Err(e) = prune_once(&state).await {
            tracing::warn!(error = %e, "event retention failed; retrying next tick");
        }
    }
}

async fn prune_once(state: &AppState) -> Result<(), sqlx::Error> {
    let retention = chrono::Duration::from_std(state.settings.event_retention).unwrap_or(chrono::Duration::MAX);
    let cutoff = chrono::Utc::now().checked_sub_signed(retention).unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
    let mut conn = state.pool.acquire().await?;
    while events::prune(&mut conn, cutoff, 1000).await? == 1000 {}
    while webhooks::prune(&mut conn, cutoff, 1000).await? == 1000 {}
    Ok(())
}
