use actix_web::{web, HttpResponse};

use crate::{
    auth::SessionBearer,
    domain::Sku,
    error::{ApiError, ApiResult},
    memory::reads::ReadFailure,
    state::State,
    store::products,
};

/// `GET /v1/products/{sku}`: availability is read from PostgreSQL, never a cache. With a live
/// session token the same statement records the view (shared with the reads that arrive
/// together, `memory::reads`), so `recently-viewed` on any replica shows it as soon as this
/// answers; if recording fails, the product is read without it.
/// The SKU is parsed like on every other `{sku}` route: one that cannot exist (a NUL byte,
/// which PostgreSQL refuses in text, or 65 characters) is not found, never a database error.
pub async fn handle(state: State, sku: web::Path<String>, session: Option<SessionBearer>) -> ApiResult<HttpResponse> {
    let sku = Sku::parse(&sku).map_err(|_| ApiError::unknown_sku(&sku))?;
    let product = match session {
        Some(SessionBearer(hash)) => match state.view_reads.read(hash, sku.as_str()).await {
            Ok(found) => found,
            Err(ReadFailure::Fatal(e)) => return Err(e),
            Err(ReadFailure::NotRecorded) => {
                // The shopper came for the product, not for the list: count it and move on.
                state.views.record_failed();
                products::find(&mut *state.views_pool.acquire().await?, sku.as_str()).await?
            }
        },
        None => products::find(&mut *state.pool.acquire().await?, sku.as_str()).await?,
    };
    let product = product.ok_or_else(|| ApiError::unknown_sku(sku.as_str()))?;
    state.views.count(&product.sku);
    Ok(crate::routes::ok(&product.to_json()))
}
