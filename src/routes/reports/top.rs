use actix_web::{HttpRequest, HttpResponse};
use serde_json::json;

use crate::{
    auth::Admin,
    domain::Money,
    error::{ApiError, ApiResult},
    extract::ListQuery,
    reports::{self, TopBy, TOP_COLUMNS},
    state::State,
};

/// `GET /v1/admin/reports/top?by=units|revenue&window=&limit=`: best sellers with ABC classes.
pub async fn handle(_: Admin, state: State, req: HttpRequest) -> ApiResult<HttpResponse> {
    let query = ListQuery::parse(&req)?;
    let by = match query.param("by") {
        None | Some("units") => TopBy::Units,
        Some("revenue") => TopBy::Revenue,
        Some(_) => return Err(ApiError::invalid_query("by must be units or revenue")),
    };
    let window = super::window(query.param("window"))?;
    let mut tx = state.pool.begin().await?;
    let top = reports::top(&mut tx, &state.pool, window, by, query.limit as usize).await?;
    tx.commit().await?;
    let currency = state.settings.currency.clone();
    let items: Vec<_> = top
        .iter()
        .map(|i| {
            json!({
                "sku": i.sku,
                "name": i.name,
                "units": i.units,
                "revenue": Money::new(i.revenue, currency.clone()),
                "abc": i.abc.to_string(),
            })
        })
        .collect();
    Ok(super::answer(&req, &json!({ "items": items }), TOP_COLUMNS, &items))
}
