//! Shopper sessions. Only a hash of each token is stored.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::{SessionToken, TokenHash};

/// What a request learns about its session in one indexed read: the session itself, its
/// cart's version and the catalog revision, which is all a cached cart is checked against.
#[derive(Debug, Clone)]
pub struct SessionRow {
    pub id: Uuid,
    pub cart_id: Uuid,
    pub customer_id: Option<String>,
    pub expires_at: DateTime<Utc>,
    pub cart_version: i64,
    pub catalog_revision: i64,
}

/// A new session, naming the cart its first change will create (`carts::create_for`): a
/// session makes no cart row, so a visitor who never adds anything leaves one row, not two.
/// In a transaction of its own, committed by `super::commit`: a session acknowledged to the
/// client must survive a failover like any other write (a lone statement's commit wait would
/// be cut by `statement_timeout`).
pub async fn create(pool: &PgPool, ttl: Duration) -> Result<(SessionToken, DateTime<Utc>), sqlx::Error> {
    let token = SessionToken::generate();
    let mut tx = pool.begin().await?;
    let expires_at = sqlx::query_scalar!(
        r#"INSERT INTO sessions (id, token_hash, cart_id, expires_at)
           VALUES ($2, $3, $1, now() + make_interval(secs => $4))
           RETURNING expires_at"#,
        Uuid::new_v4(),
        Uuid::new_v4(),
        token.hash().0,
        ttl.as_secs_f64()
    )
    .fetch_one(&mut *tx)
    .await?;
    super::commit(tx).await?;
    Ok((token, expires_at))
}

/// The live sessions among `hashes`, each with its token hash (the coalesced session reads
/// of a replica, `auth::reads`), in one indexed read. A cart not written yet has no row and
/// is at version 0, the version a new row starts at.
pub async fn authenticate(pool: &PgPool, hashes: &[Vec<u8>]) -> Result<Vec<(Vec<u8>, SessionRow)>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT s.token_hash, s.id, s.cart_id, s.customer_id, s.expires_at,
                  coalesce(c.version, 0) AS "cart_version!",
                  (SELECT revision FROM catalog_revision) AS "catalog_revision!"
           FROM sessions s LEFT JOIN carts c ON c.id = s.cart_id
           WHERE s.token_hash = ANY($1) AND s.expires_at > now()"#,
        hashes
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let row = SessionRow {
                id: r.id,
                cart_id: r.cart_id,
                customer_id: r.customer_id,
                expires_at: r.expires_at,
                cart_version: r.cart_version,
                catalog_revision: r.catalog_revision,
            };
            (r.token_hash, row)
        })
        .collect())
}

/// A session of a batch of requests, found by its token hash.
#[derive(Debug, Clone)]
pub struct SessionOfToken {
    pub token_hash: Vec<u8>,
    pub id: Uuid,
    pub cart_id: Uuid,
    pub customer_id: Option<String>,
    pub expires_at: DateTime<Utc>,
}

/// The live sessions among `hashes` (the coalesced checkouts of a replica), sliding those due
/// for it (see `needs_slide`), in one statement of its own: it holds no session locked past
/// it, so it takes no part in the lock order of the checkout that follows.
pub async fn authenticate_many(
    conn: &mut PgConnection,
    hashes: &[Vec<u8>],
    ttl: Duration,
) -> Result<Vec<SessionOfToken>, sqlx::Error> {
    sqlx::query_as!(
        SessionOfToken,
        r#"WITH found AS (
               SELECT token_hash, id, cart_id, customer_id, expires_at FROM sessions
               WHERE token_hash = ANY($1) AND expires_at > now()
           ), slid AS (
               UPDATE sessions s SET expires_at = now() + make_interval(secs => $2)
               FROM found f WHERE s.id = f.id AND f.expires_at <= $3
               RETURNING s.id, s.expires_at
           )
           SELECT f.token_hash, f.id, f.cart_id, f.customer_id, coalesce(slid.expires_at, f.expires_at) AS "expires_at!"
           FROM found f LEFT JOIN slid ON slid.id = f.id"#,
        hashes,
        ttl.as_secs_f64(),
        slide_due_by(ttl)
    )
    .fetch_all(conn)
    .await
}

/// Sessions slide in steps: activity extends the deadline only when it has moved by at least
/// min(TTL / 100, 60 s), so a busy session costs one write a minute, not one per request.
pub fn needs_slide(expires_at: DateTime<Utc>, ttl: Duration) -> bool {
    expires_at <= slide_due_by(ttl)
}

