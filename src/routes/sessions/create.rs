use actix_web::{http::StatusCode, HttpResponse};
use serde_json::json;

use crate::{edge::SessionQuota, error::ApiResult, state::State, store::sessions, store::timestamp};

/// `POST /v1/sessions`: a new session with an empty guest cart. The token is shown only here.
/// Each creation spends one of the client address's quota (`STOCKCART_SESSION_RATE_LIMIT`):
/// a session costs rows for 30 days, and nothing else stops one client from minting millions.
pub async fn handle(_: SessionQuota, state: State) -> ApiResult<HttpResponse> {
    let (token, expires_at) = sessions::create(&state.pool, state.settings.session_ttl).await?;
    Ok(crate::routes::json(
        StatusCode::CREATED,
        &json!({ "token": token.as_str(), "expires_at": timestamp(&expires_at) }),
    ))
}
