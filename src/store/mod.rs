//! All SQL lives here, one module per aggregate. Functions take a connection (a transaction
//! when the caller needs atomicity) and return domain data; no HTTP types in this layer.

pub mod carts;
pub mod events;
pub mod idempotency;
pub mod invariants;
pub mod memory;
pub mod orders;
pub mod products;
pub mod reports;
pub mod schema;
pub mod server;
pub mod sessions;
pub mod stock;
pub mod webhooks;

use chrono::{DateTime, SecondsFormat, Utc};

/// RFC 3339 UTC, the contract's timestamp format.
pub fn timestamp(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}
