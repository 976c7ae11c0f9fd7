use actix_web::{http::StatusCode, HttpResponse};
use serde_json::json;

use crate::{error::ApiResult, state::State, store::sessions, store::timestamp};

/// `POST /v1/sessions`: a new session with an empty guest cart. The token is shown only here.
pub async fn handle(state: State) -> ApiResult<HttpResponse> {
    let (token, expires_at) = sessions::create(&state.pool, state.settings.session_ttl).await?;
    Ok(crate::routes::json(
        StatusCode::CREATED,
        &json!({ "token": token.as_str(), "expires_at": timestamp(&expires_at) }),
    ))
}
