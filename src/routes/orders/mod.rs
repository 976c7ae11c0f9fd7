//! Order endpoints. Every status change goes through `change_status`, which applies the
//! lifecycle (including expiry of an unpaid order found past its deadline) in one place.

pub mod admin_list;
pub mod cancel;
pub mod list;
pub mod pay;
pub mod ship;
pub mod show;

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::{
    error::{ApiError, ApiResult},
    extract::{page, ListQuery},
    problem::Problem,
    state::AppState,
    store::orders::{self, Order, Status, TransitionError, Viewer},
};

fn unknown_order() -> ApiError {
    ApiError::new(Problem::UnknownOrder, "no such order")
}

/// Ids that are not well formed are simply orders that do not exist.
fn order_id(raw: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(raw).map_err(|_| unknown_order())
}

fn transition_error(err: TransitionError) -> ApiError {
    match err {
        TransitionError::Invalid { from, to } => invalid_transition(from, to),
        TransitionError::Database(e) => e.into(),
    }
}

fn invalid_transition(from: Status, to: Status) -> ApiError {
    ApiError::new(
        Problem::InvalidTransition,
        format!("an order that is {} cannot become {}", from.as_str(), to.as_str()),
    )
    .with("status", Value::from(from.as_str()))
}

/// Moves the order to `to` under its row lock. An unpaid order found past its deadline is
/// expired first (its stock released), and the requested change is then refused.
async fn change_status(
    state: &AppState,
    id: Uuid,
    viewer: Viewer<'_>,
    to: Status,
    reference: Option<&str>,
) -> ApiResult<Order> {
    let mut tx = state.pool.begin().await?;
    let (order, expired) =
        orders::lock_current(&mut tx, id, &viewer).await.map_err(transition_error)?.ok_or_else(unknown_order)?;
    if expired {
        crate::store::commit(tx).await?;
        return Err(invalid_transition(Status::Expired, to));
    }
    if to == Status::Cancelled && order.status == Status::Cancelled {
        return Ok(order); // Cancelling twice is answered like the first time.
    }
    let after = orders::transition(&mut tx, &order, to, reference).await.map_err(transition_error)?;
    crate::store::commit(tx).await?;
    Ok(after)
}

/// The cursor of an order list: the position of the last order shown.
fn cursor(order: &Order) -> String {
    format!("{}_{}", order.created_at.timestamp_micros(), order.id)
}

/// Cursors name times PostgreSQL can hold and this service can have written: chrono reaches
/// further back and ahead than `timestamptz` does, and a time outside it is a database error.
const CURSOR_MICROS: std::ops::RangeInclusive<i64> = 0..=253_402_300_799_999_999; // 1970 to 9999

pub fn parse_cursor(raw: &str) -> ApiResult<(DateTime<Utc>, Uuid)> {
    let bad = || ApiError::invalid_query("after is not a cursor of this list");
    let (micros, id) = raw.split_once('_').ok_or_else(bad)?;
    let at = micros
        .parse::<i64>()
        .ok()
        .filter(|m| CURSOR_MICROS.contains(m))
        .and_then(DateTime::from_timestamp_micros)
        .ok_or_else(bad)?;
    Ok((at, Uuid::parse_str(id).map_err(|_| bad())?))
}

async fn list_page(
    state: &AppState,
    viewer: Viewer<'_>,
    status: Option<Status>,
    query: &ListQuery,
) -> ApiResult<Value> {
    let after = query.after.as_deref().map(parse_cursor).transpose()?;
    let mut conn = state.pool.acquire().await?;
    let found = orders::list(&mut conn, &viewer, status, after, query.limit + 1).await?;
    let next = (found.len() as i64 > query.limit).then(|| cursor(&found[query.limit as usize - 1]));
    Ok(page(found.iter().take(query.limit as usize).map(Order::to_json).collect(), next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_outside_what_postgresql_holds_do_not_parse() {
        let id = "00000000-0000-0000-0000-000000000000";
        for micros in ["-300000000000000000", "-1", "253402300800000000", "9223372036854775807", ""] {
            assert!(parse_cursor(&format!("{micros}_{id}")).is_err(), "{micros}");
        }
        let (at, _) = parse_cursor(&format!("1700000000000000_{id}")).unwrap();
        assert_eq!(at.timestamp(), 1_700_000_000);
    }
}
