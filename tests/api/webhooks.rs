//! Webhooks against a real local receiver, with two app instances on one database.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::{engine::general_purpose::STANDARD, Engine};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::helpers::{fresh_database, spawn_on, test_settings, Auth, TestApp, ADMIN_TOKEN};

/// What the receiver answers.
#[derive(Clone, Copy, PartialEq)]
enum Answer {
    Ok,
    /// 500 for the first attempt at every event whose id is a multiple of this.
    FailFirstOfEvery(i64),
    Status(u16),
    Hang,
}

#[derive(Debug, Clone)]
struct Received {
    path: String,
    id: i64,
    timestamp: i64,
    signature: String,
    content_type: String,
    body: String,
    answered: u16,
    at: Instant,
}

#[derive(Default)]
struct Log {
    requests: Vec<Received>,
    attempts: HashMap<(String, i64), u32>,
}

/// A real HTTP receiver on 127.0.0.1; each path (`/a`, `/b`) can answer differently.
struct Receiver {
    base: String,
    log: Arc<Mutex<Log>>,
    answers: Arc<Mutex<HashMap<String, Answer>>>,
    _handle: actix_web::dev::ServerHandle,
}

impl Receiver {
    async fn start() -> Receiver {
        let log: Arc<Mutex<Log>> = Arc::default();
        let answers: Arc<Mutex<HashMap<String, Answer>>> = Arc::default();
        let (l, a) = (log.clone(), answers.clone());
        let server = HttpServer::new(move || {
            let (l, a) = (l.clone(), a.clone());
            App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
                let (l, a) = (l.clone(), a.clone());
                async move { receive(req, body, l, a).await }
            }))
        })
        .workers(1)
        .bind("127.0.0.1:0")
        .unwrap();
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Receiver { base: format!("http://127.0.0.1:{port}"), log, answers, _handle: handle }
    }

    fn answer(&self, path: &str, answer: Answer) {
        self.answers.lock().unwrap().insert(path.to_owned(), answer);
    }

    fn requests(&self, path: &str) -> Vec<Received> {
        self.log.lock().unwrap().requests.iter().filter(|r| r.path == path).cloned().collect()
    }

    fn succeeded(&self, path: &str) -> Vec<Received> {
        self.requests(path).into_iter().filter(|r| r.answered < 300).collect()
    }

    async fn wait_for(&self, what: &str, within: Duration, done: impl Fn(&Receiver) -> bool) {
        let deadline = Instant::now() + within;
        while !done(self) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn receive(
    req: HttpRequest,
    body: web::Bytes,
    log: Arc<Mutex<Log>>,
    answers: Arc<Mutex<HashMap<String, Answer>>>,
) -> HttpResponse {
    let path = req.path().to_owned();
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let id: i64 = header("webhook-id").parse().unwrap_or(-1);
    let answer = answers.lock().unwrap().get(&path).copied().unwrap_or(Answer::Ok);
    let attempt = {
        let mut log = log.lock().unwrap();
        let n = log.attempts.entry((path.clone(), id)).or_default();
        *n += 1;
        *n
    };
    let status = match answer {
        Answer::Ok => 200,
        Answer::FailFirstOfEvery(k) if id % k == 0 && attempt == 1 => 500,
        Answer::FailFirstOfEvery(_) => 204,
        Answer::Status(s) => s,
        Answer::Hang => 0,
    };
    let record = Received {
        path,
        id,
        timestamp: header("webhook-timestamp").parse().unwrap_or(0),
        signature: header("webhook-signature"),
        content_type: header("content-type"),
        body: String::from_utf8_lossy(&body).into_owned(),
        answered: if status == 0 { 599 } else { status },
        at: Instant::now(),
    };
    log.lock().unwrap().requests.push(record);
    if status == 0 {
        tokio::time::sleep(Duration::from_secs(60)).await;
        return HttpResponse::Ok().finish();
    }
    let mut response = HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap());
    if status == 503 {
        response.insert_header(("Retry-After", "1"));
    }
    response.body("receiver says so")
}

