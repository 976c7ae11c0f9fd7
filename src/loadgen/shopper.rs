//! A virtual shopper, and the admin actor that pays and ships.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use reqwest::Method;
use serde_json::{json, Value};

use super::{
    options::{Options, Scenario},
    report::{epoch_ms, Recorder},
    sku_name, Reply, Rng, Shared, Target, Zipf,
};

pub struct Shopper {
    target: Target,
    options: Arc<Options>,
    rng: Rng,
    zipf: Zipf,
    token: String,
    /// The cart as this shopper believes it is: (sku index, quantity).
    lines: Vec<(usize, i64)>,
    orders: Vec<String>,
    checkouts: u64,
    id: usize,
    /// Carts filled beforehand (`--carts`), shared by all users.
    ready_carts: Shared<Vec<String>>,
}

async fn timed(
    recorder: &Recorder,
    op: &'static str,
    expected: &[u16],
    request: impl std::future::Future<Output = Reply>,
) -> Reply {
    timed_with_key(recorder, op, expected, None, request).await
}

/// Measures and records one request, and writes its line of the client log (with the
/// checkout's key, and for an acknowledged order its id and lines).
async fn timed_with_key(
    recorder: &Recorder,
    op: &'static str,
    expected: &[u16],
    key: Option<&str>,
    request: impl std::future::Future<Output = Reply>,
) -> Reply {
    let started = Instant::now();
    let reply = request.await;
    let elapsed = started.elapsed();
    let ok = (200..300).contains(&reply.status) || expected.contains(&reply.status);
    recorder.record(op, elapsed, reply.status, &reply.body, ok);
    if let Some(log) = &recorder.log {
        let mut entry = json!({ "at": epoch_ms(), "op": op, "status": reply.status,
                                "ms": elapsed.as_secs_f64() * 1000.0, "base": &*reply.base });
        if let Some(code) = reply.body["code"].as_str() {
            entry["code"] = code.into();
        }
        if let Some(key) = key {
            entry["key"] = key.into();
        }
        if op == "checkout" && reply.status == 201 {
            entry["order"] = reply.body["id"].clone();
            entry["replayed"] = reply.replayed.into();
            let lines = reply.body["lines"].as_array().map(Vec::as_slice).unwrap_or_default();
            entry["lines"] =
                lines.iter().map(|l| json!({ "sku": l["sku"], "quantity": l["quantity"] })).collect::<Value>();
        }
        log.write(&entry);
    }
    reply
}

/// An answer a careful client retries: the service was unavailable, or the first attempt of
/// the same checkout is still in flight.
fn transient(reply: &Reply) -> bool {
    matches!(reply.status, 0 | 429 | 502 | 503 | 504)
        || (reply.status == 409 && reply.body["code"] == "idempotency_in_progress")
}

/// Waits as asked (`Retry-After`, at most 2 s so a test sees recovery promptly), or briefly
/// after a network error: the next attempt goes to the next base URL.
async fn pause_before_retry(reply: &Reply) {
    let wait = match reply.retry_after {
        Some(seconds) => Duration::from_secs(seconds.min(2)),
        None if reply.status == 0 => Duration::from_millis(100),
        None => Duration::from_millis(200),
    };
    tokio::time::sleep(wait).await;
}

/// When a retrying client stops trying (checked between attempts).
type GiveUp<'a> = &'a (dyn Fn() -> bool + Sync);

impl Shopper {
    pub async fn prepare(
        id: usize,
        target: Target,
        options: Arc<Options>,
        ready_carts: Shared<Vec<String>>,
    ) -> Result<Shopper, String> {
        let zipf = Zipf::new(options.skus, options.zipf);
        let mut shopper = Shopper {
            rng: Rng::new(options.seed.wrapping_mul(1_000_003).wrapping_add(id as u64)),
            zipf,
            target,
            options,
            token: String::new(),
            lines: Vec::new(),
            orders: Vec::new(),
            checkouts: 0,
            id,
            ready_carts,
        };
        shopper.token = shopper.new_session(None).await?;
        if shopper.options.scenario == Scenario::GetCart {
            // A warm cart of three lines.
            for i in 0..3 {
                let sku = (id * 3 + i) % shopper.options.skus;
                let r = shopper
                    .target
                    .send(
                        Method::POST,
                        "/v1/cart/items",
                        Some(&shopper.token),
                        Some(&json!({ "sku": sku_name(sku), "quantity": 1 })),
                        None,
                    )
                    .await;
                if r.status != 200 {
                    return Err(format!("preparing a cart failed with {}: {}", r.status, r.body));
                }
            }
        }
        Ok(shopper)
    }

