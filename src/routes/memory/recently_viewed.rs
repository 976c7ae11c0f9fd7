use actix_web::{HttpRequest, HttpResponse};
use serde_json::json;

use crate::{
    auth::SessionBearer,
    error::{ApiError, ApiResult},
    state::State,
    store::memory::{self, RECENT_LIMIT},
};

/// `GET /v1/session/recently-viewed?limit=`: up to 20 distinct products, most recent first,
/// with their current price and availability.
pub async fn handle(bearer: SessionBearer, state: State, req: HttpRequest) -> ApiResult<HttpResponse> {
    let params: Vec<(String, String)> = serde_urlencoded::from_str(req.query_string())
        .map_err(|_| ApiError::invalid_query("the query string does not parse"))?;
    let limit = match params.iter().rev().find(|(k, _)| k == "limit") {
        None => RECENT_LIMIT,
        Some((_, raw)) => raw
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=RECENT_LIMIT).contains(n))
            .ok_or_else(|| ApiError::invalid_query(format!("limit must be an integer from 1 to {RECENT_LIMIT}")))?,
    };
    let mut conn = state.pool.acquire().await?;
    let products = memory::recently_viewed(&mut conn, &bearer.0 .0, limit)
        .await?
        .ok_or_else(|| ApiError::unauthorized("the session token is unknown or expired"))?;
    let items: Vec<_> = products.iter().map(|p| p.to_json()).collect();
    Ok(crate::routes::ok(&json!({ "items": items })))
}
