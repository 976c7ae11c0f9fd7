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
use moka::sync::Cache;
use uuid::Uuid;

use crate::{metrics::Metrics, store::carts::CartView};

/// Clones share the entries.
#[derive(Clone)]
pub struct CartCache {
    /// Each cart as last answered here, which a read answers and from which a change made on
    /// this replica starts instead of reading its lines again (`cart_changes`), when the cart's
    /// version and the catalog revision under the change's lock are still its own. Its answer
    /// is not kept beside it: its lines keep theirs (`CartLine`), and a second copy of every
    /// line's answer took a replica past 100 MiB in the benchmark's add to cart (50-line carts).
    entries: Option<Cache<Uuid, Arc<CartView>>>,
    /// The cart a session token last named when it changed its cart here: a hint only, which
    /// lets a change find its cached cart before its statement says which cart the session
    /// names now (an attach may have moved it; the statement then finds a different cart).
    carts_of: Option<Cache<Vec<u8>, Uuid>>,
    metrics: web::Data<Metrics>,
}

impl CartCache {
    pub fn new(capacity: u64, idle: Duration, metrics: web::Data<Metrics>) -> CartCache {
        let entries = (capacity > 0).then(|| Cache::builder().max_capacity(capacity).time_to_idle(idle).build());
        let carts_of = (capacity > 0).then(|| Cache::builder().max_capacity(capacity).time_to_idle(idle).build());
        CartCache { entries, carts_of, metrics }
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

    /// The cart a session token's last change here was made to, as cached (see `carts_of`).
    pub fn last_cart_of(&self, token: &[u8]) -> Option<Arc<CartView>> {
        let cart_id = self.carts_of.as_ref()?.get(token)?;
        self.entries.as_ref()?.get(&cart_id)
    }

    pub fn remember_cart_of(&self, token: &[u8], cart_id: Uuid) {
        if let Some(c) = &self.carts_of {
            if c.get(token) != Some(cart_id) {
                c.insert(token.to_vec(), cart_id);
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
