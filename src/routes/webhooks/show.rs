use actix_web::{web, HttpResponse};

use super::{endpoint_json, path_id, unknown};
use crate::{auth::Admin, error::ApiResult, state::State, store::webhooks};

/// `GET /v1/admin/webhooks/{id}`.
pub async fn handle(_: Admin, state: State, id: web::Path<String>) -> ApiResult<HttpResponse> {
    let id = path_id(&id)?;
    let mut conn = state.pool.acquire().await?;
    let endpoint = webhooks::find(&mut conn, id).await?.ok_or_else(unknown)?;
    Ok(crate::routes::ok(&endpoint_json(&endpoint)))
}
