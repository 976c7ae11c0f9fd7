use actix_web::HttpResponse;

use crate::{auth::Shopper, error::ApiResult, state::State, store::sessions};

/// `DELETE /v1/session`: the row is gone once this answers, and every replica reads the
/// session row on every request, so the token is refused everywhere from then on.
pub async fn handle(shopper: Shopper, state: State) -> ApiResult<HttpResponse> {
    sessions::revoke(&state.pool, shopper.session_id).await?;
    state.carts.invalidate(shopper.cart_id);
    Ok(HttpResponse::NoContent().finish())
}
