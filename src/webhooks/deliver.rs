//! The delivery worker every replica runs: plan, claim, send, record.
//!
//! One loop per replica does the database work in turns, a few statements each whatever the
//! load: it records the attempts finished since the last turn (one statement), plans
//! deliveries for new events (one, or more while a backlog is planned), and claims due
//! deliveries of every endpoint (one). Sending happens beside it: each endpoint has a lane,
//! a queue of claimed deliveries drained by at most `STOCKCART_WEBHOOK_CONCURRENCY` runners,
//! each sending one request at a time over the client's kept-alive connections. So a slow or
//! dead endpoint holds only its own runners and never delays another, and a fast one never
//! waits for a turn between two requests: its queue holds a few turns' worth.
//!
//! A claim is a lease; a delivery is sent only while enough of its lease is left for the
//! request to end within it, and is given back otherwise. The outcome is recorded only while
//! that claim still holds, so a replica that dies loses nothing but time: its leases run out
//! and another replica retries.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::{DateTime, Utc};
use reqwest::{header, redirect, StatusCode};
use sqlx::{postgres::PgPoolOptions, PgPool};
use tokio::{sync::mpsc, task::JoinSet, time::Instant};
use uuid::Uuid;

use super::{guard, seal::Sealer, sign};
use crate::{
    metrics::Metrics,
    state::AppState,
    store::webhooks::{self, Claimed, Outcome, Outcomes, Rooms},
};

/// Five days of nothing but failures disables an endpoint (Standard Webhooks' advice).
pub const DISABLE_AFTER: Duration = Duration::from_secs(5 * 86_400);
/// Most deliveries claimed and not yet sent or given back by one replica, over all endpoints.
const MAX_CLAIMED: usize = 8192;
/// How much of a failing answer's body is kept (and logged): never a whole page.
const KEEP_BODY: usize = 256;
const PLAN_BATCH: i64 = 1000;
/// Retries come due without an event to wake the worker.
const TICK: Duration = Duration::from_millis(500);
/// At most this often, however many events arrive or attempts end: each turn is a few
/// statements, and a checkout rush would otherwise wake the worker per commit and per answer.
const MIN_GAP: Duration = Duration::from_millis(20);
/// A healthy endpoint's lane holds this many deliveries per runner, claimed ahead: enough for
/// its runners to stay busy between two turns at a few milliseconds a request. An endpoint
/// whose last attempt failed (or that has not answered yet) gets only as many as it has
/// runners, so that what it holds is sent within the lease and other replicas can take the rest.
const QUEUE_PER_RUNNER: usize = 16;
/// Left of a lease when a delivery's request starts: its timeout plus this, for the outcome
/// to be recorded in time.
const RECORD_MARGIN: Duration = Duration::from_secs(5);

/// What the worker needs besides the database: its HTTP client and the secrets' key.
pub struct Sender {
    client: reqwest::Client,
    sealer: Sealer,
    schedule: Vec<Duration>,
    allow_internal: bool,
}

