use actix_web::{HttpRequest, HttpResponse};
use serde_json::json;

use crate::{
    error::{ApiError, ApiResult},
    extract::QueryParams,
    state::State,
    store::memory,
};

/// `GET /v1/popular-products?window=1h|24h|7d&limit=`: the most viewed products, counted on
/// every replica, at most a few seconds behind.
pub async fn handle(state: State, req: HttpRequest) -> ApiResult<HttpResponse> {
    let params = QueryParams::parse(&req)?;
    let hours = match params.get("window").unwrap_or("24h") {
        "1h" => 1,
        "24h" => 24,
        "7d" => 24 * 7,
        _ => return Err(ApiError::invalid_query("window must be 1h, 24h or 7d")),
    };
    let limit = params.int_in("limit", 1..=100, 10)?;
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
