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
    /// Shopper authentication, coalesced across the requests of this replica.
    pub sessions: SessionReads,
    /// Cart changes, coalesced across the requests of this replica.
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
