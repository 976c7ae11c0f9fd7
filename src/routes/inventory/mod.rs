pub mod adjust;
pub mod batch;
pub mod get_level;
pub mod movements;
pub mod set_level;

use actix_web::{http::header, HttpResponse};

use crate::{
    domain::{Sku, ADJUSTMENT_REASONS, MAX_DELTA},
    error::{etag, ApiError},
    extract::Fields,
    store::stock::{Failure, Level, Refusal},
};

/// A level with its ETag.
fn level_response(level: &Level) -> HttpResponse {
    HttpResponse::Ok().insert_header((header::ETAG, etag(level.version))).json(level)
}

/// A SKU named in a path: one that cannot exist is simply not found.
fn path_sku(raw: &str) -> Result<Sku, ApiError> {
    Sku::parse(raw).map_err(|_| ApiError::not_found("unknown_sku", format!("no product with sku {raw:?}")))
}

/// The answer to a refused change of one level.
fn refusal_error(failure: Failure) -> ApiError {
    match failure.refusal {
        Refusal::UnknownSku => ApiError::not_found("unknown_sku", format!("no product with sku {:?}", failure.sku)),
        Refusal::VersionMismatch => {
            let current = failure.current.expect("a version mismatch has a current level");
            ApiError::version_mismatch(current.version, serde_json::to_value(&current).unwrap_or_default())
        }
        Refusal::InsufficientStock { requested, available } => ApiError::conflict(
            "insufficient_stock",
            "on_hand cannot fall below reserved: that stock is held by open orders",
        )
        .with("requested", requested)
        .with("available", available),
        Refusal::OutOfRange => ApiError::unprocessable("quantity_out_of_range", "on_hand would exceed 10^12"),
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
    let delta = body.int("delta", "invalid_delta")?;
    if delta == 0 || delta.abs() > MAX_DELTA {
        return Err(Invalid::new(
            "invalid_delta",
            format!("delta must be non-zero and at most {MAX_DELTA} in magnitude"),
        ));
    }
    let reason = body.str("reason", "invalid_reason")?;
    if !ADJUSTMENT_REASONS.contains(&reason) {
        return Err(Invalid::new("invalid_reason", format!("reason must be one of {}", ADJUSTMENT_REASONS.join(", "))));
    }
    let reference = body.opt_str("reference", "invalid_reference")?.map(parse_reference).transpose()?;
    Ok(AdjustmentInput { delta, reason: reason.to_owned(), reference })
}
