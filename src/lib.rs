//! stockcart: shopping carts and real-time inventory over HTTP, on PostgreSQL.
//! `ARCHITECTURE.md` explains where things live.

pub mod assets;
pub mod auth;
pub mod cache;
pub mod cart_changes;
pub mod cart_view;
pub mod checkout;
pub mod cli;
pub mod coalesce;
pub mod config;
pub mod dashboard;
pub mod docs;
pub mod domain;
pub mod edge;
pub mod embedded_pg;
pub mod error;
pub mod events;
pub mod extract;
pub mod invariants;
pub mod loadgen;
pub mod memory;
pub mod metrics;
pub mod middleware;
pub mod migrate;
pub mod openapi;
pub mod problem;
pub mod reports;
pub mod routes;
pub mod startup;
pub mod state;
pub mod store;
pub mod tasks;
pub mod telemetry;
pub mod webhooks;

/// SIGTERM or Ctrl-C: what the server stops on (gracefully, like actix), and what ends a
/// `loadgen` run early with its summary and client log written.
pub async fn stop_requested() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