    /// A new session; with `--retry` it is measured and logged like any request, and retried.
    async fn new_session(&self, recorder: Option<(&Recorder, GiveUp<'_>)>) -> Result<String, String> {
        let r = match recorder {
            Some((recorder, give_up)) if self.options.retry => self
                .send_retrying(recorder, "session", &[], Method::POST, "/v1/sessions", None, None, None, give_up)
                .await
                .ok_or("creating a session: gave up")?,
            _ => self.target.send(Method::POST, "/v1/sessions", None, None, None).await,
        };
        r.body["token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("creating a session failed with {}", r.status))
    }

    fn pick_sku(&mut self) -> usize {
        if self.options.hot {
            0
        } else {
            self.zipf.sample(&mut self.rng)
        }
    }

    pub async fn run(mut self, recorder: &Recorder, stop: &AtomicBool, budget: &AtomicU64, deadline: Instant) {
        // Cart work stops with the run; a checkout already sent is retried a while longer, so
        // that it ends with a definitive answer (or is logged as abandoned).
        let stopped = || stop.load(Ordering::Relaxed) || Instant::now() >= deadline;
        let (stop_seen, give_up) = (std::sync::OnceLock::new(), self.options.give_up);
        let checkout_gives_up = || stopped() && stop_seen.get_or_init(Instant::now).elapsed() >= give_up;
        let mut pace = self.options.rate.map(|rate| {
            let every = Duration::from_secs_f64(self.options.users as f64 / rate);
            // Users start spread over one period, so the load is even rather than in waves.
            let first = Instant::now() + every.mul_f64(self.id as f64 / self.options.users as f64);
            let mut pace = tokio::time::interval_at(first.into(), every);
            // Behind the pace, the next iteration starts at once and the rest keep their spacing:
            // no burst to catch up, so the offered load never exceeds the rate.
            pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            pace
        });
        while !stopped() {
            if let Some(pace) = pace.as_mut() {
                tokio::select! {
                    _ = pace.tick() => {}
                    _ = tokio::time::sleep_until(deadline.into()) => break,
                }
            }
            if budget.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1)).is_err() {
                break;
            }
            match self.options.scenario {
                Scenario::GetCart => self.get_cart(recorder).await,
                Scenario::AddToCart => self.add_within_limits(recorder).await,
                Scenario::Checkout if self.options.carts_file.is_some() => {
                    let next = self.ready_carts.lock().unwrap_or_else(|e| e.into_inner()).pop();
                    let Some(token) = next else { break };
                    self.token = token;
                    self.check_out(recorder, &checkout_gives_up).await;
                }
                Scenario::Checkout => self.fill_and_check_out(recorder, &stopped, &checkout_gives_up).await,
                Scenario::Mixed => self.mixed_step(recorder, &checkout_gives_up).await,
            }
        }
    }

    /// Adds one unit of a popular SKU; moves to a fresh session before a line or the cart
    /// would hit the contract's limits, so the measure is of successful adds.
    async fn add_within_limits(&mut self, recorder: &Recorder) {
        let window = self.options.skus.min(100);
        let sku = if self.options.hot { 0 } else { self.rng.below(window) };
        let full_line = self.lines.iter().any(|(s, q)| *s == sku && *q >= 999);
        if full_line {
            match self.new_session(None).await {
                Ok(token) => {
                    self.token = token;
                    self.lines.clear();
                }
                Err(_) => return,
            }
        }
        self.add(recorder, sku, 1).await;
    }

    async fn get_cart(&self, recorder: &Recorder) {
        timed(recorder, "get_cart", &[], self.target.send(Method::GET, "/v1/cart", Some(&self.token), None, None))
            .await;
    }

    /// `POST /v1/cart/items`, measured as "add"; a 409 (sold out) is an expected answer.
    async fn add(&mut self, recorder: &Recorder, sku: usize, quantity: i64) -> u16 {
        let body = json!({ "sku": sku_name(sku), "quantity": quantity });
        let request = self.target.send(Method::POST, "/v1/cart/items", Some(&self.token), Some(&body), None);
        let reply = timed(recorder, "add", &[409], request).await;
        if reply.status == 200 {
            self.remember(sku, quantity);
        }
        reply.status
    }

