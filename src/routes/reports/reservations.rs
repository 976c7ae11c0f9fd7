use actix_web::{HttpRequest, HttpResponse};

use crate::{
    auth::Admin,
    error::ApiResult,
    reports::{self, RESERVATION_COLUMNS},
    state::State,
};

/// `GET /v1/admin/reports/reservations`: reservations held now (one row in CSV).
pub async fn handle(_: Admin, state: State, req: HttpRequest) -> ApiResult<HttpResponse> {
    let mut conn = state.pool.acquire().await?;
    let body = reports::reservations(&mut conn, chrono::Utc::now()).await?;
    Ok(super::answer(&req, &body, RESERVATION_COLUMNS, std::slice::from_ref(&body)))
}
