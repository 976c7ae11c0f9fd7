//! Webhook endpoints and their deliveries.
//!
//! Planning turns the event log into deliveries by a per-endpoint cursor, advanced in the
//! transaction that inserts them; claiming leases the first pending delivery of each key
//! (`FOR UPDATE SKIP LOCKED`), so replicas share the work, a key's events reach an endpoint
//! one at a time in order, and a replica that dies mid-delivery only delays it until the
//! lease runs out.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct Endpoint {
    pub id: Uuid,
    pub url: String,
    pub types: Vec<String>,
    pub description: String,
    pub status: String,
    pub disabled_reason: Option<String>,
    pub secret: Vec<u8>,
    pub previous_secret: Option<Vec<u8>>,
    pub previous_secret_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub struct NewEndpoint<'a> {
    pub id: Uuid,
    pub url: &'a str,
    pub types: &'a [String],
    pub description: &'a str,
    pub sealed_secret: &'a [u8],
}

/// Creates an endpoint that receives events committed from now on.
pub async fn create(conn: &mut PgConnection, new: NewEndpoint<'_>) -> Result<Endpoint, sqlx::Error> {
    sqlx::query_as!(
        Endpoint,
        r#"INSERT INTO webhook_endpoints (id, url, types, description, secret, cursor)
           VALUES ($1, $2, $3, $4, $5, (SELECT value FROM event_log_marks WHERE name = 'sequenced'))
           RETURNING id, url, types, description, status, disabled_reason, secret, previous_secret,
                     previous_secret_until, created_at, updated_at"#,
        new.id,
        new.url,
        new.types,
        new.description,
        new.sealed_secret
    )
    .fetch_one(conn)
    .await
}

pub async fn find(conn: &mut PgConnection, id: Uuid) -> Result<Option<Endpoint>, sqlx::Error> {
    sqlx::query_as!(
        Endpoint,
        r#"SELECT id, url, types, description, status, disabled_reason, secret, previous_secret,
                  previous_secret_until, created_at, updated_at
           FROM webhook_endpoints WHERE id = $1"#,
        id
    )
    .fetch_optional(conn)
    .await
}

pub async fn list(conn: &mut PgConnection, after: Option<Uuid>, limit: i64) -> Result<Vec<Endpoint>, sqlx::Error> {
    sqlx::query_as!(
        Endpoint,
        r#"SELECT id, url, types, description, status, disabled_reason, secret, previous_secret,
                  previous_secret_until, created_at, updated_at
           FROM webhook_endpoints WHERE $1::uuid IS NULL OR id > $1 ORDER BY id LIMIT $2"#,
        after,
        limit
    )
    .fetch_all(conn)
    .await
}

pub struct Patch<'a> {
    pub url: Option<&'a str>,
    pub types: Option<&'a [String]>,
    pub description: Option<&'a str>,
    pub status: Option<&'a str>,
}

/// Applies a partial update; re-enabling clears the reason and the failure run.
pub async fn update(conn: &mut PgConnection, id: Uuid, patch: Patch<'_>) -> Result<Option<Endpoint>, sqlx::Error> {
    sqlx::query_as!(
        Endpoint,
        r#"UPDATE webhook_endpoints SET
               url = coalesce($2, url),
               types = coalesce($3, types),
               description = coalesce($4, description),
               disabled_reason = CASE WHEN $5 = 'enabled' THEN NULL
                                      WHEN $5 = 'disabled' AND status = 'enabled' THEN 'disabled by an admin'
                                      ELSE disabled_reason END,
               failing_since = CASE WHEN $5 = 'enabled' THEN NULL ELSE failing_since END,
               status = coalesce($5, status),
               updated_at = now()
           WHERE id = $1
           RETURNING id, url, types, description, status, disabled_reason, secret, previous_secret,
                     previous_secret_until, created_at, updated_at"#,
        id,
        patch.url,
        patch.types,
        patch.description,
        patch.status
    )
    .fetch_optional(conn)
    .await
}

pub async fn delete(conn: &mut PgConnection, id: Uuid) -> Result<bool, sqlx::Error> {
    let n = sqlx::query!("DELETE FROM webhook_endpoints WHERE id = $1", id).execute(conn).await?.rows_affected();
    Ok(n == 1)
}

/// Replaces the secret; the old one keeps signing until `overlap_until`.
pub async fn rotate(
    conn: &mut PgConnection,
    id: Uuid,
    sealed_secret: &[u8],
    overlap_until: DateTime<Utc>,
) -> Result<Option<Endpoint>, sqlx::Error> {
    sqlx::query_as!(
        Endpoint,
        r#"UPDATE webhook_endpoints
           SET previous_secret = secret, previous_secret_until = $3, secret = $2, updated_at = now()
           WHERE id = $1
           RETURNING id, url, types, description, status, disabled_reason, secret, previous_secret,
                     previous_secret_until, created_at, updated_at"#,
        id,
        sealed_secret,
        overlap_until
    )
    .fetch_optional(conn)
    .await
}

