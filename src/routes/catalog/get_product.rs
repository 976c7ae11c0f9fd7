use actix_web::{web, HttpResponse};

use crate::{
    domain::Sku,
    error::{ApiError, ApiResult},
    state::State,
    store::products,
};

/// `GET /v1/products/{sku}`: availability is read from PostgreSQL, never a cache.
/// The SKU is parsed like on every other `{sku}` route: one that cannot exist (a NUL byte,
/// which PostgreSQL refuses in text, or 65 characters) is not found, never a database error.
pub async fn handle(state: State, sku: web::Path<String>) -> ApiResult<HttpResponse> {
    let sku = Sku::parse(&sku).map_err(|_| ApiError::unknown_sku(&sku))?;
    let mut conn = state.pool.acquire().await?;
    let product = products::find(&mut conn, sku.as_str()).await?.ok_or_else(|| ApiError::unknown_sku(sku.as_str()))?;
    Ok(crate::routes::ok(&product.to_json()))
}
