//! Background work that every replica runs; each task is safe to run concurrently with
//! itself on other replicas (row locks with SKIP LOCKED, status checks under the lock).

mod expiry;
mod purge;
mod retention;
pub mod rollup;
pub mod view_flush;

use std::sync::Arc;

use crate::state::AppState;

pub use expiry::expire_due_orders;

/// A task's clock: its first tick one period after the start, not at once. A replica that just
/// started has nothing more urgent than one that has run for a while, and replicas deployed
/// together do not all run every task in their first second (in the test suite, where apps
/// live a second or less, that first round was 8 % of the CPU). A late tick is delayed, not
/// made up for in a burst.
fn every(period: std::time::Duration) -> tokio::time::Interval {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick
}

/// Starts every task; the handles let a test stop them all at once, as a crash would.
pub fn spawn_all(state: Arc<AppState>) -> Vec<tokio::task::AbortHandle> {
    let sealer = state.sealer.clone();
    vec![
        tokio::spawn(expiry::run(state.clone())).abort_handle(),
        tokio::spawn(purge::run(state.clone())).abort_handle(),
        tokio::spawn(retention::run(state.clone())).abort_handle(),
        tokio::spawn(view_flush::run(state.clone())).abort_handle(),
        tokio::spawn(rollup::run(state.clone())).abort_handle(),
        tokio::spawn(crate::webhooks::deliver::run(state, sealer)).abort_handle(),
    ]
}