/// A session whose deadline is at or before this is due to slide.
fn slide_due_by(ttl: Duration) -> DateTime<Utc> {
    let full = Utc::now() + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::days(30));
    let step =
        chrono::Duration::from_std((ttl / 100).min(Duration::from_secs(60))).unwrap_or(chrono::Duration::seconds(60));
    full - step
}

/// Slides several sessions' expiry to `now + ttl` in the caller's transaction.
pub async fn touch_many(conn: &mut PgConnection, ids: &[Uuid], ttl: Duration) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE sessions SET expires_at = now() + make_interval(secs => $2) WHERE id = ANY($1) AND expires_at > now()",
        ids,
        ttl.as_secs_f64()
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Slides the expiry to `now + ttl`; returns the new deadline.
pub async fn touch(pool: &PgPool, id: Uuid, ttl: Duration) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    sqlx::query_scalar!(
        "UPDATE sessions SET expires_at = now() + make_interval(secs => $2) WHERE id = $1 AND expires_at > now() RETURNING expires_at",
        id,
        ttl.as_secs_f64()
    )
    .fetch_optional(pool)
    .await
}

pub async fn exists(pool: &PgPool, hash: &TokenHash) -> Result<bool, sqlx::Error> {
    let found = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM sessions WHERE token_hash = $1 AND expires_at > now()) AS "found!""#,
        &hash.0
    )
    .fetch_one(pool)
    .await?;
    Ok(found)
}

/// Deletes the session, and its cart when that is a guest cart (a customer's cart stays).
/// Two statements: the session's DELETE waits for a first change that is creating the cart
/// (it holds the session key-share locked, `carts::create_for`), and only a statement begun
/// after that change committed sees the cart row it made.
pub async fn revoke(pool: &PgPool, id: Uuid) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    let cart = sqlx::query_scalar!("DELETE FROM sessions WHERE id = $1 RETURNING cart_id", id)
        .fetch_optional(&mut *tx)
        .await?;
    if let Some(cart) = cart {
        sqlx::query!("DELETE FROM carts WHERE id = $1 AND customer_id IS NULL", cart).execute(&mut *tx).await?;
    }
    super::commit(tx).await
}

/// The cart of the session a token names, read without locking anything.
pub async fn cart_of(tx: &mut PgConnection, hash: &TokenHash) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar!("SELECT cart_id FROM sessions WHERE token_hash = $1 AND expires_at > now()", &hash.0)
        .fetch_optional(tx)
        .await
}

/// The session a token names, locked, for attaching it to a customer.
pub async fn lock_by_hash(
    tx: &mut PgConnection,
    hash: &TokenHash,
) -> Result<Option<(Uuid, Uuid, Option<String>)>, sqlx::Error> {
    let row = sqlx::query!(
        "SELECT id, cart_id, customer_id FROM sessions WHERE token_hash = $1 AND expires_at > now() FOR UPDATE",
        &hash.0
    )
    .fetch_optional(tx)
    .await?;
    Ok(row.map(|r| (r.id, r.cart_id, r.customer_id)))
}

/// Binds the session to the customer and the customer's cart; the session's past orders follow.
pub async fn bind_customer(
    tx: &mut PgConnection,
    id: Uuid,
    customer_id: &str,
    cart_id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query!("UPDATE sessions SET customer_id = $2, cart_id = $3 WHERE id = $1", id, customer_id, cart_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query!("UPDATE orders SET customer_id = $2 WHERE session_id = $1 AND customer_id IS NULL", id, customer_id)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Deletes a bounded batch of expired sessions and their guest carts; safe on every replica
/// at once (SKIP LOCKED). A session whose first change is creating its cart is key-share
/// locked, so it is skipped until that change is done, and its new cart goes with it next time. Returns how many sessions it removed.
pub async fn purge_expired(pool: &PgPool, batch: i64) -> Result<u64, sqlx::Error> {
    let purged = sqlx::query_scalar!(
        r#"WITH doomed AS (
               SELECT id FROM sessions WHERE expires_at <= now() ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED
           ), gone AS (
               DELETE FROM sessions s USING doomed WHERE s.id = doomed.id RETURNING s.cart_id
           ), carts_gone AS (
               DELETE FROM carts c USING gone WHERE c.id = gone.cart_id AND c.customer_id IS NULL
           )
           SELECT count(*) AS "count!" FROM gone"#,
        batch
    )
    .fetch_one(pool)
    .await?;
    Ok(purged as u64)
}
