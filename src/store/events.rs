//! The event log: the outbox rows that writers insert, in one total order (`position`).
//!
//! Writers never touch `position`. `sequence` gives positions to committed rows, one
//! sequencer at a time across all replicas (they take turns on row locks), so positions
//! become visible only in increasing order: a reader that was handed position `n` can never
//! later find a row below `n` (migration V5 explains why the insert-time identity cannot be
//! that order). Everything a client sees as an event id is a position.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgConnection;

/// The channel every insert into the outbox, and every sequencing, notifies.
pub const CHANNEL: &str = "stockcart_events";

#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub position: i64,
    pub topic: String,
    pub at: DateTime<Utc>,
    /// The data as JSON text, as PostgreSQL prints it. Every replica reads every event, and
    /// most go to no one on most replicas: they are parsed only when something looks inside
    /// (`parse_payload`), and streams embed the text as it is.
    pub payload: String,
}

/// The data of an event as a JSON value. PostgreSQL printed the text from a `jsonb`, so it
/// always parses; `Null` would only stand for text that came from elsewhere.
pub fn parse_payload(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_default()
}

/// Which events a reader wants. Types are exact (`stock.low`) or families (`stock.`, from
/// `stock.*`); a SKU matches stock events of that SKU and order events with a line of it.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub types: Vec<String>,
    pub families: Vec<String>,
    pub sku: Option<String>,
    /// Stock events of any of these SKUs (the public stream's), when not empty.
    pub skus: Vec<String>,
}

impl Filter {
    pub fn is_all(&self) -> bool {
        self.types.is_empty() && self.families.is_empty() && self.sku.is_none()
    }

    pub fn matches_topic(&self, topic: &str) -> bool {
        (self.types.is_empty() && self.families.is_empty())
            || self.types.iter().any(|t| t == topic)
            || self.families.iter().any(|f| topic.starts_with(f.as_str()))
    }

    /// Whether the data matters at all: without a SKU, the type alone decides, and an event's
    /// data need not be parsed to filter it.
    pub fn looks_at_data(&self) -> bool {
        self.sku.is_some() || !self.skus.is_empty()
    }

    pub fn matches_data(&self, payload: &Value) -> bool {
        self.sku.as_deref().is_none_or(|sku| event_has_sku(payload, sku))
            && (self.skus.is_empty() || self.skus.iter().any(|sku| event_has_sku(payload, sku)))
    }
}

/// Whether an event's data concerns `sku`: the SKU of a stock event, a line of an order event.
pub fn event_has_sku(payload: &Value, sku: &str) -> bool {
    if payload.get("sku").and_then(Value::as_str) == Some(sku) {
        return true;
    }
    payload
        .pointer("/order/lines")
        .and_then(Value::as_array)
        .is_some_and(|lines| lines.iter().any(|l| l.get("sku").and_then(Value::as_str) == Some(sku)))
}

/// Gives positions to up to `limit` committed, unsequenced rows, in insert order, and
/// notifies the readers with `notifier` as payload (so a replica can tell its own
/// notifications from another's), all in one autocommit statement: one round trip. Returns
/// how many it numbered.
///
/// Sequencers take turns twice over. Each locks the rows it numbers (a sequencer that finds a
/// row locked waits, and skips it if it was numbered meanwhile: READ COMMITTED rechecks
/// `position IS NULL` on the row's newest version), so no row is numbered twice and none is
/// numbered in vain. Each then updates the `sequenced` row of `event_log_marks`, whose new
/// value its positions are counted back from, and holds it until it commits: positions commit
/// in increasing order, so a reader that was handed position `n` can never later find a row
/// below `n`. Rows are locked in `id` order before the marks row, by every sequencer, so two
/// never wait for each other in a circle.
///
/// The rows to number go to the update as an array, not a join: joined, the planner guessed
/// "one unsequenced row" from the small partial index and walked all of them for each one (a
/// backlog of 20,000 took seconds a statement, and grew); an array is joined by primary key.
///
/// (Until this was one statement, an advisory lock taken in a transaction of its own did the
/// turn-taking: five round trips a call, and three more for every replica that lost the race.)
pub async fn sequence(conn: &mut PgConnection, limit: i64, notifier: &str) -> Result<i64, sqlx::Error> {
    let row = sqlx::query!(
        r#"WITH todo AS (
               SELECT coalesce(array_agg(id ORDER BY id), '{}') AS ids
               FROM (SELECT id FROM outbox_events WHERE position IS NULL ORDER BY id LIMIT $1 FOR UPDATE) t
           ), head AS (
               UPDATE event_log_marks m SET value = m.value + cardinality(todo.ids)
               FROM todo
               WHERE m.name = 'sequenced' AND cardinality(todo.ids) > 0
               RETURNING m.value - cardinality(todo.ids) AS base, todo.ids
           ), placed AS (
               UPDATE outbox_events e SET position = head.base + w.n
               FROM head, unnest(head.ids) WITH ORDINALITY AS w(id, n)
               WHERE e.id = w.id
               RETURNING 1
           )
           SELECT (SELECT count(*) FROM placed) AS "placed!",
                  -- Sent at commit, and only when something was placed.
                  (SELECT pg_notify($2, $3)::text FROM placed LIMIT 1) AS notified"#,
        limit,
        CHANNEL,
        notifier
    )
    .fetch_one(conn)
    .await?;
    Ok(row.placed)
}

