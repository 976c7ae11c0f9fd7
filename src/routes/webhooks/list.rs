use actix_web::{HttpRequest, HttpResponse};
use uuid::Uuid;

use super::endpoint_json;
use crate::{
    auth::Admin,
    error::{ApiError, ApiResult},
    extract::{page, ListQuery},
    state::State,
    store::webhooks,
};

/// `GET /v1/admin/webhooks`: every endpoint, by id (oldest first: ids are UUIDv7).
pub async fn handle(_: Admin, state: State, req: HttpRequest) -> ApiResult<HttpResponse> {
    let query = ListQuery::parse(&req)?;
    let after = query
        .after
        .as_deref()
        .map(|raw| Uuid::parse_str(raw).map_err(|_| ApiError::invalid_query("after is not a cursor of this list")))
        .transpose()?;
    let mut conn = state.pool.acquire().await?;
    let rows = webhooks::list(&mut conn, after, query.limit + 1).await?;
    let next = (rows.len() as i64 > query.limit).then(|| rows[query.limit as usize - 1].id.to_string());
    let items = rows.iter().take(query.limit as usize).map(endpoint_json).collect();
    Ok(crate::routes::ok(&page(items, next)))
}
