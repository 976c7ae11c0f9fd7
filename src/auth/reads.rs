//! Coalesced session reads: the requests that authenticate on a replica at the same moment
//! share one `token_hash = ANY($1)` read, the way checkouts share their batch.
//!
//! Every shopper request starts with this read, and at a few thousand requests a second the
//! per-request round trip, not the work inside PostgreSQL, is what a replica spends its time
//! on. `READERS` reads may be in flight at once; each takes whatever waits when it starts,
//! without waiting for more. So a request that finds a reader idle is read at once (no added
//! latency at low load), and one that arrives while every reader is busy goes in the next read,
//! which starts after it arrived: it still sees every write acknowledged before it was sent,
//! and a revoked session is refused as soon as its revocation has committed.

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
    store::sessions::{self, SessionRow},
};

/// Reads in flight at once per replica: one being answered while the next one forms. With
/// as many readers as connections, requests would again be read one by one; each reader
/// holds a pool connection for its round trip. 2 is a choice, not yet tuned by measurement
/// (BENCHMARKS.md has the A/B against uncoalesced reads, at 2).
const READERS: usize = 2;
/// At most this many sessions per read: a bound on the statement's array, not a target.
const MAX_BATCH: usize = 256;

struct Waiter {
    hash: TokenHash,
    reply: oneshot::Sender<Result<Option<SessionRow>, ApiError>>,
}

/// The replica's session reader. Clones share it.
#[derive(Clone)]
pub struct SessionReads {
    queue: mpsc::Sender<Waiter>,
}

impl SessionReads {
    pub fn start(pool: PgPool, metrics: Arc<Metrics>) -> SessionReads {
        let (queue, receiver) = mpsc::channel(16 * 1024);
        let receiver = Arc::new(Mutex::new(receiver));
        for _ in 0..READERS {
            tokio::spawn(drain(receiver.clone(), pool.clone(), metrics.clone()));
        }
        SessionReads { queue }
    }

    /// The live session of `hash`, with its cart's version and the catalog revision, read
    /// after this call began. `None`: unknown, expired or revoked.
    pub async fn read(&self, hash: TokenHash) -> Result<Option<SessionRow>, ApiError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Waiter { hash, reply })
            .await
            .map_err(|_| ApiError::unavailable("this replica is shutting down; try again"))?;
        // A reader never drops a waiter unanswered; if it panicked, the request fails alone.
        answer.await.map_err(|_| ApiError::internal())?
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
        metrics.session_reads.fetch_add(1, Ordering::Relaxed);
        metrics.sessions_read.fetch_add(waiters.len() as u64, Ordering::Relaxed);
        answer(&pool, waiters).await;
    }
}

async fn answer(pool: &PgPool, waiters: Vec<Waiter>) {
    let hashes: Vec<Vec<u8>> = waiters.iter().map(|w| w.hash.0.clone()).collect();
    match sessions::authenticate(pool, &hashes).await {
        Ok(found) => {
            for waiter in waiters {
                // Cloned, not taken: two requests of one session may share a read.
                let row = found.iter().find(|(hash, _)| *hash == waiter.hash.0).map(|(_, row)| row.clone());
                let _ = waiter.reply.send(Ok(row));
            }
        }
        Err(e) => {
            let error = ApiError::from(e);
            for waiter in waiters {
                let _ = waiter.reply.send(Err(error.clone()));
            }
        }
    }
}
