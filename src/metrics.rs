//! Prometheus metrics, kept per app instance (no global registry, so tests run in parallel).

use std::{
    collections::BTreeMap,
    fmt::Write,
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex,
    },
    time::Duration,
};

const BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

#[derive(Default)]
struct Histogram {
    count: u64,
    sum: f64,
    buckets: [u64; BUCKETS.len()],
}

impl Histogram {
    fn record(&mut self, seconds: f64) {
        self.count += 1;
        self.sum += seconds;
        for (i, le) in BUCKETS.iter().enumerate() {
            if seconds <= *le {
                self.buckets[i] += 1;
            }
        }
    }
}

/// By route, then (method, status, figures).
type RequestFigures = BTreeMap<String, Vec<(String, u16, Histogram)>>;

#[derive(Default)]
pub struct Metrics {
    /// By route, then (method, status). Looked up by reference: a request that finds its
    /// entry allocates nothing under the lock.
    requests: Mutex<RequestFigures>,
    pub cart_cache_hits: AtomicU64,
    pub cart_cache_misses: AtomicU64,
    /// Coalesced session reads (statements), and the requests they authenticated: their
    /// ratio is the mean batch (`auth::reads`).
    pub session_reads: AtomicU64,
    pub sessions_read: AtomicU64,
    /// Cart change rounds, and the changes they made or refused: their ratio is the mean
    /// batch (`cart_changes`).
    pub cart_change_batches: AtomicU64,
    pub cart_changes: AtomicU64,
    /// Changes a round without locks left to a locked round: each costs a second round, so
    /// this against `cart_changes` says whether reading without locks pays.
    pub cart_changes_relocked: AtomicU64,
    /// How those changes found their carts (`store::carts::Source`): whether the replica's
    /// copies serve, or every line is read, is what a change costs the database.
    pub carts_cached: AtomicU64,
    pub carts_caught_up: AtomicU64,
    pub carts_read_whole: AtomicU64,
    /// Changes decided on the replica's copy of their cart, unread, and made (`cart_changes`).
    pub carts_on_copy: AtomicU64,
    /// Coalesced product reads that record views (statements), and the requests they
    /// answered (`memory::reads`).
    pub view_reads: AtomicU64,
    pub views_read: AtomicU64,
    /// Event frames written to stream clients.
    pub events_delivered: AtomicU64,
    /// Times the event hub's LISTEN connection had to be made again.
    pub listen_reconnects: AtomicU64,
    /// From an event's transaction to its frame leaving for a client.
    event_lag: Mutex<Histogram>,
    webhooks: Mutex<WebhookFigures>,
}

#[derive(Default)]
struct WebhookFigures {
    succeeded: u64,
    /// Attempts that failed and will be retried.
    retried: u64,
    /// Deliveries that failed for good (schedule exhausted, or 410).
    failed: u64,
    /// From planning to the receiver's 2xx.
    latency: Histogram,
    /// Pending deliveries per endpoint, as last counted.
    depths: Vec<(uuid::Uuid, i64)>,
}

/// Gauges read at scrape time from their owners.
pub struct Gauges {
    pub pool_size: u32,
    pub pool_idle: usize,
    pub pool_max: u32,
    pub cart_cache_entries: u64,
    pub stream_clients: usize,
    pub view_record_failures: u64,
    pub view_flushes: u64,
    pub view_flush_failures: u64,
}

impl Metrics {
    pub fn observe(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let mut requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        if !requests.contains_key(route) {
            requests.insert(route.to_owned(), Vec::new());
        }
        let entries = requests.get_mut(route).expect("inserted above");
        match entries.iter_mut().find(|(m, s, _)| m == method && *s == status) {
            Some((_, _, h)) => h.record(seconds),
            None => {
                let mut h = Histogram::default();
                h.record(seconds);
                entries.push((method.to_owned(), status, h));
                entries.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
            }
        }
    }

