use actix_web::{http::StatusCode, HttpResponse};
use uuid::Uuid;

use super::{endpoint_json, parse_description, parse_types};
use crate::{
    auth::Admin,
    error::{ApiError, ApiResult},
    extract::JsonBody,
    problem::Problem,
    state::State,
    store::webhooks::{self, NewEndpoint},
    webhooks::{guard, sign},
};

/// `POST /v1/admin/webhooks`: 201 with the endpoint and its secret, which is shown only here
/// and on rotation. The endpoint receives events committed from now on.
pub async fn handle(_: Admin, state: State, JsonBody(body): JsonBody) -> ApiResult<HttpResponse> {
    let raw_url = body.str("url", Problem::InvalidUrl)?;
    let url = guard::check_url(raw_url, state.settings.webhook_allow_private)
        .await
        .map_err(|e| ApiError::new(Problem::InvalidUrl, e))?;
    let types = body.get("types").map(parse_types).transpose()?.unwrap_or_default();
    let description = parse_description(body.opt_str("description", Problem::InvalidDescription)?.unwrap_or(""))?;
    let (secret, shown) = sign::new_secret();

    let mut conn = state.pool.acquire().await?;
    let endpoint = webhooks::create(
        &mut conn,
        NewEndpoint {
            id: Uuid::now_v7(),
            url: url.as_str(),
            types: &types,
            description: &description,
            sealed_secret: &state.sealer.seal(&secret),
        },
    )
    .await?;
    let mut answer = endpoint_json(&endpoint);
    answer["secret"] = shown.into();
    Ok(crate::routes::json(StatusCode::CREATED, &answer))
}
