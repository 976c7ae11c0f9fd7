use actix_web::{HttpRequest, HttpResponse};

use crate::{
    auth::Admin,
    error::{ApiError, ApiResult},
    extract::ListQuery,
    state::State,
    store::orders::{Status, Viewer},
};

/// `GET /v1/admin/orders?status=`: every order, newest first.
pub async fn handle(_: Admin, state: State, req: HttpRequest) -> ApiResult<HttpResponse> {
    let query = ListQuery::parse(&req)?;
    let status = match query.param("status") {
        None => None,
        Some(raw) => Some(Status::parse(raw).ok_or_else(|| {
            ApiError::invalid_query("status must be awaiting_payment, paid, shipped, cancelled or expired")
        })?),
    };
    Ok(crate::routes::ok(&super::list_page(&state, Viewer::Admin, status, &query).await?))
}
