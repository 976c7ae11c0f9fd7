use actix_web::{web, HttpResponse};

use crate::{
    error::{ApiError, ApiResult},
    state::State,
    store::products,
};

/// `GET /v1/products/{sku}`: availability is read from PostgreSQL, never a cache.
pub async fn handle(state: State, sku: web::Path<String>) -> ApiResult<HttpResponse> {
    let mut conn = state.pool.acquire().await?;
    let product = products::find(&mut conn, &sku).await?.ok_or_else(|| ApiError::unknown_sku(sku.as_str()))?;
    Ok(crate::routes::ok(&product.to_json()))
}
