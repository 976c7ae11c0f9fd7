use actix_web::{HttpRequest, HttpResponse};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;

use crate::{
    auth::Admin,
    domain::Sku,
    error::{ApiError, ApiResult},
    extract::ListQuery,
    reports::{self, MOVEMENT_COLUMNS},
    state::State,
    store::reports as rstore,
};

/// `GET /v1/admin/reports/movements?sku=&bucket=hour|day&from=&to=`: a time series of one SKU
/// or of all. `to` defaults to now, `from` to 30 days before `to`; at most 366 days apart.
pub async fn handle(_: Admin, state: State, req: HttpRequest) -> ApiResult<HttpResponse> {
    let query = ListQuery::parse(&req)?;
    let sku = query
        .param("sku")
        .map(|raw| Sku::parse(raw).map_err(|_| ApiError::invalid_query("sku is not a SKU")))
        .transpose()?;
    let daily = match query.param("bucket") {
        None | Some("day") => true,
        Some("hour") => false,
        Some(_) => return Err(ApiError::invalid_query("bucket must be hour or day")),
    };
    let time = |name: &str| {
        query
            .param(name)
            .map(|raw| {
                DateTime::parse_from_rfc3339(raw)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|_| ApiError::invalid_query(format!("{name} must be an RFC 3339 timestamp")))
            })
            .transpose()
    };
    let to = time("to")?.unwrap_or_else(Utc::now);
    let from = time("from")?.unwrap_or(to - TimeDelta::days(30));
    if from >= to {
        return Err(ApiError::invalid_query("from must be before to"));
    }
    if to - from > TimeDelta::days(366) {
        return Err(ApiError::invalid_query("from and to may be at most 366d apart"));
    }
    let mut tx = state.pool.begin().await?;
    // The report opens its snapshot with the transaction's first statement; the SKU is checked after.
    let series = reports::movements(&mut tx, sku.as_ref().map(Sku::as_str), daily, from, to).await?;
    if let Some(sku) = &sku {
        if !rstore::sku_exists(&mut tx, sku.as_str()).await? {
            return Err(ApiError::invalid_query(format!("no product has the SKU {}", sku.as_str())));
        }
    }
    tx.commit().await?;
    let items: Vec<_> = series.iter().map(reports::bucket_json).collect();
    Ok(super::answer(&req, &json!({ "items": items }), MOVEMENT_COLUMNS, &items))
}
