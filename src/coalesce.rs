//! Coalescing: the requests of a replica (or of one of its HTTP workers) that need the same
//! statement at the same moment share one, taking arrays (`= ANY($1)`), the way checkouts
//! share their batch. Session reads
//! (`auth::reads`) and product reads that record a view (`memory::reads`) go through it.
//!
//! At a few thousand requests a second the per-request round trip, not the work inside
//! PostgreSQL, is what a replica spends its time on. `readers` statements may be in flight at
//! once; each takes whatever waits when it starts, without waiting for more. So a request that
//! finds a reader idle goes at once (no added latency at low load), and one that arrives while
//! every reader is busy goes in the next statement, which starts after it arrived: it still
//! sees every write acknowledged before it was sent. That is what keeps read-your-writes
//! across replicas with coalesced reads.
//!
//! A coalescer may also gather (`Gather`): wait a little for the requests its last batch
//! suggests are coming, so that one statement serves more of them. Waiting delays a
//! statement's start, never moves it before a request's arrival, so it keeps the same
//! guarantee.

use std::{future::Future, sync::Arc, time::Duration};

use tokio::sync::{
    mpsc::{self, error::TryRecvError},
    oneshot, Mutex,
};

/// Requests waiting for a reader at most, per coalescer: past it a request waits to queue.
const QUEUE: usize = 16 * 1024;

/// Why a request got no answer from its batch.
#[derive(Debug)]
pub enum Unanswered {
    /// The replica (or the worker) is stopping: its readers are gone.
    Stopping,
    /// The reader answering its batch panicked: the request fails alone.
    Lost,
}

/// How a batch waits for the requests it expects. A batch's requests are answered together,
/// and under a steady load their clients send their next requests together, back soon: so
/// the requests a reader had in play when its last batch ended (that batch's, and those that
/// queued meanwhile) are about what the next batch can expect. Without gathering, a reader
/// takes what waits the moment it is free, and a replica's requests settle into groups that
/// alternate, each paying the statement's fixed cost. A batch that waits for the whole
/// number leaves the cores idle while the last stragglers come back; one that waits for most
/// of it got the most out of the cores (`auth::reads` has the measurements).
#[derive(Debug, Clone, Copy)]
pub struct Gather {
    /// Wait until this share, in percent, of the requests in play at the last batch's end
    /// waits, rounded down: below 100 %, a batch with one or two in play never waits.
    pub percent: usize,
    /// And never longer than this (tokio's timer: up to a millisecond more).
    pub at_most: Duration,
}

struct Waiter<Q, A> {
    query: Q,
    reply: oneshot::Sender<A>,
}

/// A replica's coalesced statement. Clones share it.
pub struct Coalescer<Q, A> {
    queue: mpsc::Sender<Waiter<Q, A>>,
}

impl<Q, A> Clone for Coalescer<Q, A> {
    fn clone(&self) -> Self {
        Coalescer { queue: self.queue.clone() }
    }
}

