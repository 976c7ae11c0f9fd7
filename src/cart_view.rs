//! A cart as the API answers it (JSON body and ETag), and the hot-cart cache filled on the way.
//!
//! Its own module because more than the cart endpoints answer a cart (attaching a session
//! answers the merged cart): they share this rather than reach into each other's routes.

use std::sync::Arc;

use actix_web::{http::header, web::Bytes, HttpResponse};

use crate::{cache::CachedCart, error::etag, state::AppState, store::carts::CartView};

/// Answers a cart with its ETag, and keeps the assembled body for the next read.
pub fn cart_response(state: &AppState, cart: CartView) -> HttpResponse {
    let body = Bytes::from(cart.to_bytes(&state.settings.currency));
    let version = cart.version;
    state.carts.put(
        cart.id,
        CachedCart { version, catalog_revision: cart.catalog_revision, body: body.clone(), view: Arc::new(cart) },
    );
    cached_response(version, body)
}

pub fn cached_response(version: i64, body: Bytes) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::ETAG, etag(version)))
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .body(body)
}
