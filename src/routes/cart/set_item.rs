use actix_web::{web, HttpRequest, HttpResponse};

use crate::{
    auth::SessionBearer,
    cart_changes::Op,
    domain::{Invalid, Quantity, Sku, MAX_LINE_QUANTITY},
    error::{ApiError, ApiResult},
    extract::JsonBody,
    problem::Problem,
    state::State,
};

/// `PUT /v1/cart/items/{sku}`: sets the line to `quantity`; 0 removes it.
pub async fn handle(
    session: SessionBearer,
    state: State,
    req: HttpRequest,
    sku: web::Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<HttpResponse> {
    let sku = Sku::parse(&sku).map_err(|_| ApiError::unknown_sku(&sku))?;
    let quantity = match body.int("quantity", Problem::InvalidQuantity)? {
        0 => None,
        n => Some(Quantity::parse(n).map_err(|_| {
            Invalid::new(Problem::InvalidQuantity, format!("quantity must be 0 to {MAX_LINE_QUANTITY}"))
        })?),
    };
    super::change(&state, session, &req, Op::Set { sku, quantity }).await
}
