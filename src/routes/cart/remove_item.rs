use actix_web::{web, HttpRequest, HttpResponse};

use crate::{
    auth::SessionBearer,
    cart_changes::Op,
    domain::Sku,
    error::{ApiError, ApiResult},
    state::State,
};

/// `DELETE /v1/cart/items/{sku}`: the cart without that line (removing an absent line is fine).
pub async fn handle(
    session: SessionBearer,
    state: State,
    req: HttpRequest,
    sku: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let sku = Sku::parse(&sku).map_err(|_| ApiError::unknown_sku(&sku))?;
    super::change(&state, session, &req, Op::Remove { sku }).await
}
