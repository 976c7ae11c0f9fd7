use actix_web::{HttpRequest, HttpResponse};

use crate::{auth::Shopper, error::ApiResult, extract::ListQuery, state::State, store::orders::Viewer};

/// `GET /v1/orders`: the session's orders, and its customer's when it is attached; newest first.
pub async fn handle(shopper: Shopper, state: State, req: HttpRequest) -> ApiResult<HttpResponse> {
    let query = ListQuery::parse(&req)?;
    let viewer = Viewer::Shopper { session_id: shopper.session_id, customer_id: shopper.customer_id.as_deref() };
    Ok(crate::routes::ok(&super::list_page(&state, viewer, None, &query).await?))
}
