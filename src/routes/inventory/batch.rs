use actix_web::HttpResponse;
use serde_json::{json, Value};

use super::{parse_adjustment, refusal_problem};
use crate::{
    auth::Admin,
    domain::Sku,
    error::{ApiError, ApiResult},
    extract::{Fields, LargeJsonBody},
    problem::Problem,
    state::State,
    store::stock::{self, Delta, MovementKind, Refusal, StockChange},
};

pub const MAX_BATCH: usize = 10_000;

/// `POST /v1/admin/inventory/batch`: up to 10,000 adjustments in one transaction, all or
/// nothing. Every failing line is named by index. The stock module locks rows in SKU order
/// and writes with set-based SQL, so a batch is a handful of round trips and concurrent
/// batches cannot deadlock.
pub async fn handle(_: Admin, state: State, LargeJsonBody(body): LargeJsonBody) -> ApiResult<HttpResponse> {
    let lines = match body.get("adjustments") {
        Some(Value::Array(lines)) if !lines.is_empty() && lines.len() <= MAX_BATCH => lines,
        _ => {
            return Err(ApiError::new(
                Problem::InvalidBatch,
                format!("adjustments must be an array of 1 to {MAX_BATCH} adjustments"),
            ))
        }
    };

    let mut changes = Vec::with_capacity(lines.len());
    let mut errors = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        let sku_raw = line.get("sku").and_then(Value::as_str);
        let parsed = match line {
            Value::Object(map) => {
                let fields = Fields(map.clone());
                Sku::parse(sku_raw.unwrap_or_default()).and_then(|sku| Ok((sku, parse_adjustment(&fields)?)))
            }
            _ => Err(crate::domain::Invalid::new(Problem::InvalidBody, "each adjustment must be an object")),
        };
        match parsed {
            Ok((sku, input)) => changes.push(StockChange {
                sku,
                kind: MovementKind::Adjustment,
                delta: Delta::By { on_hand: input.delta, reserved: 0 },
                reason: Some(input.reason),
                reference: input.reference,
                order_id: None,
                expected: None,
            }),
            Err(invalid) => errors.push(
                json!({ "index": index, "sku": sku_raw, "code": invalid.problem.code(), "detail": invalid.detail }),
            ),
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::new(
            Problem::InvalidBatch,
            format!("{} adjustment(s) are invalid; nothing was applied", errors.len()),
        )
        .with("errors", errors));
    }

    let mut tx = state.pool.begin().await?;
    match stock::apply(&mut tx, &changes).await? {
        Ok(_) => {
            crate::store::commit(tx).await?;
            Ok(crate::routes::ok(&json!({ "applied": changes.len() })))
        }
        Err(failures) => {
            let only_stock = failures.iter().all(|f| matches!(f.refusal, Refusal::InsufficientStock { .. }));
            let errors: Vec<Value> = failures
                .iter()
                .map(|f| json!({ "index": f.index, "sku": f.sku, "code": refusal_problem(&f.refusal).code() }))
                .collect();
            let detail = format!("{} adjustment(s) were refused; nothing was applied", errors.len());
            let err = if only_stock {
                ApiError::new(Problem::InsufficientStock, detail)
            } else {
                ApiError::new(Problem::InvalidBatch, detail)
            };
            Err(err.with("errors", errors))
        }
    }
}
