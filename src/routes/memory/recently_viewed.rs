use actix_web::{HttpRequest, HttpResponse};
use serde_json::json;

use crate::{
    auth::SessionBearer,
    error::{ApiError, ApiResult},
    extract::QueryParams,
    state::State,
    store::memory::{self, RECENT_LIMIT},
};

/// `GET /v1/session/recently-viewed?limit=`: up to 20 distinct products, most recent first,
/// with their current price and availability.
pub async fn handle(bearer: SessionBearer, state: State, req: HttpRequest) -> ApiResult<HttpResponse> {
    let limit = QueryParams::parse(&req)?.int_in("limit", 1..=RECENT_LIMIT, RECENT_LIMIT)?;
    let mut conn = state.pool.acquire().await?;
    let products = memory::recently_viewed(&mut conn, &bearer.0 .0, limit)
        .await?
        .ok_or_else(|| ApiError::unauthorized("the session token is unknown or expired"))?;
    let items: Vec<_> = products.iter().map(|p| p.to_json()).collect();
    Ok(crate::routes::ok(&json!({ "items": items })))
}
