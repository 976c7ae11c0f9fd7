use actix_web::{http::StatusCode, web, HttpResponse};

use crate::{
    auth::Admin,
    domain::{parse_product_name, Invalid, Money, Sku, MAX_ON_HAND},
    error::ApiResult,
    extract::JsonBody,
    problem::Problem,
    state::State,
    store::products::{self, ProductInput},
};

/// `PUT /v1/admin/products/{sku}`: 201 when created (with on_hand 0), 200 when updated.
pub async fn handle(
    _: Admin,
    state: State,
    sku: web::Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<HttpResponse> {
    let sku = Sku::parse(&sku)?;
    let name = parse_product_name(body.str("name", Problem::InvalidName)?)?;
    let price = Money::parse_price(body.get("price"), &state.settings.currency)?;
    let low_stock_threshold = body.opt_int("low_stock_threshold", Problem::InvalidThreshold)?;
    if low_stock_threshold.is_some_and(|t| !(0..=MAX_ON_HAND).contains(&t)) {
        return Err(Invalid::new(Problem::InvalidThreshold, "low_stock_threshold must be 0 or more").into());
    }

    let mut tx = state.pool.begin().await?;
    let (product, created) =
        products::upsert(&mut tx, ProductInput { sku: &sku, name: &name, price: &price, low_stock_threshold }).await?;
    crate::store::commit(tx).await?;

    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok(crate::routes::json(status, &product.to_json()))
}
