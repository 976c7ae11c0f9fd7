//! `stockcart watch`: event consumers for the benchmarks. Connects stream clients (or runs a
//! webhook receiver) against running replicas and measures what a consumer sees: the lag
//! from an event's transaction (`at`) to its arrival, and how long one change takes to reach
//! every connected client.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;
use serde_json::Value;

use crate::config::parse_duration;

pub const USAGE: &str = "\
stockcart watch: event consumers for benchmarks

USAGE: stockcart watch MODE [OPTIONS]

MODES
  admin      N admin stream clients; prints the lag (receive time - event `at`) of every event
  public     N public stream clients on --skus; with --poke-url, changes the first SKU through
             that replica once all are connected and prints how long until every client had it
  webhook    runs a receiver on 127.0.0.1:--port, registers it with --url, and prints the
             deliveries per second and their lag (receive time - event `at`)

OPTIONS
  --url URL            replica to connect the consumers to [default: http://127.0.0.1:8080]
  --admin-token TOKEN  admin token [default: $STOCKCART_ADMIN_TOKEN]
  --clients N          stream clients [default: 1]
  --skus A,B           public mode: SKUs to follow
  --poke-url URL       public mode: replica to make the change on
  --port N             webhook mode: receiver port [default: 18999]
  --duration D         how long to watch [default: 10s]
";

struct Options {
    mode: String,
    url: String,
    admin_token: String,
    clients: usize,
    skus: String,
    poke_url: Option<String>,
    port: u16,
    duration: Duration,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        mode: args.first().cloned().ok_or("a mode is required: admin, public or webhook")?,
        url: "http://127.0.0.1:8080".into(),
        admin_token: std::env::var("STOCKCART_ADMIN_TOKEN").unwrap_or_default(),
        clients: 1,
        skus: String::new(),
        poke_url: None,
        port: 18999,
        duration: Duration::from_secs(10),
    };
    let mut it = args[1..].iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().cloned().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => o.url = value()?,
            "--admin-token" => o.admin_token = value()?,
            "--clients" => o.clients = value()?.parse().map_err(|_| "--clients: a number")?,
            "--skus" => o.skus = value()?,
            "--poke-url" => o.poke_url = Some(value()?),
            "--port" => o.port = value()?.parse().map_err(|_| "--port: a number")?,
            "--duration" => o.duration = parse_duration(&value()?)?,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(o)
}

pub fn main(args: &[String]) -> Result<(), String> {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        print!("{USAGE}");
        return Ok(());
    }
    let o = parse(args)?;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        match o.mode.as_str() {
            "admin" => admin(&o).await,
            "public" => public(&o).await,
            "webhook" => webhook(&o).await,
            other => Err(format!("unknown mode {other}")),
        }
    })
}

fn lag_ms(event: &Value) -> Option<f64> {
    let at = event.get("at")?.as_str()?;
    let at = chrono::DateTime::parse_from_rfc3339(at).ok()?;
    Some((chrono::Utc::now() - at.with_timezone(&chrono::Utc)).num_microseconds()? as f64 / 1000.0)
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds")
}

fn report(name: &str, h: &Histogram<u64>, seconds: f64) {
    println!(
        "{name}: n={} per_s={:.1} p50_ms={:.2} p99_ms={:.2} max_ms={:.2}",
        h.len(),
        h.len() as f64 / seconds,
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
        h.max() as f64 / 1000.0
    );
}

/// Reads one stream, calling `each` with every event's `data` as JSON, until `until`.
async fn follow(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    until: Instant,
    mut each: impl FnMut(&str, Value),
) -> Result<(), String> {
    let mut req = client.get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let mut response = req.send().await.map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("{url}: {}", response.status()));
    }
    let mut buffer = String::new();
    loop {
        let Some(left) = until.checked_duration_since(Instant::now()) else { return Ok(()) };
        let chunk = match tokio::time::timeout(left, response.chunk()).await {
            Ok(Ok(Some(c))) => c,
            _ => return Ok(()),
        };
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let mut event = "message";
            let mut data = None;
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    event = v;
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data = serde_json::from_str::<Value>(v).ok();
                }
            }
            if let Some(d) = data {
                each(event, d);
            }
        }
    }
}

