use actix_web::{HttpRequest, HttpResponse};

use super::CartWrite;
use crate::{auth::SessionBearer, error::ApiResult, state::State, store::carts};

/// `DELETE /v1/cart`: the empty cart.
pub async fn handle(SessionBearer(token): SessionBearer, state: State, req: HttpRequest) -> ApiResult<HttpResponse> {
    let mut write = CartWrite::begin(&state, &token, &req).await?;
    let cart_id = write.cart_id();
    carts::clear(write.conn(), cart_id).await?;
    let empty = write.empty_view();
    write.finish(&state, empty).await
}
