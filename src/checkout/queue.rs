//! The replica's checkout queue and the workers that drain it in batches.
//!
//! A checkout waits here at most `STOCKCART_REQUEST_TIMEOUT` from its arrival: one that no worker has
//! taken by then is answered "database unavailable" without running, and one whose client
//! has gone away is dropped unrun (nothing was claimed, so the client's retry does the work).
//! A checkout a worker has taken always completes, so its answer is stored for a retry.
//!
//! A failed batch is retried one checkout at a time, so one bad request cannot fail the
//! others, except when the database itself is unreachable: then every checkout of the batch
//! fails at once, as fast as any other request, instead of each waiting out the pool's
//! acquire timeout in turn behind the others.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use sqlx::{pool::PoolConnection, PgPool, Postgres};
use tokio::{
    sync::{
        mpsc::{self, error::TryRecvError},
        oneshot, Mutex,
    },
    time::Instant,
};

use super::batch::{place_batch, Answer, CheckoutRequest};
use crate::{config::Settings, error::is_unreachable};

/// Why a checkout got no answer from the queue; `routes/checkout/place.rs` says it over HTTP.
#[derive(Debug)]
pub enum Unanswered {
    /// The replica is stopping and takes no more checkouts.
    ShuttingDown,
    /// The worker went away before answering.
    Lost,
    /// The database could not be reached for its batch.
    DatabaseUnavailable,
    /// No worker reached it within `STOCKCART_REQUEST_TIMEOUT`; it did not run.
    TimedOut,
    /// The checkout, retried alone, failed in the database.
    Database(sqlx::Error),
}

struct Job {
    request: CheckoutRequest,
    reply: oneshot::Sender<Result<Answer, Unanswered>>,
    deadline: Instant,
    /// Set by whichever comes first: a worker taking the job, or its waiter giving up on it
    /// at the deadline. The other side then leaves it alone.
    taken: Arc<AtomicBool>,
}

impl Job {
    /// Whether a worker may run this job: its client still waits, its deadline has not passed
    /// and its waiter has not given up. Answers the timed-out ones.
    fn take(self) -> Option<Job> {
        if self.reply.is_closed() || self.taken.swap(true, Ordering::AcqRel) {
            return None;
        }
        if Instant::now() >= self.deadline {
            let _ = self.reply.send(Err(Unanswered::TimedOut));
            return None;
        }
        Some(self)
    }
}

/// The replica's checkout queue and the workers that drain it in batches.
pub struct Checkouts {
    queue: mpsc::Sender<Job>,
    /// How long a checkout may wait for a worker: `STOCKCART_REQUEST_TIMEOUT`, within which
    /// every request that needs the database must be answered.
    deadline: Duration,
}

impl Checkouts {
    /// `workers` transactions may run at once (spread SKUs proceed in parallel); each takes
    /// whatever is queued when it starts, up to `max_batch`, without waiting for more.
    pub fn start(pool: PgPool, settings: Arc<Settings>, workers: usize, max_batch: usize) -> Checkouts {
        let (queue, receiver) = mpsc::channel(16 * 1024);
        let receiver = Arc::new(Mutex::new(receiver));
        for _ in 0..workers.max(1) {
            tokio::spawn(drain(receiver.clone(), pool.clone(), settings.clone(), max_batch.max(1)));
        }
        Checkouts { queue, deadline: settings.request_timeout }
    }

    /// Places one checkout. Once a worker has taken it, it completes even if the caller stops
    /// waiting, so its answer is stored for the client's retry.
    pub async fn place(&self, request: CheckoutRequest) -> Result<Answer, Unanswered> {
        let deadline = Instant::now() + self.deadline;
        let taken = Arc::new(AtomicBool::new(false));
        let (reply, mut answer) = oneshot::channel();
        let job = Job { request, reply, deadline, taken: taken.clone() };
        tokio::time::timeout_at(deadline, self.queue.send(job))
            .await
            .map_err(|_| Unanswered::TimedOut)?
            .map_err(|_| Unanswered::ShuttingDown)?;
        tokio::select! {
            answered = &mut answer => return answered.map_err(|_| Unanswered::Lost)?,
            () = tokio::time::sleep_until(deadline) => {}
        }
        if !taken.swap(true, Ordering::AcqRel) {
            return Err(Unanswered::TimedOut);
        }
        // A worker took it just in time: it runs to the end, and its answer is this one's.
        answer.await.map_err(|_| Unanswered::Lost)?
    }
}