impl<Q: Send + 'static, A: Send + 'static> Coalescer<Q, A> {
    /// Starts `readers` readers that answer batches of at most `max_batch` requests with
    /// `answer`, which is given the queries in arrival order and returns one answer per query,
    /// in the same order; each batch gathers as `gather` says, or takes what waits.
    pub fn start<F, Fut>(readers: usize, max_batch: usize, gather: Option<Gather>, answer: F) -> Coalescer<Q, A>
    where
        F: Fn(Vec<Q>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<A>> + Send + 'static,
    {
        let (queue, receiver) = mpsc::channel(QUEUE);
        let receiver = Arc::new(Mutex::new(receiver));
        let answer = Arc::new(answer);
        for _ in 0..readers {
            tokio::spawn(drain(receiver.clone(), max_batch, gather, answer.clone()));
        }
        Coalescer { queue }
    }

    /// The answer to `query`, from a statement that started after this call began.
    pub async fn call(&self, query: Q) -> Result<A, Unanswered> {
        let (reply, answer) = oneshot::channel();
        self.queue.send(Waiter { query, reply }).await.map_err(|_| Unanswered::Stopping)?;
        answer.await.map_err(|_| Unanswered::Lost)
    }
}

async fn drain<Q, A, F, Fut>(
    receiver: Arc<Mutex<mpsc::Receiver<Waiter<Q, A>>>>,
    max_batch: usize,
    gather: Option<Gather>,
    answer: Arc<F>,
) where
    F: Fn(Vec<Q>) -> Fut,
    Fut: Future<Output = Vec<A>>,
{
    // The requests in play when this reader's last batch ended (`Gather`).
    let mut in_play = 0;
    loop {
        let mut waiters = Vec::new();
        {
            // Held only while the batch forms: the other reader forms the next one meanwhile.
            let mut receiver = receiver.lock().await;
            match receiver.recv().await {
                Some(first) => waiters.push(first),
                None => return,
            }
            while waiters.len() < max_batch {
                match receiver.try_recv() {
                    Ok(waiter) => waiters.push(waiter),
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            }
            if let Some(gather) = gather {
                let expected = (in_play * gather.percent / 100).min(max_batch);
                let deadline = tokio::time::Instant::now() + gather.at_most;
                while waiters.len() < expected {
                    match tokio::time::timeout_at(deadline, receiver.recv()).await {
                        Ok(Some(waiter)) => waiters.push(waiter),
                        Ok(None) | Err(_) => break,
                    }
                }
            }
        }
        let size = waiters.len();
        let (queries, replies): (Vec<Q>, Vec<oneshot::Sender<A>>) =
            waiters.into_iter().map(|w| (w.query, w.reply)).unzip();
        let answers = answer(queries).await;
        // One answer per query; a request whose answer is missing gets `Lost` rather than hang.
        for (reply, answer) in replies.into_iter().zip(answers) {
            let _ = reply.send(answer);
        }
        // Another reader forming its batch holds the queue: count this batch alone.
        in_play = size + receiver.try_lock().map_or(0, |queue| queue.len());
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::Mutex as StdMutex,
        time::{Duration, Instant},
    };

    use futures_util::future::join_all;

    use super::*;

    /// A coalescer that answers each query with itself and records its batches' sizes.
    fn recording(gather: Option<Gather>) -> (Coalescer<u32, u32>, Arc<StdMutex<Vec<usize>>>) {
        let sizes = Arc::new(StdMutex::new(Vec::new()));
        let seen = sizes.clone();
        let coalescer = Coalescer::start(1, 64, gather, move |queries: Vec<u32>| {
            seen.lock().unwrap().push(queries.len());
            async move { queries }
        });
        (coalescer, sizes)
    }

    /// Four requests at once, then four more 50 ms apart: the answers, and the batches.
    async fn four_then_four_apart(coalescer: &Coalescer<u32, u32>) -> Vec<u32> {
        let mut answers: Vec<u32> = join_all((0..4).map(|q| coalescer.call(q))).await.into_iter().flatten().collect();
        let later = (4..8).map(|q| {
            let coalescer = coalescer.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(50 * u64::from(q - 4))).await;
                coalescer.call(q).await
            })
        });
        answers.extend(join_all(later).await.into_iter().flatten().flatten());
        answers
    }

    #[tokio::test]
    async fn a_gathering_batch_waits_for_the_requests_the_last_one_had_in_play() {
        let (coalescer, sizes) = recording(Some(Gather { percent: 100, at_most: Duration::from_secs(5) }));
        assert_eq!(four_then_four_apart(&coalescer).await, (0..8).collect::<Vec<_>>());
        assert_eq!(*sizes.lock().unwrap(), vec![4, 4]);

        // Without gathering, each of the four apart went alone.
        let (coalescer, sizes) = recording(None);
        assert_eq!(four_then_four_apart(&coalescer).await, (0..8).collect::<Vec<_>>());
        assert_eq!(*sizes.lock().unwrap(), vec![4, 1, 1, 1, 1]);
    }

    #[tokio::test]
    async fn a_gathering_batch_waits_no_longer_than_its_bound() {
        let bound = Duration::from_millis(100);
        let (coalescer, sizes) = recording(Some(Gather { percent: 100, at_most: bound }));
        join_all((0..4).map(|q| coalescer.call(q))).await;
        // One request where four were in play: it waits for the others, which never come.
        let started = Instant::now();
        assert_eq!(coalescer.call(9).await.ok(), Some(9));
        let waited = started.elapsed();
        assert!(waited >= bound && waited < Duration::from_secs(3), "waited {waited:?}");
        // The lone batch resets what is in play: the next lone request goes at once.
        let started = Instant::now();
        assert_eq!(coalescer.call(10).await.ok(), Some(10));
        assert!(started.elapsed() < bound, "waited {:?}", started.elapsed());
        assert_eq!(*sizes.lock().unwrap(), vec![4, 1, 1]);
    }
}
