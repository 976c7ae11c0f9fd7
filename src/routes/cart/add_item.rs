use actix_web::{HttpRequest, HttpResponse};

use crate::{
    auth::SessionBearer,
    cart_changes::Op,
    domain::{Quantity, Sku},
    error::ApiResult,
    extract::JsonBody,
    problem::Problem,
    state::State,
};

/// `POST /v1/cart/items`: adds `quantity` to the SKU's line.
pub async fn handle(
    session: SessionBearer,
    state: State,
    req: HttpRequest,
    JsonBody(body): JsonBody,
) -> ApiResult<HttpResponse> {
    let sku = Sku::parse(body.str("sku", Problem::InvalidSku)?)?;
    let quantity = Quantity::parse(body.int("quantity", Problem::InvalidQuantity)?)?;
    super::change(&state, session, &req, Op::Add { sku, quantity }).await
}
