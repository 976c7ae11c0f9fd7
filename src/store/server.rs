//! What the database server itself allows: read at start-up, to size the pools against it.

use sqlx::PgPool;

/// Connections a client without superuser rights may still open: `max_connections` less the
/// reserved ones and those already open.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionRoom {
    pub max_connections: i64,
    pub reserved: i64,
    pub open: i64,
}

impl ConnectionRoom {
    pub fn free(&self) -> i64 {
        self.max_connections - self.reserved - self.open
    }
}

pub async fn connection_room(pool: &PgPool) -> Result<ConnectionRoom, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT current_setting('max_connections')::bigint AS "max_connections!",
                  current_setting('superuser_reserved_connections')::bigint AS "reserved!",
                  (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend') AS "open!""#
    )
    .fetch_one(pool)
    .await?;
    Ok(ConnectionRoom { max_connections: row.max_connections, reserved: row.reserved, open: row.open })
}

/// Whether this server takes writes: false on a standby, a demoted primary, or a database set
/// read-only. Behind a balancer that routes to the primary, a replica is ready only when this
/// holds: during a failover the balancer may still reach the old primary.
pub async fn accepts_writes(pool: &PgPool) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT NOT pg_is_in_recovery() AND current_setting('transaction_read_only') = 'off' AS "accepts!""#
    )
    .fetch_one(pool)
    .await
}