/// Plans deliveries for the events after each enabled endpoint's cursor, up to `limit` events
/// per endpoint, and advances the cursors, in one statement. Endpoints another replica is
/// planning are skipped, not waited for. Returns how many events it went through (over all
/// endpoints): less than `limit` means every endpoint it planned has caught up.
pub async fn plan(conn: &mut PgConnection, limit: i64) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(
        r#"WITH eps AS (
               SELECT id, types, cursor FROM webhook_endpoints
               WHERE status = 'enabled'
               ORDER BY id
               FOR UPDATE SKIP LOCKED
           ), window_ AS (
               -- The events each endpoint has not planned yet, at most `limit` of them:
               -- everything at or below the highest one seen is visible, so the cursor
               -- may move there.
               SELECT eps.id AS endpoint_id, eps.types, e.position, e.topic, e.at, e.payload
               FROM eps
               CROSS JOIN LATERAL (
                   SELECT position, topic, at, payload FROM outbox_events
                   WHERE position > eps.cursor ORDER BY position LIMIT $1
               ) e
           ), planned AS (
               INSERT INTO webhook_deliveries (endpoint_id, event_id, event_type, key, body)
               SELECT endpoint_id, position, topic,
                      coalesce(payload ->> 'sku', payload -> 'order' ->> 'id', topic),
                      jsonb_build_object('id', position, 'type', topic,
                                         'at', to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                                         'data', payload)::text
               FROM window_
               WHERE cardinality(types) = 0
                  OR topic = ANY(types)
                  OR EXISTS (SELECT 1 FROM unnest(types) t WHERE t LIKE '%.*' AND topic LIKE rtrim(t, '*') || '%')
               ORDER BY endpoint_id, position
               RETURNING 1
           ), moved AS (
               UPDATE webhook_endpoints w SET cursor = m.last
               FROM (SELECT endpoint_id, max(position) AS last FROM window_ GROUP BY endpoint_id) m
               WHERE w.id = m.endpoint_id
           )
           SELECT count(*) AS "count!" FROM window_"#,
        limit
    )
    .fetch_one(conn)
    .await
}

