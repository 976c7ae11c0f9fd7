//! Black-box tests of the HTTP contract against real PostgreSQL, one database per test.
//! See `helpers.rs` for how the throwaway cluster and the app instances are started.

mod browser;
mod cart;
mod catalog;
mod checkout;
mod concurrency;
mod events;
mod failover;
mod foundation;
mod hardening;
mod helpers;
mod inventory;
mod loadgen;
mod memory;
mod reports;
mod sessions;
mod webhooks;