    fn remember(&mut self, sku: usize, quantity: i64) {
        match self.lines.iter_mut().find(|(s, _)| *s == sku) {
            Some(line) => line.1 += quantity,
            None => self.lines.push((sku, quantity)),
        }
    }

    /// One request; with `--retry`, repeated while the answer is transient until `give_up`
    /// (then None). Without it, the first answer.
    #[allow(clippy::too_many_arguments)]
    async fn send_retrying(
        &self,
        recorder: &Recorder,
        op: &'static str,
        expected: &[u16],
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        key: Option<&str>,
        give_up: GiveUp<'_>,
    ) -> Option<Reply> {
        loop {
            let request = self.target.send(method.clone(), path, token, body, key);
            let reply = timed_with_key(recorder, op, expected, key, request).await;
            if !self.options.retry || !transient(&reply) {
                return Some(reply);
            }
            if give_up() {
                return None;
            }
            pause_before_retry(&reply).await;
        }
    }

    /// A fresh session, `lines` distinct SKUs of one unit each, then checkout (measured).
    /// With `--retry` every step is retried, and lines are set (PUT) rather than added, so a
    /// repeated attempt cannot change the cart.
    async fn fill_and_check_out(&mut self, recorder: &Recorder, stopped: GiveUp<'_>, checkout_gives_up: GiveUp<'_>) {
        let Ok(token) = self.new_session(Some((recorder, stopped))).await else { return };
        self.token = token;
        let lines = if self.options.hot { 1 } else { self.options.lines.min(self.options.skus) };
        let mut chosen: Vec<usize> = Vec::new();
        while chosen.len() < lines {
            let sku = if self.options.hot { 0 } else { self.rng.below(self.options.skus) };
            if !chosen.contains(&sku) {
                chosen.push(sku);
            }
        }
        for sku in chosen {
            let status = if self.options.retry {
                self.set_line(recorder, sku, stopped).await
            } else {
                self.add(recorder, sku, 1).await
            };
            if status != 200 {
                return; // Sold out already (or the run ended): nothing to check out.
            }
        }
        self.check_out(recorder, checkout_gives_up).await;
    }

    /// `PUT /v1/cart/items/{sku}` to one unit, retried; 0 when the run ended first.
    async fn set_line(&mut self, recorder: &Recorder, sku: usize, give_up: GiveUp<'_>) -> u16 {
        let path = format!("/v1/cart/items/{}", sku_name(sku));
        let body = json!({ "quantity": 1 });
        let token = self.token.clone();
        let reply = self
            .send_retrying(recorder, "set", &[409], Method::PUT, &path, Some(&token), Some(&body), None, give_up)
            .await;
        let status = reply.map_or(0, |r| r.status);
        if status == 200 {
            self.lines.retain(|(s, _)| *s != sku);
            self.lines.push((sku, 1));
        }
        status
    }

