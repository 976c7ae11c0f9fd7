//! The hot-cart cache: carts assembled with names and prices, serialised, kept in moka.
//!
//! Why it stays correct across replicas without any notification: every request already
//! reads its session row, and that same indexed read returns the cart's `version` and the
//! `catalog_revision`. A cached cart is served only when both are equal to what it was
//! assembled at. Every cart change bumps the cart's version and every product change bumps
//! the catalog revision, each in its own transaction, so an entry can never be served after
//! a change another replica acknowledged. A warm read therefore costs exactly that one
//! round trip, and a lost or late notification could only cost a miss, never a stale read.

use std::{sync::Arc, time::Duration};

use actix_web::web::{self, Bytes};
use moka::sync::Cache;
use uuid::Uuid;

use crate::metrics::Metrics;

#[derive(Clone)]
pub struct CachedCart {
    pub version: i64,
    pub catalog_revision: i64,
    pub body: Bytes,
}

pub struct CartCache {
    entries: Option<Cache<Uuid, Arc<CachedCart>>>,
    metrics: web::Data<Metrics>,
}

impl CartCache {
    pub fn new(capacity: u64, idle: Duration, metrics: web::Data<Metrics>) -> CartCache {
        let entries = (capacity > 0).then(|| Cache::builder().max_capacity(capacity).time_to_idle(idle).build());
        CartCache { entries, metrics }
    }

    /// The cached body, if it was assembled at exactly this cart version and catalog revision.
    pub fn get(&self, cart_id: Uuid, version: i64, catalog_revision: i64) -> Option<Bytes> {
        let hit = self
            .entries
            .as_ref()
            .and_then(|c| c.get(&cart_id))
            .filter(|c| c.version == version && c.catalog_revision == catalog_revision)
            .map(|c| c.body.clone());
        match hit {
            Some(_) => self.metrics.cache_hit(),
            None => self.metrics.cache_miss(),
        }
        hit
    }

    pub fn put(&self, cart_id: Uuid, entry: CachedCart) {
        if let Some(c) = &self.entries {
            // Never replace a newer assembly with an older one.
            let newer_cached = c.get(&cart_id).is_some_and(|old| old.version > entry.version);
            if !newer_cached {
                c.insert(cart_id, Arc::new(entry));
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
