//! Measurements of a run: HDR histograms per operation, errors by status and code, a live
//! progress line, and the final summary (a table for people, JSON for machines).

use std::{
    collections::BTreeMap,
    fs::File,
    io::{BufWriter, Write},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use super::options::Options;

pub struct Verification {
    pub ok: bool,
    pub violations: Vec<String>,
}

#[derive(Default)]
pub struct Recorder {
    ops: Mutex<BTreeMap<&'static str, Histogram<u64>>>,
    errors: Mutex<BTreeMap<String, u64>>,
    pub requests: AtomicU64,
    pub failures: AtomicU64,
    pub server_errors: AtomicU64,
    /// 503s and network errors, when the run expects them (`--retry`, a fault test).
    pub unavailable: AtomicU64,
    /// `--retry`: a 503 or a network error is unavailability the client rides out, not a
    /// server error; a 500 (or any other 5xx) still is one.
    pub tolerate_unavailable: bool,
    /// `--client-log`: one JSON line per answer, for checking afterwards against the database.
    pub log: Option<ClientLog>,
}

/// The client's own account of a run, written as it happens: what was answered, when, how
/// fast, and which orders were acknowledged. `scripts/faults verify` reads it.
pub struct ClientLog {
    out: Mutex<BufWriter<File>>,
}

impl ClientLog {
    pub fn create(path: &str) -> Result<ClientLog, String> {
        let file = File::create(path).map_err(|e| format!("cannot create {path}: {e}"))?;
        Ok(ClientLog { out: Mutex::new(BufWriter::new(file)) })
    }

    pub fn write(&self, entry: &Value) {
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        // A line per answer; a failed write must not stop the run, and shows as a short log.
        let _ = writeln!(out, "{entry}");
    }

    pub fn flush(&self) -> Result<(), String> {
        self.out.lock().unwrap_or_else(|e| e.into_inner()).flush().map_err(|e| format!("client log: {e}"))
    }
}

/// Milliseconds since the Unix epoch: the log's clock, comparable with the database's and a
/// fault script's (`date +%s%3N`) on the same machine.
pub fn epoch_ms() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0)
}

impl Recorder {
    pub fn new(tolerate_unavailable: bool, log: Option<ClientLog>) -> Recorder {
        Recorder { tolerate_unavailable, log, ..Recorder::default() }
    }