/// The Standard Webhooks verification, written from the specification: any one `v1,`
/// signature of the header must be the HMAC-SHA256 of `id.timestamp.body` under the secret.
fn verifies(secret: &str, r: &Received) -> bool {
    let key = STANDARD.decode(secret.strip_prefix("whsec_").expect("whsec_ prefix")).expect("base64 secret");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.{}", r.id, r.timestamp, r.body).as_bytes());
    let expected = STANDARD.encode(mac.finalize().into_bytes());
    let fresh = (chrono::Utc::now().timestamp() - r.timestamp).abs() < 300;
    fresh && r.signature.split(' ').any(|s| s.strip_prefix("v1,") == Some(expected.as_str()))
}

const PRIVATE: (&str, &str) = ("STOCKCART_WEBHOOK_ALLOW_PRIVATE", "true");

async fn replicas(n: usize, extra: &[(&str, &str)]) -> Vec<TestApp> {
    let url = fresh_database().await;
    let mut overrides = vec![PRIVATE];
    overrides.extend_from_slice(extra);
    let mut apps = Vec::new();
    for _ in 0..n {
        apps.push(spawn_on(&url, &overrides).await);
    }
    apps
}

async fn register(app: &TestApp, url: &str, types: Option<Value>) -> (String, String) {
    let mut body = json!({ "url": url, "description": "test receiver" });
    if let Some(t) = types {
        body["types"] = t;
    }
    let r = app.admin("POST", "/v1/admin/webhooks", Some(body)).await;
    r.assert_status(201);
    let secret = r.body["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_") && STANDARD.decode(&secret[6..]).unwrap().len() == 32);
    (r.body["id"].as_str().unwrap().to_owned(), secret)
}

async fn events_after(app: &TestApp, after: i64) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor = after;
    loop {
        let page = app.get(&format!("/v1/admin/events?limit=200&after={cursor}"), Auth::Admin).await;
        let items = page.body["items"].as_array().unwrap().clone();
        if items.is_empty() {
            return out;
        }
        cursor = items.last().unwrap()["id"].as_i64().unwrap();
        out.extend(items);
    }
}

async fn last_event(app: &TestApp) -> i64 {
    events_after(app, 0).await.last().map(|e| e["id"].as_i64().unwrap()).unwrap_or(0)
}

#[tokio::test]
async fn every_event_reaches_the_endpoint_once_signed_whatever_the_number_of_replicas() {
    let apps = replicas(2, &[]).await;
    let receiver = Receiver::start().await;
    for i in 0..4 {
        apps[0].stocked(&format!("WH-{i}"), 100, 10).await;
    }
    let start = last_event(&apps[0]).await;
    let (id, secret) = register(&apps[1], &format!("{}/a", receiver.base), None).await;
    let mut writes = Vec::new();
    for k in 0..24 {
        let app = &apps[k % 2];
        writes.push(async move { app.adjust(&format!("WH-{}", k % 4), 1, "restock").await });
    }
    for r in futures_util::future::join_all(writes).await {
        r.assert_status(200);
    }
    let token = apps[0].session().await;
    apps[0].add(&token, "WH-1", 2).await.assert_status(200);
    apps[1].checkout(&token, "k").await.assert_status(201);

    let expected = events_after(&apps[0], start).await;
    assert!(expected.len() >= 26);
    receiver.wait_for("every event", Duration::from_secs(10), |r| r.succeeded("/a").len() >= expected.len()).await;
    tokio::time::sleep(Duration::from_millis(500)).await; // a duplicate would show by now
    let got = receiver.requests("/a");
    assert_eq!(got.len(), expected.len(), "exactly once without faults");
    let by_id: BTreeMap<i64, &Received> = got.iter().map(|r| (r.id, r)).collect();
    for event in &expected {
        let r = by_id[&event["id"].as_i64().unwrap()];
        assert!(verifies(&secret, r), "signature of event {}", r.id);
        assert_eq!(r.content_type, "application/json");
        assert_eq!(serde_json::from_str::<Value>(&r.body).unwrap(), *event, "the body is the event");
    }
    let deliveries =
        apps[0].get(&format!("/v1/admin/webhooks/{id}/deliveries?status=succeeded&limit=200"), Auth::Admin).await;
    deliveries.assert_status(200);
    let items = deliveries.body["items"].as_array().unwrap();
    assert_eq!(items.len(), expected.len());
    assert!(items.iter().all(|d| d["attempts"] == 1 && d["last_status_code"] == 200));
}