impl Sender {
    pub fn new(state: &AppState, sealer: Sealer) -> Sender {
        let settings = &state.settings;
        let client = reqwest::Client::builder()
            .redirect(redirect::Policy::none())
            // A proxy from the environment would be the address checked, not the receiver's.
            .no_proxy()
            .timeout(settings.webhook_timeout)
            .connect_timeout(settings.webhook_timeout)
            .dns_resolver(guard::resolver(settings.webhook_allow_private))
            .pool_max_idle_per_host(settings.webhook_concurrency)
            .user_agent(concat!("stockcart-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the webhook HTTP client builds");
        Sender {
            client,
            sealer,
            schedule: settings.webhook_retry_schedule.clone(),
            allow_internal: settings.webhook_allow_private,
        }
    }

    /// One attempt: the outcome to record, and the HTTP status when there was an answer.
    async fn attempt(&self, d: &Claimed) -> (Option<StatusCode>, Result<(), String>, Option<Duration>) {
        let url = match reqwest::Url::parse(&d.url) {
            Ok(u) if guard::literal_allowed(&u, self.allow_internal) => u,
            Ok(_) => return (None, Err("the URL's address is internal".into()), None),
            Err(e) => return (None, Err(format!("the URL does not parse: {e}")), None),
        };
        let mut secrets = Vec::with_capacity(2);
        match self.sealer.open(&d.secret) {
            Some(s) => secrets.push(s),
            None => return (None, Err("the endpoint's secret cannot be opened with this replica's key".into()), None),
        }
        if d.previous_secret_until.is_some_and(|until| until > Utc::now()) {
            if let Some(previous) = d.previous_secret.as_deref().and_then(|p| self.sealer.open(p)) {
                secrets.push(previous);
            }
        }
        let id = d.event_id.to_string();
        let timestamp = Utc::now().timestamp();
        let response = self
            .client
            .post(url)
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", sign::header(&secrets, &id, timestamp, &d.body))
            .header(header::CONTENT_TYPE, "application/json")
            .body(d.body.clone())
            .send()
            .await;
        let mut response = match response {
            Ok(r) => r,
            Err(e) => return (None, Err(describe(&e)), None),
        };
        let status = response.status();
        if status.is_success() {
            return (Some(status), Ok(()), None);
        }
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        // A little of the body helps whoever reads the delivery log; more is never read.
        let mut kept = Vec::new();
        while kept.len() < KEEP_BODY {
            match tokio::time::timeout(Duration::from_secs(1), response.chunk()).await {
                Ok(Ok(Some(chunk))) => kept.extend_from_slice(&chunk[..chunk.len().min(KEEP_BODY - kept.len())]),
                _ => break,
            }
        }
        let text = String::from_utf8_lossy(&kept);
        (Some(status), Err(format!("HTTP {}: {}", status.as_u16(), text.trim())), retry_after)
    }

    /// When to try again after the `attempts`-th attempt failed, or `None` when that was the
    /// last: the schedule's step with up to 10% jitter, or a longer `Retry-After`.
    fn next_attempt(&self, attempts: i32, retry_after: Option<Duration>) -> Option<DateTime<Utc>> {
        let step = *self.schedule.get(usize::try_from(attempts).ok()?.checked_sub(1)?)?;
        let mut jitter = [0u8; 2];
        getrandom::getrandom(&mut jitter).expect("the OS random number generator works");
        let fraction = f64::from(u16::from_le_bytes(jitter)) / f64::from(u16::MAX) * 0.1;
        // A receiver may ask for more time, not for forever: at most a day.
        let asked = retry_after.unwrap_or_default().min(Duration::from_secs(86_400));
        let wait = step.mul_f64(1.0 + fraction).max(asked);
        Utc::now().checked_add_signed(chrono::Duration::from_std(wait).ok()?)
    }
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "no answer within the timeout".into()
    } else if e.is_connect() {
        format!("cannot connect: {e}")
    } else {
        format!("request failed: {e}")
    }
}

/// A finished attempt, waiting to be recorded with the others of its moment.
struct Done {
    id: i64,
    claim: Uuid,
    status_code: Option<i32>,
    error: Option<String>,
    next_attempt_at: Option<DateTime<Utc>>,
    gone: bool,
}

/// What a runner hands back to the loop.
enum Finished {
    Attempted(Done),
    /// Not sent: too little of the lease was left. Given back for any replica to claim.
    Released {
        id: i64,
        claim: Uuid,
    },
}

/// A claimed delivery waiting in its endpoint's lane.
struct Queued {
    delivery: Claimed,
    claim: Uuid,
    /// The last moment its request may start and still end, and be recorded, within the lease.
    send_by: Instant,
}

/// One endpoint's share of this replica's work: its claimed deliveries and its runners. Kept
/// while the process runs (endpoints are few), so that what it knows of the endpoint's health
/// outlives a moment with nothing to send.
struct Lane {
    queue: VecDeque<Queued>,
    /// Runner tasks alive; each sends one request at a time, so this is the lane's requests
    /// in flight, at most the concurrency.
    runners: usize,
    /// No attempt succeeded yet, or the last one failed: claim no more than there are runners.
    failing: bool,
}

impl Default for Lane {
    fn default() -> Lane {
        Lane { queue: VecDeque::new(), runners: 0, failing: true }
    }
}

type Lanes = HashMap<Uuid, Arc<Mutex<Lane>>>;

fn lock(lane: &Mutex<Lane>) -> std::sync::MutexGuard<'_, Lane> {
    lane.lock().unwrap_or_else(|e| e.into_inner())
}

