use actix_web::{HttpRequest, HttpResponse};

use crate::{auth::SessionBearer, cart_changes::Op, error::ApiResult, state::State};

/// `DELETE /v1/cart`: the empty cart.
pub async fn handle(session: SessionBearer, state: State, req: HttpRequest) -> ApiResult<HttpResponse> {
    super::change(&state, session, &req, Op::Clear).await
}
