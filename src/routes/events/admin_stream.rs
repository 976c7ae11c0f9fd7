use actix_web::{HttpRequest, HttpResponse};

use crate::{
    auth::Admin,
    error::{ApiError, ApiResult},
    events::{sse, types::parse_filter},
    extract::ListQuery,
    state::State,
};

/// `GET /v1/admin/events/stream?types=&sku=`: every matching event as it commits, on any
/// replica; resumes after `Last-Event-ID` (or `?after=`) with nothing missed or repeated.
pub async fn handle(_: Admin, state: State, req: HttpRequest) -> ApiResult<HttpResponse> {
    let query = ListQuery::parse(&req)?;
    let filter = parse_filter(query.param("types"), query.param("sku")).map_err(ApiError::invalid_query)?;
    let resume = super::resume_from(&req, query.after.as_deref())?;
    let slot = state.events.admit().ok_or_else(super::too_many_streams)?;
    Ok(super::stream_response(sse::admin(state.events.clone(), slot, filter, resume)))
}
