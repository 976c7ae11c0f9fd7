use actix_web::{HttpRequest, HttpResponse};

use crate::{
    domain::Sku,
    error::{ApiError, ApiResult},
    events::sse,
    extract::QueryParams,
    state::State,
    store::events,
};

/// Most SKUs one storefront stream may follow.
const MAX_SKUS: usize = 100;

/// `GET /v1/stock/stream?skus=A,B`: for storefronts, no token. The current state of each SKU
/// first, then one `stock` event per change.
pub async fn handle(state: State, req: HttpRequest) -> ApiResult<HttpResponse> {
    let params = QueryParams::parse(&req)?;
    let param = |name: &str| params.get(name);
    let mut skus: Vec<String> = Vec::new();
    for raw in param("skus").unwrap_or("").split(',').filter(|s| !s.is_empty()) {
        let sku = Sku::parse(raw).map_err(|_| ApiError::invalid_query(format!("{raw:?} is not a valid SKU")))?;
        if !skus.iter().any(|s| s == sku.as_str()) {
            skus.push(sku.as_str().to_owned());
        }
    }
    if skus.is_empty() || skus.len() > MAX_SKUS {
        return Err(ApiError::invalid_query(format!("skus must name 1 to {MAX_SKUS} SKUs, comma-separated")));
    }
    let resume = super::resume_from(&req, param("after"))?;
    {
        let mut conn = state.pool.acquire().await?;
        let known = events::sku_states(&mut conn, &skus).await?;
        if known.len() != skus.len() {
            let unknown: Vec<&str> =
                skus.iter().filter(|s| !known.iter().any(|k| &k.sku == *s)).map(String::as_str).collect();
            return Err(ApiError::invalid_query(format!("unknown SKUs: {}", unknown.join(", "))));
        }
    }
    let slot = state.events.admit().ok_or_else(super::too_many_streams)?;
    Ok(super::stream_response(sse::public(state.events.clone(), slot, skus, resume)))
}
