//! The ONLY code that changes a stock level.
//!
//! Adjustments, absolute sets, batches, checkout, cancel, expiry and shipping all call
//! `apply`, so the rule "every committed change bumps `version` by exactly 1 and appends one
//! ledger row and one `stock.changed` outbox event, in the caller's transaction" is written
//! once. Rows are locked in SKU order, so concurrent callers cannot deadlock, and every write
//! checks the version it read (optimistic row versioning): a mismatch is a bug and fails loudly.
//!
//! The stock status (`in_stock`, `low`, `out`) is decided here too, from the locked row, and
//! every crossing writes its status event in the same statement as the change that crossed,
//! so no caller can forget one or write one twice. A threshold edit goes through
//! `set_threshold` for the same reason.

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::{ExpectedVersion, Sku, MAX_ON_HAND};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MovementKind {
    Adjustment,
    Set,
    Reservation,
    Release,
    Shipment,
}

impl MovementKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MovementKind::Adjustment => "adjustment",
            MovementKind::Set => "set",
            MovementKind::Reservation => "reservation",
            MovementKind::Release => "release",
            MovementKind::Shipment => "shipment",
        }
    }
}

#[derive(Clone, Debug)]
pub enum Delta {
    By { on_hand: i64, reserved: i64 },
    SetOnHand(i64),
}

#[derive(Clone, Debug)]
pub struct StockChange {
    pub sku: Sku,
    pub kind: MovementKind,
    pub delta: Delta,
    pub reason: Option<String>,
    pub reference: Option<String>,
    pub order_id: Option<Uuid>,
    /// The `If-Match` of the request, checked against the version before this change.
    pub expected: Option<ExpectedVersion>,
}

/// What a storefront shows of a SKU's stock: `out` at 0 available, `low` at or below a
/// non-zero threshold, `in_stock` otherwise.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StockStatus {
    InStock,
    Low,
    Out,
}

impl StockStatus {
    pub fn of(available: i64, low_stock_threshold: i64) -> StockStatus {
        if available <= 0 {
            StockStatus::Out
        } else if available <= low_stock_threshold {
            StockStatus::Low
        } else {
            StockStatus::InStock
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StockStatus::InStock => "in_stock",
            StockStatus::Low => "low",
            StockStatus::Out => "out",
        }
    }

