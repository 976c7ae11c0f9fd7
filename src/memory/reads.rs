//! Coalesced product reads that record a view: the shoppers reading a product on a replica at
//! the same moment share one statement (`coalesce.rs` says how, and why a `recently-viewed`
//! read on any replica after the product read answered still sees the view).
//!
//! A product read with a session token is one statement that authenticates, records the view
//! and reads the product; one per request made such reads a third of the throughput of
//! anonymous ones, the round trip and the commit per request being what the replica and the
//! database spent their time on.

use std::sync::{atomic::Ordering, Arc};

use sqlx::PgPool;

use crate::{
    coalesce::Coalescer,
    domain::TokenHash,
    error::ApiError,
    metrics::Metrics,
    store::{memory, products::Product},
};

/// Statements in flight at once per replica: one, while the next batch forms, as for session
/// reads (`auth::reads` says why one, not two). Here too a second reader halved the batches
/// (direct: 12 reads a statement with two, 26 with one); product reads with a session token,
/// 4 order-balanced A/B pairs, medians: 4,372 -> 4,533 req/s through haproxy, 6,502 -> 7,078
/// direct (one reader won every direct pair). It holds a connection of the views pool.
const READERS: usize = 1;
/// At most this many reads per statement: a bound on its arrays, not a target.
const MAX_BATCH: usize = 256;

/// Why a read that records a view did not answer the product.
#[derive(Debug)]
pub enum ReadFailure {
    /// Answer this: the database is out of reach (a read without recording would meet the
    /// same), or the replica is stopping.
    Fatal(ApiError),
    /// The statement failed otherwise: the product can still be read, without recording.
    NotRecorded,
}

type Answer = Result<Option<Product>, ReadFailure>;

/// The replica's reader of products that records views. Clones share it.
#[derive(Clone)]
pub struct ViewReads(Coalescer<(TokenHash, String), Answer>);

impl ViewReads {
    /// `pool`: connections that commit without waiting for the WAL flush (`AppState::views_pool`).
    pub fn start(pool: PgPool, metrics: Arc<Metrics>) -> ViewReads {
        // Taking what waits, not gathering (`coalesce::Gather`): product reads with a session
        // token through haproxy with 32 connections did 9,519-10,763 req/s gathering 85 %
        // against 10,100-10,840 without, and 13,210 and 13,698 against 14,345 and 13,742
        // direct (fresh clusters alternated, BENCHMARKS.md, seventeenth session). Each batch
        // writes its views, and, as for cart changes, the alternating groups fill its waits.
        ViewReads(Coalescer::start(READERS, MAX_BATCH, None, move |reads| {
            let (pool, metrics) = (pool.clone(), metrics.clone());
            async move {
                metrics.view_reads.fetch_add(1, Ordering::Relaxed);
                metrics.views_read.fetch_add(reads.len() as u64, Ordering::Relaxed);
                answer(&pool, reads).await
            }
        }))
    }

    /// The product `sku`, read after this call began, its view recorded in the list of the
    /// session of `hash` if that is a live session. `None`: no such product.
    pub async fn read(&self, hash: TokenHash, sku: &str) -> Answer {
        self.0.call((hash, sku.to_owned())).await.unwrap_or_else(|e| Err(ReadFailure::Fatal(e.into())))
    }
}

async fn answer(pool: &PgPool, reads: Vec<(TokenHash, String)>) -> Vec<Answer> {
    let (hashes, skus): (Vec<Vec<u8>>, Vec<String>) = reads.into_iter().map(|(h, sku)| (h.0, sku)).unzip();
    match memory::read_and_record(pool, &hashes, &skus).await {
        Ok(found) => {
            let mut products: Vec<Option<Product>> = skus.iter().map(|_| None).collect();
            for read in found {
                if let Some(slot) = products.get_mut(read.index) {
                    *slot = Some(read.product);
                }
            }
            products.into_iter().map(Ok).collect()
        }
        Err(e) if is_database_down(&e) => {
            let error = ApiError::from(e);
            skus.iter().map(|_| Err(ReadFailure::Fatal(error.clone()))).collect()
        }
        Err(e) => {
            // The shoppers came for the products, not for their lists: each reads without.
            tracing::warn!(error = %e, requests = skus.len(), "recording product views failed");
            skus.iter().map(|_| Err(ReadFailure::NotRecorded)).collect()
        }
    }
}

/// A failure the plain read would meet too (the database is gone): no point retrying without
/// recording.
fn is_database_down(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_))
}
