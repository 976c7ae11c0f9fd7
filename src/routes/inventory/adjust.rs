use actix_web::{web, HttpRequest, HttpResponse};

use super::{level_response, parse_adjustment, path_sku, refusal_error};
use crate::{
    auth::Admin,
    error::ApiResult,
    extract::{if_match, JsonBody},
    state::State,
    store::stock::{self, Delta, MovementKind, StockChange},
};

/// `POST /v1/admin/inventory/{sku}/adjustments`: on_hand += delta, with a reason; honours If-Match.
pub async fn handle(
    _: Admin,
    state: State,
    req: HttpRequest,
    sku: web::Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<HttpResponse> {
    let sku = path_sku(&sku)?;
    let expected = if_match(&req)?;
    let input = parse_adjustment(&body)?;
    let change = StockChange {
        sku,
        kind: MovementKind::Adjustment,
        delta: Delta::By { on_hand: input.delta, reserved: 0 },
        reason: Some(input.reason),
        reference: input.reference,
        order_id: None,
        expected,
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
