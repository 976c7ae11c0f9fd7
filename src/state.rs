//! What every handler and background task can reach: one `AppState` per app instance
//! (replica).
//!
//! It lives apart from `startup.rs` so that the modules that read it (routes, extractors,
//! tasks) do not import the module that wires them together: `startup` imports them, never
//! the other way round, and no import cycle runs through the application's state.

use std::sync::Arc;

use actix_web::web;
use secrecy::SecretString;
use sqlx::PgPool;

use crate::{
    auth::reads::SessionReads,
    cache::CartCache,
    cart_changes::CartChanges,
    checkout::Checkouts,
    config::Settings,
    events::Hub,
    memory::{reads::ViewReads, ViewCounter},
    metrics::Metrics,
    webhooks::seal::Sealer,
};

/// Cheap to clone through `web::Data`; built once by `startup::Application::build`.
pub struct AppState {
    pub pool: PgPool,
    pub settings: Arc<Settings>,
    pub admin_token: SecretString,
    pub carts: CartCache,
    /// Cart changes, coalesced across the requests of this replica. Replica-wide on the
    /// multi-threaded runtime, unlike session reads (`WorkerState`): a batch's two round trips
    /// are a serial loop, and on a worker's thread its next round waited behind that thread's
    /// requests (add to cart -3 % and -12 % on the worker, even with 2 writers, BENCHMARKS.md).
    pub cart_changes: CartChanges,
    pub checkouts: Checkouts,
    pub metrics: web::Data<Metrics>,
    /// This replica's one reader of the event log, shared by all its stream clients.
    pub events: Arc<Hub>,
    /// Seals webhook secrets before they are stored, opens them to sign.
    pub sealer: Sealer,
    /// Product views counted on this replica, until the next flush.
    pub views: ViewCounter,
    /// Product reads that record a view, coalesced across the requests of this replica.
    pub view_reads: ViewReads,
    /// Connections for product reads that record a view (`view_reads`). They commit without
    /// waiting for the WAL flush (`synchronous_commit = off`): a view is visible on every
    /// replica at once, and a database crash may forget the last fraction of a second of them,
    /// which costs a shopper nothing, while waiting for the flush would halve the product read.
    pub views_pool: PgPool,
}

pub type State = web::Data<AppState>;

/// What one actix worker thread owns: its coalesced session reads (`auth::reads`), with their
/// own connection. The reader runs as a task of the worker's own runtime and its connection is
/// driven by it, so a request's authentication is queued, batched, sent, answered and replied
/// to on the thread that serves the request. Shared by the replica on the multi-threaded
/// runtime, every read woke another thread twice (hand the request over, hand the answer back):
/// on the worker, warm get cart through the balancer went from 23,876 and 23,962 to 29,332
/// and 32,589 req/s, with less CPU per read in the replicas and in PostgreSQL (BENCHMARKS.md).
pub struct WorkerState {
    /// Shopper authentication, coalesced across the requests of this worker.
    pub sessions: SessionReads,
}

pub type Worker = web::Data<WorkerState>;
