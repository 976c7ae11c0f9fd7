//! The hot-cart cache: carts assembled with names and prices, kept in moka with each line's
//! answer rendered (`CartLine`), so that answering a cached cart is copying its lines.
//!
//! Why it stays correct across replicas without any notification: every request already
//! reads its session row, and that same indexed read returns the cart's `version` and the
//! `catalog_revision`. A cached cart is served only when both are equal to what it was
//! assembled at. Every cart change bumps the cart's version and every product change bumps
//! the catalog revision, each in its own transaction, so an entry can never be served after
//! a change another replica acknowledged. A warm read therefore costs exactly that one
//! round trip, and a lost or late notification could only cost a miss, never a stale read.

use std::{sync::Arc, time::Duration};

use actix_web::web;
use chrono::{DateTime, Utc};
use moka::sync::Cache;
use uuid::Uuid;

use crate::{
    metrics::Metrics,
    store::carts::{CartView, LineProduct},
};

/// Clones share the entries.
#[derive(Clone)]
pub struct CartCache {
    /// Each cart as last answered here, which a read answers and from which a change made on
    /// this replica starts instead of reading its lines again (`cart_changes`), when the cart's
    /// version and the catalog revision under the change's lock are still its own. Its answer
    /// is not kept beside it: its lines keep theirs (`CartLine`), and a second copy of every
    /// line's answer took a replica past 100 MiB in the benchmark's add to cart (50-line carts).
    entries: Option<Cache<Uuid, Arc<CartView>>>,
    /// What a session token's last change here found (`TokenHint`): a hint only, which lets a
    /// change find its cached cart before its statement says which cart the session names now
    /// (an attach may have moved it; the statement then finds a different cart).
    hints: Option<Cache<Vec<u8>, Arc<TokenHint>>>,
    /// The products changes named, each as of the catalog revision it was read at: a change
    /// decided on a copy at that revision adds its line from here (`cart_changes`).
    products: Option<Cache<String, Arc<(i64, LineProduct)>>>,
    metrics: web::Data<Metrics>,
}

/// Which cart and session a session token named when its last change here read them: enough,
/// with the copy of that cart, for its next change to be decided without reading them. Each is
/// a fact the write then requires still to hold, so a stale hint costs a read, never a wrong
/// change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenHint {
    pub cart_id: Uuid,
    pub session_id: Uuid,
    /// As read: a session slid since by another replica only looks due to slide sooner.
    pub session_expires_at: DateTime<Utc>,
}

impl CartCache {
    pub fn new(capacity: u64, idle: Duration, metrics: web::Data<Metrics>) -> CartCache {
        let entries = (capacity > 0).then(|| Cache::builder().max_capacity(capacity).time_to_idle(idle).build());
        let hints = (capacity > 0).then(|| Cache::builder().max_capacity(capacity).time_to_idle(idle).build());
        let products = (capacity > 0).then(|| Cache::builder().max_capacity(capacity).time_to_idle(idle).build());
        CartCache { entries, hints, products, metrics }
    }

    /// The cached cart, if it was assembled at exactly this cart version and catalog revision.
    pub fn get(&self, cart_id: Uuid, version: i64, catalog_revision: i64) -> Option<Arc<CartView>> {
        let hit = self
            .entries
            .as_ref()
            .and_then(|c| c.get(&cart_id))
            .filter(|c| c.version == version && c.catalog_revision == catalog_revision);
        match hit {
            Some(_) => self.metrics.cache_hit(),
            None => self.metrics.cache_miss(),
        }
        hit
    }

    pub fn put(&self, entry: Arc<CartView>) {
        if let Some(c) = &self.entries {
            // Never replace a newer assembly with an older one.
            let newer_cached = c.get(&entry.id).is_some_and(|old| old.version > entry.version);
            if !newer_cached {
                c.insert(entry.id, entry);
            }
        }
    }

    /// The cart a session token's last change here was made to, as cached (see `hints`).
    pub fn last_cart_of(&self, token: &[u8]) -> Option<Arc<CartView>> {
        self.hint_of(token).map(|(_, copy)| copy)
    }

    /// What the token's last change here found, with this replica's copy of its cart.
    pub fn hint_of(&self, token: &[u8]) -> Option<(Arc<TokenHint>, Arc<CartView>)> {
        let hint = self.hints.as_ref()?.get(token)?;
        let copy = self.entries.as_ref()?.get(&hint.cart_id)?;
        Some((hint, copy))
    }

    pub fn remember(&self, token: &[u8], hint: TokenHint) {
        if let Some(c) = &self.hints {
            if c.get(token).is_none_or(|known| *known != hint) {
                c.insert(token.to_vec(), Arc::new(hint));
            }
        }
    }

    /// The product as read at `catalog_revision`, if a change read it then.
    pub fn product(&self, sku: &str, catalog_revision: i64) -> Option<LineProduct> {
        let found = self.products.as_ref()?.get(sku)?;
        (found.0 == catalog_revision).then(|| found.1.clone())
    }

    pub fn remember_product(&self, sku: &str, catalog_revision: i64, product: &LineProduct) {
        if let Some(c) = &self.products {
            if c.get(sku).is_none_or(|p| p.0 != catalog_revision) {
                c.insert(sku.to_owned(), Arc::new((catalog_revision, product.clone())));
            }
        }
    }

    pub fn invalidate(&self, cart_id: Uuid) {
        if let Some(c) = &self.entries {
            c.invalidate(&cart_id);
        }
    }

    pub fn entry_count(&self) -> u64 {
        self.entries.as_ref().map_or(0, |c| c.entry_count())
    }
}
