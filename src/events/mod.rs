//! Real-time stock: the event log delivered to clients.
//!
//! - `types.rs`: every event type, and the `types=` / `sku=` filter clients send.
//! - `hub.rs`: one reader per replica, woken by LISTEN/NOTIFY (or a poll while that
//!   connection is down); it sequences the log, reads it once and fans it out.
//! - `sse.rs`: the server-sent events wire format and the two streams' feeds.
//!
//! The order itself (positions, retention) is kept in `store/events.rs`; events are written
//! where the changes are (`store/stock.rs`, `store/orders.rs`), in the same transaction.

pub mod hub;
pub mod sse;
pub mod types;

pub use hub::Hub;
