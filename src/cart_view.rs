//! A cart as the API answers it (JSON body and ETag), and the hot-cart cache filled on the way.
//!
//! Its own module because more than the cart endpoints answer a cart (attaching a session
//! answers the merged cart): they share this rather than reach into each other's routes.

use std::sync::Arc;

use actix_web::{http::header, web::Bytes, HttpResponse};

use crate::{error::etag, state::AppState, store::carts::CartView};

/// Answers a cart with its ETag, and keeps the cart for the next read.
pub fn cart_response(state: &AppState, cart: CartView) -> HttpResponse {
    let response = answer(state, &cart);
    state.carts.put(Arc::new(cart));
    response
}

/// Answers a cart with its ETag: its lines' answers copied (`CartLine`), nothing rendered
/// again but the cart's own fields.
pub fn answer(state: &AppState, cart: &CartView) -> HttpResponse {
    let body = Bytes::from(cart.to_bytes(&state.settings.currency));
    HttpResponse::Ok()
        .insert_header((header::ETAG, etag(cart.version)))
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .body(body)
}
