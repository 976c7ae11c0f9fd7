//! The cart endpoints. Reads are served from the hot-cart cache when the session read says
//! it is current (see `cache.rs`); every write is one transaction that locks the cart row,
//! bumps its version, checks If-Match against the version it had, and answers the new cart.

pub mod add_item;
pub mod clear;
pub mod get;
pub mod remove_item;
pub mod set_item;

use actix_web::{HttpRequest, HttpResponse};
use sqlx::{PgConnection, Postgres, Transaction};
use uuid::Uuid;

use crate::{
    cart_view::cart_response,
    domain::{ExpectedVersion, TokenHash},
    error::{ApiError, ApiResult},
    extract::if_match,
    problem::Shortage,
    state::AppState,
    store::{
        carts::{self, CartView, LineProduct, LockedCart},
        sessions,
    },
};

/// One change of a cart, from lock to answer: BEGIN, one statement that authenticates the
/// session, locks and bumps its cart and reads it (lines, prices, the product to change), the
/// change itself, COMMIT. The answer is the cart as read under the lock with the change
/// applied in memory, so it needs no second read.
pub struct CartWrite {
    tx: Transaction<'static, Postgres>,
    locked: LockedCart,
}

impl CartWrite {
    /// Opens a change of the session's cart without reading it (emptying it needs no read).
    /// A stale If-Match is 412 with the current cart; an unknown session is 401.
    pub async fn begin(state: &AppState, token: &TokenHash, req: &HttpRequest) -> ApiResult<CartWrite> {
        let expected = if_match(req)?;
        let mut tx = state.pool.begin().await?;
        let locked = match carts::begin_change(&mut tx, token).await? {
            Some(locked) => locked,
            // See `begin_with`.
            None => {
                carts::create_for(&mut tx, token).await?;
                carts::begin_change(&mut tx, token).await?.ok_or_else(unknown_session)?
            }
        };
        CartWrite::opened(state, tx, locked, expected).await
    }

    /// Opens a change of the session's cart and reads it, with the product `sku` (`None` when
    /// there is no such product), as `begin` does otherwise.
    pub async fn begin_with(
        state: &AppState,
        token: &TokenHash,
        req: &HttpRequest,
        sku: &str,
    ) -> ApiResult<(CartWrite, CartView, Option<LineProduct>)> {
        let expected = if_match(req)?;
        let mut tx = state.pool.begin().await?;
        let (locked, read) = match carts::begin_change_and_load(&mut tx, token, sku).await? {
            Some(found) => found,
            // The session's first change: its cart has no row yet, so make it. Or the session
            // was attached to a customer while this change waited for its guest cart, which is
            // then gone, and it now names the customer's cart. Either way, once more with a
            // fresh snapshot before answering 401.
            None => {
                carts::create_for(&mut tx, token).await?;
                carts::begin_change_and_load(&mut tx, token, sku).await?.ok_or_else(unknown_session)?
            }
        };
        let mut write = CartWrite::opened(state, tx, locked, expected).await?;
        let (cart, product) = match read {
            Some(read) => read,
            // A concurrent change came between the read and the lock: read again, under it.
            None => carts::load_for_change(&mut write.tx, write.locked.cart_id, sku)
                .await?
                .ok_or_else(ApiError::internal)?,
        };
        Ok((write, cart, product))
    }

    async fn opened(
        state: &AppState,
        mut tx: Transaction<'static, Postgres>,
        locked: LockedCart,
        expected: Option<ExpectedVersion>,
    ) -> ApiResult<CartWrite> {
        if expected.is_some_and(|e| !e.matches(locked.version - 1)) {
            tx.rollback().await?;
            let mut conn = state.pool.acquire().await?;
            // Read after the lock was let go: a revocation (DELETE /v1/session) may have taken
            // the guest cart meanwhile, and then the session is gone too.
            let current = carts::load(&mut conn, locked.cart_id).await?.ok_or_else(unknown_session)?;
            return Err(ApiError::version_mismatch(current.version, current.to_json(&state.settings.currency)));
        }
        if sessions::needs_slide(locked.session_expires_at, state.settings.session_ttl) {
            sessions::touch_many(&mut tx, &[locked.session_id], state.settings.session_ttl).await?;
        }
        Ok(CartWrite { tx, locked })
    }

    pub fn conn(&mut self) -> &mut PgConnection {
        &mut self.tx
    }

    pub fn cart_id(&self) -> Uuid {
        self.locked.cart_id
    }

    /// The locked cart with no lines (for emptying it without reading it).
    pub fn empty_view(&self) -> CartView {
        CartView {
            id: self.locked.cart_id,
            version: self.locked.version,
            updated_at: self.locked.updated_at,
            catalog_revision: self.locked.catalog_revision,
            lines: Vec::new(),
        }
    }

    /// Commits and answers `cart`, the new state of the cart.
    pub async fn finish(self, state: &AppState, cart: CartView) -> ApiResult<HttpResponse> {
        crate::store::commit(self.tx).await?;
        Ok(cart_response(state, &cart))
    }
}

/// 409 for a line that would exceed what is available now (a soft check: checkout holds the
/// hard guarantee).
fn insufficient(sku: &str, requested: i64, available: i64) -> ApiError {
    ApiError::insufficient_stock(
        format!("only {available} of {sku} are available"),
        &[Shortage { sku, requested, available }],
    )
}

fn unknown_session() -> ApiError {
    ApiError::unauthorized("unknown, expired or revoked session token")
}
