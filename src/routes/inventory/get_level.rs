use actix_web::{web, HttpResponse};

use super::{level_response, path_sku};
use crate::{
    auth::Admin,
    error::{ApiError, ApiResult},
    state::State,
    store::stock,
};

/// `GET /v1/admin/inventory/{sku}`: the level with its ETag.
pub async fn handle(_: Admin, state: State, sku: web::Path<String>) -> ApiResult<HttpResponse> {
    let sku = path_sku(&sku)?;
    let mut conn = state.pool.acquire().await?;
    let level = stock::level(&mut conn, sku.as_str()).await?.ok_or_else(|| ApiError::unknown_sku(sku.as_str()))?;
    Ok(level_response(&level))
}