/// Whether any committed event waits for its position: a read of the partial index that
/// `sequence` takes its rows from, with none of its locks or writes. (`ORDER BY id LIMIT 1`
/// keeps it on that index whatever the statistics say about unsequenced rows.)
pub async fn waiting(conn: &mut PgConnection) -> Result<bool, sqlx::Error> {
    let first = sqlx::query_scalar!("SELECT id FROM outbox_events WHERE position IS NULL ORDER BY id LIMIT 1")
        .fetch_optional(conn)
        .await?;
    Ok(first.is_some())
}

/// Sequences everything committed so far: afterwards a read sees every acknowledged write.
pub async fn sequence_all(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    while sequence(conn, 5000, "").await? == 5000 {}
    Ok(())
}

/// Events after `after`, oldest first, at most `limit`, matching `filter`.
pub async fn after(
    conn: &mut PgConnection,
    after: i64,
    filter: &Filter,
    limit: i64,
) -> Result<Vec<StoredEvent>, sqlx::Error> {
    let exact: Vec<String> = filter.types.clone();
    let families: Vec<String> = filter.families.iter().map(|f| format!("{f}%")).collect();
    let any_type = exact.is_empty() && families.is_empty();
    sqlx::query_as!(
        StoredEvent,
        r#"SELECT position AS "position!", topic, at, payload::text AS "payload!"
           FROM outbox_events
           WHERE position > $1
             AND ($2 OR topic = ANY($3) OR topic LIKE ANY($4))
             AND ($5::text IS NULL
                  OR payload ->> 'sku' = $5
                  OR payload -> 'order' -> 'lines' @> jsonb_build_array(jsonb_build_object('sku', $5::text)))
             AND (cardinality($7::text[]) = 0 OR payload ->> 'sku' = ANY($7))
           ORDER BY position
           LIMIT $6"#,
        after,
        any_type,
        &exact,
        &families,
        filter.sku.as_deref(),
        limit,
        &filter.skus
    )
    .fetch_all(conn)
    .await
}

/// The last position handed out, and the highest one retention deleted.
pub async fn marks(conn: &mut PgConnection) -> Result<(i64, i64), sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT max(value) FILTER (WHERE name = 'sequenced') AS "sequenced!",
                  max(value) FILTER (WHERE name = 'pruned') AS "pruned!"
           FROM event_log_marks"#
    )
    .fetch_one(conn)
    .await?;
    Ok((row.sequenced, row.pruned))
}

/// Deletes up to `limit` of the oldest sequenced events, those in log order before the first
/// one committed at or after `cutoff`; rows another replica is deleting are skipped, not waited
/// for, and writers are never blocked (they only insert). Returns how many it deleted.
///
/// It looks at the first `limit` events of the log only. Filtering the whole log on `at`
/// instead read every event whenever none was old enough, which is every tick once the log is
/// pruned (at 10 M events, 4 GB read and a statement timeout a minute on every replica).
pub async fn prune(conn: &mut PgConnection, cutoff: DateTime<Utc>, limit: i64) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(
        r#"WITH head AS (
               SELECT position, at FROM outbox_events
               WHERE position IS NOT NULL
                 -- Never an event the report rollups have not counted yet.
                 AND position <= (SELECT position FROM report_cursor)
               ORDER BY position
               LIMIT $2
           ), doomed AS (
               SELECT id FROM outbox_events
               WHERE position IN (
                   SELECT position FROM head
                   WHERE position < coalesce((SELECT min(position) FROM head WHERE at >= $1), 9223372036854775807)
               )
               FOR UPDATE SKIP LOCKED
           ), deleted AS (
               DELETE FROM outbox_events e USING doomed WHERE e.id = doomed.id RETURNING e.position
           ), marked AS (
               UPDATE event_log_marks SET value = greatest(value, (SELECT max(position) FROM deleted))
               WHERE name = 'pruned' AND EXISTS (SELECT 1 FROM deleted)
           )
           SELECT count(*) AS "count!" FROM deleted"#,
        cutoff,
        limit
    )
    .fetch_one(conn)
    .await
}

/// The public stream's state of some SKUs, straight from their levels.
pub struct SkuState {
    pub sku: String,
    pub available: i64,
    pub low_stock_threshold: i64,
    pub version: i64,
}

pub async fn sku_states(conn: &mut PgConnection, skus: &[String]) -> Result<Vec<SkuState>, sqlx::Error> {
    sqlx::query_as!(
        SkuState,
        r#"SELECT sku, on_hand - reserved AS "available!", low_stock_threshold, version
           FROM stock_levels WHERE sku = ANY($1) ORDER BY sku"#,
        skus
    )
    .fetch_all(conn)
    .await
}
