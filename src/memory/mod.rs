//! Shopper memory: which products a shopper viewed (kept with the cart, so it follows login
//! and every device of a customer) and how often each product is viewed across replicas.
//!
//! Recording a view must never fail or slow a product read: recently viewed rides in the one
//! statement the read makes anyway (`store/memory.rs`), shared by the reads of a replica that
//! arrive together (`reads`), and popularity is a counter in this replica's memory, flushed
//! every few seconds by `tasks/` with one statement.

pub mod reads;

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex,
    },
};

/// Views counted on this replica since the last flush.
#[derive(Default)]
pub struct ViewCounter {
    counts: Mutex<HashMap<String, i64>>,
    /// Views a product read could not record (database refused); never an error to the shopper.
    pub record_failures: AtomicU64,
    pub flushes: AtomicU64,
    pub flush_failures: AtomicU64,
}

/// Distinct products one replica remembers between flushes: past it, new products wait for
/// the next flush (counts of products already held still grow), so memory stays bounded.
const MAX_PENDING: usize = 100_000;

impl ViewCounter {
    pub fn count(&self, sku: &str) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = counts.get_mut(sku) {
            *n += 1;
        } else if counts.len() < MAX_PENDING {
            counts.insert(sku.to_owned(), 1);
        }
    }

    /// Takes the counts to flush.
    pub fn take(&self) -> HashMap<String, i64> {
        std::mem::take(&mut *self.counts.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Puts counts back after a failed flush, so a database blip loses none.
    pub fn restore(&self, counts: HashMap<String, i64>) {
        let mut held = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        for (sku, n) in counts {
            *held.entry(sku).or_default() += n;
        }
    }

    pub fn record_failed(&self) {
        self.record_failures.fetch_add(1, Ordering::Relaxed);
    }
}
