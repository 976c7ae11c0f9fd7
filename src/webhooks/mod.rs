//! Webhooks: every event delivered to merchants' systems, signed, retried, in order per key.
//!
//! - `sign.rs`: Standard Webhooks signatures and new secrets.
//! - `seal.rs`: secrets are stored sealed, with a key the database never holds.
//! - `guard.rs`: which URLs and addresses a webhook may reach (SSRF), checked on the address
//!   actually connected to.
//! - `deliver.rs`: the per-replica worker: plans deliveries from the event log, claims them,
//!   sends them and records each attempt.
//!
//! What is stored, and how replicas share the work, is in `store/webhooks.rs`.

pub mod deliver;
pub mod guard;
pub mod seal;
pub mod sign;