/// Puts the retained events in `(after, until]` up for delivery again (until: the cursor).
pub async fn replay(conn: &mut PgConnection, id: Uuid, after: i64, until: Option<i64>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(
        r#"WITH ep AS (SELECT id, types, cursor FROM webhook_endpoints WHERE id = $1),
           planned AS (
               INSERT INTO webhook_deliveries (endpoint_id, event_id, event_type, key, body)
               SELECT ep.id, e.position, e.topic,
                      coalesce(e.payload ->> 'sku', e.payload -> 'order' ->> 'id', e.topic),
                      jsonb_build_object('id', e.position, 'type', e.topic,
                                         'at', to_char(e.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                                         'data', e.payload)::text
               FROM ep JOIN outbox_events e
                 ON e.position > $2 AND e.position <= least(coalesce($3, ep.cursor), ep.cursor)
               WHERE cardinality(ep.types) = 0
                  OR e.topic = ANY(ep.types)
                  OR EXISTS (SELECT 1 FROM unnest(ep.types) t WHERE t LIKE '%.*' AND e.topic LIKE rtrim(t, '*') || '%')
               ORDER BY e.position
               RETURNING 1
           )
           SELECT count(*) AS "count!" FROM planned"#,
        id,
        after,
        until
    )
    .fetch_one(conn)
    .await
}

/// A leased delivery, with what sending it needs.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: i64,
    pub endpoint_id: Uuid,
    pub event_id: i64,
    pub url: String,
    pub body: String,
    pub attempts: i32,
    pub secret: Vec<u8>,
    pub previous_secret: Option<Vec<u8>>,
    pub previous_secret_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// How many deliveries one claim may lease per endpoint: `rooms` for the endpoints listed,
/// `default_room` for any other enabled endpoint (one this replica has not seen yet).
pub struct Rooms {
    pub endpoints: Vec<Uuid>,
    pub rooms: Vec<i64>,
    pub default_room: i64,
}

/// Leases due deliveries of every enabled endpoint, up to its room, each the first pending
/// delivery of its key, under `claim`, in one statement. Per endpoint the scan follows its due
/// deliveries in time order and stops at the room: its cost does not grow with the backlog.
/// `updated_at` is left alone (it is the last recorded attempt), so that the lease can be a
/// heap-only update of columns no index holds.
pub async fn claim(
    conn: &mut PgConnection,
    claim: Uuid,
    rooms: &Rooms,
    lease: std::time::Duration,
) -> Result<Vec<Claimed>, sqlx::Error> {
    let lease_ms = lease.as_millis() as f64;
    sqlx::query_as!(
        Claimed,
        r#"WITH room AS (
               SELECT w.id AS endpoint_id, coalesce(k.room, $4) AS room
               FROM webhook_endpoints w
               LEFT JOIN unnest($2::uuid[], $3::int8[]) AS k (endpoint_id, room) ON k.endpoint_id = w.id
               WHERE w.status = 'enabled'
           ), picked AS (
               SELECT p.id FROM room CROSS JOIN LATERAL (
                   SELECT d.id FROM webhook_deliveries d
                   WHERE d.endpoint_id = room.endpoint_id AND d.status = 'pending' AND d.next_attempt_at <= now()
                     AND (d.lease_until IS NULL OR d.lease_until < now())
                     -- The first pending delivery of its key. Written as a lookup of that
                     -- first one rather than NOT EXISTS an earlier one: with the statistics of
                     -- an empty table (a new deployment, or right after an ANALYZE) the planner
                     -- ran NOT EXISTS as an anti-join over every pending delivery of the
                     -- endpoint for each candidate: 1.2 s for 64 claims over 20,000 pending.
                     AND d.id = (
                         SELECT f.id FROM webhook_deliveries f
                         WHERE f.endpoint_id = d.endpoint_id AND f.key = d.key AND f.status = 'pending'
                         ORDER BY f.event_id, f.id
                         LIMIT 1)
                   ORDER BY d.next_attempt_at, d.id
                   LIMIT room.room
                   FOR UPDATE OF d SKIP LOCKED
               ) p
               WHERE room.room > 0
           ), leased AS (
               UPDATE webhook_deliveries d
               SET lease_until = now() + make_interval(secs => $5::float8 / 1000), claim = $1,
                   attempts = attempts + 1
               FROM picked WHERE d.id = picked.id
               RETURNING d.id, d.endpoint_id, d.event_id, d.body, d.attempts, d.created_at
           )
           SELECT l.id, l.endpoint_id, l.event_id, w.url, l.body, l.attempts, w.secret, w.previous_secret,
                  w.previous_secret_until, l.created_at
           FROM leased l JOIN webhook_endpoints w ON w.id = l.endpoint_id
           ORDER BY l.endpoint_id, l.event_id, l.id"#,
        claim,
        &rooms.endpoints,
        &rooms.rooms,
        rooms.default_room,
        lease_ms
    )
    .fetch_all(conn)
    .await
}

/// Gives back leases this replica took and will not use (the delivery waited too long for a
/// free request slot to be sent within its lease): the attempt did not happen, and any replica
/// may claim the delivery at once.
pub async fn release(conn: &mut PgConnection, ids: &[i64], claims: &[Uuid]) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"UPDATE webhook_deliveries d SET lease_until = NULL, claim = NULL, attempts = d.attempts - 1
           FROM unnest($1::int8[], $2::uuid[]) AS r (id, claim)
           WHERE d.id = r.id AND d.claim = r.claim AND d.status = 'pending'"#,
        ids,
        claims
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// What became of one attempt.
#[derive(Clone, Copy, Debug)]
pub enum Outcome<'a> {
    Succeeded {
        status_code: i32,
    },
    /// Retry at `next_attempt_at`, or fail for good when `None`.
    Failed {
        status_code: Option<i32>,
        error: &'a str,
        next_attempt_at: Option<DateTime<Utc>>,
    },
    /// 410 Gone: the delivery fails and the endpoint is disabled at once.
    Gone {
        status_code: i32,
    },
}

/// Outcomes of many attempts, as columns for one statement.
#[derive(Default)]
pub struct Outcomes {
    id: Vec<i64>,
    claim: Vec<Uuid>,
    status: Vec<String>,
    code: Vec<Option<i32>>,
    error: Vec<Option<String>>,
    next: Vec<Option<DateTime<Utc>>>,
    gone: Vec<bool>,
}

impl Outcomes {
    /// `claim`: the claim that leased the delivery; the outcome counts only while it holds.
    pub fn push(&mut self, id: i64, claim: Uuid, outcome: Outcome<'_>) {
        let (status, code, error, next, gone) = match outcome {
            Outcome::Succeeded { status_code } => ("succeeded", Some(status_code), None, None, false),
            Outcome::Failed { status_code, error, next_attempt_at } => (
                if next_attempt_at.is_some() { "pending" } else { "failed" },
                status_code,
                Some(error.to_owned()),
                next_attempt_at,
                false,
            ),
            Outcome::Gone { status_code } => {
                ("failed", Some(status_code), Some("the endpoint answered 410 Gone".to_owned()), None, true)
            }
        };
        self.id.push(id);
        self.claim.push(claim);
        self.status.push(status.to_owned());
        self.code.push(code);
        self.error.push(error);
        self.next.push(next);
        self.gone.push(gone);
    }