    /// Checkout with an idempotency key. Without `--retry`, retried twice on network errors;
    /// with it, retried with the same key until a definitive answer or `give_up`.
    async fn check_out(&mut self, recorder: &Recorder, give_up: GiveUp<'_>) {
        self.checkouts += 1;
        let key = format!("lg-{}-{}-{}", self.options.seed, self.id, self.checkouts);
        if self.options.retry {
            let token = self.token.clone();
            let reply = self
                .send_retrying(
                    recorder,
                    "checkout",
                    &[409, 422],
                    Method::POST,
                    "/v1/checkout",
                    Some(&token),
                    None,
                    Some(&key),
                    give_up,
                )
                .await;
            match reply {
                Some(r) if r.status == 201 => {
                    if let Some(id) = r.body["id"].as_str() {
                        self.orders.push(id.to_owned());
                    }
                    self.lines.clear();
                }
                Some(_) => {}
                None => {
                    if let Some(log) = &recorder.log {
                        log.write(&json!({ "at": epoch_ms(), "op": "checkout_abandoned", "key": key }));
                    }
                }
            }
            return;
        }
        for attempt in 0..3 {
            let r = timed_with_key(
                recorder,
                "checkout",
                &[409, 422],
                Some(&key),
                self.target.send(Method::POST, "/v1/checkout", Some(&self.token), None, Some(&key)),
            )
            .await;
            if r.status == 201 {
                if let Some(id) = r.body["id"].as_str() {
                    self.orders.push(id.to_owned());
                }
                self.lines.clear();
            }
            if r.status != 0 || attempt == 2 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn mixed_step(&mut self, recorder: &Recorder, checkout_gives_up: GiveUp<'_>) {
        let total: u32 = self.options.mix.iter().map(|(_, w)| w).sum();
        let mut roll = (self.rng.next_u64() % u64::from(total)) as u32;
        let action = self.options.mix.iter().find(|(_, w)| {
            if roll < *w {
                true
            } else {
                roll -= w;
                false
            }
        });
        let action = action.map(|(k, _)| k.as_str()).unwrap_or("browse");
        match action {
            "browse" => {
                if self.rng.below(5) == 0 {
                    timed(
                        recorder,
                        "list",
                        &[],
                        self.target.send(Method::GET, "/v1/products?limit=20", None, None, None),
                    )
                    .await;
                } else {
                    let sku = self.pick_sku();
                    timed(
                        recorder,
                        "browse",
                        &[],
                        self.target.send(Method::GET, &format!("/v1/products/{}", sku_name(sku)), None, None, None),
                    )
                    .await;
                }
            }
            "cart" => self.get_cart(recorder).await,
            "update" if !self.lines.is_empty() => {
                let i = self.rng.below(self.lines.len());
                let (sku, _) = self.lines[i];
                let quantity = 1 + self.rng.below(3) as i64;
                let path = format!("/v1/cart/items/{}", sku_name(sku));
                let r = timed(
                    recorder,
                    "update",
                    &[409],
                    self.target.send(
                        Method::PUT,
                        &path,
                        Some(&self.token),
                        Some(&json!({ "quantity": quantity })),
                        None,
                    ),
                )
                .await;
                if r.status == 200 {
                    self.lines[i].1 = quantity;
                }
            }
            "remove" if !self.lines.is_empty() => {
                let i = self.rng.below(self.lines.len());
                let (sku, _) = self.lines.remove(i);
                let path = format!("/v1/cart/items/{}", sku_name(sku));
                timed(recorder, "remove", &[], self.target.send(Method::DELETE, &path, Some(&self.token), None, None))
                    .await;
            }
            "checkout" if !self.lines.is_empty() => self.check_out(recorder, checkout_gives_up).await,
            "cancel" if !self.orders.is_empty() => {
                let i = self.rng.below(self.orders.len());
                let id = self.orders.swap_remove(i);
                timed(
                    recorder,
                    "cancel",
                    &[409],
                    self.target.send(Method::POST, &format!("/v1/orders/{id}/cancel"), Some(&self.token), None, None),
                )
                .await;
            }
            _ => {
                // add, and the actions above when there is nothing to act on yet.
                if self.lines.len() >= 100 {
                    self.lines.clear();
                    timed(
                        recorder,
                        "clear",
                        &[],
                        self.target.send(Method::DELETE, "/v1/cart", Some(&self.token), None, None),
                    )
                    .await;
                    return;
                }
                let sku = self.pick_sku();
                let quantity = 1 + self.rng.below(3) as i64;
                if self.lines.iter().any(|(s, q)| *s == sku && q + quantity > 999) {
                    return;
                }
                self.add(recorder, sku, quantity).await;
            }
        }
    }
}

/// Pays orders awaiting payment and ships about half of them, like a back office.
pub async fn admin_actor(target: Target, recorder: &Recorder, stop: &AtomicBool) {
    let mut ship = false;
    while !stop.load(Ordering::Relaxed) {
        let list = timed(
            recorder,
            "admin_list",
            &[],
            target.admin(Method::GET, "/v1/admin/orders?status=awaiting_payment&limit=20", None),
        )
        .await;
        let ids: Vec<String> = list.body["items"]
            .as_array()
            .map(|items| items.iter().filter_map(|o| o["id"].as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        for id in ids {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let body: Value = json!({ "reference": format!("pay-{id}") });
            let paid = timed(
                recorder,
                "pay",
                &[409],
                target.admin(Method::POST, &format!("/v1/admin/orders/{id}/payment"), Some(&body)),
            )
            .await;
            ship = !ship;
            if paid.status == 200 && ship {
                timed(
                    recorder,
                    "ship",
                    &[409],
                    target.admin(Method::POST, &format!("/v1/admin/orders/{id}/ship"), None),
                )
                .await;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
