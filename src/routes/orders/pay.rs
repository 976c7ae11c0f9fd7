use actix_web::{web, HttpResponse};

use super::{change_status, order_id};
use crate::{
    auth::Admin,
    domain::parse_reference,
    error::ApiResult,
    extract::JsonBody,
    problem::Problem,
    state::State,
    store::orders::{Status, Viewer},
};

/// `POST /v1/admin/orders/{id}/payment`: records the payment of an order awaiting it.
pub async fn handle(
    _: Admin,
    state: State,
    id: web::Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<HttpResponse> {
    let id = order_id(&id)?;
    let reference = parse_reference(body.str("reference", Problem::InvalidReference)?)?;
    let order = change_status(&state, id, Viewer::Admin, Status::Paid, Some(&reference)).await?;
    Ok(crate::routes::ok(&order.to_json()))
}
