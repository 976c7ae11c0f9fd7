use actix_web::{HttpRequest, HttpResponse};

use super::{insufficient, unknown_sku, CartWrite};
use crate::{
    auth::Shopper,
    domain::{Invalid, Quantity, Sku, MAX_CART_LINES, MAX_LINE_QUANTITY},
    error::ApiResult,
    extract::JsonBody,
    startup::State,
    store::carts,
};

/// `POST /v1/cart/items`: adds `quantity` to the SKU's line.
pub async fn handle(
    shopper: Shopper,
    state: State,
    req: HttpRequest,
    JsonBody(body): JsonBody,
) -> ApiResult<HttpResponse> {
    let sku = Sku::parse(body.str("sku", "invalid_sku")?)?;
    let quantity = Quantity::parse(body.int("quantity", "invalid_quantity")?)?;

    let mut write = CartWrite::begin(&state, &shopper, &req).await?;
    let cart_id = write.cart_id();
    let line =
        carts::line_context(write.conn(), cart_id, sku.as_str()).await?.ok_or_else(|| unknown_sku(sku.as_str()))?;
    let new_quantity = i64::from(line.current_quantity.unwrap_or(0)) + i64::from(quantity.get());
    if new_quantity > MAX_LINE_QUANTITY {
        return Err(Invalid::new("invalid_quantity", format!("a line holds at most {MAX_LINE_QUANTITY}")).into());
    }
    if line.current_quantity.is_none() && line.line_count >= MAX_CART_LINES {
        return Err(Invalid::new("cart_full", format!("a cart holds at most {MAX_CART_LINES} lines")).into());
    }
    if new_quantity > line.available {
        return Err(insufficient(sku.as_str(), new_quantity, line.available));
    }
    carts::set_line(write.conn(), cart_id, sku.as_str(), new_quantity as i32).await?;
    write.finish(&state).await
}
