//! Coalesced product reads that record a view: the shoppers reading a product on a replica at
//! the same moment share one statement, the way their session reads do (`auth::reads`, whose
//! design this copies).
//!
//! A product read with a session token is one statement that authenticates, records the view
//! and reads the product; one per request made such reads a third of the throughput of
//! anonymous ones, the round trip and the commit per request being what the replica and the
//! database spent their time on. `READERS` statements may be in flight at once; each takes
//! whatever waits when it starts, without waiting for more. So a request that finds a reader
//! idle is read at once (no added latency at low load), and one that arrives while every
//! reader is busy goes in the next statement, which starts after it arrived: a
//! `recently-viewed` read on any replica after the product read answered still sees the view.

use std::sync::{atomic::Ordering, Arc};

use sqlx::PgPool;
use tokio::sync::{
    mpsc::{self, error::TryRecvError},
    oneshot, Mutex,
};

use crate::{
    domain::TokenHash,
    error::ApiError,
    metrics::Metrics,
    store::{memory, products::Product},
};

/// Statements in flight at once per replica: one being answered while the next one forms,
/// as for session reads. Each holds a connection of the views pool for its round trip.
const READERS: usize = 2;
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

struct Waiter {
    hash: TokenHash,
    sku: String,
    reply: oneshot::Sender<Result<Option<Product>, ReadFailure>>,
}

/// The replica's reader of products that records views. Clones share it.
#[derive(Clone)]
pub struct ViewReads {
    queue: mpsc::Sender<Waiter>,
}

impl ViewReads {
    /// `pool`: connections that commit without waiting for the WAL flush (`AppState::views_pool`).
    pub fn start(pool: PgPool, metrics: Arc<Metrics>) -> ViewReads {
        let (queue, receiver) = mpsc::channel(16 * 1024);
        let receiver = Arc::new(Mutex::new(receiver));
        for _ in 0..READERS {
            tokio::spawn(drain(receiver.clone(), pool.clone(), metrics.clone()));
        }
        ViewReads { queue }
    }

    /// The product `sku`, read after this call began, its view recorded in the list of the
    /// session of `hash` if that is a live session. `None`: no such product.
    pub async fn read(&self, hash: TokenHash, sku: &str) -> Result<Option<Product>, ReadFailure> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Waiter { hash, sku: sku.to_owned(), reply })
            .await
            .map_err(|_| ReadFailure::Fatal(ApiError::unavailable("this replica is shutting down; try again")))?;
        // A reader never drops a waiter unanswered; if it panicked, the request fails alone.
        answer.await.map_err(|_| ReadFailure::Fatal(ApiError::internal()))?
    }
}

async fn drain(receiver: Arc<Mutex<mpsc::Receiver<Waiter>>>, pool: PgPool, metrics: Arc<Metrics>) {
    loop {
        let mut waiters = Vec::new();
        {
            let mut receiver = receiver.lock().await;
            match receiver.recv().await {
                Some(first) => waiters.push(first),
                None => return,
            }
            while waiters.len() < MAX_BATCH {
                match receiver.try_recv() {
                    Ok(waiter) => waiters.push(waiter),
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            }
        }
        metrics.view_reads.fetch_add(1, Ordering::Relaxed);
        metrics.views_read.fetch_add(waiters.len() as u64, Ordering::Relaxed);
        answer(&pool, waiters).await;
    }
}

async fn answer(pool: &PgPool, waiters: Vec<Waiter>) {
    let hashes: Vec<Vec<u8>> = waiters.iter().map(|w| w.hash.0.clone()).collect();
    let skus: Vec<String> = waiters.iter().map(|w| w.sku.clone()).collect();
    match memory::read_and_record(pool, &hashes, &skus).await {
        Ok(found) => {
            let mut products: Vec<Option<Product>> = waiters.iter().map(|_| None).collect();
            for read in found {
                if let Some(slot) = products.get_mut(read.index) {
                    *slot = Some(read.product);
                }
            }
            for (waiter, product) in waiters.into_iter().zip(products) {
                let _ = waiter.reply.send(Ok(product));
            }
        }
        Err(e) if is_database_down(&e) => {
            let error = ApiError::from(e);
            for waiter in waiters {
                let _ = waiter.reply.send(Err(ReadFailure::Fatal(error.clone())));
            }
        }
        Err(e) => {
            // The shoppers came for the products, not for their lists: each reads without.
            tracing::warn!(error = %e, requests = waiters.len(), "recording product views failed");
            for waiter in waiters {
                let _ = waiter.reply.send(Err(ReadFailure::NotRecorded));
            }
        }
    }
}

/// A failure the plain read would meet too (the database is gone): no point retrying without
/// recording.
fn is_database_down(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_))
}
