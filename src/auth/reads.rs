//! Coalesced session reads: the requests that authenticate on an HTTP worker at the same moment
//! share one `token_hash = ANY($1)` read (`coalesce.rs` says how, and why a read still sees
//! every write acknowledged before its request). Each worker has its own reader, on its own
//! thread (`state::WorkerState` says why). Every shopper request starts with this read,
//! and a revoked session is refused as soon as its revocation has committed.

use std::{
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use sqlx::PgPool;

use crate::{
    coalesce::{Coalescer, Gather},
    domain::TokenHash,
    error::ApiError,
    metrics::Metrics,
    store::sessions::{self, SessionRow},
};

/// Reads in flight at once per worker. One: while it is in flight the next batch forms, and
/// it starts the moment the first returns. A second reader idle beside it took each request
/// as it arrived (batches of 5 through haproxy and 13 direct; one reader gathers 7 and 21),
/// and PostgreSQL's cost is mostly per statement, not per session read: warm get cart went
/// from 4,292 to 5,908 req/s through haproxy and 9,575 to 12,617 direct (medians of 4
/// order-balanced A/B pairs, BENCHMARKS.md). A request arriving while the reader is busy
/// waits for one round trip more: well under a millisecond here.
pub const READERS: usize = 1;
/// A read waits for 85 % of the sessions its last read had in play (`coalesce::Gather`), for
/// at most a millisecond: more sessions a statement. Warm get cart, fresh clusters alternated
/// on one machine (BENCHMARKS.md, seventeenth session), without and with it:
/// - through haproxy, 32 connections: 24,458, 24,194, 24,103, 25,079 against 29,060, 29,883,
///   29,351, 28,933 req/s (5.6 sessions a read against 10.8); with 64 connections: 33,397,
///   32,385 against 37,444, 36,803;
/// - directly, 32 connections: 48,727, 45,975 against 53,014, 51,744.
///
/// Waiting for all of them (100 %) idled the cores: 21,753 through haproxy; 70 %: 27,645-29,312.
/// At light load a read never waits: with one or two sessions in play, 85 % of them is one.
const GATHER: Gather = Gather { percent: 85, at_most: Duration::from_millis(1) };
/// At most this many sessions per read: a bound on the statement's array, not a target.
const MAX_BATCH: usize = 256;

type Answer = Result<Option<SessionRow>, ApiError>;

/// An HTTP worker's session reader. Clones share it.
#[derive(Clone)]
pub struct SessionReads(Coalescer<TokenHash, Answer>);

impl SessionReads {
    /// Starts the reader as a task of the current runtime: call it on the worker's thread.
    pub fn start(pool: PgPool, metrics: Arc<Metrics>) -> SessionReads {
        SessionReads(Coalescer::start(READERS, MAX_BATCH, Some(GATHER), move |hashes| {
            let (pool, metrics) = (pool.clone(), metrics.clone());
            async move {
                metrics.session_reads.fetch_add(1, Ordering::Relaxed);
                metrics.sessions_read.fetch_add(hashes.len() as u64, Ordering::Relaxed);
                answer(&pool, hashes).await
            }
        }))
    }

    /// The live session of `hash`, with its cart's version and the catalog revision, read
    /// after this call began. `None`: unknown, expired or revoked.
    pub async fn read(&self, hash: TokenHash) -> Answer {
        self.0.call(hash).await.unwrap_or_else(|e| Err(e.into()))
    }
}

async fn answer(pool: &PgPool, hashes: Vec<TokenHash>) -> Vec<Answer> {
    let raw: Vec<Vec<u8>> = hashes.iter().map(|h| h.0.clone()).collect();
    match sessions::authenticate(pool, &raw).await {
        // Cloned, not taken: two requests of one session may share a read.
        Ok(found) => {
            hashes.iter().map(|hash| Ok(found.iter().find(|(h, _)| *h == hash.0).map(|(_, row)| row.clone()))).collect()
        }
        Err(e) => {
            let error = ApiError::from(e);
            hashes.iter().map(|_| Err(error.clone())).collect()
        }
    }
}