#[tokio::test]
async fn events_of_one_key_arrive_in_order_while_the_receiver_fails_some() {
    let apps = replicas(2, &[("STOCKCART_WEBHOOK_RETRY_SCHEDULE", "100ms,100ms,100ms")]).await;
    let receiver = Receiver::start().await;
    receiver.answer("/a", Answer::FailFirstOfEvery(3));
    for i in 0..3 {
        apps[0].stocked(&format!("ORD-{i}"), 100, 0).await;
    }
    register(&apps[0], &format!("{}/a", receiver.base), Some(json!(["stock.changed"]))).await;
    let mut writes = Vec::new();
    for k in 0..30 {
        let app = &apps[k % 2];
        writes.push(async move { app.adjust(&format!("ORD-{}", k % 3), 1, "restock").await });
    }
    futures_util::future::join_all(writes).await;
    receiver.wait_for("30 successes", Duration::from_secs(15), |r| r.succeeded("/a").len() >= 30).await;

    // Per SKU: no event is sent before the one before it succeeded.
    let mut per_sku: HashMap<String, Vec<(i64, u16)>> = HashMap::new();
    for r in receiver.requests("/a") {
        let body: Value = serde_json::from_str(&r.body).unwrap();
        per_sku.entry(body["data"]["sku"].as_str().unwrap().to_owned()).or_default().push((r.id, r.answered));
    }
    for (sku, attempts) in per_sku {
        // A retry repeats its id; the next id only ever comes after it.
        assert!(attempts.windows(2).all(|w| w[0].0 <= w[1].0), "{sku}: out of order: {attempts:?}");
        let ok: Vec<i64> = attempts.iter().filter(|(_, s)| *s < 300).map(|(id, _)| *id).collect();
        assert_eq!(ok.len(), 10, "{sku}: each event succeeded once");
        assert!(attempts.iter().all(|(id, _)| ok.contains(id)));
    }
    assert!(receiver.requests("/a").iter().any(|r| r.answered == 500), "some attempts failed");
}

#[tokio::test]
async fn failed_attempts_follow_the_schedule_then_fail_and_can_be_replayed() {
    let apps = replicas(1, &[("STOCKCART_WEBHOOK_RETRY_SCHEDULE", "200ms,200ms")]).await;
    let app = &apps[0];
    let receiver = Receiver::start().await;
    receiver.answer("/a", Answer::Status(500));
    app.stocked("SCHED", 100, 0).await;
    let (id, _) = register(app, &format!("{}/a", receiver.base), None).await;
    app.adjust("SCHED", 1, "restock").await.assert_status(200);
    receiver.wait_for("three attempts", Duration::from_secs(5), |r| r.requests("/a").len() >= 6).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let attempts = receiver.requests("/a");
    assert_eq!(attempts.len(), 6, "two events (stock.changed, stock.back), three attempts each");
    let first_event: Vec<&Received> = attempts.iter().filter(|r| r.id == attempts[0].id).collect();
    let gap = first_event[1].at - first_event[0].at;
    assert!(gap >= Duration::from_millis(180) && gap < Duration::from_millis(1500), "{gap:?}");

    let log = app.get(&format!("/v1/admin/webhooks/{id}/deliveries"), Auth::Admin).await;
    log.assert_status(200);
    let items = log.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    for d in items {
        assert_eq!(d["status"], "failed");
        assert_eq!(d["attempts"], 3);
        assert_eq!(d["last_status_code"], 500);
        assert!(d["last_error"].as_str().unwrap().contains("receiver says so"));
        assert_eq!(d["next_attempt_at"], Value::Null);
    }
    assert!(items[0]["id"].as_i64() > items[1]["id"].as_i64(), "newest first");
    let failed_only = app.get(&format!("/v1/admin/webhooks/{id}/deliveries?status=failed&limit=1"), Auth::Admin).await;
    assert_eq!(failed_only.body["items"].as_array().unwrap().len(), 1);
    assert!(failed_only.body["next"].is_string());

    // Replay once the receiver is back: the same events, with their original ids.
    receiver.answer("/a", Answer::Ok);
    let replay = app.admin("POST", &format!("/v1/admin/webhooks/{id}/replay"), Some(json!({ "after": 0 }))).await;
    replay.assert_status(202);
    assert_eq!(replay.body["queued"], 2);
    receiver.wait_for("the replay", Duration::from_secs(5), |r| r.succeeded("/a").len() == 2).await;
    let ids: Vec<i64> = receiver.succeeded("/a").iter().map(|r| r.id).collect();
    assert_eq!(ids, [attempts[0].id, attempts[3].id], "the same events, in order, with their ids");

    for bad in [json!({}), json!({ "after": -1 }), json!({ "after": 5, "until": 2 }), json!({ "after": "x" })] {
        app.admin("POST", &format!("/v1/admin/webhooks/{id}/replay"), Some(bad))
            .await
            .assert_problem(422, "invalid_range");
    }
}

