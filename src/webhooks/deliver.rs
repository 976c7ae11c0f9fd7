//! The delivery worker every replica runs: plan, claim, send, record.
//!
//! Woken by the event hub when events arrive (and by a tick, for retries that come due), it
//! plans deliveries for new events, then claims as many due deliveries as it has room for:
//! `STOCKCART_WEBHOOK_CONCURRENCY` requests per endpoint, so one slow or dead endpoint fills
//! only its own slots and never delays another. Each claim is a lease a little longer than
//! the request timeout; the attempt's outcome is recorded only while the claim is still ours.

use std::{collections::HashMap, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use reqwest::{header, redirect, StatusCode};
use tokio::sync::{mpsc, Semaphore};
use uuid::Uuid;

use super::{guard, seal::Sealer, sign};
use crate::{
    metrics::Metrics,
    state::AppState,
    store::webhooks::{self, Claimed, Outcome, Outcomes},
};

/// Five days of nothing but failures disables an endpoint (Standard Webhooks' advice).
pub const DISABLE_AFTER: Duration = Duration::from_secs(5 * 86_400);
/// Most deliveries claimed by one replica at once, over all endpoints.
const MAX_CLAIMED: usize = 1024;
/// How much of a failing answer's body is kept (and logged): never a whole page.
const KEEP_BODY: usize = 256;
const PLAN_BATCH: i64 = 1000;
const TICK: Duration = Duration::from_millis(500);
/// At most this often, however many events arrive: planning and claiming are two statements
/// on every wake-up, and a checkout rush would otherwise wake the worker per commit.
const MIN_GAP: Duration = Duration::from_millis(50);

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
    endpoint_id: Uuid,
    status_code: Option<i32>,
    error: Option<String>,
    next_attempt_at: Option<DateTime<Utc>>,
    gone: bool,
    took: Duration,
}

/// Runs until the process ends. Errors are logged and retried on the next tick.
pub async fn run(state: Arc<AppState>, sealer: Sealer) {
    let sender = Arc::new(Sender::new(&state, sealer));
    let claim = Uuid::new_v4();
    let concurrency = state.settings.webhook_concurrency;
    // Claimed and not yet recorded, per endpoint; each endpoint's requests in flight are
    // bounded by its own semaphore, so a hanging endpoint holds only its own permits.
    let mut claimed: HashMap<Uuid, usize> = HashMap::new();
    let mut permits: HashMap<Uuid, Arc<Semaphore>> = HashMap::new();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
    let mut events = state.events.subscribe();
    // A claim covers the wait for a permit too: a slow endpoint's `QUEUE_SLOW` requests per
    // slot, or a fast one's `QUEUE_FAST` answered within `FAST` each.
    let lease = (state.settings.webhook_timeout * (QUEUE_SLOW as u32 + 1)).max(FAST * QUEUE_FAST as u32)
        + Duration::from_secs(5);
    // Which endpoints answered their last attempt quickly and well.
    let mut fast: HashMap<Uuid, bool> = HashMap::new();
    let mut depth_tick = tokio::time::interval(Duration::from_secs(5));
    let mut finished: Vec<Done> = Vec::new();
    loop {
        let started = tokio::time::Instant::now();
        while let Ok(d) = done_rx.try_recv() {
            finished.push(d);
        }
        if !finished.is_empty() {
            match record_all(&state, claim, &finished).await {
                Ok(()) => {
                    for d in finished.drain(..) {
                        fast.insert(d.endpoint_id, d.error.is_none() && d.took < FAST);
                        if let Some(n) = claimed.get_mut(&d.endpoint_id) {
                            *n -= 1;
                            if *n == 0 {
                                claimed.remove(&d.endpoint_id);
                            }
                        }
                    }
                }
                // Kept for the next turn; if this replica never manages, the leases run
                // out and another replica retries (the receiver may see a duplicate).
                Err(e) => tracing::warn!(error = %e, "cannot record webhook attempts; retrying"),
            }
        }
        match plan_and_claim(&state, claim, lease, concurrency, &claimed, &fast).await {
            Ok(batch) => {
                for d in batch {
                    *claimed.entry(d.endpoint_id).or_default() += 1;
                    let permit = permits.entry(d.endpoint_id).or_insert_with(|| Arc::new(Semaphore::new(concurrency)));
                    let (state, sender, permit, done) =
                        (state.clone(), sender.clone(), permit.clone(), done_tx.clone());
                    tokio::spawn(async move {
                        let _permit = permit.acquire_owned().await;
                        let _ = done.send(attempt(&state, &sender, &d).await);
                    });
                }
            }
            Err(e) => tracing::warn!(error = %e, "webhook planning or claiming failed; retrying"),
        }
        permits.retain(|id, _| claimed.contains_key(id));
        tokio::select! {
            _ = events.recv() => {
                // Several events at once are one wake-up.
                while events.try_recv().is_ok() {}
            }
            Some(d) = done_rx.recv() => finished.push(d),
            _ = depth_tick.tick() => record_depths(&state).await,
            _ = tokio::time::sleep(TICK) => {}
        }
        tokio::time::sleep_until(started + MIN_GAP).await;
    }
}

