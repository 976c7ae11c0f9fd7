use actix_web::{web, HttpResponse};

use super::{order_id, transition_error, unknown_order};
use crate::{
    auth::Shopper,
    error::ApiResult,
    state::State,
    store::orders::{self, Viewer},
};

/// `GET /v1/orders/{id}`: 404 for anything not the caller's, so existence does not leak.
/// An unpaid order read past its deadline is expired first, so no reader sees it late.
pub async fn handle(shopper: Shopper, state: State, id: web::Path<String>) -> ApiResult<HttpResponse> {
    let id = order_id(&id)?;
    let viewer = Viewer::Shopper { session_id: shopper.session_id, customer_id: shopper.customer_id.as_deref() };
    let mut conn = state.pool.acquire().await?;
    let mut order = orders::find(&mut conn, id, &viewer).await?.ok_or_else(unknown_order)?;
    if order.due {
        drop(conn);
        let mut tx = state.pool.begin().await?;
        let (current, _) =
            orders::lock_current(&mut tx, id, &viewer).await.map_err(transition_error)?.ok_or_else(unknown_order)?;
        crate::store::commit(tx).await?;
        order = current;
    }
    Ok(crate::routes::ok(&order.to_json()))
}
