//! Checkout, coalesced: concurrent checkouts on a replica are gathered into batches, and each
//! batch is ONE transaction with ONE commit.
//!
//! Why: on a hot SKU every checkout must take the same row lock, so throughput is bounded by
//! how long each transaction holds it. Sharing one transaction, a few round trips and one WAL
//! flush among all the orders waiting for that row lifts that bound; with no contention a
//! batch is simply one checkout.
//!
//! - `queue.rs`: the replica's queue and its workers: who waits, for how long, and what a
//!   failed batch means for the checkouts in it.
//! - `batch.rs`: what one batch does in the database, stage by stage, and the answers it
//!   gives back.

mod batch;
mod queue;

pub use batch::{place_batch, Answer, CheckoutRequest, PLACED};
pub use queue::{Checkouts, Unanswered};
