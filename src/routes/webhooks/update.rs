use actix_web::{web, HttpResponse};

use super::{endpoint_json, parse_description, parse_types, path_id, unknown};
use crate::{
    auth::Admin,
    error::{ApiError, ApiResult},
    extract::JsonBody,
    problem::Problem,
    state::State,
    store::webhooks::{self, Patch},
    webhooks::guard,
};

/// `PATCH /v1/admin/webhooks/{id}`: any of url, types, description, status. Re-enabling
/// clears `disabled_reason`; deliveries held while it was disabled then go out.
pub async fn handle(
    _: Admin,
    state: State,
    id: web::Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<HttpResponse> {
    let id = path_id(&id)?;
    let url = match body.opt_str("url", Problem::InvalidUrl)? {
        Some(raw) => Some(
            guard::check_url(raw, state.settings.webhook_allow_private)
                .await
                .map_err(|e| ApiError::new(Problem::InvalidUrl, e))?
                .to_string(),
        ),
        None => None,
    };
    let types = body.get("types").map(parse_types).transpose()?;
    let description = body.opt_str("description", Problem::InvalidDescription)?.map(parse_description).transpose()?;
    let status = body.opt_str("status", Problem::InvalidStatus)?;
    if status.is_some_and(|s| !matches!(s, "enabled" | "disabled")) {
        return Err(ApiError::new(Problem::InvalidStatus, "status must be enabled or disabled"));
    }
    let mut conn = state.pool.acquire().await?;
    let endpoint = webhooks::update(
        &mut conn,
        id,
        Patch { url: url.as_deref(), types: types.as_deref(), description: description.as_deref(), status },
    )
    .await?
    .ok_or_else(unknown)?;
    Ok(crate::routes::ok(&endpoint_json(&endpoint)))
}
