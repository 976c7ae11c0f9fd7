use actix_web::{HttpRequest, HttpResponse};
use serde_json::json;

use crate::{
    auth::Admin,
    error::{ApiError, ApiResult},
    events::{hub::resource, types::parse_filter},
    extract::ListQuery,
    state::State,
    store::events,
};

/// `GET /v1/admin/events?after=&types=&sku=&limit=`: the log, oldest first. `next` is the id
/// to pass as `after` to go on: the last event's, or `after` itself on an empty page.
pub async fn handle(_: Admin, state: State, req: HttpRequest) -> ApiResult<HttpResponse> {
    let query = ListQuery::parse(&req)?;
    let after = super::parse_event_id(query.after.as_deref())?.unwrap_or(0);
    let filter = parse_filter(query.param("types"), query.param("sku")).map_err(ApiError::invalid_query)?;
    let mut conn = state.pool.acquire().await?;
    // Every write acknowledged before this request is in the answer, on any replica.
    events::sequence_all(&mut conn).await?;
    let rows = events::after(&mut conn, after, &filter, query.limit).await?;
    // On an empty page, where to go on from is where the client is: it keeps its place.
    let next = rows.last().map_or(after, |e| e.position);
    let items: Vec<_> = rows.iter().map(resource).collect();
    Ok(crate::routes::ok(&json!({ "items": items, "next": next })))
}
