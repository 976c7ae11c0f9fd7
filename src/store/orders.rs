//! Orders and their lifecycle. `place_many` reserves every line in one transaction; `transition`
//! is the one place that moves an order between statuses, with its stock movements and its
//! outbox event in the same transaction.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sqlx::PgConnection;
use uuid::Uuid;

use super::stock::{self, Delta, MovementKind, Refusal, StockChange};
use crate::domain::{Currency, Money, Sku};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    AwaitingPayment,
    Paid,
    Shipped,
    Cancelled,
    Expired,
}

impl Status {
    pub const ALL: [Status; 5] =
        [Status::AwaitingPayment, Status::Paid, Status::Shipped, Status::Cancelled, Status::Expired];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::AwaitingPayment => "awaiting_payment",
            Status::Paid => "paid",
            Status::Shipped => "shipped",
            Status::Cancelled => "cancelled",
            Status::Expired => "expired",
        }
    }

    pub fn parse(raw: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// The lifecycle: awaiting_payment -> paid -> shipped; awaiting_payment or paid ->
    /// cancelled; awaiting_payment -> expired.
    pub fn can_become(self, to: Status) -> bool {
        use Status::*;
        matches!(
            (self, to),
            (AwaitingPayment, Paid)
                | (Paid, Shipped)
                | (AwaitingPayment | Paid, Cancelled)
                | (AwaitingPayment, Expired)
        )
    }

    /// What a transition into `self` does to the stock of a line of `quantity`.
    fn stock_effect(self, quantity: i64) -> Option<(MovementKind, Delta)> {
        match self {
            Status::Cancelled | Status::Expired => {
                Some((MovementKind::Release, Delta::By { on_hand: 0, reserved: -quantity }))
            }
            Status::Shipped => Some((MovementKind::Shipment, Delta::By { on_hand: -quantity, reserved: -quantity })),
            Status::AwaitingPayment | Status::Paid => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct OrderLine {
    pub sku: Sku,
    pub name: String,
    pub quantity: i32,
    pub unit_price: i64,
    pub line_total: i64,
}

#[derive(Debug, Clone)]
pub struct Order {
    pub id: Uuid,
    pub session_id: Uuid,
    pub customer_id: Option<String>,
    pub status: Status,
    pub total_amount: i64,
    pub currency: Currency,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// Awaiting payment past its deadline: it must expire before anything else happens to it.
    pub due: bool,
    pub lines: Vec<OrderLine>,
}

impl Order {
    /// The data of an `order.<status>` event: the order as `GET /v1/orders/{id}` renders it.
    fn event_data(&self) -> Value {
        json!({ "order": self.to_json() })
    }

    pub fn to_json(&self) -> Value {
        let lines: Vec<Value> = self
            .lines
            .iter()
            .map(|l| {
                json!({
                    "sku": l.sku,
                    "name": l.name,
                    "quantity": l.quantity,
                    "unit_price": Money::new(l.unit_price, self.currency.clone()),
                    "line_total": Money::new(l.line_total, self.currency.clone()),
                })
            })
            .collect();
        json!({
            "id": self.id,
            "status": self.status.as_str(),
            "lines": lines,
            "total": Money::new(self.total_amount, self.currency.clone()),
            "created_at": super::timestamp(&self.created_at),
            "expires_at": super::timestamp(&self.expires_at),
        })
    }
}

/// Who may see an order: its session, or its customer's sessions; admins see all.
#[derive(Debug, Clone)]
pub enum Viewer<'a> {
    Admin,
    Shopper { session_id: Uuid, customer_id: Option<&'a str> },
}

impl Viewer<'_> {
    fn parts(&self) -> (bool, Option<Uuid>, Option<&str>) {
        match self {
            Viewer::Admin => (true, None, None),
            Viewer::Shopper { session_id, customer_id } => (false, Some(*session_id), *customer_id),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortage {
    pub sku: Sku,
    pub requested: i64,
    pub available: i64,
}

#[derive(Debug)]
pub enum Placement {
    Placed(Order),
    EmptyCart,
    Short(Vec<Shortage>),
}

/// One checkout of a batch: whose it is and which cart it empties.
#[derive(Debug, Clone)]
pub struct PlaceRequest {
    /// Chosen by the caller, who has already written it into the idempotency key.
    pub order_id: Uuid,
    pub session_id: Uuid,
    pub customer_id: Option<String>,
    pub cart_id: Uuid,
}

/// Checkout, for one or many requests at once, in the caller's transaction: freezes each
/// cart's prices into an order and reserves all its lines or none (`stock::apply_groups`),
/// then writes the accepted orders and empties their carts. Carts are locked in id order and
/// stock rows in SKU order, so concurrent batches cannot deadlock. A cart that appears twice
/// in one batch (two sessions of one customer) is ordered once; the later request finds it
/// empty, as it would have one transaction later.
pub async fn place_many(
    tx: &mut PgConnection,
    requests: &[PlaceRequest],
    currency: &Currency,
    payment_timeout: Duration,
) -> Result<Vec<Placement>, sqlx::Error> {
    let mut cart_ids: Vec<Uuid> = requests.iter().map(|r| r.cart_id).collect();
    cart_ids.sort_unstable();
    cart_ids.dedup();
    sqlx::query!("SELECT id FROM carts WHERE id = ANY($1) ORDER BY id FOR UPDATE", &cart_ids)
        .fetch_all(&mut *tx)
        .await?;
    let lines = sqlx::query!(
        r#"SELECT l.cart_id AS "cart_id!", l.sku AS "sku!: Sku", l.name AS "name!", l.quantity AS "quantity!",
                  l.price_amount AS "price_amount!"
           FROM cart_contents l
           WHERE l.cart_id = ANY($1)
           ORDER BY l.cart_id, l.sku"#,
        &cart_ids
    )
    .fetch_all(&mut *tx)
    .await?;

    // Microseconds, as PostgreSQL keeps them: a replay renders the order from its row and
    // must show the same times as the first answer.
    let created_at = chrono::SubsecRound::trunc_subsecs(Utc::now(), 6);
    let expires_at = created_at + chrono::Duration::from_std(payment_timeout).unwrap_or(chrono::Duration::days(365));
    let mut taken = std::collections::HashSet::new();
    let orders: Vec<Option<Order>> = requests
        .iter()
        .map(|r| {
            if !taken.insert(r.cart_id) {
                return None;
            }
            let lines: Vec<OrderLine> = lines
                .iter()
                .filter(|l| l.cart_id == r.cart_id)
                .map(|l| OrderLine {
                    sku: l.sku.clone(),
                    name: l.name.clone(),
                    quantity: l.quantity,
                    unit_price: l.price_amount,
                    line_total: l.price_amount * i64::from(l.quantity),
                })
                .collect();
            (!lines.is_empty()).then(|| Order {
                id: r.order_id,
                session_id: r.session_id,
                customer_id: r.customer_id.clone(),
                status: Status::AwaitingPayment,
                total_amount: lines.iter().map(|l| l.line_total).sum(),
                currency: currency.clone(),
                created_at,
                expires_at,
                due: false,
                lines,
            })
        })
        .collect();

    let reservations: Vec<Vec<StockChange>> = orders
        .iter()
        .map(|order| {
            let Some(order) = order else { return Vec::new() };
            order
                .lines
                .iter()
                .map(|l| StockChange {
                    sku: l.sku.clone(),
                    kind: MovementKind::Reservation,
                    delta: Delta::By { on_hand: 0, reserved: i64::from(l.quantity) },
                    reason: None,
                    reference: None,
                    order_id: Some(order.id),
                    expected: None,
                })
                .collect()
        })
        .collect();
    let groups: Vec<&[StockChange]> = reservations.iter().map(Vec::as_slice).collect();
    let (outcomes, _) = stock::apply_groups(tx, &groups).await?;

    let placements: Vec<Placement> = orders
        .into_iter()
        .zip(outcomes)
        .map(|(order, outcome)| match (order, outcome) {
            (None, _) => Placement::EmptyCart,
            (Some(order), Ok(())) => Placement::Placed(order),
            (Some(order), Err(failures)) => Placement::Short(
                failures
                    .into_iter()
                    .map(|f| Shortage {
                        requested: order.lines[f.index].quantity.into(),
                        available: match f.refusal {
                            Refusal::InsufficientStock { available, .. } => available,
                            _ => 0,
                        },
                        sku: f.sku,
                    })
                    .collect(),
            ),
        })
        .collect();
    let placed: Vec<&Order> = placements
        .iter()
        .filter_map(|p| match p {
            Placement::Placed(o) => Some(o),
            _ => None,
        })
        .collect();
    if !placed.is_empty() {
        let emptied: Vec<Uuid> = requests
            .iter()
            .zip(&placements)
            .filter(|(_, p)| matches!(p, Placement::Placed(_)))
            .map(|(r, _)| r.cart_id)
            .collect();
        insert_many(tx, &placed, &emptied).await?;
    }
    Ok(placements)
}

/// Writes orders, their lines and their `order.placed` events, and empties the carts they
/// came from, with one statement.
async fn insert_many(tx: &mut PgConnection, orders: &[&Order], emptied_carts: &[Uuid]) -> Result<(), sqlx::Error> {
    let ids: Vec<Uuid> = orders.iter().map(|o| o.id).collect();
    let sessions: Vec<Uuid> = orders.iter().map(|o| o.session_id).collect();
    let customers: Vec<Option<String>> = orders.iter().map(|o| o.customer_id.clone()).collect();
    let totals: Vec<i64> = orders.iter().map(|o| o.total_amount).collect();
    let currencies: Vec<String> = orders.iter().map(|o| o.currency.as_str().to_owned()).collect();
    let created: Vec<DateTime<Utc>> = orders.iter().map(|o| o.created_at).collect();
    let expires: Vec<DateTime<Utc>> = orders.iter().map(|o| o.expires_at).collect();
    let events: Vec<Value> = orders.iter().map(|o| o.event_data()).collect();
    let mut line_order = Vec::new();
    let mut positions = Vec::new();
    let mut skus = Vec::new();
    let mut names = Vec::new();
    let mut quantities = Vec::new();
    let mut prices = Vec::new();
    let mut line_totals = Vec::new();
    for o in orders {
        for (i, l) in o.lines.iter().enumerate() {
            line_order.push(o.id);
            positions.push(i as i32);
            skus.push(l.sku.to_string());
            names.push(l.name.clone());
            quantities.push(l.quantity);
            prices.push(l.unit_price);
            line_totals.push(l.line_total);
        }
    }
    sqlx::query!(
        r#"WITH placed AS (
               INSERT INTO orders (id, session_id, customer_id, status, total_amount, currency, created_at, expires_at, updated_at)
               SELECT id, session_id, customer_id, 'awaiting_payment', total, currency, created_at, expires_at, created_at
               FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::int8[], $5::text[], $6::timestamptz[], $7::timestamptz[])
                    AS o (id, session_id, customer_id, total, currency, created_at, expires_at)
           ), lines AS (
               INSERT INTO order_lines (order_id, position, sku, name, quantity, unit_price, line_total)
               SELECT * FROM unnest($8::uuid[], $9::int4[], $10::text[], $11::text[], $12::int4[], $13::int8[], $14::int8[])
           ), events AS (
               INSERT INTO outbox_events (topic, payload) SELECT 'order.placed', e FROM unnest($15::jsonb[]) AS e
           ), emptied AS (
               DELETE FROM cart_lines WHERE cart_id = ANY($16)
           )
           UPDATE carts SET version = version + 1, updated_at = now() WHERE id = ANY($16)"#,
        &ids,
        &sessions,
        &customers as &[Option<String>],
        &totals,
        &currencies,
        &created,
        &expires,
        &line_order,
        &positions,
        &skus,
        &names,
        &quantities,
        &prices,
        &line_totals,
        &events,
        emptied_carts
    )
    .execute(tx)
    .await?;
    Ok(())
}

struct OrderRow {
    id: Uuid,
    session_id: Uuid,
    customer_id: Option<String>,
    status: String,
    total_amount: i64,
    currency: Currency,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    due: bool,
}

async fn with_lines(conn: &mut PgConnection, rows: Vec<OrderRow>) -> Result<Vec<Order>, sqlx::Error> {
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let lines = sqlx::query!(
        r#"SELECT order_id, sku AS "sku: Sku", name, quantity, unit_price, line_total
           FROM order_lines WHERE order_id = ANY($1) ORDER BY order_id, position"#,
        &ids
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Order {
            lines: lines
                .iter()
                .filter(|l| l.order_id == r.id)
                .map(|l| OrderLine {
                    sku: l.sku.clone(),
                    name: l.name.clone(),
                    quantity: l.quantity,
                    unit_price: l.unit_price,
                    line_total: l.line_total,
                })
                .collect(),
            id: r.id,
            session_id: r.session_id,
            customer_id: r.customer_id,
            status: Status::parse(&r.status).unwrap_or(Status::Cancelled),
            total_amount: r.total_amount,
            currency: r.currency,
            created_at: r.created_at,
            expires_at: r.expires_at,
            due: r.due,
        })
        .collect())
}

pub async fn find(conn: &mut PgConnection, id: Uuid, viewer: &Viewer<'_>) -> Result<Option<Order>, sqlx::Error> {
    let (all, session_id, customer_id) = viewer.parts();
    let row = sqlx::query_as!(
        OrderRow,
        r#"SELECT o.id, o.session_id, o.customer_id, o.status, o.total_amount, o.currency AS "currency: Currency", o.created_at, o.expires_at,
                  o.due AS "due!"
           FROM orders o
           WHERE o.id = $1 AND ($2 OR o.session_id = $3 OR o.customer_id = $4)"#,
        id,
        all,
        session_id,
        customer_id
    )
    .fetch_optional(&mut *conn)
    .await?;
    Ok(with_lines(conn, row.into_iter().collect()).await?.pop())
}

/// Like `find`, and locks the order until the transaction ends. The lock is taken first, so
/// what `find` then reads is what the lock protects; locking an order the viewer may not see
/// changes nothing, and the order is read (and its visibility decided) in one place.
pub async fn lock(tx: &mut PgConnection, id: Uuid, viewer: &Viewer<'_>) -> Result<Option<Order>, sqlx::Error> {
    sqlx::query!("SELECT id FROM orders WHERE id = $1 FOR UPDATE", id).fetch_optional(&mut *tx).await?;
    find(tx, id, viewer).await
}

/// Newest first. The cursor is the (created_at, id) of the last order of the previous page.
pub async fn list(
    conn: &mut PgConnection,
    viewer: &Viewer<'_>,
    status: Option<Status>,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<Order>, sqlx::Error> {
    let (all, session_id, customer_id) = viewer.parts();
    let (after_at, after_id) = after.unzip();
    let rows = sqlx::query_as!(
        OrderRow,
        r#"SELECT o.id, o.session_id, o.customer_id, o.status, o.total_amount, o.currency AS "currency: Currency", o.created_at, o.expires_at,
                  o.due AS "due!"
           FROM orders o
           WHERE ($1 OR o.session_id = $2 OR o.customer_id = $3)
             AND ($4::text IS NULL OR o.status = $4)
             AND ($5::timestamptz IS NULL OR (o.created_at, o.id) < ($5, $6))
           ORDER BY o.created_at DESC, o.id DESC
           LIMIT $7"#,
        all,
        session_id,
        customer_id,
        status.map(Status::as_str),
        after_at,
        after_id,
        limit
    )
    .fetch_all(&mut *conn)
    .await?;
    with_lines(conn, rows).await
}

#[derive(Debug)]
pub enum TransitionError {
    Invalid { from: Status, to: Status },
    Database(sqlx::Error),
}

impl From<sqlx::Error> for TransitionError {
    fn from(e: sqlx::Error) -> Self {
        TransitionError::Database(e)
    }
}

/// Moves a locked order to `to`, with the stock movements the lifecycle asks for and an
/// `order.<status>` outbox event, in the caller's transaction.
pub async fn transition(
    tx: &mut PgConnection,
    order: &Order,
    to: Status,
    reference: Option<&str>,
) -> Result<Order, TransitionError> {
    if !order.status.can_become(to) {
        return Err(TransitionError::Invalid { from: order.status, to });
    }
    let changes: Vec<StockChange> = order
        .lines
        .iter()
        .filter_map(|l| {
            let (kind, delta) = to.stock_effect(l.quantity.into())?;
            Some(StockChange {
                sku: l.sku.clone(),
                kind,
                delta,
                reason: None,
                reference: None,
                order_id: Some(order.id),
                expected: None,
            })
        })
        .collect();
    if !changes.is_empty() {
        if let Err(failures) = stock::apply(tx, &changes).await? {
            // Reserved stock always covers open orders; if it does not, stop before writing.
            return Err(TransitionError::Database(sqlx::Error::Protocol(format!(
                "order {} cannot become {}: stock refused {failures:?}",
                order.id,
                to.as_str()
            ))));
        }
    }
    let mut after = order.clone();
    after.status = to;
    after.due = false;
    sqlx::query!(
        r#"WITH changed AS (
               UPDATE orders SET status = $2, payment_reference = coalesce($3, payment_reference), updated_at = now()
               WHERE id = $1
           )
           INSERT INTO outbox_events (topic, payload) VALUES ('order.' || $2, $4)"#,
        order.id,
        to.as_str(),
        reference,
        after.event_data()
    )
    .execute(tx)
    .await?;
    Ok(after)
}

/// Ids of unpaid orders past their deadline, oldest deadline first.
pub async fn due_for_expiry(conn: &mut PgConnection, limit: i64) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar!("SELECT o.id FROM orders o WHERE o.due ORDER BY o.expires_at LIMIT $1", limit)
        .fetch_all(conn)
        .await
}

/// Locks an order for a change, expiring it first when it is past its payment deadline: every
/// path that touches an order (a shopper's or admin's change, a read, the expiry task) goes
/// through here, so an overdue order is never changed, or shown, as if it were still open.
/// Returns the order as it now is and whether this call expired it.
pub async fn lock_current(
    tx: &mut PgConnection,
    id: Uuid,
    viewer: &Viewer<'_>,
) -> Result<Option<(Order, bool)>, TransitionError> {
    let Some(order) = lock(tx, id, viewer).await? else {
        return Ok(None);
    };
    if !order.due {
        return Ok(Some((order, false)));
    }
    Ok(Some((transition(tx, &order, Status::Expired, None).await?, true)))
}

/// Expires one order if it is still due, skipping it when another replica holds it.
/// Returns true when this call expired it: the status check under the row lock makes the
/// release happen exactly once, whichever replica gets there first.
pub async fn expire_if_due(tx: &mut PgConnection, id: Uuid) -> Result<bool, TransitionError> {
    let free = sqlx::query_scalar!("SELECT o.id FROM orders o WHERE o.id = $1 AND o.due FOR UPDATE SKIP LOCKED", id)
        .fetch_optional(&mut *tx)
        .await?;
    if free.is_none() {
        return Ok(false);
    }
    Ok(matches!(lock_current(tx, id, &Viewer::Admin).await?, Some((_, true))))
}
