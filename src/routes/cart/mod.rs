//! The cart endpoints. Reads are served from the hot-cart cache when the session read says
//! it is current (see `cache.rs`); every write is one transaction that locks the cart row,
//! bumps its version, checks If-Match against the version it had, and answers the new cart.

pub mod add_item;
pub mod clear;
pub mod get;
pub mod remove_item;
pub mod set_item;

use actix_web::{http::header, web::Bytes, HttpRequest, HttpResponse};
use serde_json::json;
use sqlx::{PgConnection, Postgres, Transaction};
use uuid::Uuid;

use crate::{
    auth::Shopper,
    cache::CachedCart,
    error::{etag, ApiError, ApiResult},
    extract::if_match,
    startup::AppState,
    store::carts::{self, CartView},
};

/// Answers a cart with its ETag, and keeps the assembled body for the next read.
pub fn cart_response(state: &AppState, cart: &CartView) -> HttpResponse {
    let body = Bytes::from(cart.to_json(state.settings.currency.as_str()).to_string());
    state.carts.put(
        cart.id,
        CachedCart { version: cart.version, catalog_revision: cart.catalog_revision, body: body.clone() },
    );
    cached_response(cart.version, body)
}

pub fn cached_response(version: i64, body: Bytes) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::ETAG, etag(version)))
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .body(body)
}

/// One change of a cart, from lock to answer.
pub struct CartWrite {
    tx: Transaction<'static, Postgres>,
    cart_id: Uuid,
}

impl CartWrite {
    /// Locks the cart and bumps its version; a stale If-Match is 412 with the current cart.
    pub async fn begin(state: &AppState, shopper: &Shopper, req: &HttpRequest) -> ApiResult<CartWrite> {
        let expected = if_match(req)?;
        let mut tx = state.pool.begin().await?;
        let previous = carts::begin_change(&mut tx, shopper.cart_id)
            .await?
            .ok_or_else(|| ApiError::unauthorized("this session's cart is gone; start a new session"))?;
        if let Some(expected) = expected.filter(|e| !e.matches(previous)) {
            drop(expected);
            tx.rollback().await?;
            let mut conn = state.pool.acquire().await?;
            let current = carts::load(&mut conn, shopper.cart_id).await?.ok_or_else(ApiError::internal)?;
            return Err(ApiError::version_mismatch(current.version, current.to_json(state.settings.currency.as_str())));
        }
        Ok(CartWrite { tx, cart_id: shopper.cart_id })
    }

    pub fn conn(&mut self) -> &mut PgConnection {
        &mut self.tx
    }

    pub fn cart_id(&self) -> Uuid {
        self.cart_id
    }

    /// Commits and answers the whole new cart.
    pub async fn finish(mut self, state: &AppState) -> ApiResult<HttpResponse> {
        let cart = carts::load(&mut self.tx, self.cart_id).await?.ok_or_else(ApiError::internal)?;
        self.tx.commit().await?;
        Ok(cart_response(state, &cart))
    }
}

/// 409 for a line that would exceed what is available now (a soft check: checkout holds the
/// hard guarantee).
fn insufficient(sku: &str, requested: i64, available: i64) -> ApiError {
    ApiError::conflict("insufficient_stock", format!("only {available} of {sku} are available"))
        .with("shortages", json!([{ "sku": sku, "requested": requested, "available": available }]))
}

fn unknown_sku(sku: &str) -> ApiError {
    ApiError::not_found("unknown_sku", format!("no product with sku {sku:?}"))
}
