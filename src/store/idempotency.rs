//! Checkout idempotency keys (the Stripe model), scoped to the session that sent them.
//!
//! The key row is inserted first in the checkout transaction. A duplicate that arrives
//! while the first is in flight blocks on that uncommitted row (PostgreSQL's unique index
//! wait), then reads the answer the first one committed, on whichever replica it runs.

use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

pub enum Claim {
    /// This request owns the key: do the work and `record` its answer.
    New,
    /// The key was used before: answer this again.
    Replay { status: u16, body: Value },
    /// Another request with this key is still running after the wait (`lock_timeout`).
    InProgress,
}

pub async fn claim(tx: &mut PgConnection, session_id: Uuid, key: &str) -> Result<Claim, sqlx::Error> {
    sqlx::query!("SET LOCAL lock_timeout = '10s'").execute(&mut *tx).await?;
    let inserted = sqlx::query_scalar!(
        "INSERT INTO idempotency_keys (session_id, key) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING true",
        session_id,
        key
    )
    .fetch_optional(&mut *tx)
    .await;
    match inserted {
        Ok(Some(_)) => {}
        Ok(None) => {
            let stored = sqlx::query!(
                "SELECT status_code, response FROM idempotency_keys WHERE session_id = $1 AND key = $2",
                session_id,
                key
            )
            .fetch_optional(&mut *tx)
            .await?;
            return Ok(match stored {
                Some(row) => match (row.status_code, row.response) {
                    (Some(status), Some(body)) => Claim::Replay { status: status as u16, body },
                    _ => Claim::InProgress,
                },
                None => Claim::InProgress,
            });
        }
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("55P03") => return Ok(Claim::InProgress),
        Err(e) => return Err(e),
    }
    sqlx::query!("SET LOCAL lock_timeout = 0").execute(&mut *tx).await?;
    Ok(Claim::New)
}

pub async fn record(
    tx: &mut PgConnection,
    session_id: Uuid,
    key: &str,
    status: u16,
    body: &Value,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE idempotency_keys SET status_code = $3, response = $4 WHERE session_id = $1 AND key = $2",
        session_id,
        key,
        status as i16,
        body
    )
    .execute(tx)
    .await?;
    Ok(())
}

/// Keys are kept at least 24 hours; older ones are deleted in bounded batches.
pub async fn purge_older_than_a_day(conn: &mut PgConnection, batch: i64) -> Result<u64, sqlx::Error> {
    let result = sqlx::query!(
        r#"DELETE FROM idempotency_keys WHERE ctid IN (
               SELECT ctid FROM idempotency_keys WHERE created_at < now() - interval '25 hours' LIMIT $1
           )"#,
        batch
    )
    .execute(conn)
    .await?;
    Ok(result.rows_affected())
}
