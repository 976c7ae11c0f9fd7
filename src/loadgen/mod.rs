//! `stockcart loadgen`: simulated shoppers against one or more base URLs (round-robin, no
//! stickiness), then a verification through the API that nothing was oversold.
//!
//! Scenarios: `mixed` (browse, add, change, remove, read cart, checkout, cancel, with admin
//! actors paying and shipping), and the focused ones the benchmarks use: `get-cart`,
//! `add-to-cart`, `checkout` (spread SKUs, or one SKU with `--hot`).

mod options;
mod report;
mod shopper;
pub mod watch;

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use serde_json::{json, Value};

pub use options::{Options, Scenario};
use report::Recorder;
pub use report::Summary;

/// The HTTP side of a run: clients spread round-robin over the base URLs.
#[derive(Clone)]
pub struct Target {
    client: reqwest::Client,
    urls: Arc<Vec<String>>,
    next: Arc<AtomicU64>,
    admin_token: Arc<String>,
}

pub struct Reply {
    pub status: u16,
    pub body: Value,
    /// `Retry-After` in seconds, when the answer had one.
    pub retry_after: Option<u64>,
    /// `Idempotent-Replayed: true`: a checkout answered again from its key.
    pub replayed: bool,
    /// The base URL the request went to.
    pub base: Arc<str>,
}

impl Target {
    pub fn new(urls: Vec<String>, admin_token: String, timeout: Duration) -> Target {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1024)
            // Drop idle connections before the server does (actix closes them after 5 s), or a
            // request may go out on a connection the server is closing: a network error.
            .pool_idle_timeout(Duration::from_secs(2))
            .timeout(timeout)
            .build()
            .expect("an HTTP client");
        Target { client, urls: Arc::new(urls), next: Arc::new(AtomicU64::new(0)), admin_token: Arc::new(admin_token) }
    }

    fn base(&self) -> &str {
        let i = self.next.fetch_add(1, Ordering::Relaxed) as usize % self.urls.len();
        &self.urls[i]
    }

    /// One request; a network error is status 0.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        key: Option<&str>,
    ) -> Reply {
        let base = self.base();
        let mut req = self.client.request(method, format!("{base}{path}"));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        if let Some(key) = key {
            req = req.header("Idempotency-Key", key);
        }
        let base: Arc<str> = base.into();
        match req.send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                let header = |name: &str| r.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
                let retry_after = header("retry-after").and_then(|v| v.parse().ok());
                let replayed = header("idempotent-replayed").as_deref() == Some("true");
                // A body cut off by a dying server is a network error too, not an answer.
                match r.bytes().await {
                    Ok(bytes) => Reply {
                        status,
                        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                        retry_after,
                        replayed,
                        base,
                    },
                    Err(_) => Reply { status: 0, body: Value::Null, retry_after: None, replayed: false, base },
                }
            }
            Err(_) => Reply { status: 0, body: Value::Null, retry_after: None, replayed: false, base },
        }
    }

    pub async fn admin(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> Reply {
        let token = self.admin_token.clone();
        self.send(method, path, Some(&token), body, None).await
    }
}

pub fn sku_name(i: usize) -> String {
    format!("LG-{i:05}")
}

/// Creates the catalog and its stock through the admin API (products, then batches).
pub async fn seed(target: &Target, options: &Options) -> Result<(), String> {
    for i in 0..options.skus {
        let body = json!({ "name": format!("Load test product {i}"), "price": { "amount": 100 + (i as i64 % 50) * 100, "currency": options.currency } });
        let r = target.admin(reqwest::Method::PUT, &format!("/v1/admin/products/{}", sku_name(i)), Some(&body)).await;
        if r.status != 200 && r.status != 201 {
            return Err(format!("seeding product {i} failed with {}: {}", r.status, r.body));
        }
    }
    let lines: Vec<Value> = (0..options.skus)
        .map(|i| json!({ "sku": sku_name(i), "delta": options.stock, "reason": "restock", "reference": "loadgen" }))
        .collect();
    for chunk in lines.chunks(10_000) {
        let r = target
            .admin(reqwest::Method::POST, "/v1/admin/inventory/batch", Some(&json!({ "adjustments": chunk })))
            .await;
        if r.status != 200 {
            return Err(format!("seeding stock failed with {}: {}", r.status, r.body));
        }
    }
    Ok(())
}

