//! Flushes this replica's view counts into the shared buckets every two seconds, so the
//! popular list combines every replica's counts and is at most a few seconds behind.

use std::{sync::atomic::Ordering, sync::Arc, time::Duration};

use crate::{state::AppState, store::memory};

const EVERY: Duration = Duration::from_secs(2);

pub async fn run(state: Arc<AppState>) {
    let mut tick = super::every(EVERY);
    loop {
        tick.tick().await;
        flush_once(&state).await;
    }
}

pub async fn flush_once(state: &AppState) {
    let counts = state.views.take();
    if counts.is_empty() {
        return;
    }
    // In SKU order: two replicas upserting overlapping rows in different orders could deadlock.
    let mut sorted: Vec<(&String, &i64)> = counts.iter().collect();
    sorted.sort_unstable();
    let (skus, views): (Vec<String>, Vec<i64>) = sorted.into_iter().map(|(k, v)| (k.clone(), *v)).unzip();
    let flushed = async {
        let mut conn = state.pool.acquire().await?;
        memory::flush_views(&mut conn, chrono::Utc::now(), &skus, &views).await
    }
    .await;
    match flushed {
        Ok(()) => {
            state.views.flushes.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => {
            state.views.flush_failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e, "flushing view counts failed; keeping them for the next flush");
            state.views.restore(counts);
        }
    }
}
