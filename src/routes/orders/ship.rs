use actix_web::{web, HttpResponse};

use super::{change_status, order_id};
use crate::{
    auth::Admin,
    error::ApiResult,
    state::State,
    store::orders::{Status, Viewer},
};

/// `POST /v1/admin/orders/{id}/ship`: on_hand and reserved both fall by the order's quantities.
pub async fn handle(_: Admin, state: State, id: web::Path<String>) -> ApiResult<HttpResponse> {
    let id = order_id(&id)?;
    let order = change_status(&state, id, Viewer::Admin, Status::Shipped, None).await?;
    Ok(crate::routes::ok(&order.to_json()))
}
