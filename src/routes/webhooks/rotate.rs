use actix_web::{web, HttpResponse};

use super::{endpoint_json, path_id, unknown};
use crate::{auth::Admin, error::ApiResult, state::State, store::webhooks, webhooks::sign};

/// For this long after a rotation, deliveries carry signatures with both secrets, so the
/// receiver can switch over without missing one.
const OVERLAP: chrono::Duration = chrono::Duration::hours(24);

/// `POST /v1/admin/webhooks/{id}/rotate-secret`: 200 with the new `secret`.
pub async fn handle(_: Admin, state: State, id: web::Path<String>) -> ApiResult<HttpResponse> {
    let id = path_id(&id)?;
    let (secret, shown) = sign::new_secret();
    let mut conn = state.pool.acquire().await?;
    let endpoint = webhooks::rotate(&mut conn, id, &state.sealer.seal(&secret), chrono::Utc::now() + OVERLAP)
        .await?
        .ok_or_else(unknown)?;
    let mut answer = endpoint_json(&endpoint);
    answer["secret"] = shown.into();
    Ok(crate::routes::ok(&answer))
}