/// Runs the scenario to the end, then verifies. Prints progress to stderr when `progress`.
pub async fn run(options: Options, progress: bool) -> Result<Summary, String> {
    let target = Target::new(options.urls.clone(), options.admin_token.clone(), options.timeout);
    // SIGINT/SIGTERM end the run early, with its summary and log written: a fault script runs
    // buyers until it has seen recovery. Listened for from the start, so that a signal during
    // the setup ends the run too rather than the process.
    let stop = Arc::new(AtomicBool::new(false));
    let interrupt = {
        let stop = stop.clone();
        tokio::spawn(async move {
            crate::stop_requested().await;
            stop.store(true, Ordering::Relaxed);
        })
    };
    if options.seed_catalog {
        seed(&target, &options).await?;
    }
    let log = options.client_log.as_deref().map(report::ClientLog::create).transpose()?;
    let recorder = Arc::new(Recorder::new(options.retry, log));
    let options = Arc::new(options);

    // Setup that is not measured (sessions, warm carts), then the measured phase.
    let carts: Shared<Vec<String>> = match &options.carts_file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
            Arc::new(Mutex::new(
                text.lines().filter(|l| !l.trim().is_empty()).map(|l| l.trim().to_owned()).rev().collect(),
            ))
        }
        None => Arc::new(Mutex::new(Vec::new())),
    };
    let mut users = Vec::new();
    for id in 0..options.users {
        users.push(shopper::Shopper::prepare(id, target.clone(), options.clone(), carts.clone()).await?);
    }
    let started = Instant::now();
    let deadline = started + options.duration;
    let budget = Arc::new(AtomicU64::new(options.requests.unwrap_or(u64::MAX)));
    let mut tasks = Vec::new();
    for user in users {
        let (recorder, stop, budget) = (recorder.clone(), stop.clone(), budget.clone());
        tasks.push(tokio::spawn(async move { user.run(&recorder, &stop, &budget, deadline).await }));
    }
    if options.scenario == Scenario::Mixed {
        for _ in 0..options.admins {
            let (target, recorder, stop) = (target.clone(), recorder.clone(), stop.clone());
            tasks.push(tokio::spawn(async move { shopper::admin_actor(target, &recorder, &stop).await }));
        }
    }
    let ticker =
        progress.then(|| tokio::spawn(report::progress(recorder.clone(), started, options.duration, stop.clone())));
    // The run ends at its deadline, or earlier on SIGINT/SIGTERM: a fault script runs buyers
    // until it has seen recovery, then stops them and still gets the summary and the log.
    let watchdog = {
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline.into()) => {}
                _ = crate::stop_requested() => {}
            }
            stop.store(true, Ordering::Relaxed);
        })
    };
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    watchdog.abort();
    interrupt.abort();
    if let Some(t) = ticker {
        let _ = t.await;
    }

    if let Some(log) = &recorder.log {
        log.flush()?;
    }
    let verification = verify(&target, options.retry).await;
    Ok(recorder.summary(&options, elapsed, verification))
}

/// What the API says about the invariants after the run; with `retry`, asked again while the
/// service is still unavailable (a fault test ends just after its fault).
async fn verify(target: &Target, retry: bool) -> report::Verification {
    let mut r = target.admin(reqwest::Method::GET, "/v1/admin/invariants", None).await;
    for _ in 0..30 {
        if !retry || !(r.status == 0 || r.status == 503) {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        r = target.admin(reqwest::Method::GET, "/v1/admin/invariants", None).await;
    }
    if r.status != 200 {
        return report::Verification {
            ok: false,
            violations: vec![format!("the invariant check answered {}: {}", r.status, r.body)],
        };
    }
    let violations = r.body["violations"]
        .as_array()
        .map(|v| v.iter().map(|s| s.as_str().unwrap_or_default().to_owned()).collect())
        .unwrap_or_default();
    report::Verification { ok: r.body["ok"] == json!(true), violations }
}

/// The `loadgen` subcommand: parses flags, runs, prints the summary, writes the JSON file.
pub fn main(args: &[String]) -> std::process::ExitCode {
    let options = match Options::parse(args) {
        Ok(Some(o)) => o,
        Ok(None) => {
            print!("{}", options::USAGE);
            return std::process::ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("stockcart loadgen: {e}\n\n{}", options::USAGE);
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a runtime");
    let summary_path = options.summary_path.clone();
    let summary = match runtime.block_on(run(options, true)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("stockcart loadgen: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    print!("{}", summary.table());
    if let Some(path) = summary_path {
        if let Err(e) = std::fs::write(&path, serde_json::to_string_pretty(&summary.to_json()).unwrap_or_default()) {
            eprintln!("stockcart loadgen: cannot write {path}: {e}");
        }
    }
    if summary.passed() {
        std::process::ExitCode::SUCCESS
    } else {
        eprintln!("stockcart loadgen: verification FAILED");
        std::process::ExitCode::FAILURE
    }
}

/// Shared, cheap randomness: SplitMix64, seeded per virtual user so runs repeat.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// SKU popularity: Zipf over the catalog, via its cumulative distribution.
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    pub fn new(n: usize, exponent: f64) -> Zipf {
        let weights: Vec<f64> = (1..=n.max(1)).map(|k| 1.0 / (k as f64).powf(exponent)).collect();
        let total: f64 = weights.iter().sum();
        let mut acc = 0.0;
        Zipf {
            cdf: weights
                .iter()
                .map(|w| {
                    acc += w / total;
                    acc
                })
                .collect(),
        }
    }

    pub fn sample(&self, rng: &mut Rng) -> usize {
        let u = rng.unit();
        self.cdf.partition_point(|p| *p < u).min(self.cdf.len() - 1)
    }
}

/// Guards shared by the users of one run.
pub type Shared<T> = Arc<Mutex<T>>;