async fn admin(o: &Options) -> Result<(), String> {
    let client = reqwest::Client::new();
    let lags = Arc::new(Mutex::new(histogram()));
    let until = Instant::now() + o.duration;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..o.clients {
        let (client, lags, url, token) =
            (client.clone(), lags.clone(), format!("{}/v1/admin/events/stream", o.url), o.admin_token.clone());
        tasks.push(tokio::spawn(async move {
            follow(&client, &url, Some(&token), until, |_, e| {
                if let Some(ms) = lag_ms(&e) {
                    let _ = lags.lock().unwrap().record((ms * 1000.0).max(1.0) as u64);
                }
            })
            .await
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    report("admin_stream_lag", &lags.lock().unwrap(), started.elapsed().as_secs_f64());
    Ok(())
}

async fn public(o: &Options) -> Result<(), String> {
    let first_sku = o.skus.split(',').next().ok_or("--skus is required")?.to_owned();
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().map_err(|e| e.to_string())?;
    let ready = Arc::new(AtomicUsize::new(0));
    let reached = Arc::new(AtomicUsize::new(0));
    let poked_version = Arc::new(Mutex::new(None::<i64>));
    let until = Instant::now() + o.duration;
    let mut tasks = Vec::new();
    for _ in 0..o.clients {
        let url = format!("{}/v1/stock/stream?skus={}", o.url, o.skus);
        let (client, ready, reached, poked, sku) =
            (client.clone(), ready.clone(), reached.clone(), poked_version.clone(), first_sku.clone());
        tasks.push(tokio::spawn(async move {
            let mut first = true;
            let mut done = false;
            follow(&client, &url, None, until, |_, d| {
                if first {
                    first = false;
                    ready.fetch_add(1, Ordering::Relaxed);
                }
                let target = *poked.lock().unwrap();
                if !done && d["sku"] == sku.as_str() && target.is_some_and(|v| d["version"].as_i64() >= Some(v)) {
                    done = true;
                    reached.fetch_add(1, Ordering::Relaxed);
                }
            })
            .await
        }));
        if tasks.len() % 500 == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let wait = Instant::now();
    while ready.load(Ordering::Relaxed) < o.clients && wait.elapsed() < o.duration {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "public_clients_connected: {} of {} in {:.1}s",
        ready.load(Ordering::Relaxed),
        o.clients,
        wait.elapsed().as_secs_f64()
    );
    if let Some(poke) = &o.poke_url {
        let level: Value = client
            .get(format!("{poke}/v1/admin/inventory/{first_sku}"))
            .bearer_auth(&o.admin_token)
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        let next = level["version"].as_i64().unwrap_or(0) + 1;
        *poked_version.lock().unwrap() = Some(next);
        let sent = Instant::now();
        let r = client
            .post(format!("{poke}/v1/admin/inventory/{first_sku}/adjustments"))
            .bearer_auth(&o.admin_token)
            .json(&serde_json::json!({ "delta": 1, "reason": "restock" }))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !r.status().is_success() {
            return Err(format!("the poke failed: {}", r.status()));
        }
        let total = ready.load(Ordering::Relaxed);
        while reached.load(Ordering::Relaxed) < total && sent.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        println!(
            "public_fanout: {} of {} clients had the change after {:.1} ms",
            reached.load(Ordering::Relaxed),
            total,
            sent.elapsed().as_secs_f64() * 1000.0
        );
    }
    for t in tasks {
        let _ = t.await;
    }
    Ok(())
}

async fn webhook(o: &Options) -> Result<(), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", o.port)).await.map_err(|e| e.to_string())?;
    let lags = Arc::new(Mutex::new(histogram()));
    let client = reqwest::Client::new();
    let created: Value = client
        .post(format!("{}/v1/admin/webhooks", o.url))
        .bearer_auth(&o.admin_token)
        .json(&serde_json::json!({ "url": format!("http://127.0.0.1:{}/hook", o.port), "description": "stockcart watch" }))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let id = created["id"].as_str().ok_or(format!("registering the receiver failed: {created}"))?.to_owned();
    let started = Instant::now();
    let until = started + o.duration;
    // A deliberately small HTTP/1.1 server: keep-alive, Content-Length bodies, 204 answers.
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        let Ok(Ok((mut socket, _))) = tokio::time::timeout(left, listener.accept()).await else { break };
        let lags = lags.clone();
        tokio::spawn(async move {
            let mut buf = Vec::with_capacity(8192);
            let mut chunk = [0u8; 8192];
            loop {
                let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                    match socket.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                    continue;
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
                    .unwrap_or(0);
                while buf.len() < head_end + 4 + length {
                    match socket.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let body: Vec<u8> = buf.drain(..head_end + 4 + length).skip(head_end + 4).collect();
                if let Some(ms) = serde_json::from_slice::<Value>(&body).ok().as_ref().and_then(lag_ms) {
                    let _ = lags.lock().unwrap().record((ms * 1000.0).max(1.0) as u64);
                }
                if socket.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").await.is_err() {
                    return;
                }
            }
        });
    }
    report("webhook_delivery_lag", &lags.lock().unwrap(), started.elapsed().as_secs_f64());
    let pending: Value = client
        .get(format!("{}/v1/admin/webhooks/{id}/deliveries?status=pending&limit=200", o.url))
        .bearer_auth(&o.admin_token)
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    println!("webhook_pending_at_end: {}", pending["items"].as_array().map_or(0, Vec::len));
    let _ = client.delete(format!("{}/v1/admin/webhooks/{id}", o.url)).bearer_auth(&o.admin_token).send().await;
    Ok(())
}
