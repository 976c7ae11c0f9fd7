pub mod adjust;
pub mod batch;
pub mod get_level;
pub mod movements;
pub mod set_level;

use actix_web::{http::header, HttpResponse};

use crate::{
    domain::{Sku, ADJUSTMENT_REASONS, MAX_DELTA, MAX_ON_HAND},
    error::{etag, ApiError},
    extract::Fields,
    problem::{Problem, Shortage},
    store::stock::{Failure, Level, Refusal},
};

/// A level with its ETag.
fn level_response(level: &Level) -> HttpResponse {
    HttpResponse::Ok().insert_header((header::ETAG, etag(level.version))).json(level)
}

/// A SKU named in a path: one that cannot exist is simply not found.
fn path_sku(raw: &str) -> Result<Sku, ApiError> {
    Sku::parse(raw).map_err(|_| ApiError::unknown_sku(raw))
}

/// The answer to a refused change of one level.
fn refusal_error(failure: Failure) -> ApiError {
    match failure.refusal {
        Refusal::UnknownSku => ApiError::unknown_sku(failure.sku.as_str()),
        Refusal::VersionMismatch => {
            let current = failure.current.expect("a version mismatch has a current level");
            ApiError::version_mismatch(current.version, serde_json::to_value(&current).unwrap_or_default())
        }
        // `requested` and `available` stay at the top level too, as they were before `shortages`.
        Refusal::InsufficientStock { requested, available } => ApiError::insufficient_stock(
            "on_hand cannot fall below reserved: that stock is held by open orders",
            &[Shortage { sku: failure.sku.as_str(), requested, available }],
        )
        .with("requested", requested)
        .with("available", available),
        Refusal::OutOfRange => {
            ApiError::new(Problem::QuantityOutOfRange, format!("on_hand would exceed {MAX_ON_HAND}"))
        }
    }
}

/// The problem of a refused change, named here rather than by `store/`, which speaks no codes.
fn refusal_problem(refusal: &Refusal) -> Problem {
    match refusal {
        Refusal::UnknownSku => Problem::UnknownSku,
        Refusal::InsufficientStock { .. } => Problem::InsufficientStock,
        Refusal::VersionMismatch => Problem::VersionMismatch,
        Refusal::OutOfRange => Problem::QuantityOutOfRange,
    }
}

/// The parts of an adjustment shared by the single and the batch endpoint.
struct AdjustmentInput {
    delta: i64,
    reason: String,
    reference: Option<String>,
}

fn parse_adjustment(body: &Fields) -> Result<AdjustmentInput, crate::domain::Invalid> {
    use crate::domain::{parse_reference, Invalid};
    let delta = body.int("delta", Problem::InvalidDelta)?;
    // Not `delta.abs()`: i64::MIN has no absolute value (it wraps in release builds).
    if delta == 0 || !(-MAX_DELTA..=MAX_DELTA).contains(&delta) {
        return Err(Invalid::new(
            Problem::InvalidDelta,
            format!("delta must be non-zero and at most {MAX_DELTA} in magnitude"),
        ));
    }
    let reason = body.str("reason", Problem::InvalidReason)?;
    if !ADJUSTMENT_REASONS.contains(&reason) {
        return Err(Invalid::new(
            Problem::InvalidReason,
            format!("reason must be one of {}", ADJUSTMENT_REASONS.join(", ")),
        ));
    }
    let reference = body.opt_str("reference", Problem::InvalidReference)?.map(parse_reference).transpose()?;
    Ok(AdjustmentInput { delta, reason: reason.to_owned(), reference })
}