/// The worker's own connection: its turns never wait behind requests for the request pool,
/// and requests never wait behind it. Its commits do not wait for the WAL flush: a commit
/// lost with a crash of the database is a claim or an outcome lost, which at-least-once
/// already allows (a lease runs out, a delivery is sent again); planning loses its deliveries
/// and its cursor move together, so nothing is missed or planned twice.
///
/// Its statements are planned for their parameters each time, not once for the connection's
/// life: on a connection opened while the deliveries table was empty, the claim took seconds
/// per turn under a checkout rush (into the statement timeout); on connections opened later
/// the same load was claimed in milliseconds.
fn worker_pool(pool: &PgPool) -> PgPool {
    let options = pool
        .connect_options()
        .as_ref()
        .clone()
        .options([("synchronous_commit", "off"), ("plan_cache_mode", "force_custom_plan")]);
    PgPoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(3))
        .connect_lazy_with(options)
}

/// Runs until the process ends (or the task is aborted, which stops its runners and their
/// requests with it). Errors are logged and retried on the next turn.
pub async fn run(state: Arc<AppState>, sealer: Sealer) {
    let sender = Arc::new(Sender::new(&state, sealer));
    let pool = worker_pool(&state.pool);
    let settings = &state.settings;
    let concurrency = settings.webhook_concurrency;
    // Long enough for a delivery to wait a while in its lane and then take the full timeout.
    let lease = settings.webhook_timeout * 3 + RECORD_MARGIN;
    let send_within = lease - settings.webhook_timeout - RECORD_MARGIN;
    let mut lanes: Lanes = HashMap::new();
    let mut runners = JoinSet::new();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Finished>();
    let mut events = state.events.wakes();
    let mut depth_tick = tokio::time::interval(Duration::from_secs(5));
    let mut finished: Vec<Done> = Vec::new();
    let mut released: Vec<(i64, Uuid)> = Vec::new();
    loop {
        let started = Instant::now();
        while runners.try_join_next().is_some() {}
        while let Ok(f) = done_rx.try_recv() {
            match f {
                Finished::Attempted(d) => finished.push(d),
                Finished::Released { id, claim } => released.push((id, claim)),
            }
        }
        // Kept for the next turn when they fail; if this replica never manages, the leases
        // run out and another replica retries (the receiver may see a duplicate).
        if !finished.is_empty() {
            match record_all(&pool, &finished).await {
                Ok(()) => finished.clear(),
                Err(e) => tracing::warn!(error = %e, "cannot record webhook attempts; retrying"),
            }
        }
        if !released.is_empty() {
            let (ids, claims): (Vec<i64>, Vec<Uuid>) = released.iter().copied().unzip();
            match release(&pool, &ids, &claims).await {
                Ok(()) => released.clear(),
                Err(e) => tracing::warn!(error = %e, "cannot give back webhook leases; retrying"),
            }
        }
        match plan_and_claim(&pool, lease, concurrency, &mut lanes).await {
            Ok((claim, batch)) => {
                let send_by = started + send_within;
                for delivery in batch {
                    let lane = lanes.entry(delivery.endpoint_id).or_default();
                    lock(lane).queue.push_back(Queued { delivery, claim, send_by });
                }
            }
            Err(e) => tracing::warn!(error = %e, "webhook planning or claiming failed; retrying"),
        }
        for lane in lanes.values() {
            let mut l = lock(lane);
            let start = l.queue.len().min(concurrency.saturating_sub(l.runners));
            l.runners += start;
            drop(l);
            for _ in 0..start {
                let (lane, state, sender, done) = (lane.clone(), state.clone(), sender.clone(), done_tx.clone());
                runners.spawn(async move { run_lane(&lane, &state, &sender, &done).await });
            }
        }
        tokio::select! {
            // Several reads of events at once are one wake-up.
            _ = events.changed() => {}
            Some(f) = done_rx.recv() => match f {
                Finished::Attempted(d) => finished.push(d),
                Finished::Released { id, claim } => released.push((id, claim)),
            },
            _ = depth_tick.tick() => record_depths(&state, &pool).await,
            _ = tokio::time::sleep(TICK) => {}
        }
        tokio::time::sleep_until(started + MIN_GAP).await;
    }
}

