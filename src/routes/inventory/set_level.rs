use actix_web::{web, HttpRequest, HttpResponse};

use super::{level_response, path_sku, refusal_error};
use crate::{
    auth::Admin,
    domain::{parse_reference, Invalid, MAX_ON_HAND},
    error::{ApiError, ApiResult},
    extract::{if_match, JsonBody},
    problem::Problem,
    state::State,
    store::stock::{self, Delta, MovementKind, StockChange},
};

/// `PUT /v1/admin/inventory/{sku}`: sets on_hand absolutely. If-Match is required, since an
/// absolute write over a level the client has not seen would silently undo other changes.
pub async fn handle(
    _: Admin,
    state: State,
    req: HttpRequest,
    sku: web::Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<HttpResponse> {
    let sku = path_sku(&sku)?;
    let on_hand = body.int("on_hand", Problem::InvalidOnHand)?;
    if !(0..=MAX_ON_HAND).contains(&on_hand) {
        return Err(Invalid::new(Problem::InvalidOnHand, format!("on_hand must be 0 to {MAX_ON_HAND}")).into());
    }
    let reference = body.opt_str("reference", Problem::InvalidReference)?.map(parse_reference).transpose()?;
    let expected = if_match(&req)?.ok_or_else(|| {
        ApiError::new(Problem::PreconditionRequired, "send If-Match: \"<version>\" from the level's ETag")
    })?;
    let change = StockChange {
        sku,
        kind: MovementKind::Set,
        delta: Delta::SetOnHand(on_hand),
        reason: None,
        reference,
        order_id: None,
        expected: Some(expected),
    };

    let mut tx = state.pool.begin().await?;
    match stock::apply(&mut tx, &[change]).await? {
        Ok(levels) => {
            crate::store::commit(tx).await?;
            Ok(level_response(&levels[0]))
        }
        Err(mut failures) => Err(refusal_error(failures.remove(0))),
    }
}
