use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::{path_id, unknown};
use crate::{
    auth::Admin,
    error::{ApiError, ApiResult},
    extract::{page, ListQuery},
    state::State,
    store::{self, webhooks},
};

/// `GET /v1/admin/webhooks/{id}/deliveries?status=&after=&limit=`: the delivery log, newest
/// first; the cursor is a delivery id.
pub async fn handle(_: Admin, state: State, req: HttpRequest, id: web::Path<String>) -> ApiResult<HttpResponse> {
    let id = path_id(&id)?;
    let query = ListQuery::parse(&req)?;
    let status = query.param("status");
    if status.is_some_and(|s| !matches!(s, "pending" | "succeeded" | "failed")) {
        return Err(ApiError::invalid_query("status must be pending, succeeded or failed"));
    }
    let before = query
        .after
        .as_deref()
        .map(|raw| {
            raw.parse::<i64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| ApiError::invalid_query("after is not a cursor of this list"))
        })
        .transpose()?;
    let mut conn = state.pool.acquire().await?;
    webhooks::find(&mut conn, id).await?.ok_or_else(unknown)?;
    let rows = webhooks::deliveries(&mut conn, id, status, before, query.limit + 1).await?;
    let next = (rows.len() as i64 > query.limit).then(|| rows[query.limit as usize - 1].id.to_string());
    let items = rows
        .iter()
        .take(query.limit as usize)
        .map(|d| {
            json!({
                "id": d.id,
                "event_id": d.event_id,
                "event_type": d.event_type,
                "status": d.status,
                "attempts": d.attempts,
                "last_status_code": d.last_status_code,
                "last_error": d.last_error,
                "next_attempt_at": (d.status == "pending").then(|| store::timestamp(&d.next_attempt_at)),
                "updated_at": store::timestamp(&d.updated_at),
            })
        })
        .collect();
    Ok(crate::routes::ok(&page(items, next)))
}
