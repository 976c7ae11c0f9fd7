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
    report::Recorder,
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
    let started = Instant::now();
    let reply = request.await;
    let ok = (200..300).contains(&reply.status) || expected.contains(&reply.status);
    recorder.record(op, started.elapsed(), reply.status, &reply.body, ok);
    reply
}

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
        shopper.token = shopper.new_session().await?;
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

    async fn new_session(&self) -> Result<String, String> {
        let r = self.target.send(Method::POST, "/v1/sessions", None, None, None).await;
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
        while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
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
                    self.check_out(recorder).await;
                }
                Scenario::Checkout => self.fill_and_check_out(recorder).await,
                Scenario::Mixed => self.mixed_step(recorder).await,
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
            match self.new_session().await {
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

    /// A fresh session, `lines` distinct SKUs of one unit each, then checkout (measured).
    async fn fill_and_check_out(&mut self, recorder: &Recorder) {
        let Ok(token) = self.new_session().await else { return };
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
            if self.add(recorder, sku, 1).await != 200 {
                return; // Sold out already: nothing to check out.
            }
        }
        self.check_out(recorder).await;
    }

    /// Checkout with an idempotency key, retried on network errors like a real client.
    async fn check_out(&mut self, recorder: &Recorder) {
        self.checkouts += 1;
        let key = format!("lg-{}-{}-{}", self.options.seed, self.id, self.checkouts);
        for attempt in 0..3 {
            let r = timed(
                recorder,
                "checkout",
                &[409, 422],
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

    async fn mixed_step(&mut self, recorder: &Recorder) {
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
            "checkout" if !self.lines.is_empty() => self.check_out(recorder).await,
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
