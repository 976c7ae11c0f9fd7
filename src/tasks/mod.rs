//! Background work that every replica runs; each task is safe to run concurrently with
//! itself on other replicas (row locks with SKIP LOCKED, status checks under the lock).

mod expiry;
mod purge;
mod retention;
pub mod rollup;

use std::sync::Arc;

use crate::state::AppState;

pub use expiry::expire_due_orders;

pub fn spawn_all(state: Arc<AppState>) {
    tokio::spawn(expiry::run(state.clone()));
    tokio::spawn(purge::run(state.clone()));
    tokio::spawn(retention::run(state.clone()));
    tokio::spawn(rollup::run(state));
}
