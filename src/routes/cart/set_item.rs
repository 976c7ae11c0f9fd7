use actix_web::{web, HttpRequest, HttpResponse};

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

/// `PUT /v1/cart/items/{sku}`: sets the line to `quantity`; 0 removes it.
pub async fn handle(
    SessionBearer(token): SessionBearer,
    state: State,
    req: HttpRequest,
    sku: web::Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<HttpResponse> {
    let sku = Sku::parse(&sku).map_err(|_| ApiError::unknown_sku(&sku))?;
    let raw = body.int("quantity", Problem::InvalidQuantity)?;
    let quantity = match raw {
        0 => None,
        n => Some(Quantity::parse(n).map_err(|_| {
            Invalid::new(Problem::InvalidQuantity, format!("quantity must be 0 to {MAX_LINE_QUANTITY}"))
        })?),
    };

    let (mut write, mut cart, product) = CartWrite::begin_with(&state, &token, &req, sku.as_str()).await?;
    let product = product.ok_or_else(|| ApiError::unknown_sku(sku.as_str()))?;
    let cart_id = write.cart_id();
    match quantity {
        None => {
            carts::remove_line(write.conn(), cart_id, sku.as_str()).await?;
            cart.remove_line(sku.as_str());
        }
        Some(quantity) => {
            if cart.quantity_of(sku.as_str()).is_none() && cart.lines.len() as i64 >= MAX_CART_LINES {
                return Err(
                    Invalid::new(Problem::CartFull, format!("a cart holds at most {MAX_CART_LINES} lines")).into()
                );
            }
            if i64::from(quantity.get()) > product.available {
                return Err(insufficient(sku.as_str(), quantity.get().into(), product.available));
            }
            carts::set_line(write.conn(), cart_id, sku.as_str(), quantity.get()).await?;
            cart.set_line(sku.as_str(), quantity.get(), &product);
        }
    }
    write.finish(&state, cart).await
}
