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

use std::{future::Future, sync::Arc};

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
    /// in the same order.
    pub fn start<F, Fut>(readers: usize, max_batch: usize, answer: F) -> Coalescer<Q, A>
    where
        F: Fn(Vec<Q>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<A>> + Send + 'static,
    {
        let (queue, receiver) = mpsc::channel(QUEUE);
        let receiver = Arc::new(Mutex::new(receiver));
        let answer = Arc::new(answer);
        for _ in 0..readers {
            tokio::spawn(drain(receiver.clone(), max_batch, answer.clone()));
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

async fn drain<Q, A, F, Fut>(receiver: Arc<Mutex<mpsc::Receiver<Waiter<Q, A>>>>, max_batch: usize, answer: Arc<F>)
where
    F: Fn(Vec<Q>) -> Fut,
    Fut: Future<Output = Vec<A>>,
{
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
        }
        let (queries, replies): (Vec<Q>, Vec<oneshot::Sender<A>>) =
            waiters.into_iter().map(|w| (w.query, w.reply)).unzip();
        let answers = answer(queries).await;
        // One answer per query; a request whose answer is missing gets `Lost` rather than hang.
        for (reply, answer) in replies.into_iter().zip(answers) {
            let _ = reply.send(answer);
        }
    }
}
