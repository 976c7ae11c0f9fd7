use actix_web::{
    http::{header, StatusCode},
    HttpRequest, HttpResponse,
};
use serde_json::Value;

use crate::{
    auth::SessionBearer,
    checkout::{Answer, CheckoutRequest, Unanswered},
    error::{ApiError, ApiResult, PROBLEM_JSON},
    problem::Problem,
    state::State,
};

/// `POST /v1/checkout`: hands the checkout to the replica's coalescing queue (`checkout/`),
/// where one transaction claims the idempotency key, freezes the cart into an order, empties
/// the cart, reserves every line (all or none) and stores the answer. A repeat of the key
/// replays that answer, on any replica.
/// The session is authenticated inside that transaction, with the rest of its batch.
pub async fn handle(SessionBearer(token): SessionBearer, state: State, req: HttpRequest) -> ApiResult<HttpResponse> {
    let key = idempotency_key(&req)?;
    let answer = state.checkouts.place(CheckoutRequest { token, key }).await.map_err(unanswered)?;
    if let Some(cart_id) = answer.cart_id {
        state.carts.invalidate(cart_id);
    }
    Ok(respond(&answer))
}

/// A checkout the queue could not answer: the replica is stopping (the client retries
/// elsewhere), the database could not be reached or not in time (503 with Retry-After, like
/// any request), or the database failed it (mapped like any database error).
fn unanswered(reason: Unanswered) -> ApiError {
    match reason {
        Unanswered::ShuttingDown => ApiError::new(Problem::ShuttingDown, "this replica is stopping; retry"),
        Unanswered::Lost => ApiError::internal(),
        Unanswered::DatabaseUnavailable => ApiError::unavailable("the database is unavailable; try again"),
        Unanswered::TimedOut => ApiError::unavailable("the checkout could not start in time; try again"),
        Unanswered::Database(e) => e.into(),
    }
}

fn idempotency_key(req: &HttpRequest) -> ApiResult<String> {
    let Some(raw) = req.headers().get("idempotency-key") else {
        return Err(ApiError::new(
            Problem::IdempotencyKeyRequired,
            "send an Idempotency-Key header (1 to 255 characters)",
        ));
    };
    let key = raw
        .to_str()
        .map_err(|_| ApiError::new(Problem::InvalidIdempotencyKey, "Idempotency-Key must be visible ASCII"))?;
    if key.is_empty() {
        return Err(ApiError::new(
            Problem::IdempotencyKeyRequired,
            "send an Idempotency-Key header (1 to 255 characters)",
        ));
    }
    if key.len() > 255 {
        return Err(ApiError::new(Problem::InvalidIdempotencyKey, "Idempotency-Key must be 1 to 255 characters"));
    }
    Ok(key.to_owned())
}

fn respond(answer: &Answer) -> HttpResponse {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    let mut response = HttpResponse::build(status);
    response.insert_header((header::CONTENT_TYPE, if status.is_success() { "application/json" } else { PROBLEM_JSON }));
    if status == StatusCode::CREATED {
        if let Some(id) = answer.body.get("id").and_then(Value::as_str) {
            response.insert_header((header::LOCATION, format!("/v1/orders/{id}")));
        }
    }
    if status == StatusCode::UNAUTHORIZED {
        response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
    }
    if answer.replayed {
        response.insert_header(("Idempotent-Replayed", "true"));
    }
    response.body(answer.body.to_string())
}