async fn drain(receiver: Arc<Mutex<mpsc::Receiver<Job>>>, pool: PgPool, settings: Arc<Settings>, max_batch: usize) {
    // The worker keeps its connection while checkouts keep coming: batch after batch runs on
    // the same warm backend with no release and acquire between them (measured when workers
    // took from the request pool, whichever idle connection it handed out next: 15% more spread
    // checkouts once the pool had grown; they have their own pool now, `startup::checkout_pool`).
    // It lets go whenever the queue is empty, so an idle replica holds no connection and the
    // pool can close.
    let mut held: Option<PoolConnection<Postgres>> = None;
    loop {
        let mut jobs = Vec::new();
        {
            let mut receiver = receiver.lock().await;
            while jobs.is_empty() {
                let job = match receiver.try_recv() {
                    Ok(job) => job,
                    Err(TryRecvError::Disconnected) => return,
                    Err(TryRecvError::Empty) => {
                        held = None;
                        match receiver.recv().await {
                            Some(job) => job,
                            None => return,
                        }
                    }
                };
                jobs.extend(job.take());
            }
            while jobs.len() < max_batch {
                match receiver.try_recv() {
                    Ok(job) => jobs.extend(job.take()),
                    Err(_) => break,
                }
            }
        }
        run(&mut held, &pool, &settings, jobs).await;
    }
}

/// Runs one batch and answers every job in it.
async fn run(held: &mut Option<PoolConnection<Postgres>>, pool: &PgPool, settings: &Settings, jobs: Vec<Job>) {
    let requests: Vec<CheckoutRequest> = jobs.iter().map(|j| j.request.clone()).collect();
    let deadline = jobs.iter().map(|j| j.deadline).min().unwrap_or_else(Instant::now);
    let reused = held.is_some();
    let mut placed = place_on(held, pool, settings, &requests, Some(deadline)).await;
    if reused && matches!(&placed, Err(e) if is_unreachable(e)) {
        // The held connection may have died while the database is fine (a restart, an idle
        // connection cut): one more try on a fresh one before calling the database unreachable.
        placed = place_on(held, pool, settings, &requests, Some(deadline)).await;
    }
    let e = match placed {
        Ok(answers) => {
            for (job, answer) in jobs.into_iter().zip(answers) {
                let _ = job.reply.send(Ok(answer));
            }
            return;
        }
        Err(e) => e,
    };
    if is_unreachable(&e) {
        tracing::warn!(error = %e, batch = jobs.len(), "checkout batch failed: database unavailable");
        for job in jobs {
            let _ = job.reply.send(Err(Unanswered::DatabaseUnavailable));
        }
        return;
    }
    tracing::warn!(error = %e, batch = jobs.len(), "checkout batch failed; retrying one by one");
    let mut jobs = jobs.into_iter();
    while let Some(job) = jobs.next() {
        // Taken, so it runs even if its client has gone: the answer is stored for a retry. It
        // waits for a connection as long as the pool lets it (its own deadline may be past).
        let single = place_on(held, pool, settings, std::slice::from_ref(&job.request), None).await;
        match single {
            Ok(mut answers) => {
                let _ = job.reply.send(Ok(answers.remove(0)));
            }
            Err(e) if is_unreachable(&e) => {
                tracing::warn!(error = %e, "checkout retry failed: database unavailable");
                for job in std::iter::once(job).chain(jobs.by_ref()) {
                    let _ = job.reply.send(Err(Unanswered::DatabaseUnavailable));
                }
            }
            Err(e) => {
                let _ = job.reply.send(Err(Unanswered::Database(e)));
            }
        }
    }
}

/// `place_batch` on the held connection (acquired when there is none, by `deadline` at the
/// latest when there is one); a connection that failed is let go, in case it is broken.
async fn place_on(
    held: &mut Option<PoolConnection<Postgres>>,
    pool: &PgPool,
    settings: &Settings,
    requests: &[CheckoutRequest],
    deadline: Option<Instant>,
) -> Result<Vec<Answer>, sqlx::Error> {
    let conn = match held {
        Some(conn) => conn,
        None => {
            // Waiting for a connection past the batch's first deadline would answer that
            // checkout late; the pool's own acquire timeout may be longer.
            let acquired = match deadline {
                Some(deadline) => {
                    tokio::time::timeout_at(deadline, pool.acquire()).await.map_err(|_| sqlx::Error::PoolTimedOut)??
                }
                None => pool.acquire().await?,
            };
            held.insert(acquired)
        }
    };
    let placed = place_batch(conn, settings, requests).await;
    if placed.is_err() {
        *held = None;
    }
    placed
}