    pub fn event_sent(&self, lag: Duration) {
        self.events_delivered.fetch_add(1, Ordering::Relaxed);
        self.event_lag.lock().unwrap_or_else(|e| e.into_inner()).record(lag.as_secs_f64());
    }

    pub fn webhook_delivered(&self, latency: Duration) {
        let mut w = self.webhooks.lock().unwrap_or_else(|e| e.into_inner());
        w.succeeded += 1;
        w.latency.record(latency.as_secs_f64());
    }

    pub fn webhook_attempt_failed(&self, for_good: bool) {
        let mut w = self.webhooks.lock().unwrap_or_else(|e| e.into_inner());
        if for_good {
            w.failed += 1;
        } else {
            w.retried += 1;
        }
    }

    pub fn set_webhook_depths(&self, depths: Vec<(uuid::Uuid, i64)>) {
        self.webhooks.lock().unwrap_or_else(|e| e.into_inner()).depths = depths;
    }

    pub fn cache_hit(&self) {
        self.cart_cache_hits.fetch_add(1, Ordering::Relaxed);
    }

    pub fn cache_miss(&self) {
        self.cart_cache_misses.fetch_add(1, Ordering::Relaxed);
    }

    pub fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::with_capacity(4096);
        let requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        out.push_str("# HELP stockcart_http_requests_total HTTP requests by route, method and status.\n");
        out.push_str("# TYPE stockcart_http_requests_total counter\n");
        for (route, method, status, h) in flat(&requests) {
            let _ = writeln!(
                out,
                "stockcart_http_requests_total{{route=\"{}\",method=\"{method}\",status=\"{status}\"}} {}",
                escape(route),
                h.count
            );
        }
        out.push_str("# HELP stockcart_http_request_duration_seconds HTTP request latency.\n");
        out.push_str("# TYPE stockcart_http_request_duration_seconds histogram\n");
        for (route, method, status, h) in flat(&requests) {
            let labels = format!("route=\"{}\",method=\"{method}\",status=\"{status}\"", escape(route));
            for (i, le) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "stockcart_http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {}",
                    h.buckets[i]
                );
            }
            let _ = writeln!(out, "stockcart_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(out, "stockcart_http_request_duration_seconds_sum{{{labels}}} {}", h.sum);
            let _ = writeln!(out, "stockcart_http_request_duration_seconds_count{{{labels}}} {}", h.count);
        }
        drop(requests);
        let in_use = (gauges.pool_size as usize).saturating_sub(gauges.pool_idle);
        let hits = self.cart_cache_hits.load(Ordering::Relaxed);
        let misses = self.cart_cache_misses.load(Ordering::Relaxed);
        let ratio = if hits + misses == 0 { 0.0 } else { hits as f64 / (hits + misses) as f64 };
        let _ = write!(
            out,
            "# HELP stockcart_db_pool_connections Database connections of this replica by state.\n\
             # TYPE stockcart_db_pool_connections gauge\n\
             stockcart_db_pool_connections{{state=\"in_use\"}} {in_use}\n\
             stockcart_db_pool_connections{{state=\"idle\"}} {idle}\n\
             # HELP stockcart_db_pool_max_connections Configured maximum of the pool.\n\
             # TYPE stockcart_db_pool_max_connections gauge\n\
             stockcart_db_pool_max_connections {max}\n\
             # HELP stockcart_cart_cache_hits_total Cart reads answered from the in-process cache.\n\
             # TYPE stockcart_cart_cache_hits_total counter\n\
             stockcart_cart_cache_hits_total {hits}\n\
             # HELP stockcart_cart_cache_misses_total Cart reads that had to assemble the cart from PostgreSQL.\n\
             # TYPE stockcart_cart_cache_misses_total counter\n\
             stockcart_cart_cache_misses_total {misses}\n\
             # HELP stockcart_cart_cache_hit_ratio Hits over all cart cache lookups since start.\n\
             # TYPE stockcart_cart_cache_hit_ratio gauge\n\
             stockcart_cart_cache_hit_ratio {ratio}\n\
             # HELP stockcart_cart_cache_entries Carts currently cached.\n\
             # TYPE stockcart_cart_cache_entries gauge\n\
             stockcart_cart_cache_entries {entries}\n\
             # HELP stockcart_session_reads_total Coalesced session reads (one statement each).\n\
             # TYPE stockcart_session_reads_total counter\n\
             stockcart_session_reads_total {session_reads}\n\
             # HELP stockcart_session_read_requests_total Requests authenticated by those reads.\n\
             # TYPE stockcart_session_read_requests_total counter\n\
             stockcart_session_read_requests_total {sessions_read}\n\
             # HELP stockcart_cart_change_batches_total Cart change rounds (coalesced, one commit each).\n\
             # TYPE stockcart_cart_change_batches_total counter\n\
             stockcart_cart_change_batches_total {cart_change_batches}\n\
             # HELP stockcart_cart_changes_total Cart changes made or refused by those rounds.\n\
             # TYPE stockcart_cart_changes_total counter\n\
             stockcart_cart_changes_total {cart_changes}\n\
             # HELP stockcart_cart_changes_relocked_total Cart changes a round without locks could not make (the cart changed meanwhile, its first change, or its second in the batch), made by a round that locks.\n\
             # TYPE stockcart_cart_changes_relocked_total counter\n\
             stockcart_cart_changes_relocked_total {cart_changes_relocked}\n\
             # HELP stockcart_cart_change_reads_total How changes found their carts: this replica's copy current (cached), brought up to date from the cart's recent line writes (caught_up), every line read (whole), or decided on the copy unread and made (none).\n\
             # TYPE stockcart_cart_change_reads_total counter\n\
             stockcart_cart_change_reads_total{{read=\"cached\"}} {carts_cached}\n\
             stockcart_cart_change_reads_total{{read=\"caught_up\"}} {carts_caught_up}\n\
             stockcart_cart_change_reads_total{{read=\"whole\"}} {carts_read_whole}\n\
             stockcart_cart_change_reads_total{{read=\"none\"}} {carts_on_copy}\n\
             # HELP stockcart_view_reads_total Coalesced product reads that record views (one statement each).\n\
             # TYPE stockcart_view_reads_total counter\n\
             stockcart_view_reads_total {view_reads}\n\
             # HELP stockcart_view_read_requests_total Product reads with a session token answered by those reads.\n\
             # TYPE stockcart_view_read_requests_total counter\n\
             stockcart_view_read_requests_total {views_read}\n",
            session_reads = self.session_reads.load(Ordering::Relaxed),
            sessions_read = self.sessions_read.load(Ordering::Relaxed),
            cart_change_batches = self.cart_change_batches.load(Ordering::Relaxed),
            cart_changes = self.cart_changes.load(Ordering::Relaxed),
            cart_changes_relocked = self.cart_changes_relocked.load(Ordering::Relaxed),
            carts_cached = self.carts_cached.load(Ordering::Relaxed),
            carts_caught_up = self.carts_caught_up.load(Ordering::Relaxed),
            carts_on_copy = self.carts_on_copy.load(Ordering::Relaxed),
            carts_read_whole = self.carts_read_whole.load(Ordering::Relaxed),
            view_reads = self.view_reads.load(Ordering::Relaxed),
            views_read = self.views_read.load(Ordering::Relaxed),
            idle = gauges.pool_idle,
            max = gauges.pool_max,
            entries = gauges.cart_cache_entries,
        );
        let lag = self.event_lag.lock().unwrap_or_else(|e| e.into_inner());
        let _ = write!(
            out,
            "# HELP stockcart_stream_clients Server-sent event streams connected to this replica.\n\
             # TYPE stockcart_stream_clients gauge\n\
             stockcart_stream_clients {clients}\n\
             # HELP stockcart_events_delivered_total Event frames written to stream clients.\n\
             # TYPE stockcart_events_delivered_total counter\n\
             stockcart_events_delivered_total {delivered}\n\
             # HELP stockcart_event_listen_reconnects_total Reconnections of the LISTEN connection that wakes the event reader.\n\
             # TYPE stockcart_event_listen_reconnects_total counter\n\
             stockcart_event_listen_reconnects_total {reconnects}\n\
             # HELP stockcart_event_lag_seconds From an event's transaction to its frame leaving for a stream client.\n\
             # TYPE stockcart_event_lag_seconds histogram\n",
            clients = gauges.stream_clients,
            delivered = self.events_delivered.load(Ordering::Relaxed),
            reconnects = self.listen_reconnects.load(Ordering::Relaxed),
        );
        for (i, le) in BUCKETS.iter().enumerate() {
            let _ = writeln!(out, "stockcart_event_lag_seconds_bucket{{le=\"{le}\"}} {}", lag.buckets[i]);
        }
        let _ = writeln!(out, "stockcart_event_lag_seconds_bucket{{le=\"+Inf\"}} {}", lag.count);
        let _ = writeln!(out, "stockcart_event_lag_seconds_sum {}", lag.sum);
        let _ = writeln!(out, "stockcart_event_lag_seconds_count {}", lag.count);
        drop(lag);
        let _ = write!(
            out,
            "# HELP stockcart_view_record_failures_total Product views a read could not record (the read still answered).\n\
             # TYPE stockcart_view_record_failures_total counter\n\
             stockcart_view_record_failures_total {}\n\
             # HELP stockcart_view_flushes_total Flushes of this replica's view counts (one statement each).\n\
             # TYPE stockcart_view_flushes_total counter\n\
             stockcart_view_flushes_total {}\n\
             # HELP stockcart_view_flush_failures_total Flushes that failed; their counts wait for the next.\n\
             # TYPE stockcart_view_flush_failures_total counter\n\
             stockcart_view_flush_failures_total {}\n",
            gauges.view_record_failures, gauges.view_flushes, gauges.view_flush_failures
        );
        let w = self.webhooks.lock().unwrap_or_else(|e| e.into_inner());
        let _ = write!(
            out,
            "# HELP stockcart_webhook_attempts_total Webhook delivery attempts by outcome.\n\
             # TYPE stockcart_webhook_attempts_total counter\n\
             stockcart_webhook_attempts_total{{outcome=\"succeeded\"}} {}\n\
             stockcart_webhook_attempts_total{{outcome=\"retried\"}} {}\n\
             stockcart_webhook_attempts_total{{outcome=\"failed\"}} {}\n\
             # HELP stockcart_webhook_queue_depth Pending deliveries per endpoint (all replicas).\n\
             # TYPE stockcart_webhook_queue_depth gauge\n",
            w.succeeded, w.retried, w.failed
        );
        for (endpoint, n) in &w.depths {
            let _ = writeln!(out, "stockcart_webhook_queue_depth{{endpoint=\"{endpoint}\"}} {n}");
        }
        out.push_str("# HELP stockcart_webhook_delivery_seconds From planning a delivery to the receiver's 2xx.\n");
        out.push_str("# TYPE stockcart_webhook_delivery_seconds histogram\n");
        for (i, le) in BUCKETS.iter().enumerate() {
            let _ = writeln!(out, "stockcart_webhook_delivery_seconds_bucket{{le=\"{le}\"}} {}", w.latency.buckets[i]);
        }
        let _ = writeln!(out, "stockcart_webhook_delivery_seconds_bucket{{le=\"+Inf\"}} {}", w.latency.count);
        let _ = writeln!(out, "stockcart_webhook_delivery_seconds_sum {}", w.latency.sum);
        let _ = writeln!(out, "stockcart_webhook_delivery_seconds_count {}", w.latency.count);
        out
    }
}

fn escape(label: &str) -> String {
    label.replace('\\', "\\\\").replace('"', "\\\"")
}

fn flat(requests: &RequestFigures) -> impl Iterator<Item = (&String, &String, u16, &Histogram)> {
    requests.iter().flat_map(|(route, entries)| entries.iter().map(move |(m, s, h)| (route, m, *s, h)))
}
