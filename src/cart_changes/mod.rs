//! Cart changes, coalesced: the concurrent changes of different carts on a replica share their
//! statements, as checkouts share their transaction (`checkout/`).
//!
//! Why: a change of one cart is little work inside PostgreSQL (a row bumped, a line upserted)
//! but, made alone under a lock, four round trips (BEGIN, lock and read, write, COMMIT), and at
//! a few thousand changes a second the round trips, not the work, are what the database and
//! the replica spend their time on. A batch pays them once for every change in it; with no
//! contention a batch is one change and goes at once. And a batch first goes without locks in
//! two round trips (read; write what is still as read, as its own transaction), since two
//! changes of one cart at the same moment are rare (one shopper, one cart); in one, the write,
//! while this replica's copies of the carts are current (`batch::CopyOdds`).
//!
//! What a shopper sees does not change: each change is decided in memory against its own cart,
//! read after the request arrived, and written only if the cart is still as read (else decided
//! again under the cart's row lock), so one cart's 412 or 409 never fails another and no
//! update is lost; its answer is sent only after the write's commit, so every replica's next
//! read sees it.
//!
//! - `mod.rs`: the change a request asks for and the rules that decide it (written once for
//!   every cart endpoint), and the replica's queue of changes.
//! - `batch.rs`: what one batch does in the database, and what a failed batch means for the
//!   changes in it.

mod batch;

use std::sync::Arc;

use sqlx::PgPool;

use crate::{
    cache::CartCache,
    coalesce::Coalescer,
    config::Settings,
    domain::{ExpectedVersion, Invalid, Quantity, Sku, TokenHash, MAX_CART_LINES, MAX_LINE_QUANTITY},
    error::ApiError,
    metrics::Metrics,
    problem::{Problem, Shortage},
    store::carts::{CartView, LineProduct},
};

/// Batches in flight at once per replica: one in the database while the next one forms.
/// More split the waiting changes into smaller batches, each paying the round trips: with two,
/// add to cart through the balancer did 5,620 and 5,697 changes a second against 6,402 and
/// 6,171 with one (alternated pairs), at the same p99 under light load.
const WRITERS: usize = 1;
/// Connections of the cart change pool: one per batch in flight (a batch uses one at a time).
pub const CONNECTIONS: u32 = WRITERS as u32;
/// At most this many changes per batch: a bound on the statements' arrays, not a target.
const MAX_BATCH: usize = 128;

/// What a request asks to do to its session's cart.
#[derive(Debug, Clone)]
pub enum Op {
    /// `POST /v1/cart/items`: add `quantity` to the SKU's line.
    Add { sku: Sku, quantity: Quantity },
    /// `PUT /v1/cart/items/{sku}`: set the line to `quantity`; `None` (0) removes it.
    Set { sku: Sku, quantity: Option<Quantity> },
    /// `DELETE /v1/cart/items/{sku}`: removing an absent line is fine.
    Remove { sku: Sku },
    /// `DELETE /v1/cart`.
    Clear,
}

/// One request's change: whose cart, which version it expects (If-Match), what to do.
#[derive(Debug, Clone)]
pub struct Change {
    pub token: TokenHash,
    pub expected: Option<ExpectedVersion>,
    pub op: Op,
}

impl Op {
    /// The SKU whose product the change reads ("" for none).
    fn sku(&self) -> &str {
        match self {
            Op::Add { sku, .. } | Op::Set { sku, .. } | Op::Remove { sku } => sku.as_str(),
            Op::Clear => "",
        }
    }

