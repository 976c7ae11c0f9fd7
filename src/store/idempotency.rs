//! Checkout idempotency keys (the Stripe model), scoped to the session that sent them.
//!
//! The key rows are inserted first in the checkout transaction, in (session, key) order, already
//! holding the answer of a placed order (201 and the order's pre-chosen id): the usual checkout
//! writes its key once, and only one that places no order rewrites it (`record_many`). Nobody
//! sees the row before the transaction commits, so nobody sees that provisional answer. A
//! duplicate that arrives while the first is in flight blocks on that uncommitted row
//! (PostgreSQL's unique index wait), then reads the answer the first one committed, on
//! whichever replica it runs.

use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

/// A stored answer: its body, or for a placed order a reference to that order, whose first
/// rendering is reproducible from its row (lines, prices and times never change).
#[derive(Debug, Clone)]
pub enum Stored {
    Body(Value),
    Order(Uuid),
}

#[derive(Debug, Clone)]
pub enum Claim {
    /// This request owns the key: place its order, or `record_many` what it got instead.
    New,
    /// The key was used before: answer this again.
    Replay { status: u16, answer: Stored },
    /// Another request with this key is still running after the wait (the pool's
    /// `lock_timeout`, see `startup.rs`).
    InProgress,
}

/// Claims every (session, key) of `keys`, which must be distinct, for the order id planned for
/// each (`orders`, in the same order); returns their claims in order.
pub async fn claim_many(
    tx: &mut PgConnection,
    keys: &[(Uuid, String)],
    orders: &[Uuid],
) -> Result<Vec<Claim>, sqlx::Error> {
    let mut sorted: Vec<(&(Uuid, String), Uuid)> = keys.iter().zip(orders.iter().copied()).collect();
    sorted.sort();
    let sessions: Vec<Uuid> = sorted.iter().map(|((s, _), _)| *s).collect();
    let names: Vec<String> = sorted.iter().map(|((_, k), _)| k.clone()).collect();
    let planned: Vec<Uuid> = sorted.iter().map(|(_, o)| *o).collect();
    let inserted = sqlx::query!(
        r#"INSERT INTO idempotency_keys (session_id, key, status_code, order_id)
           SELECT session_id, key, 201, order_id FROM unnest($1::uuid[], $2::text[], $3::uuid[]) AS u (session_id, key, order_id)
           ON CONFLICT DO NOTHING
           RETURNING session_id, key"#,
        &sessions,
        &names,
        &planned
    )
    .fetch_all(&mut *tx)
    .await;
    let inserted = match inserted {
        Ok(rows) => rows,
        // Blocked past the lock timeout by the uncommitted claim of a duplicate. The transaction
        // is lost: alone, this checkout is in progress elsewhere; in a batch, the error makes the
        // caller retry each checkout alone, so only the duplicate is told so.
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("55P03") && keys.len() == 1 => {
            return Ok(vec![Claim::InProgress]);
        }
        Err(e) => return Err(e),
    };
    let is_new = |s: &Uuid, k: &str| inserted.iter().any(|r| r.session_id == *s && r.key == k);
    let used: Vec<&(Uuid, String)> = keys.iter().filter(|(s, k)| !is_new(s, k)).collect();
    let stored = if used.is_empty() {
        Vec::new()
    } else {
        let sessions: Vec<Uuid> = used.iter().map(|(s, _)| *s).collect();
        let names: Vec<String> = used.iter().map(|(_, k)| k.clone()).collect();
        sqlx::query!(
            r#"SELECT i.session_id, i.key, i.status_code, i.response, i.order_id
               FROM idempotency_keys i JOIN unnest($1::uuid[], $2::text[]) AS u (session_id, key)
                 ON i.session_id = u.session_id AND i.key = u.key"#,
            &sessions,
            &names
        )
        .fetch_all(&mut *tx)
        .await?
    };
    Ok(keys
        .iter()
        .map(|(s, k)| {
            if is_new(s, k) {
                return Claim::New;
            }
            match stored.iter().find(|r| r.session_id == *s && r.key == *k) {
                Some(row) => match (row.status_code, &row.response, row.order_id) {
                    (Some(status), _, Some(order)) => {
                        Claim::Replay { status: status as u16, answer: Stored::Order(order) }
                    }
                    (Some(status), Some(body), None) => {
                        Claim::Replay { status: status as u16, answer: Stored::Body(body.clone()) }
                    }
                    _ => Claim::InProgress,
                },
                None => Claim::InProgress,
            }
        })
        .collect())
}

/// Replaces the provisional answers of claimed keys whose checkout placed no order:
/// (session, key, status, answer).
pub async fn record_many(tx: &mut PgConnection, answers: &[(Uuid, String, u16, Stored)]) -> Result<(), sqlx::Error> {
    let sessions: Vec<Uuid> = answers.iter().map(|a| a.0).collect();
    let keys: Vec<String> = answers.iter().map(|a| a.1.clone()).collect();
    let statuses: Vec<i16> = answers.iter().map(|a| a.2 as i16).collect();
    let bodies: Vec<Option<Value>> = answers
        .iter()
        .map(|a| match &a.3 {
            Stored::Body(body) => Some(body.clone()),
            Stored::Order(_) => None,
        })
        .collect();
    let orders: Vec<Option<Uuid>> = answers
        .iter()
        .map(|a| match a.3 {
            Stored::Order(id) => Some(id),
            Stored::Body(_) => None,
        })
        .collect();
    sqlx::query!(
        r#"UPDATE idempotency_keys i SET status_code = u.status, response = u.body, order_id = u.order_id
           FROM unnest($1::uuid[], $2::text[], $3::int2[], $4::jsonb[], $5::uuid[]) AS u (session_id, key, status, body, order_id)
           WHERE i.session_id = u.session_id AND i.key = u.key"#,
        &sessions,
        &keys,
        &statuses,
        &bodies as &[Option<Value>],
        &orders as &[Option<Uuid>]
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
