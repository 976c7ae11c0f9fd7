use actix_web::{HttpRequest, HttpResponse};

use crate::{
    domain::Sku,
    error::{ApiError, ApiResult},
    extract::{page, ListQuery},
    state::State,
    store::products,
};

/// `GET /v1/products`: ordered by SKU; the cursor is the last SKU of the page.
pub async fn handle(state: State, req: HttpRequest) -> ApiResult<HttpResponse> {
    let query = ListQuery::parse(&req)?;
    let after = match &query.after {
        Some(raw) => Some(Sku::parse(raw).map_err(|_| ApiError::invalid_query("after is not a cursor of this list"))?),
        None => None,
    };
    let mut conn = state.pool.acquire().await?;
    let items = products::list(&mut conn, after.as_ref().map(Sku::as_str), query.limit + 1).await?;
    let next = (items.len() as i64 > query.limit).then(|| items[query.limit as usize - 1].sku.clone());
    let items = items.iter().take(query.limit as usize).map(|p| p.to_json()).collect();
    Ok(crate::routes::ok(&page(items, next)))
}
