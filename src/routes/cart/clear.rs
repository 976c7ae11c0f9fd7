use actix_web::{HttpRequest, HttpResponse};

use super::CartWrite;
use crate::{auth::Shopper, error::ApiResult, startup::State, store::carts};

/// `DELETE /v1/cart`: the empty cart.
pub async fn handle(shopper: Shopper, state: State, req: HttpRequest) -> ApiResult<HttpResponse> {
    let mut write = CartWrite::begin(&state, &shopper, &req).await?;
    let cart_id = write.cart_id();
    carts::clear(write.conn(), cart_id).await?;
    write.finish(&state).await
}
