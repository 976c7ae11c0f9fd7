//! The cart endpoints. Reads are served from the hot-cart cache when the session read says
//! it is current (see `cache.rs`); every change goes through the replica's coalesced cart
//! changes (`cart_changes/`), which lock the cart, check If-Match against its version, apply
//! the cart rules and answer the new cart once committed.

pub mod add_item;
pub mod clear;
pub mod get;
pub mod remove_item;
pub mod set_item;

use actix_web::{HttpRequest, HttpResponse};

use crate::{
    auth::SessionBearer,
    cart_changes::{Change, Op},
    cart_view::cart_response,
    error::ApiResult,
    extract::if_match,
    state::AppState,
};

/// Makes `op` to the cart of the request's session and answers the cart after it.
async fn change(
    state: &AppState,
    SessionBearer(token): SessionBearer,
    req: &HttpRequest,
    op: Op,
) -> ApiResult<HttpResponse> {
    let expected = if_match(req)?;
    let cart = state.cart_changes.make(Change { token, expected, op }).await?;
    Ok(cart_response(state, cart))
}
