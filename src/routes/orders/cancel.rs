use actix_web::{web, HttpResponse};

use super::{change_status, order_id};
use crate::{
    auth::Shopper,
    error::ApiResult,
    state::State,
    store::orders::{Status, Viewer},
};

/// `POST /v1/orders/{id}/cancel`: releases the reservation; cancelling again answers 200.
pub async fn handle(shopper: Shopper, state: State, id: web::Path<String>) -> ApiResult<HttpResponse> {
    let id = order_id(&id)?;
    let viewer = Viewer::Shopper { session_id: shopper.session_id, customer_id: shopper.customer_id.as_deref() };
    let order = change_status(&state, id, viewer, Status::Cancelled, None).await?;
    Ok(crate::routes::ok(&order.to_json()))
}
