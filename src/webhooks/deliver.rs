//! The delivery worker every replica runs: plan, claim, send, record.
//!
//! Woken by the event hub when events arrive (and by a tick, for retries that come due), it
//! plans deliveries for new events, then claims as many due deliveries as it has room for:
//! `STOCKCART_WEBHOOK_CONCURRENCY` requests per endpoint, so one slow or dead endpoint fills
//! only its own slots and never delays another. Each claim is a lease a little longer than
//! the request timeout; the attempt's outcome is recorded only while the claim is still ours.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::{DateTime, Utc};
use reqwest::{header, redirect, StatusCode};
use tokio::task::JoinSet;
use uuid::Uuid;

use super::{guard, seal::Sealer, sign};
use crate::{
    metrics::Metrics,
    state::AppState,
    store::webhooks::{self, Claimed, Outcome},
};

/// Five days of nothing but failures disables an endpoint (Standard Webhooks' advice).
pub const DISABLE_AFTER: Duration = Duration::from_secs(5 * 86_400);
/// Most requests in flight on one replica, over all endpoints.
const MAX_IN_FLIGHT: usize = 256;
/// How much of a failing answer's body is kept (and logged): never a whole page.
const KEEP_BODY: usize = 256;
const PLAN_BATCH: i64 = 1000;
const TICK: Duration = Duration::from_millis(500);

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
        let wait = step.mul_f64(1.0 + fraction).max(retry_after.unwrap_or_default());
        Some(Utc::now() + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::days(1)))
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

/// Runs until the process ends. Errors are logged and retried on the next tick.
pub async fn run(state: Arc<AppState>, sealer: Sealer) {
    let sender = Arc::new(Sender::new(&state, sealer));
    let claim = Uuid::new_v4();
    let in_flight: Arc<Mutex<HashMap<Uuid, usize>>> = Arc::default();
    let mut sends = JoinSet::new();
    let mut events = state.events.subscribe();
    let lease = state.settings.webhook_timeout + Duration::from_secs(5);
    let mut depth_tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        if let Err(e) = plan_and_claim(&state, &sender, claim, lease, &in_flight, &mut sends).await {
            tracing::warn!(error = %e, "webhook planning or claiming failed; retrying");
        }
        tokio::select! {
            _ = events.recv() => {
                // Several events at once are one wake-up.
                while events.try_recv().is_ok() {}
            }
            Some(_) = sends.join_next(), if !sends.is_empty() => {}
            _ = depth_tick.tick() => record_depths(&state).await,
            _ = tokio::time::sleep(TICK) => {}
        }
    }
}

async fn plan_and_claim(
    state: &Arc<AppState>,
    sender: &Arc<Sender>,
    claim: Uuid,
    lease: Duration,
    in_flight: &Arc<Mutex<HashMap<Uuid, usize>>>,
    sends: &mut JoinSet<()>,
) -> Result<(), sqlx::Error> {
    let mut conn = state.pool.acquire().await?;
    while webhooks::plan(&mut conn, PLAN_BATCH).await? > 0 {}
    let (busy, counts, total): (Vec<Uuid>, Vec<i64>, usize) = {
        let map = in_flight.lock().unwrap_or_else(|e| e.into_inner());
        (map.keys().copied().collect(), map.values().map(|n| *n as i64).collect(), map.values().sum())
    };
    let room = MAX_IN_FLIGHT.saturating_sub(total);
    if room == 0 {
        return Ok(());
    }
    let claimed = webhooks::claim(
        &mut conn,
        claim,
        &busy,
        &counts,
        state.settings.webhook_concurrency as i64,
        room as i64,
        lease,
    )
    .await?;
    drop(conn);
    for d in claimed {
        *in_flight.lock().unwrap_or_else(|e| e.into_inner()).entry(d.endpoint_id).or_default() += 1;
        let (state, sender, in_flight) = (state.clone(), sender.clone(), in_flight.clone());
        sends.spawn(async move {
            deliver(&state, &sender, claim, &d).await;
            let mut map = in_flight.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = map.get_mut(&d.endpoint_id) {
                *n -= 1;
                if *n == 0 {
                    map.remove(&d.endpoint_id);
                }
            }
        });
    }
    Ok(())
}

async fn deliver(state: &AppState, sender: &Sender, claim: Uuid, d: &Claimed) {
    let (status, result, retry_after) = sender.attempt(d).await;
    let metrics: &Metrics = &state.metrics;
    let code = status.map(|s| i32::from(s.as_u16()));
    let outcome = match (&result, status) {
        (Ok(()), _) => {
            metrics.webhook_delivered((Utc::now() - d.created_at).to_std().unwrap_or_default());
            Outcome::Succeeded { status_code: code.unwrap_or(200) }
        }
        (Err(_), Some(StatusCode::GONE)) => {
            metrics.webhook_attempt_failed(true);
            Outcome::Gone { status_code: 410 }
        }
        (Err(error), _) => {
            let next_attempt_at = sender.next_attempt(d.attempts, retry_after);
            metrics.webhook_attempt_failed(next_attempt_at.is_none());
            tracing::info!(delivery = d.id, endpoint = %d.endpoint_id, attempt = d.attempts, error = %error, "webhook attempt failed");
            Outcome::Failed { status_code: code, error, next_attempt_at }
        }
    };
    // The outcome must be written even if the database blips: retry a few times, and if it
    // still cannot be, the lease runs out and another attempt (a duplicate) follows.
    for wait in [0, 200, 1000] {
        tokio::time::sleep(Duration::from_millis(wait)).await;
        let written = async {
            let mut conn = state.pool.acquire().await?;
            webhooks::record(&mut conn, d.id, claim, outcome, DISABLE_AFTER).await
        }
        .await;
        match written {
            Ok(()) => return,
            Err(e) => tracing::warn!(error = %e, delivery = d.id, "cannot record a webhook attempt; retrying"),
        }
    }
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
