use actix_web::{HttpRequest, HttpResponse};
use serde_json::json;

use crate::{
    error::{ApiError, ApiResult},
    state::State,
    store::memory,
};

/// `GET /v1/popular-products?window=1h|24h|7d&limit=`: the most viewed products, counted on
/// every replica, at most a few seconds behind.
pub async fn handle(state: State, req: HttpRequest) -> ApiResult<HttpResponse> {
    let params: Vec<(String, String)> = serde_urlencoded::from_str(req.query_string())
        .map_err(|_| ApiError::invalid_query("the query string does not parse"))?;
    let param = |name: &str| params.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let hours = match param("window").unwrap_or("24h") {
        "1h" => 1,
        "24h" => 24,
        "7d" => 24 * 7,
        _ => return Err(ApiError::invalid_query("window must be 1h, 24h or 7d")),
    };
    let limit = match param("limit") {
        None => 10,
        Some(raw) => raw
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| ApiError::invalid_query("limit must be an integer from 1 to 100"))?,
    };
    let mut conn = state.pool.acquire().await?;
    let items: Vec<_> = memory::popular(&mut conn, hours, limit)
        .await?
        .into_iter()
        .map(|p| {
            let mut item = p.product.to_json();
            item["views"] = p.views.into();
            item
        })
        .collect();
    Ok(crate::routes::ok(&json!({ "items": items })))
}
