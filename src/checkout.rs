//! Checkout, coalesced: concurrent checkouts on a replica are gathered into batches; each batch
//! authenticates its sessions in one read, then is ONE transaction with ONE commit: keys
//! claimed, carts read, every order's lines reserved all-or-nothing (savepoint-free:
//! `stock::apply_groups` decides per order in memory, under the row locks), orders written,
//! carts emptied, answers stored.
//!
//! Why: on a hot SKU every checkout must take the same row lock, so throughput is bounded by
//! how long each transaction holds it. Sharing one transaction, a few round trips and one WAL
//! flush among all the orders waiting for that row lifts that bound; with no contention a
//! batch is simply one checkout. A failed batch is retried one checkout at a time, so one bad
//! request cannot fail the others.

use std::sync::Arc;

use serde_json::{Map, Value};
use sqlx::{pool::PoolConnection, Connection, PgConnection, PgPool, Postgres};
use tokio::sync::{
    mpsc::{self, error::TryRecvError},
    oneshot, Mutex,
};
use uuid::Uuid;

use crate::{
    config::Settings,
    domain::TokenHash,
    problem::{shortages, Problem, Shortage},
    store::{
        idempotency::{self, Claim, Stored},
        orders::{self, PlaceRequest, Placement, Status, Viewer},
        sessions,
    },
};

/// A checkout as the handler hands it over: the session token (looked up with the rest of
/// the batch, saving each checkout its own session read) and the idempotency key.
#[derive(Debug, Clone)]
pub struct CheckoutRequest {
    pub token: TokenHash,
    pub key: String,
}

/// The answer of a checkout: what the first request with its key got, or gets now.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub replayed: bool,
    /// The session's cart, whose cached copy the checkout made stale.
    pub cart_id: Option<Uuid>,
}

/// What a placed order is answered with (201 Created). The other answers are problems, whose
/// status comes with them: the answer is stored as status and body because a replay must
/// return exactly the first one, on any replica, even after a deployment.
pub const PLACED: u16 = 201;

fn problem(problem: Problem, detail: &str, extensions: &Map<String, Value>) -> (u16, Value) {
    (problem.status(), problem.document(detail, extensions))
}

fn render(placement: &Placement) -> (u16, Value) {
    match placement {
        Placement::Placed(order) => (PLACED, order.to_json()),
        Placement::EmptyCart => problem(Problem::EmptyCart, "the cart is empty", &Map::new()),
        Placement::Short(list) => {
            let list: Vec<Shortage<'_>> =
                list.iter().map(|s| Shortage { sku: &s.sku, requested: s.requested, available: s.available }).collect();
            problem(
                Problem::InsufficientStock,
                "not enough stock for every line; nothing was reserved",
                &shortages(&list),
            )
        }
    }
}

/// Places a batch of checkouts in one transaction; answers in request order.
pub async fn place_batch(
    conn: &mut PgConnection,
    settings: &Settings,
    requests: &[CheckoutRequest],
) -> Result<Vec<Answer>, sqlx::Error> {
    // Checking out is activity: the sessions due to slide slide here, whatever the checkout's outcome.
    let hashes: Vec<Vec<u8>> = requests.iter().map(|r| r.token.0.clone()).collect();
    let found = sessions::authenticate_many(&mut *conn, &hashes, settings.session_ttl).await?;
    let mut tx = conn.begin().await?;
    let session_of = |r: &CheckoutRequest| found.iter().find(|s| s.token_hash == r.token.0);

    // The same (session, key) twice in one batch: the first does the work, the rest replay it.
    let mut distinct: Vec<(Uuid, String)> = Vec::new();
    let mut owner: Vec<&sessions::SessionOfToken> = Vec::new();
    let slot: Vec<Option<usize>> = requests
        .iter()
        .map(|r| {
            let session = session_of(r)?;
            let id = (session.id, r.key.clone());
            Some(distinct.iter().position(|d| *d == id).unwrap_or_else(|| {
                distinct.push(id);
                owner.push(session);
                distinct.len() - 1
            }))
        })
        .collect();

    // Each order's id is chosen before its key is claimed, so the key is written once, already
    // naming it. Time-ordered ids keep the orders' indexes appending at their right edge.
    let planned: Vec<Uuid> = distinct.iter().map(|_| Uuid::now_v7()).collect();
    let claims =
        if distinct.is_empty() { Vec::new() } else { idempotency::claim_many(&mut tx, &distinct, &planned).await? };
    let new: Vec<usize> = (0..distinct.len()).filter(|&i| matches!(claims[i], Claim::New)).collect();
    let place: Vec<PlaceRequest> = new
        .iter()
        .map(|&i| PlaceRequest {
            order_id: planned[i],
            session_id: owner[i].id,
            customer_id: owner[i].customer_id.clone(),
            cart_id: owner[i].cart_id,
        })
        .collect();
    let placements = if place.is_empty() {
        Vec::new()
    } else {
        orders::place_many(&mut tx, &place, settings.currency.as_str(), settings.payment_timeout).await?
    };
    let mut fresh: Vec<Option<(u16, Value)>> = vec![None; distinct.len()];
    let mut records = Vec::with_capacity(new.len());
    for (&i, placement) in new.iter().zip(&placements) {
        let (status, body) = render(placement);
        if !matches!(placement, Placement::Placed(_)) {
            records.push((distinct[i].0, distinct[i].1.clone(), status, Stored::Body(body.clone())));
        }
        fresh[i] = Some((status, body));
    }
    // Replays of placed orders: the order as it was placed (its first status).
    let mut replayed: Vec<Option<Value>> = vec![None; distinct.len()];
    for (i, claim) in claims.iter().enumerate() {
        if let Claim::Replay { answer: Stored::Order(id), .. } = claim {
            if let Some(mut order) = orders::find(&mut tx, *id, &Viewer::Admin).await? {
                order.status = Status::AwaitingPayment;
                replayed[i] = Some(order.to_json());
            }
        }
    }
    if !records.is_empty() {
        idempotency::record_many(&mut tx, &records).await?;
    }
    tx.commit().await?;

    let mut answered = vec![false; distinct.len()];
    Ok(slot
        .iter()
        .map(|slot| {
            let Some(i) = *slot else {
                let (status, body) =
                    problem(Problem::Unauthorized, "unknown, expired or revoked session token", &Map::new());
                return Answer { status, body, replayed: false, cart_id: None };
            };
            let first = !std::mem::replace(&mut answered[i], true);
            let cart_id = Some(owner[i].cart_id);
            match (&fresh[i], &claims[i]) {
                (Some((status, body)), _) => Answer { status: *status, body: body.clone(), replayed: !first, cart_id },
                (None, Claim::Replay { status, answer: Stored::Body(body) }) => {
                    Answer { status: *status, body: body.clone(), replayed: true, cart_id }
                }
                (None, Claim::Replay { status, answer: Stored::Order(_) }) if replayed[i].is_some() => {
                    Answer { status: *status, body: replayed[i].clone().unwrap_or_default(), replayed: true, cart_id }
                }
                _ => {
                    let (status, body) = problem(
                        Problem::IdempotencyInProgress,
                        "a checkout with this Idempotency-Key is still running; retry",
                        &Map::new(),
                    );
                    Answer { status, body, replayed: false, cart_id }
                }
            }
        })
        .collect())
}

