use actix_web::HttpResponse;

use crate::{
    auth::Admin,
    cart_view::cart_response,
    domain::{parse_customer_id, TokenHash},
    error::{ApiError, ApiResult},
    extract::JsonBody,
    problem::Problem,
    state::State,
    store::{carts, memory, sessions},
};

/// `POST /v1/admin/sessions/attach`: the storefront's backend vouches that this session's
/// shopper logged in as `customer_id`. In one transaction the guest cart is merged into the
/// customer's cart and the session switches to it, so every session of the customer, on
/// any replica, sees one cart. Repeating the call changes nothing.
pub async fn handle(_: Admin, state: State, JsonBody(body): JsonBody) -> ApiResult<HttpResponse> {
    let token = body.str("token", Problem::InvalidToken)?;
    let customer_id = parse_customer_id(body.str("customer_id", Problem::InvalidCustomerId)?)?;

    let hash = TokenHash::of(token);
    let mut tx = state.pool.begin().await?;
    // The guest cart is locked before the session, in the order a cart change takes them (its
    // cart, then its session when that slides): the merge below then reads every line a change
    // was acknowledged for, and no change can add a line to the cart it deletes. (Only attach
    // moves a session to another cart, so an unattached session's cart is the one locked here.)
    if let Some(cart) = sessions::cart_of(&mut tx, &hash).await? {
        carts::lock(&mut tx, cart).await?;
    }
    let (session_id, guest_cart, bound_to) = sessions::lock_by_hash(&mut tx, &hash)
        .await?
        .ok_or_else(|| ApiError::new(Problem::UnknownSession, "no live session has this token"))?;
    let cart_id = match bound_to {
        Some(existing) if existing == customer_id => guest_cart,
        Some(_) => {
            return Err(ApiError::new(Problem::SessionAlreadyAttached, "this session belongs to another customer"))
        }
        None => {
            let customer_cart = carts::lock_customer_cart(&mut tx, &customer_id).await?;
            carts::merge_guest_cart(&mut tx, guest_cart, customer_cart).await?;
            memory::merge(&mut tx, guest_cart, customer_cart).await?;
            sessions::bind_customer(&mut tx, session_id, &customer_id, customer_cart).await?;
            carts::delete_guest(&mut tx, guest_cart).await?;
            customer_cart
        }
    };
    let cart = carts::load(&mut tx, cart_id).await?.ok_or_else(ApiError::internal)?;
    crate::store::commit(tx).await?;
    state.carts.invalidate(guest_cart);
    Ok(cart_response(&state, cart))
}
