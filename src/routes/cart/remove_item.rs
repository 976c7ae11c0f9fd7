use actix_web::{web, HttpRequest, HttpResponse};

use super::CartWrite;
use crate::{
    auth::SessionBearer,
    domain::Sku,
    error::{ApiError, ApiResult},
    state::State,
    store::carts,
};

/// `DELETE /v1/cart/items/{sku}`: the cart without that line (removing an absent line is fine).
pub async fn handle(
    SessionBearer(token): SessionBearer,
    state: State,
    req: HttpRequest,
    sku: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let sku = Sku::parse(&sku).map_err(|_| ApiError::unknown_sku(&sku))?;
    let (mut write, mut cart, _) = CartWrite::begin_with(&state, &token, &req, sku.as_str()).await?;
    let cart_id = write.cart_id();
    carts::remove_line(write.conn(), cart_id, sku.as_str()).await?;
    cart.remove_line(sku.as_str());
    write.finish(&state, cart).await
}
