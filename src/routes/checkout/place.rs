use actix_web::{
    http::{header, StatusCode},
    HttpRequest, HttpResponse,
};
use serde_json::{json, Value};

use crate::{
    auth::Shopper,
    error::{ApiError, ApiResult, PROBLEM_JSON},
    startup::State,
    store::{
        idempotency::{self, Claim},
        orders::{self, Placement},
    },
};

/// `POST /v1/checkout`: one transaction claims the idempotency key, freezes the cart into an
/// order, empties the cart, reserves every line (all or none) and stores the answer; a
/// repeat of the key replays that answer, on any replica.
pub async fn handle(shopper: Shopper, state: State, req: HttpRequest) -> ApiResult<HttpResponse> {
    let key = idempotency_key(&req)?;

    let mut tx = state.pool.begin().await?;
    match idempotency::claim(&mut tx, shopper.session_id, &key).await? {
        Claim::New => {}
        Claim::Replay { status, body } => return Ok(answer(status, &body, true)),
        Claim::InProgress => {
            return Err(ApiError::conflict(
                "idempotency_in_progress",
                "a checkout with this Idempotency-Key is still running; retry",
            ))
        }
    }
    let placement = orders::place(
        &mut tx,
        shopper.session_id,
        shopper.customer_id.as_deref(),
        shopper.cart_id,
        state.settings.currency.as_str(),
        state.settings.payment_timeout,
    )
    .await?;
    let (status, body) = match placement {
        Placement::Placed(order) => (StatusCode::CREATED, order.to_json()),
        Placement::EmptyCart => {
            let err = ApiError::unprocessable("empty_cart", "the cart is empty");
            (err.status, err.body())
        }
        Placement::Short(shortages) => {
            let list: Vec<Value> = shortages
                .iter()
                .map(|s| json!({ "sku": s.sku, "requested": s.requested, "available": s.available }))
                .collect();
            let err = ApiError::conflict("insufficient_stock", "not enough stock for every line; nothing was reserved")
                .with("shortages", list);
            (err.status, err.body())
        }
    };
    idempotency::record(&mut tx, shopper.session_id, &key, status.as_u16(), &body).await?;
    tx.commit().await?;
    state.carts.invalidate(shopper.cart_id);
    Ok(answer(status.as_u16(), &body, false))
}

fn idempotency_key(req: &HttpRequest) -> ApiResult<String> {
    let Some(raw) = req.headers().get("idempotency-key") else {
        return Err(ApiError::bad_request(
            "idempotency_key_required",
            "send an Idempotency-Key header (1 to 255 characters)",
        ));
    };
    let key = raw
        .to_str()
        .map_err(|_| ApiError::bad_request("invalid_idempotency_key", "Idempotency-Key must be visible ASCII"))?;
    if key.is_empty() {
        return Err(ApiError::bad_request(
            "idempotency_key_required",
            "send an Idempotency-Key header (1 to 255 characters)",
        ));
    }
    if key.len() > 255 {
        return Err(ApiError::bad_request("invalid_idempotency_key", "Idempotency-Key must be 1 to 255 characters"));
    }
    Ok(key.to_owned())
}

fn answer(status: u16, body: &Value, replayed: bool) -> HttpResponse {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let mut response = HttpResponse::build(status);
    response.insert_header((header::CONTENT_TYPE, if status.is_success() { "application/json" } else { PROBLEM_JSON }));
    if status == StatusCode::CREATED {
        if let Some(id) = body.get("id").and_then(Value::as_str) {
            response.insert_header((header::LOCATION, format!("/v1/orders/{id}")));
        }
    }
    if replayed {
        response.insert_header(("Idempotent-Replayed", "true"));
    }
    response.body(body.to_string())
}