    /// The event a change from `self` to `to` writes: one per crossing, none without one.
    pub fn crossing(self, to: StockStatus) -> Option<&'static str> {
        use StockStatus::*;
        match (self, to) {
            (a, b) if a == b => None,
            (_, Out) => Some("stock.out"),
            (Out, _) => Some("stock.back"),
            (InStock, Low) => Some("stock.low"),
            (Low, InStock) => Some("stock.recovered"),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Level {
    pub sku: String,
    pub on_hand: i64,
    pub reserved: i64,
    pub available: i64,
    pub version: i64,
    pub low_stock_threshold: i64,
    pub status: StockStatus,
}

/// A stock level as read from `stock_levels`; its status is derived, never stored.
struct LevelRow {
    sku: String,
    on_hand: i64,
    reserved: i64,
    version: i64,
    low_stock_threshold: i64,
}

impl From<LevelRow> for Level {
    fn from(r: LevelRow) -> Level {
        Level::new(r.sku, r.on_hand, r.reserved, r.version, r.low_stock_threshold)
    }
}

impl Level {
    fn new(sku: String, on_hand: i64, reserved: i64, version: i64, low_stock_threshold: i64) -> Level {
        let available = on_hand - reserved;
        Level {
            sku,
            on_hand,
            reserved,
            available,
            version,
            low_stock_threshold,
            status: StockStatus::of(available, low_stock_threshold),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    UnknownSku,
    /// `on_hand` would fall below `reserved`, or a reservation exceeds what is available.
    InsufficientStock {
        requested: i64,
        available: i64,
    },
    VersionMismatch,
    /// `on_hand` would exceed `MAX_ON_HAND`.
    OutOfRange,
}

#[derive(Clone, Debug)]
pub struct Failure {
    pub index: usize,
    pub sku: Sku,
    pub refusal: Refusal,
    /// The level as it was before this call, when the SKU exists.
    pub current: Option<Level>,
}

/// Applies `changes` in order; all of them or, when any is refused, none (the caller then
/// rolls back; nothing has been written). Returns the final level of every touched SKU.
pub async fn apply(
    conn: &mut PgConnection,
    changes: &[StockChange],
) -> Result<Result<Vec<Level>, Vec<Failure>>, sqlx::Error> {
    let (mut outcomes, levels) = apply_groups(conn, &[changes]).await?;
    Ok(outcomes.remove(0).map(|()| levels))
}

/// Applies several independent groups of changes at once (the coalesced checkouts of a
/// replica): each group is all or nothing, evaluated in order against the levels the groups
/// before it left. Every SKU of every group is locked first, in SKU order, and the accepted
/// changes are written with one statement. Returns each group's outcome and the final levels.
pub async fn apply_groups(
    conn: &mut PgConnection,
    groups: &[&[StockChange]],
) -> Result<(Vec<Result<(), Vec<Failure>>>, Vec<Level>), sqlx::Error> {
    let mut skus: Vec<String> = groups.iter().flat_map(|g| g.iter().map(|c| c.sku.to_string())).collect();
    skus.sort_unstable();
    skus.dedup();
    let rows = sqlx::query_as!(
        LevelRow,
        r#"SELECT sku, on_hand, reserved, version, low_stock_threshold
           FROM stock_levels
           WHERE sku = ANY($1)
           ORDER BY sku
           FOR UPDATE"#,
        &skus
    )
    .fetch_all(&mut *conn)
    .await?;
    let before: BTreeMap<String, Level> = rows.into_iter().map(|r| (r.sku.clone(), Level::from(r))).collect();
    let mut now = before.clone();
    let mut movements = Movements::default();
    let mut outcomes = Vec::with_capacity(groups.len());
    for group in groups {
        let (tentative, group_movements, failures) = evaluate(&now, group);
        if failures.is_empty() {
            now.extend(tentative);
            movements.extend(group_movements);
            outcomes.push(Ok(()));
        } else {
            outcomes.push(Err(failures));
        }
    }
    if movements.sku.is_empty() {
        return Ok((outcomes, now.into_values().collect()));
    }

    let changed: Vec<&Level> = now.values().filter(|l| before[&l.sku].version != l.version).collect();
    let new_sku: Vec<String> = changed.iter().map(|l| l.sku.clone()).collect();
    let new_on_hand: Vec<i64> = changed.iter().map(|l| l.on_hand).collect();
    let new_reserved: Vec<i64> = changed.iter().map(|l| l.reserved).collect();
    let new_version: Vec<i64> = changed.iter().map(|l| l.version).collect();
    let old_version: Vec<i64> = changed.iter().map(|l| before[&l.sku].version).collect();
    let written = sqlx::query_scalar!(
        r#"WITH new (sku, on_hand, reserved, version, old_version) AS (
               SELECT * FROM unnest($1::text[], $2::int8[], $3::int8[], $4::int8[], $5::int8[])
           ), updated AS (
               UPDATE stock_levels s
               SET on_hand = new.on_hand, reserved = new.reserved, version = new.version
               FROM new
               WHERE s.sku = new.sku AND s.version = new.old_version
               RETURNING 1
           ), moved AS (
               INSERT INTO stock_movements
                   (sku, kind, delta_on_hand, delta_reserved, on_hand_after, reserved_after, version_after, reason, reference, order_id)
               SELECT * FROM unnest($6::text[], $7::text[], $8::int8[], $9::int8[], $10::int8[], $11::int8[], $12::int8[],
                                    $13::text[], $14::text[], $15::uuid[])
               RETURNING sku, kind, delta_on_hand, delta_reserved, on_hand_after, reserved_after, version_after,
                         order_id, id
           ), crossed (sku, version, topic, payload) AS (
               SELECT * FROM unnest($16::text[], $17::int8[], $18::text[], $19::jsonb[])
           ), events AS (
               -- One insert, in ledger order, each status event right after the change that
               -- crossed: the event log then shows a SKU's history in the order it happened.
               INSERT INTO outbox_events (topic, payload)
               SELECT topic, payload FROM (
                   SELECT m.id, 0 AS rank, 'stock.changed' AS topic, jsonb_build_object(
                              'sku', m.sku, 'kind', m.kind, 'on_hand', m.on_hand_after, 'reserved', m.reserved_after,
                              'available', m.on_hand_after - m.reserved_after, 'version', m.version_after,
                              'previous_version', m.version_after - 1, 'delta_on_hand', m.delta_on_hand,
                              'delta_reserved', m.delta_reserved, 'status', s.status,
                              'order_id', m.order_id, 'movement_id', m.id) AS payload
                   FROM moved m JOIN unnest($6::text[], $12::int8[], $20::text[]) AS s (sku, version, status)
                        ON s.sku = m.sku AND s.version = m.version_after
                   UNION ALL
                   SELECT m.id, 1, c.topic, c.payload
                   FROM crossed c JOIN moved m ON m.sku = c.sku AND m.version_after = c.version
               ) e
               ORDER BY id, rank
           )
           SELECT count(*) AS "count!" FROM updated"#,
        &new_sku,
        &new_on_hand,
        &new_reserved,
        &new_version,
        &old_version,
        &movements.sku,
        &movements.kind,
        &movements.delta_on_hand,
        &movements.delta_reserved,
        &movements.on_hand_after,
        &movements.reserved_after,
        &movements.version_after,
        &movements.reason as &[Option<String>],
        &movements.reference as &[Option<String>],
        &movements.order_id as &[Option<Uuid>],
        &movements.crossed.sku,
        &movements.crossed.version,
        &movements.crossed.topic,
        &movements.crossed.payload,
        &movements.status,
    )
    .fetch_one(&mut *conn)
    .await?;
    if written != changed.len() as i64 {
        // Impossible while the rows are locked: a version moved under our lock. Fail loudly.
        return Err(sqlx::Error::Protocol(format!(
            "stock version check failed: wrote {written} of {} levels",
            changed.len()
        )));
    }
    Ok((outcomes, now.into_values().collect()))
}

/// Evaluates one group against `now` without changing it: the levels it would leave, its
/// ledger rows, and its refusals (every refused change is named, by its index in the group).
fn evaluate(
    now: &BTreeMap<String, Level>,
    group: &[StockChange],
) -> (BTreeMap<String, Level>, Movements, Vec<Failure>) {
    let mut tentative: BTreeMap<String, Level> = BTreeMap::new();
    let mut movements = Movements::default();
    let mut failures = Vec::new();
    for (index, change) in group.iter().enumerate() {
        let fail = |refusal| Failure {
            index,
            sku: change.sku.clone(),
            refusal,
            current: now.get(change.sku.as_str()).cloned(),
        };
        let Some(current) = tentative.get(change.sku.as_str()).or_else(|| now.get(change.sku.as_str())).cloned() else {
            failures.push(fail(Refusal::UnknownSku));
            continue;
        };
        if change.expected.as_ref().is_some_and(|e| !e.matches(current.version)) {
            failures.push(fail(Refusal::VersionMismatch));
            continue;
        }
        let (d_on_hand, d_reserved) = match change.delta {
            Delta::By { on_hand, reserved } => (on_hand, reserved),
            Delta::SetOnHand(target) => (target - current.on_hand, 0),
        };
        if d_on_hand == 0 && d_reserved == 0 {
            continue; // Setting the current value changes nothing, so it is not a version.
        }
        let on_hand = current.on_hand + d_on_hand;
        let reserved = current.reserved + d_reserved;
        if on_hand > MAX_ON_HAND {
            failures.push(fail(Refusal::OutOfRange));
            continue;
        }
        if reserved < 0 || on_hand < reserved {
            let requested = if d_reserved > 0 { d_reserved } else { -d_on_hand };
            failures.push(fail(Refusal::InsufficientStock { requested, available: current.available }));
            continue;
        }
        let after =
            Level::new(current.sku.clone(), on_hand, reserved, current.version + 1, current.low_stock_threshold);
        movements.push(change, &after, d_on_hand, d_reserved);
        movements.crossed.push(&current, &after);
        tentative.insert(change.sku.to_string(), after);
    }
    (tentative, movements, failures)
}

/// The ledger rows of one `apply`, as columns for UNNEST.
#[derive(Default)]
struct Movements {
    sku: Vec<String>,
    kind: Vec<String>,
    delta_on_hand: Vec<i64>,
    delta_reserved: Vec<i64>,
    on_hand_after: Vec<i64>,
    reserved_after: Vec<i64>,
    version_after: Vec<i64>,
    reason: Vec<Option<String>>,
    reference: Vec<Option<String>>,
    order_id: Vec<Option<Uuid>>,
    /// The status after each movement, for its `stock.changed` event.
    status: Vec<String>,
    crossed: Crossings,
}

/// Status events, as columns for UNNEST: each names the movement (SKU and version) that crossed.
#[derive(Default)]
struct Crossings {
    sku: Vec<String>,
    version: Vec<i64>,
    topic: Vec<String>,
    payload: Vec<serde_json::Value>,
}

impl Crossings {
    /// Records the event of the status change from `before` to `after`, if any.
    fn push(&mut self, before: &Level, after: &Level) {
        let Some(topic) = before.status.crossing(after.status) else { return };
        self.sku.push(after.sku.clone());
        self.version.push(after.version);
        self.topic.push(topic.to_owned());
        self.payload.push(status_event(after, before.status));
    }

    fn extend(&mut self, other: Crossings) {
        self.sku.extend(other.sku);
        self.version.extend(other.version);
        self.topic.extend(other.topic);
        self.payload.extend(other.payload);
    }
}

/// The data of `stock.low`, `stock.out`, `stock.back` and `stock.recovered`.
fn status_event(level: &Level, previous: StockStatus) -> serde_json::Value {
    serde_json::json!({
        "sku": level.sku,
        "available": level.available,
        "low_stock_threshold": level.low_stock_threshold,
        "status": level.status.as_str(),
        "previous_status": previous.as_str(),
        "version": level.version,
    })
}

impl Movements {
    fn extend(&mut self, other: Movements) {
        self.sku.extend(other.sku);
        self.kind.extend(other.kind);
        self.delta_on_hand.extend(other.delta_on_hand);
        self.delta_reserved.extend(other.delta_reserved);
        self.on_hand_after.extend(other.on_hand_after);
        self.reserved_after.extend(other.reserved_after);
        self.version_after.extend(other.version_after);
        self.reason.extend(other.reason);
        self.reference.extend(other.reference);
        self.order_id.extend(other.order_id);
        self.status.extend(other.status);
        self.crossed.extend(other.crossed);
    }

    fn push(&mut self, change: &StockChange, after: &Level, d_on_hand: i64, d_reserved: i64) {
        self.sku.push(change.sku.to_string());
        self.kind.push(change.kind.as_str().to_owned());
        self.delta_on_hand.push(d_on_hand);
        self.delta_reserved.push(d_reserved);
        self.on_hand_after.push(after.on_hand);
        self.reserved_after.push(after.reserved);
        self.version_after.push(after.version);
        self.reason.push(change.reason.clone());
        self.reference.push(change.reference.clone());
        self.order_id.push(change.order_id);
        self.status.push(after.status.as_str().to_owned());
    }
}

pub async fn level(conn: &mut PgConnection, sku: &str) -> Result<Option<Level>, sqlx::Error> {
    let row = sqlx::query_as!(
        LevelRow,
        "SELECT sku, on_hand, reserved, version, low_stock_threshold FROM stock_levels WHERE sku = $1",
        sku
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(Level::from))
}

/// Sets a SKU's low-stock threshold, in the caller's transaction, with the status event its
/// crossing asks for. The threshold lives on the level row, and updating that row is what
/// makes a concurrent stock change (waiting for the row lock) decide with the new threshold.
/// The level's version does not change: it counts changes of on_hand and reserved only.
pub async fn set_threshold(conn: &mut PgConnection, sku: &str, threshold: i64) -> Result<Option<Level>, sqlx::Error> {
    let Some(row) = sqlx::query!(
        r#"WITH old AS (SELECT sku, low_stock_threshold FROM stock_levels WHERE sku = $1 FOR UPDATE)
           UPDATE stock_levels s SET low_stock_threshold = $2 FROM old WHERE s.sku = old.sku
           RETURNING s.on_hand, s.reserved, s.version, old.low_stock_threshold AS old_threshold"#,
        sku,
        threshold
    )
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(None);
    };
    let before = Level::new(sku.to_owned(), row.on_hand, row.reserved, row.version, row.old_threshold);
    let after = Level::new(sku.to_owned(), row.on_hand, row.reserved, row.version, threshold);
    if let Some(topic) = before.status.crossing(after.status) {
        sqlx::query!(
            "INSERT INTO outbox_events (topic, payload) VALUES ($1, $2)",
            topic,
            status_event(&after, before.status)
        )
        .execute(&mut *conn)
        .await?;
    }
    Ok(Some(after))
}

#[derive(Debug, Serialize)]
pub struct Movement {
    pub id: i64,
    pub sku: String,
    pub kind: String,
    pub delta_on_hand: i64,
    pub delta_reserved: i64,
    pub on_hand_after: i64,
    pub reserved_after: i64,
    pub version_after: i64,
    pub reason: Option<String>,
    pub reference: Option<String>,
    pub order_id: Option<Uuid>,
    pub at: String,
}

/// Oldest first, after the movement id `after`.
pub async fn movements(
    conn: &mut PgConnection,
    sku: &str,
    after: i64,
    limit: i64,
) -> Result<Vec<Movement>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT id, sku, kind, delta_on_hand, delta_reserved, on_hand_after, reserved_after, version_after,
                  reason, reference, order_id, at
           FROM stock_movements WHERE sku = $1 AND id > $2 ORDER BY id LIMIT $3"#,
        sku,
        after,
        limit
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Movement {
            id: r.id,
            sku: r.sku,
            kind: r.kind,
            delta_on_hand: r.delta_on_hand,
            delta_reserved: r.delta_reserved,
            on_hand_after: r.on_hand_after,
            reserved_after: r.reserved_after,
            version_after: r.version_after,
            reason: r.reason,
            reference: r.reference,
            order_id: r.order_id,
            at: super::timestamp(&r.at),
        })
        .collect())
}
