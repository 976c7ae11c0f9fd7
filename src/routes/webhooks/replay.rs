use actix_web::{http::StatusCode, web, HttpResponse};
use serde_json::json;

use super::{path_id, unknown};
use crate::{
    auth::Admin,
    error::{ApiError, ApiResult},
    extract::JsonBody,
    problem::Problem,
    state::State,
    store::webhooks,
};

/// `POST /v1/admin/webhooks/{id}/replay` `{"after", "until"?}`: 202 `{"queued": n}`; every
/// retained matching event in `(after, until]` is delivered again, with its original
/// `webhook-id`, so a receiver that already has it can tell.
pub async fn handle(
    _: Admin,
    state: State,
    id: web::Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<HttpResponse> {
    let id = path_id(&id)?;
    let after = body.int("after", Problem::InvalidRange)?;
    let until = body.opt_int("until", Problem::InvalidRange)?;
    if after < 0 || until.is_some_and(|u| u < after) {
        return Err(ApiError::new(
            Problem::InvalidRange,
            "after must be an event id (0 or more), until one at or after it",
        ));
    }
    let mut conn = state.pool.acquire().await?;
    webhooks::find(&mut conn, id).await?.ok_or_else(unknown)?;
    let queued = webhooks::replay(&mut conn, id, after, until).await?;
    Ok(crate::routes::json(StatusCode::ACCEPTED, &json!({ "queued": queued })))
}
