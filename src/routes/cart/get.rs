use actix_web::HttpResponse;

use crate::{
    auth::Shopper,
    cart_view::{answer, cart_response},
    error::{ApiError, ApiResult},
    state::State,
    store::carts,
};

/// `GET /v1/cart`: the session read (in `Shopper`) already returned the cart's version and
/// the catalog revision, so a warm cart costs that one round trip and nothing more.
pub async fn handle(shopper: Shopper, state: State) -> ApiResult<HttpResponse> {
    if let Some(cart) = state.carts.get(shopper.cart_id, shopper.cart_version, shopper.catalog_revision) {
        return Ok(answer(&state, &cart));
    }
    let mut conn = state.pool.acquire().await?;
    let cart = carts::load(&mut conn, shopper.cart_id)
        .await?
        .ok_or_else(|| ApiError::unauthorized("this session's cart is gone; start a new session"))?;
    Ok(cart_response(&state, cart))
}
