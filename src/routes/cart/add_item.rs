use actix_web::{HttpRequest, HttpResponse};

use super::{insufficient, CartWrite};
use crate::{
    auth::SessionBearer,
    domain::{Invalid, Quantity, Sku, MAX_CART_LINES, MAX_LINE_QUANTITY},
    error::{ApiError, ApiResult},
    extract::JsonBody,
    problem::Problem,
    state::State,
    store::carts,
};

/// `POST /v1/cart/items`: adds `quantity` to the SKU's line.
pub async fn handle(
    SessionBearer(token): SessionBearer,
    state: State,
    req: HttpRequest,
    JsonBody(body): JsonBody,
) -> ApiResult<HttpResponse> {
    let sku = Sku::parse(body.str("sku", Problem::InvalidSku)?)?;
    let quantity = Quantity::parse(body.int("quantity", Problem::InvalidQuantity)?)?;

    let (mut write, mut cart, product) = CartWrite::begin_with(&state, &token, &req, sku.as_str()).await?;
    let product = product.ok_or_else(|| ApiError::unknown_sku(sku.as_str()))?;
    let current = cart.quantity_of(sku.as_str());
    let new_quantity = i64::from(current.unwrap_or(0)) + i64::from(quantity.get());
    if new_quantity > MAX_LINE_QUANTITY {
        return Err(Invalid::new(Problem::InvalidQuantity, format!("a line holds at most {MAX_LINE_QUANTITY}")).into());
    }
    if current.is_none() && cart.lines.len() as i64 >= MAX_CART_LINES {
        return Err(Invalid::new(Problem::CartFull, format!("a cart holds at most {MAX_CART_LINES} lines")).into());
    }
    if new_quantity > product.available {
        return Err(insufficient(sku.as_str(), new_quantity, product.available));
    }
    let cart_id = write.cart_id();
    carts::set_line(write.conn(), cart_id, sku.as_str(), new_quantity as i32).await?;
    cart.set_line(sku.as_str(), new_quantity as i32, &product);
    write.finish(&state, cart).await
}
