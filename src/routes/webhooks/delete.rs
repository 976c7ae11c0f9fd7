use actix_web::{web, HttpResponse};

use super::{path_id, unknown};
use crate::{auth::Admin, error::ApiResult, state::State, store::webhooks};

/// `DELETE /v1/admin/webhooks/{id}`: 204; its pending deliveries go with it, so none starts
/// afterwards (one already in flight may still arrive).
pub async fn handle(_: Admin, state: State, id: web::Path<String>) -> ApiResult<HttpResponse> {
    let id = path_id(&id)?;
    let mut conn = state.pool.acquire().await?;
    if !webhooks::delete(&mut conn, id).await? {
        return Err(unknown());
    }
    Ok(HttpResponse::NoContent().finish())
}