/// Deliveries claimed per endpoint and replica, in multiples of its concurrency. An endpoint
/// that answers quickly gets many, so that one turn of the loop keeps its permits busy under a
/// checkout rush; a slow or failing one gets few, so that what it has claimed is sent well
/// within the lease.
const QUEUE_FAST: usize = 64;
const QUEUE_SLOW: usize = 2;
/// An answer this quick (a 2xx) marks an endpoint as fast.
const FAST: Duration = Duration::from_millis(100);

async fn plan_and_claim(
    state: &AppState,
    claim: Uuid,
    lease: Duration,
    concurrency: usize,
    claimed: &HashMap<Uuid, usize>,
    fast: &HashMap<Uuid, bool>,
) -> Result<Vec<Claimed>, sqlx::Error> {
    let total: usize = claimed.values().sum();
    let mut room_left = MAX_CLAIMED.saturating_sub(total);
    let mut conn = state.pool.acquire().await?;
    while webhooks::plan(&mut conn, PLAN_BATCH).await? > 0 {}
    let mut batch = Vec::new();
    for endpoint in webhooks::enabled(&mut conn).await? {
        let queue = if fast.get(&endpoint).copied().unwrap_or(false) { QUEUE_FAST } else { QUEUE_SLOW };
        let room = (concurrency * queue).saturating_sub(claimed.get(&endpoint).copied().unwrap_or(0)).min(room_left);
        if room == 0 {
            continue;
        }
        let got = webhooks::claim(&mut conn, claim, endpoint, room as i64, lease).await?;
        room_left -= got.len();
        batch.extend(got);
    }
    Ok(batch)
}

async fn attempt(state: &AppState, sender: &Sender, d: &Claimed) -> Done {
    let started = std::time::Instant::now();
    let (status, result, retry_after) = sender.attempt(d).await;
    let took = started.elapsed();
    let metrics: &Metrics = &state.metrics;
    let status_code = status.map(|s| i32::from(s.as_u16()));
    let mut done = Done {
        id: d.id,
        endpoint_id: d.endpoint_id,
        status_code,
        error: None,
        next_attempt_at: None,
        gone: false,
        took,
    };
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

async fn record_all(state: &AppState, claim: Uuid, finished: &[Done]) -> Result<(), sqlx::Error> {
    let mut outcomes = Outcomes::default();
    for d in finished {
        let outcome = match (&d.error, d.gone) {
            (None, _) => Outcome::Succeeded { status_code: d.status_code.unwrap_or(200) },
            (Some(_), true) => Outcome::Gone { status_code: 410 },
            (Some(error), false) => {
                Outcome::Failed { status_code: d.status_code, error, next_attempt_at: d.next_attempt_at }
            }
        };
        outcomes.push(d.id, outcome);
    }
    let mut conn = state.pool.acquire().await?;
    webhooks::record(&mut conn, claim, &outcomes, DISABLE_AFTER).await
}

async fn record_depths(state: &AppState) {
    let depths = async {
        let mut conn = state.pool.acquire().await?;
        webhooks::queue_depths(&mut conn).await
    }
    .await;
    if let Ok(depths) = depths {
        state.metrics.set_webhook_depths(depths);
    }
}