#[tokio::test]
async fn gone_disables_at_once_five_days_of_failures_disable_and_patch_re_enables() {
    let apps = replicas(1, &[("STOCKCART_WEBHOOK_RETRY_SCHEDULE", "100ms,100ms,100ms,100ms")]).await;
    let app = &apps[0];
    let receiver = Receiver::start().await;
    receiver.answer("/gone", Answer::Status(410));
    app.stocked("GONE", 100, 0).await;
    let (id, _) = register(app, &format!("{}/gone", receiver.base), None).await;
    app.adjust("GONE", 1, "restock").await.assert_status(200);
    receiver.wait_for("the 410", Duration::from_secs(5), |r| !r.requests("/gone").is_empty()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let endpoint = app.get(&format!("/v1/admin/webhooks/{id}"), Auth::Admin).await;
    assert_eq!(endpoint.body["status"], "disabled");
    assert!(endpoint.body["disabled_reason"].as_str().unwrap().contains("410"));
    assert_eq!(receiver.requests("/gone").len(), 1, "nothing more is sent to a disabled endpoint");

    // Re-enabled, it gets what was held.
    receiver.answer("/gone", Answer::Ok);
    let enabled = app.admin("PATCH", &format!("/v1/admin/webhooks/{id}"), Some(json!({ "status": "enabled" }))).await;
    enabled.assert_status(200);
    assert_eq!(enabled.body["disabled_reason"], Value::Null);
    receiver.wait_for("the held event", Duration::from_secs(5), |r| !r.succeeded("/gone").is_empty()).await;

    // An unbroken run of failures over five days disables it too (once the success above is
    // recorded: a success ends a run).
    let deadline = Instant::now() + Duration::from_secs(5);
    while !app.get(&format!("/v1/admin/webhooks/{id}/deliveries?status=pending"), Auth::Admin).await.body["items"]
        .as_array()
        .unwrap()
        .is_empty()
    {
        assert!(Instant::now() < deadline, "the held delivery is recorded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    receiver.answer("/gone", Answer::Status(500));
    sqlx::query("UPDATE webhook_endpoints SET failing_since = now() - interval '6 days'")
        .execute(&app.db)
        .await
        .unwrap();
    app.adjust("GONE", 1, "restock").await.assert_status(200);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let e = app.get(&format!("/v1/admin/webhooks/{id}"), Auth::Admin).await;
        if e.body["status"] == "disabled" {
            assert!(e.body["disabled_reason"].as_str().unwrap().contains("failed since"));
            break;
        }
        assert!(Instant::now() < deadline, "disabled after five days of failures");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn after_a_rotation_deliveries_carry_both_signatures() {
    let apps = replicas(1, &[]).await;
    let app = &apps[0];
    let receiver = Receiver::start().await;
    app.stocked("ROT", 100, 0).await;
    let (id, old) = register(app, &format!("{}/a", receiver.base), Some(json!(["stock.changed"]))).await;
    let rotated = app.admin("POST", &format!("/v1/admin/webhooks/{id}/rotate-secret"), None).await;
    rotated.assert_status(200);
    let new = rotated.body["secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    app.adjust("ROT", 1, "restock").await.assert_status(200);
    receiver.wait_for("the delivery", Duration::from_secs(5), |r| !r.succeeded("/a").is_empty()).await;
    let r = &receiver.requests("/a")[0];
    assert_eq!(r.signature.split(' ').count(), 2);
    assert!(verifies(&old, r) && verifies(&new, r));
    let shown = app.get(&format!("/v1/admin/webhooks/{id}"), Auth::Admin).await;
    assert!(shown.body.get("secret").is_none(), "the secret is shown only at creation and rotation");
}

#[tokio::test]
async fn a_hanging_endpoint_does_not_delay_another() {
    let apps = replicas(2, &[("STOCKCART_WEBHOOK_TIMEOUT", "3s")]).await;
    let receiver = Receiver::start().await;
    receiver.answer("/slow", Answer::Hang);
    for i in 0..8 {
        apps[0].stocked(&format!("HANG-{i}"), 100, 0).await;
    }
    register(&apps[0], &format!("{}/slow", receiver.base), Some(json!(["stock.changed"]))).await;
    register(&apps[0], &format!("{}/fast", receiver.base), Some(json!(["stock.changed"]))).await;
    let sent = Instant::now();
    for i in 0..8 {
        apps[i % 2].adjust(&format!("HANG-{i}"), 1, "restock").await.assert_status(200);
    }
    receiver.wait_for("the fast endpoint", Duration::from_secs(2), |r| r.succeeded("/fast").len() == 8).await;
    assert!(sent.elapsed() < Duration::from_secs(2));
    assert!(receiver.succeeded("/slow").is_empty());
}

#[tokio::test]
async fn an_instance_killed_mid_delivery_loses_nothing() {
    let db = fresh_database().await;
    let overrides = [PRIVATE, ("STOCKCART_WEBHOOK_TIMEOUT", "1s")];
    // Instance A, started by hand so that it can be killed: its HTTP server stopped and its
    // background tasks (the delivery worker and its in-flight request) aborted at once.
    let settings = test_settings(&overrides);
    let pool = stockcart::startup::connect_lazy(&settings, &db).unwrap();
    let a = stockcart::startup::Application::build(settings, pool, ADMIN_TOKEN.to_owned().into()).unwrap();
    let a_url = format!("http://127.0.0.1:{}", a.port());
    let (a_server, a_tasks) = (a.server_handle(), a.background_tasks());
    tokio::spawn(a.run_until_stopped());
    let client = reqwest::Client::new();
    let admin = |method: reqwest::Method, path: &str, body: Value| {
        client.request(method, format!("{a_url}{path}")).bearer_auth(ADMIN_TOKEN).json(&body).send()
    };
    let receiver = Receiver::start().await;
    receiver.answer("/a", Answer::Hang);
    let price = json!({ "name": "Kill", "price": { "amount": 100, "currency": "EUR" } });
    assert_eq!(admin(reqwest::Method::PUT, "/v1/admin/products/KILL", price).await.unwrap().status(), 201);
    let created = admin(
        reqwest::Method::POST,
        "/v1/admin/webhooks",
        json!({ "url": format!("{}/a", receiver.base), "types": ["stock.changed"] }),
    )
    .await
    .unwrap();
    assert_eq!(created.status(), 201);
    let adjusted = admin(
        reqwest::Method::POST,
        "/v1/admin/inventory/KILL/adjustments",
        json!({ "delta": 1, "reason": "restock" }),
    )
    .await
    .unwrap();
    assert_eq!(adjusted.status(), 200);
    receiver.wait_for("the hanging attempt", Duration::from_secs(5), |r| r.requests("/a").len() == 1).await;

    // Kill A while its request hangs, then start B with the receiver healthy again.
    for task in a_tasks {
        task.abort();
    }
    a_server.stop(false).await;
    receiver.answer("/a", Answer::Ok);
    let b = spawn_on(&db, &overrides).await;
    receiver
        .wait_for("B's delivery after A's lease ran out", Duration::from_secs(30), |r| r.succeeded("/a").len() == 1)
        .await;
    let requests = receiver.requests("/a");
    assert_eq!(requests.len(), 2, "the hung attempt, then one delivery");
    assert_eq!(requests[0].id, requests[1].id, "the same webhook-id: the receiver can tell it is a retry");
    let id = created_id(&b).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let log = b.get(&format!("/v1/admin/webhooks/{id}/deliveries"), Auth::Admin).await;
        if log.body["items"][0]["status"] == "succeeded" {
            assert_eq!(log.body["items"][0]["attempts"], 2);
            break;
        }
        assert!(Instant::now() < deadline, "the delivery is recorded as succeeded: {}", log.text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn created_id(app: &TestApp) -> String {
    let list = app.get("/v1/admin/webhooks", Auth::Admin).await;
    list.body["items"][0]["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn internal_addresses_are_refused_unless_allowed() {
    let app = spawn_on(&fresh_database().await, &[]).await;
    for url in [
        "http://127.0.0.1:9/hook",
        "http://localhost:9/hook",
        "http://10.0.0.1/hook",
        "http://192.168.1.1/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]:9/hook",
        "http://0.0.0.0/hook",
        "ftp://example.com/hook",
        "not a url",
        "http://user:pass@example.com/hook",
    ] {
        let r = app.admin("POST", "/v1/admin/webhooks", Some(json!({ "url": url }))).await;
        r.assert_problem(422, "invalid_url");
    }
    app.admin("POST", "/v1/admin/webhooks", Some(json!({}))).await.assert_problem(422, "invalid_url");
    let allowed = spawn_on(&fresh_database().await, &[PRIVATE]).await;
    allowed
        .admin("POST", "/v1/admin/webhooks", Some(json!({ "url": "http://127.0.0.1:9/hook", "types": ["nope"] })))
        .await
        .assert_problem(422, "invalid_types");
    let (id, _) = register(&allowed, "http://127.0.0.1:9/hook", Some(json!(["stock.*", "order.paid"]))).await;
    let shown = allowed.get(&format!("/v1/admin/webhooks/{id}"), Auth::Admin).await;
    assert_eq!(shown.body["types"], json!(["stock.*", "order.paid"]));
    assert_eq!(shown.body["status"], "enabled");
    let patched =
        allowed.admin("PATCH", &format!("/v1/admin/webhooks/{id}"), Some(json!({ "status": "paused" }))).await;
    patched.assert_problem(422, "invalid_status");
    let deleted = allowed.admin("DELETE", &format!("/v1/admin/webhooks/{id}"), None).await;
    deleted.assert_status(204);
    allowed.get(&format!("/v1/admin/webhooks/{id}"), Auth::Admin).await.assert_problem(404, "unknown_webhook");
    allowed.get("/v1/admin/webhooks/not-a-uuid", Auth::Admin).await.assert_problem(404, "unknown_webhook");
    app.get("/v1/admin/webhooks", Auth::None).await.assert_problem(401, "unauthorized");
}

/// The worker's statements on their own, on a database no worker touches: one claim covers
/// every endpoint, each within its room, and takes only the first pending delivery of a key;
/// a lease given back is claimable at once with its attempt undone; an outcome counts only
/// for the claim that sent it.
#[tokio::test]
async fn one_claim_covers_every_endpoint_in_key_order_and_released_leases_come_back() {
    use stockcart::store::webhooks::{self, Outcome, Outcomes, Rooms};
    use uuid::Uuid;

    let url = fresh_database().await;
    let mut conn: sqlx::PgConnection = sqlx::Connection::connect(&url).await.unwrap();
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    for id in [a, b] {
        sqlx::query("INSERT INTO webhook_endpoints (id, url, secret, cursor) VALUES ($1, 'http://x', '\\x00', 0)")
            .bind(id)
            .execute(&mut conn)
            .await
            .unwrap();
    }
    // Per endpoint, events 1..=6 on keys k0, k1, k2, k0, k1, k2.
    sqlx::query(
        "INSERT INTO webhook_deliveries (endpoint_id, event_id, event_type, key, body)
         SELECT e, g, 'stock.changed', 'k' || ((g - 1) % 3), '{}'
         FROM unnest($1::uuid[]) e CROSS JOIN generate_series(1, 6) g ORDER BY e, g",
    )
    .bind(vec![a, b])
    .execute(&mut conn)
    .await
    .unwrap();
    let lease = Duration::from_secs(60);
    let event_ids = |claimed: &[webhooks::Claimed], endpoint: Uuid| -> Vec<i64> {
        claimed.iter().filter(|c| c.endpoint_id == endpoint).map(|c| c.event_id).collect()
    };

    // `a` has room for 2, `b` (not listed) the default 10: the first of each key only.
    let first = Uuid::new_v4();
    let rooms = Rooms { endpoints: vec![a], rooms: vec![2], default_room: 10 };
    let claimed = webhooks::claim(&mut conn, first, &rooms, lease).await.unwrap();
    assert_eq!(event_ids(&claimed, a), [1, 2]);
    assert_eq!(event_ids(&claimed, b), [1, 2, 3]);
    assert!(claimed.iter().all(|c| c.attempts == 1));

    // Nothing more while those are leased, except `a`'s third key.
    let second = Uuid::new_v4();
    let rooms = Rooms { endpoints: vec![a, b], rooms: vec![10, 10], default_room: 0 };
    let more = webhooks::claim(&mut conn, second, &rooms, lease).await.unwrap();
    assert_eq!(event_ids(&more, a), [3]);
    assert!(event_ids(&more, b).is_empty());

    // Given back: claimable at once, its attempt undone. Not given back under another claim.
    let a1 = claimed.iter().find(|c| c.endpoint_id == a && c.event_id == 1).unwrap().id;
    let a2 = claimed.iter().find(|c| c.endpoint_id == a && c.event_id == 2).unwrap().id;
    webhooks::release(&mut conn, &[a1, a2], &[first, second]).await.unwrap();
    let again = webhooks::claim(&mut conn, Uuid::new_v4(), &rooms, lease).await.unwrap();
    assert_eq!(event_ids(&again, a), [1]);
    assert_eq!(again[0].attempts, 1, "the given-back lease did not count as an attempt");

    // An outcome under a claim that no longer holds is ignored; under its own, it counts and
    // the key's next event becomes claimable.
    let b1 = claimed.iter().find(|c| c.endpoint_id == b && c.event_id == 1).unwrap().id;
    let mut stale = Outcomes::default();
    stale.push(a1, first, Outcome::Succeeded { status_code: 200 });
    stale.push(b1, first, Outcome::Succeeded { status_code: 200 });
    webhooks::record(&mut conn, &stale, Duration::from_secs(86_400)).await.unwrap();
    let status: Vec<(i64, String)> =
        sqlx::query_as("SELECT id, status FROM webhook_deliveries WHERE id = ANY($1) ORDER BY id")
            .bind(vec![a1, b1])
            .fetch_all(&mut conn)
            .await
            .unwrap();
    // Delivery ids follow the endpoints' random ids: compare in id order.
    let mut expected = vec![(a1, "pending".to_owned()), (b1, "succeeded".to_owned())];
    expected.sort();
    assert_eq!(status, expected);
    let next = webhooks::claim(&mut conn, Uuid::new_v4(), &rooms, lease).await.unwrap();
    assert_eq!(event_ids(&next, b), [4]);
}
