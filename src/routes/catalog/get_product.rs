use actix_web::{web, HttpResponse};

use crate::{
    auth::SessionBearer,
    domain::Sku,
    error::{ApiError, ApiResult},
    state::State,
    store::{memory, products},
};

/// `GET /v1/products/{sku}`: availability is read from PostgreSQL, never a cache. With a live
/// session token the same statement records the view, so `recently-viewed` on any replica
/// shows it as soon as this answers; if recording fails, the product is read without it.
/// The SKU is parsed like on every other `{sku}` route: one that cannot exist (a NUL byte,
/// which PostgreSQL refuses in text, or 65 characters) is not found, never a database error.
pub async fn handle(state: State, sku: web::Path<String>, session: Option<SessionBearer>) -> ApiResult<HttpResponse> {
    let sku = Sku::parse(&sku).map_err(|_| ApiError::unknown_sku(&sku))?;
    let product = match session {
        Some(SessionBearer(hash)) => {
            let mut conn = state.views_pool.acquire().await?;
            match memory::read_and_record(&mut conn, sku.as_str(), &hash.0).await {
                Ok(found) => found.map(|(product, _)| product),
                Err(e) if is_database_down(&e) => return Err(e.into()),
                Err(e) => {
                    // The shopper came for the product, not for the list: count it and move on.
                    tracing::warn!(error = %e, "recording a product view failed");
                    state.views.record_failed();
                    products::find(&mut conn, sku.as_str()).await?
                }
            }
        }
        None => products::find(&mut *state.pool.acquire().await?, sku.as_str()).await?,
    };
    let product = product.ok_or_else(|| ApiError::unknown_sku(sku.as_str()))?;
    state.views.count(&product.sku);
    Ok(crate::routes::ok(&product.to_json()))
}

/// A failure the plain read would meet too (the database is gone): no point retrying without
/// recording.
fn is_database_down(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_))
}