/// A runner: sends the lane's deliveries one at a time until the lane is empty.
async fn run_lane(lane: &Mutex<Lane>, state: &AppState, sender: &Sender, done: &mpsc::UnboundedSender<Finished>) {
    loop {
        let next = {
            let mut l = lock(lane);
            match l.queue.pop_front() {
                Some(q) => q,
                None => {
                    // Under the lock that the loop takes to start runners: a delivery queued
                    // after this finds one runner fewer and starts one.
                    l.runners -= 1;
                    return;
                }
            }
        };
        let finished = if Instant::now() > next.send_by {
            Finished::Released { id: next.delivery.id, claim: next.claim }
        } else {
            let d = attempt(state, sender, &next.delivery, next.claim).await;
            lock(lane).failing = d.error.is_some();
            Finished::Attempted(d)
        };
        if done.send(finished).is_err() {
            return;
        }
    }
}

/// Plans, then claims for every endpoint what its lane has room for, under a new claim.
async fn plan_and_claim(
    pool: &PgPool,
    lease: Duration,
    concurrency: usize,
    lanes: &mut Lanes,
) -> Result<(Uuid, Vec<Claimed>), sqlx::Error> {
    let mut conn = pool.acquire().await?;
    while webhooks::plan(&mut conn, PLAN_BATCH).await? >= PLAN_BATCH {}
    let full = concurrency * QUEUE_PER_RUNNER;
    let mut held = 0;
    // An endpoint not seen yet gets one request per runner, until it has answered well.
    let mut rooms = Rooms { endpoints: Vec::new(), rooms: Vec::new(), default_room: concurrency as i64 };
    for (endpoint, lane) in lanes.iter() {
        let l = lock(lane);
        let target = if l.failing { concurrency } else { full };
        let has = l.queue.len() + l.runners;
        held += has;
        rooms.endpoints.push(*endpoint);
        rooms.rooms.push(target.saturating_sub(has) as i64);
    }
    if held >= MAX_CLAIMED {
        return Ok((Uuid::nil(), Vec::new()));
    }
    let claim = Uuid::new_v4();
    Ok((claim, webhooks::claim(&mut conn, claim, &rooms, lease).await?))
}

async fn attempt(state: &AppState, sender: &Sender, d: &Claimed, claim: Uuid) -> Done {
    let (status, result, retry_after) = sender.attempt(d).await;
    let metrics: &Metrics = &state.metrics;
    let status_code = status.map(|s| i32::from(s.as_u16()));
    let mut done = Done { id: d.id, claim, status_code, error: None, next_attempt_at: None, gone: false };
    match (result, status) {
        (Ok(()), _) => metrics.webhook_delivered((Utc::now() - d.created_at).to_std().unwrap_or_default()),
        (Err(error), Some(StatusCode::GONE)) => {
            metrics.webhook_attempt_failed(true);
            done.error = Some(error);
            done.gone = true;
        }
        (Err(error), _) => {
            done.next_attempt_at = sender.next_attempt(d.attempts, retry_after);
            metrics.webhook_attempt_failed(done.next_attempt_at.is_none());
            tracing::info!(delivery = d.id, endpoint = %d.endpoint_id, attempt = d.attempts, error = %error, "webhook attempt failed");
            done.error = Some(error);
        }
    }
    done
}

async fn record_all(pool: &PgPool, finished: &[Done]) -> Result<(), sqlx::Error> {
    let mut outcomes = Outcomes::default();
    for d in finished {
        let outcome = match (&d.error, d.gone) {
            (None, _) => Outcome::Succeeded { status_code: d.status_code.unwrap_or(200) },
            (Some(_), true) => Outcome::Gone { status_code: 410 },
            (Some(error), false) => {
                Outcome::Failed { status_code: d.status_code, error, next_attempt_at: d.next_attempt_at }
            }
        };
        outcomes.push(d.id, d.claim, outcome);
    }
    let mut conn = pool.acquire().await?;
    webhooks::record(&mut conn, &outcomes, DISABLE_AFTER).await
}

async fn release(pool: &PgPool, ids: &[i64], claims: &[Uuid]) -> Result<(), sqlx::Error> {
    let mut conn = pool.acquire().await?;
    webhooks::release(&mut conn, ids, claims).await
}

async fn record_depths(state: &AppState, pool: &PgPool) {
    let depths = async {
        let mut conn = pool.acquire().await?;
        webhooks::queue_depths(&mut conn).await
    }
    .await;
    if let Ok(depths) = depths {
        state.metrics.set_webhook_depths(depths);
    }
}