    pub fn is_empty(&self) -> bool {
        self.id.is_empty()
    }
}

/// Records attempts' outcomes with one statement, each only if its claim still holds (after a
/// lease ran out, another claim, of this replica or another, may have taken it over). Per
/// endpoint: any success ends its failure run; only failures start one, and a run longer
/// than `disable_after` disables it; a 410 disables it at once.
pub async fn record(
    conn: &mut PgConnection,
    outcomes: &Outcomes,
    disable_after: std::time::Duration,
) -> Result<(), sqlx::Error> {
    let disable_ms = disable_after.as_millis() as f64;
    sqlx::query!(
        r#"WITH o (id, status, code, error, next, gone, claim) AS (
               SELECT * FROM unnest($1::int8[], $2::text[], $3::int4[], $4::text[], $5::timestamptz[], $6::bool[],
                                    $7::uuid[])
           ), done AS (
               UPDATE webhook_deliveries d
               SET status = o.status, last_status_code = o.code, last_error = o.error,
                   next_attempt_at = coalesce(o.next, d.next_attempt_at), lease_until = NULL, claim = NULL,
                   updated_at = now()
               FROM o
               WHERE d.id = o.id AND d.claim = o.claim
               RETURNING d.endpoint_id, o.status, o.gone
           ), per AS (
               SELECT endpoint_id, bool_or(status = 'succeeded') AS any_ok, bool_or(gone) AS gone
               FROM done GROUP BY endpoint_id
           )
           UPDATE webhook_endpoints w SET
               failing_since = CASE WHEN per.any_ok THEN NULL ELSE coalesce(w.failing_since, now()) END,
               status = CASE WHEN per.gone OR (NOT per.any_ok AND w.failing_since < now() - make_interval(secs => $8::float8 / 1000))
                             THEN 'disabled' ELSE w.status END,
               disabled_reason = CASE
                   WHEN per.gone THEN 'the endpoint answered 410 Gone'
                   WHEN NOT per.any_ok AND w.failing_since < now() - make_interval(secs => $8::float8 / 1000)
                   THEN 'every delivery failed since ' || to_char(w.failing_since AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
                   ELSE w.disabled_reason END
           FROM per WHERE w.id = per.endpoint_id"#,
        &outcomes.id,
        &outcomes.status,
        &outcomes.code as &[Option<i32>],
        &outcomes.error as &[Option<String>],
        &outcomes.next as &[Option<DateTime<Utc>>],
        &outcomes.gone,
        &outcomes.claim,
        disable_ms
    )
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: i64,
    pub event_id: i64,
    pub event_type: String,
    pub status: String,
    pub attempts: i32,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub next_attempt_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An endpoint's deliveries, newest first; the cursor is a delivery id.
pub async fn deliveries(
    conn: &mut PgConnection,
    endpoint: Uuid,
    status: Option<&str>,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<Delivery>, sqlx::Error> {
    sqlx::query_as!(
        Delivery,
        r#"SELECT id, event_id, event_type, status, attempts, last_status_code, last_error, next_attempt_at, updated_at
           FROM webhook_deliveries
           WHERE endpoint_id = $1 AND ($2::text IS NULL OR status = $2) AND ($3::int8 IS NULL OR id < $3)
           ORDER BY id DESC LIMIT $4"#,
        endpoint,
        status,
        before,
        limit
    )
    .fetch_all(conn)
    .await
}

/// Deletes up to `limit` finished deliveries last touched before `cutoff` (the delivery log
/// is kept as long as the events), skipping rows another replica is deleting.
pub async fn prune(conn: &mut PgConnection, cutoff: DateTime<Utc>, limit: i64) -> Result<i64, sqlx::Error> {
    let n = sqlx::query!(
        r#"DELETE FROM webhook_deliveries WHERE id IN (
               SELECT id FROM webhook_deliveries WHERE status <> 'pending' AND updated_at < $1
               ORDER BY updated_at LIMIT $2 FOR UPDATE SKIP LOCKED)"#,
        cutoff,
        limit
    )
    .execute(conn)
    .await?
    .rows_affected();
    Ok(n as i64)
}

/// Pending deliveries per endpoint, for `/metrics`.
pub async fn queue_depths(conn: &mut PgConnection) -> Result<Vec<(Uuid, i64)>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT endpoint_id, count(*) AS "n!" FROM webhook_deliveries WHERE status = 'pending' GROUP BY endpoint_id"#
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.endpoint_id, r.n)).collect())
}