    /// Records one request of `op`; statuses the scenario expects (like 409 on a rush) are
    /// counted by code but are not failures.
    pub fn record(&self, op: &'static str, elapsed: Duration, status: u16, body: &Value, expected: bool) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let micros = elapsed.as_micros().clamp(1, 60_000_000) as u64;
        {
            let mut ops = self.ops.lock().unwrap_or_else(|e| e.into_inner());
            let h =
                ops.entry(op).or_insert_with(|| Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"));
            let _ = h.record(micros);
        }
        if status >= 400 || status == 0 {
            let code = body["code"].as_str().unwrap_or(if status == 0 { "network_error" } else { "" });
            *self
                .errors
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(format!("{op} {status} {code}"))
                .or_default() += 1;
            let unavailable = self.tolerate_unavailable && (status == 0 || status == 503);
            if unavailable {
                self.unavailable.fetch_add(1, Ordering::Relaxed);
            } else if !expected {
                self.failures.fetch_add(1, Ordering::Relaxed);
            }
            if !unavailable && (status >= 500 || status == 0) {
                self.server_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub fn summary(&self, options: &Options, elapsed: Duration, verification: Verification) -> Summary {
        let ops = self.ops.lock().unwrap_or_else(|e| e.into_inner());
        let seconds = elapsed.as_secs_f64().max(1e-9);
        let operations = ops
            .iter()
            .map(|(op, h)| {
                let q = |p: f64| h.value_at_quantile(p) as f64 / 1000.0;
                OpStats {
                    name: op,
                    count: h.len(),
                    per_second: h.len() as f64 / seconds,
                    p50: q(0.5),
                    p90: q(0.9),
                    p99: q(0.99),
                    p999: q(0.999),
                    max: h.max() as f64 / 1000.0,
                }
            })
            .collect();
        Summary {
            scenario: format!("{:?}", options.scenario),
            users: options.users,
            hot: options.hot,
            urls: options.urls.clone(),
            seconds,
            requests: self.requests.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            server_errors: self.server_errors.load(Ordering::Relaxed),
            unavailable: self.unavailable.load(Ordering::Relaxed),
            operations,
            errors: self.errors.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            verification,
        }
    }
}

pub struct OpStats {
    pub name: &'static str,
    pub count: u64,
    pub per_second: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

pub struct Summary {
    pub scenario: String,
    pub users: usize,
    pub hot: bool,
    pub urls: Vec<String>,
    pub seconds: f64,
    pub requests: u64,
    pub failures: u64,
    pub server_errors: u64,
    pub unavailable: u64,
    pub operations: Vec<OpStats>,
    pub errors: BTreeMap<String, u64>,
    pub verification: Verification,
}

impl Summary {
    /// Passed: invariants hold and no request failed with a server error.
    pub fn passed(&self) -> bool {
        self.verification.ok && self.server_errors == 0
    }

    pub fn op(&self, name: &str) -> Option<&OpStats> {
        self.operations.iter().find(|o| o.name == name)
    }

    pub fn table(&self) -> String {
        let mut out = format!(
            "\nscenario {} ({} users{}), {:.1} s, {} requests, {:.0} req/s\n\n{:<10} {:>8} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8}\n",
            self.scenario,
            self.users,
            if self.hot { ", hot SKU" } else { "" },
            self.seconds,
            self.requests,
            self.requests as f64 / self.seconds,
            "operation",
            "count",
            "per s",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms"
        );
        for o in &self.operations {
            out.push_str(&format!(
                "{:<10} {:>8} {:>9.1} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2}\n",
                o.name, o.count, o.per_second, o.p50, o.p90, o.p99, o.p999, o.max
            ));
        }
        if !self.errors.is_empty() {
            out.push_str("\nanswers other than success (operation status code: count)\n");
            for (k, v) in &self.errors {
                out.push_str(&format!("  {k}: {v}\n"));
            }
        }
        out.push_str(&format!(
            "\nverification: {} ({} unexpected failures, {} server or network errors)\n",
            if self.verification.ok { "invariants hold, nothing oversold" } else { "INVARIANTS VIOLATED" },
            self.failures,
            self.server_errors
        ));
        if self.unavailable > 0 {
            out.push_str(&format!("unavailable (503 or network error, retried): {}\n", self.unavailable));
        }
        for v in &self.verification.violations {
            out.push_str(&format!("  {v}\n"));
        }
        out
    }

    pub fn to_json(&self) -> Value {
        let ops: serde_json::Map<String, Value> = self
            .operations
            .iter()
            .map(|o| {
                (
                    o.name.to_owned(),
                    json!({ "count": o.count, "per_second": o.per_second, "p50_ms": o.p50, "p90_ms": o.p90,
                            "p99_ms": o.p99, "p99_9_ms": o.p999, "max_ms": o.max }),
                )
            })
            .collect();
        json!({
            "scenario": self.scenario, "users": self.users, "hot": self.hot, "urls": self.urls,
            "seconds": self.seconds, "requests": self.requests, "requests_per_second": self.requests as f64 / self.seconds,
            "failures": self.failures, "server_errors": self.server_errors, "unavailable": self.unavailable,
            "operations": ops, "errors": self.errors,
            "verification": { "ok": self.verification.ok, "violations": self.verification.violations },
            "passed": self.passed(),
        })
    }
}

/// A live line on stderr: elapsed, a bar, throughput of the last second, errors.
pub async fn progress(recorder: Arc<Recorder>, started: Instant, duration: Duration, stop: Arc<AtomicBool>) {
    let mut last = 0;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let done = recorder.requests.load(Ordering::Relaxed);
        let fraction = (started.elapsed().as_secs_f64() / duration.as_secs_f64()).min(1.0);
        let filled = (fraction * 30.0) as usize;
        eprint!(
            "\r[{}{}] {:>5.1}s {:>7} req/s {:>8} requests {:>5} errors ",
            "#".repeat(filled),
            ".".repeat(30 - filled),
            started.elapsed().as_secs_f64(),
            done - last,
            done,
            recorder.failures.load(Ordering::Relaxed)
        );
        last = done;
    }
    eprintln!();
}