    /// Applies the change to `cart`, as read with the product the change names (`None`: no
    /// such product), and returns the line writes that make it: each line set with its new
    /// quantity, each removed with 0, none for a line set to what it was. On `Err` the cart is
    /// left as it was and nothing is written for this change. The cart rules live here, once
    /// for every endpoint.
    fn apply(&self, cart: &mut CartView, product: Option<&LineProduct>) -> Result<LineEdits, ApiError> {
        match self {
            Op::Add { sku, quantity } => {
                let product = product.ok_or_else(|| ApiError::unknown_sku(sku.as_str()))?;
                let current = cart.quantity_of(sku.as_str());
                let new_quantity = i64::from(current.unwrap_or(0)) + i64::from(quantity.get());
                if new_quantity > MAX_LINE_QUANTITY {
                    return Err(Invalid::new(
                        Problem::InvalidQuantity,
                        format!("a line holds at most {MAX_LINE_QUANTITY}"),
                    )
                    .into());
                }
                set_line(cart, sku, new_quantity, product)
            }
            Op::Set { sku, quantity } => {
                let product = product.ok_or_else(|| ApiError::unknown_sku(sku.as_str()))?;
                match quantity {
                    None => Ok(remove_line(cart, sku)),
                    Some(quantity) => set_line(cart, sku, quantity.get().into(), product),
                }
            }
            Op::Remove { sku } => Ok(remove_line(cart, sku)),
            Op::Clear => Ok(cart.lines.drain(..).map(|line| (line.sku.clone(), 0)).collect()),
        }
    }
}

/// Sets a line to `quantity` (at most 999, checked by the caller): a new line needs room in
/// the cart, and no line may ask for more than is available now (a soft check: checkout holds
/// the hard guarantee).
fn set_line(cart: &mut CartView, sku: &Sku, quantity: i64, product: &LineProduct) -> Result<LineEdits, ApiError> {
    let sku = sku.as_str();
    let current = cart.quantity_of(sku);
    if current.is_none() && cart.lines.len() as i64 >= MAX_CART_LINES {
        return Err(Invalid::new(Problem::CartFull, format!("a cart holds at most {MAX_CART_LINES} lines")).into());
    }
    if quantity > product.available {
        return Err(ApiError::insufficient_stock(
            format!("only {} of {sku} are available", product.available),
            &[Shortage { sku, requested: quantity, available: product.available }],
        ));
    }
    // At most 999, so it fits.
    let quantity = quantity as i32;
    if current == Some(quantity) {
        return Ok(Vec::new());
    }
    cart.set_line(sku, quantity, product);
    Ok(vec![(sku.to_owned(), quantity)])
}

/// Removes a line; removing an absent line writes nothing.
fn remove_line(cart: &mut CartView, sku: &Sku) -> LineEdits {
    let sku = sku.as_str();
    if cart.quantity_of(sku).is_none() {
        return Vec::new();
    }
    cart.remove_line(sku);
    vec![(sku.to_owned(), 0)]
}

/// What a change writes: (SKU, quantity) per line, 0 for a line removed.
type LineEdits = Vec<(String, i32)>;

/// The cart after the change, or why the change was refused.
pub type Answer = Result<CartView, ApiError>;

/// The replica's queue of cart changes. Clones share it.
#[derive(Clone)]
pub struct CartChanges(Coalescer<Change, Answer>);

impl CartChanges {
    pub fn start(pool: PgPool, settings: Arc<Settings>, metrics: Arc<Metrics>, carts: CartCache) -> CartChanges {
        let copies = Arc::new(batch::CopyOdds::new());
        // Taking what waits, not gathering (`coalesce::Gather`): a batch of changes waits for
        // its commit's WAL flush, and a replica's changes in two alternating groups fill that
        // wait with the other group's work. Gathering 85 % of them (at most 1 ms) made batches
        // of 11-14 instead of 7 and cost less CPU a change, yet add to cart through haproxy
        // with 32 connections fell to 7,538 and 7,217 a second from 8,187 and 8,259
        // (BENCHMARKS.md, seventeenth session).
        CartChanges(Coalescer::start(WRITERS, MAX_BATCH, None, move |changes| {
            let (pool, settings, metrics, carts) = (pool.clone(), settings.clone(), metrics.clone(), carts.clone());
            let copies = copies.clone();
            async move { batch::run(&pool, &settings, &metrics, &carts, &copies, changes).await }
        }))
    }

    /// Makes `change`, in a batch that began after this call: answered once committed.
    pub async fn make(&self, change: Change) -> Answer {
        self.0.call(change).await.unwrap_or_else(|e| Err(e.into()))
    }
}
