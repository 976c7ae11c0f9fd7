use actix_web::{HttpRequest, HttpResponse};
use serde_json::json;

use crate::{
    auth::Admin,
    error::{ApiError, ApiResult},
    extract::ListQuery,
    reports::{self, StockCursor, StockQuery, StockSort, STOCK_COLUMNS},
    state::State,
    store::stock::StockStatus,
};

/// `GET /v1/admin/reports/stock?window=&status=&sort=&limit=&after=`: stock health per SKU.
pub async fn handle(_: Admin, state: State, req: HttpRequest) -> ApiResult<HttpResponse> {
    let query = ListQuery::parse(&req)?;
    let status = match query.param("status") {
        None => None,
        Some("in_stock") => Some(StockStatus::InStock),
        Some("low") => Some(StockStatus::Low),
        Some("out") => Some(StockStatus::Out),
        Some(_) => return Err(ApiError::invalid_query("status must be one of in_stock, low, out")),
    };
    let sort = match query.param("sort") {
        None => StockSort::Sku,
        Some(raw) => StockSort::parse(raw).ok_or_else(|| {
            ApiError::invalid_query("sort must be one of sku, days_of_cover, units_sold, velocity_per_day")
        })?,
    };
    let after = match query.after.as_deref() {
        None => None,
        Some(raw) => {
            Some(StockCursor::parse(raw).ok_or_else(|| ApiError::invalid_query("after is not a cursor of this list"))?)
        }
    };
    let q =
        StockQuery { window: super::window(query.param("window"))?, status, sort, limit: query.limit as usize, after };
    let mut tx = state.pool.begin().await?;
    let (page, next) = reports::stock(&mut tx, &state.pool, &q).await?;
    tx.commit().await?;
    let items: Vec<_> = page.iter().map(|i| i.to_json()).collect();
    let body = json!({ "items": items, "next": next.map(|c| c.encode()) });
    Ok(super::answer(&req, &body, STOCK_COLUMNS, &items))
}
