use actix_web::{web, HttpRequest, HttpResponse};

use super::path_sku;
use crate::{
    auth::Admin,
    error::{ApiError, ApiResult},
    extract::{page, ListQuery},
    state::State,
    store::stock,
};

/// `GET /v1/admin/inventory/{sku}/movements`: the ledger, oldest first; the cursor is a movement id.
pub async fn handle(_: Admin, state: State, req: HttpRequest, sku: web::Path<String>) -> ApiResult<HttpResponse> {
    let sku = path_sku(&sku)?;
    let query = ListQuery::parse(&req)?;
    let after = match &query.after {
        Some(raw) => raw
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| ApiError::invalid_query("after is not a cursor of this list"))?,
        None => 0,
    };
    let mut conn = state.pool.acquire().await?;
    if stock::level(&mut conn, sku.as_str()).await?.is_none() {
        return Err(ApiError::unknown_sku(sku.as_str()));
    }
    let rows = stock::movements(&mut conn, sku.as_str(), after, query.limit + 1).await?;
    let next = (rows.len() as i64 > query.limit).then(|| rows[query.limit as usize - 1].id.to_string());
    let items = rows.iter().take(query.limit as usize).map(|m| serde_json::to_value(m).unwrap_or_default()).collect();
    Ok(crate::routes::ok(&page(items, next)))
}