/// Why a checkout got no answer from the queue; `routes/checkout/place.rs` says it over HTTP.
#[derive(Debug)]
pub enum Unanswered {
    /// The replica is stopping and takes no more checkouts.
    ShuttingDown,
    /// The worker went away before answering.
    Lost,
    /// The checkout, retried alone, failed in the database.
    Database(sqlx::Error),
}

struct Job {
    request: CheckoutRequest,
    reply: oneshot::Sender<Result<Answer, Unanswered>>,
}

/// The replica's checkout queue and the workers that drain it in batches.
pub struct Checkouts {
    queue: mpsc::Sender<Job>,
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
        Checkouts { queue }
    }

    /// Places one checkout. It completes even if the caller stops waiting, so its answer is
    /// stored for the client's retry.
    pub async fn place(&self, request: CheckoutRequest) -> Result<Answer, Unanswered> {
        let (reply, answer) = oneshot::channel();
        self.queue.send(Job { request, reply }).await.map_err(|_| Unanswered::ShuttingDown)?;
        answer.await.map_err(|_| Unanswered::Lost)?
    }
}

async fn drain(receiver: Arc<Mutex<mpsc::Receiver<Job>>>, pool: PgPool, settings: Arc<Settings>, max_batch: usize) {
    // The worker keeps its connection while checkouts keep coming: batch after batch runs on
    // the same warm backend instead of whichever idle one the pool hands out next (measured:
    // 15% more spread checkouts once the pool has grown). It lets go whenever the queue is
    // empty, so an idle replica holds no connection and the pool can close.
    let mut held: Option<PoolConnection<Postgres>> = None;
    loop {
        let mut jobs = Vec::new();
        {
            let mut receiver = receiver.lock().await;
            let first = match receiver.try_recv() {
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
            jobs.push(first);
            while jobs.len() < max_batch {
                match receiver.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
        }
        let requests: Vec<CheckoutRequest> = jobs.iter().map(|j| j.request.clone()).collect();
        match place_on(&mut held, &pool, &settings, &requests).await {
            Ok(answers) => {
                for (job, answer) in jobs.into_iter().zip(answers) {
                    let _ = job.reply.send(Ok(answer));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, batch = jobs.len(), "checkout batch failed; retrying one by one");
                for job in jobs {
                    let single = place_on(&mut held, &pool, &settings, std::slice::from_ref(&job.request)).await;
                    let _ = job.reply.send(single.map(|mut a| a.remove(0)).map_err(Unanswered::Database));
                }
            }
        }
    }
}

/// `place_batch` on the held connection (acquired when there is none); a connection that
/// failed is let go, in case it is broken.
async fn place_on(
    held: &mut Option<PoolConnection<Postgres>>,
    pool: &PgPool,
    settings: &Settings,
    requests: &[CheckoutRequest],
) -> Result<Vec<Answer>, sqlx::Error> {
    let conn = match held {
        Some(conn) => conn,
        None => held.insert(pool.acquire().await?),
    };
    let placed = place_batch(conn, settings, requests).await;
    if placed.is_err() {
        *held = None;
    }
    placed
}
