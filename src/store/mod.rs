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

/// Commits a transaction that wrote, waiting for the synchronous standby as long as it takes.
///
/// Under synchronous replication a COMMIT waits for the standby, and a cancel of that wait
/// (which `statement_timeout` is) does not undo it: PostgreSQL keeps the transaction committed
/// locally, makes it visible, and answers success with only a warning. A commit cut short by
/// the pool's statement timeout would then be acknowledged while on the primary alone (the
/// retry of a checkout would find and replay its order) and lost if the primary died before
/// a standby came back. Lifting the timeout for the COMMIT alone keeps it waiting instead; the
/// request's own deadline still answers the client in time (503: unknown, settled by retrying).
pub async fn commit(mut tx: sqlx::Transaction<'_, sqlx::Postgres>) -> Result<(), sqlx::Error> {
    match sqlx::query!("SELECT set_config('statement_timeout', '0', true) AS \"set!\"").fetch_one(&mut *tx).await {
        Ok(_) => {}
        // A transaction a failed statement aborted (a claim that met a duplicate in flight)
        // commits as a rollback: nothing to wait for.
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("25P02") => {}
        Err(e) => return Err(e),
    }
    tx.commit().await
}

/// Begins a transaction whose statements and COMMIT the pool's statement timeout does not cut,
/// lifting it (for the reason `commit` gives) with BEGIN, in one round trip, rather than in a
/// round trip of its own before COMMIT. For the checkout batch: it holds a hot SKU's row lock
/// from its stock statement to its commit, so every round trip in between delays every other
/// checkout of that SKU. Its lock waits are still bounded by `lock_timeout`, its statements
/// are index lookups and writes of the batch's own rows, and the request's own deadline still
/// answers the client (503: unknown, settled by retrying with the idempotency key). Commit it
/// with `Transaction::commit`.
pub async fn begin_untimed(
    conn: &mut sqlx::PgConnection,
) -> Result<sqlx::Transaction<'_, sqlx::Postgres>, sqlx::Error> {
    sqlx::Connection::begin_with(conn, "BEGIN; SET LOCAL statement_timeout = 0").await
}
