//! The event log, its streams and stock status, against two or three replicas on one database.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_replicas, Auth, TestApp, ADMIN_TOKEN};

/// One server-sent event as a client parses it.
#[derive(Debug, Clone)]
struct Sse {
    id: Option<String>,
    event: String,
    data: Value,
}

/// A minimal WHATWG event-stream reader over a live response.
struct SseClient {
    response: reqwest::Response,
    buffer: String,
    /// Lines seen before the first event, such as `retry: 2000`.
    preamble: Vec<String>,
}

impl SseClient {
    async fn connect(app: &TestApp, path: &str, admin: bool, last_event_id: Option<i64>) -> SseClient {
        let mut req = app.client.get(format!("{}{path}", app.address));
        if admin {
            req = req.bearer_auth(ADMIN_TOKEN);
        }
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id.to_string());
        }
        let response = req.send().await.expect("stream request sent");
        assert_eq!(response.status(), 200, "stream {path} refused");
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        SseClient { response, buffer: String::new(), preamble: Vec::new() }
    }

    /// The next event, or None when `within` passes first (or the stream ends).
    async fn next(&mut self, within: Duration) -> Option<Sse> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let (mut id, mut event, mut data) = (None, "message".to_owned(), String::new());
                let mut is_event = false;
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id: ") {
                        id = Some(v.to_owned());
                    } else if let Some(v) = line.strip_prefix("event: ") {
                        event = v.to_owned();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data.push_str(v);
                        is_event = true;
                    } else if !line.is_empty() {
                        self.preamble.push(line.to_owned());
                    }
                }
                if is_event {
                    return Some(Sse { id, event, data: serde_json::from_str(&data).expect("data is JSON") });
                }
                continue;
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            match tokio::time::timeout(left, self.response.chunk()).await {
                Ok(Ok(Some(chunk))) => self.buffer.push_str(std::str::from_utf8(&chunk).expect("UTF-8")),
                _ => return None,
            }
        }
    }
}

async fn all_events(app: &TestApp, query: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut after = 0;
    loop {
        let page = app.get(&format!("/v1/admin/events?limit=200&after={after}{query}"), Auth::Admin).await;
        page.assert_status(200);
        let batch = page.body["items"].as_array().unwrap().clone();
        if batch.is_empty() {
            return items;
        }
        after = batch.last().unwrap()["id"].as_i64().unwrap();
        assert_eq!(page.body["next"], json!(after));
        items.extend(batch);
    }
}

fn topics(events: &[Value]) -> Vec<String> {
    events.iter().map(|e| e["type"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn a_reader_hopping_replicas_sees_every_event_of_concurrent_writers_once_in_order() {
    let apps = spawn_replicas(3, &[]).await;
    let skus: Vec<String> = (0..12).map(|i| format!("EV-{i}")).collect();
    for sku in &skus {
        apps[0].put_product(sku, "Event test", 100).await.assert_status(201);
    }
    let start = all_events(&apps[0], "").await.last().map(|e| e["id"].as_i64().unwrap()).unwrap_or(0);

    // Writers on every replica at once: single adjustments and small batches, so that
    // transactions commit in an order other than the one they began in.
    let mut writers = Vec::new();
    for (w, app) in apps.iter().enumerate() {
        for t in 0..4 {
            let (address, client, skus) = (app.address.clone(), app.client.clone(), skus.clone());
            writers.push(tokio::spawn(async move {
                let mut ok = 0;
                for i in 0..60 {
                    let sku = &skus[(w * 7 + t * 3 + i) % skus.len()];
                    let r = if i % 5 == 0 {
                        let lines: Vec<Value> = (0..3)
                            .map(|k| json!({ "sku": skus[(i + k) % skus.len()], "delta": 1, "reason": "restock" }))
                            .collect();
                        client
                            .post(format!("{address}/v1/admin/inventory/batch"))
                            .bearer_auth(ADMIN_TOKEN)
                            .json(&json!({ "adjustments": lines }))
                            .send()
                            .await
                    } else {
                        client
                            .post(format!("{address}/v1/admin/inventory/{sku}/adjustments"))
                            .bearer_auth(ADMIN_TOKEN)
                            .json(&json!({ "delta": 1, "reason": "restock" }))
                            .send()
                            .await
                    };
                    assert_eq!(r.unwrap().status(), 200);
                    ok += 1;
                }
                ok
            }));
        }
    }

    // The reader takes a few events from one replica, drops the connection and resumes on
    // the next with Last-Event-ID.
    let mut seen: Vec<Sse> = Vec::new();
    let mut last = start;
    let mut hop = 0;
    let done = |writers: &Vec<tokio::task::JoinHandle<i32>>| writers.iter().all(|w| w.is_finished());
    loop {
        let app = &apps[hop % apps.len()];
        hop += 1;
        let mut stream = SseClient::connect(app, "/v1/admin/events/stream", true, Some(last)).await;
        let mut got = 0;
        while got < 25 {
            match stream.next(Duration::from_millis(500)).await {
                Some(e) => {
                    last = e.id.as_deref().unwrap().parse().unwrap();
                    seen.push(e);
                    got += 1;
                }
                None => break,
            }
        }
        assert!(stream.preamble.iter().any(|l| l == "retry: 2000"), "the stream starts with retry: 2000");
        if got == 0 && done(&writers) {
            break;
        }
    }
    for w in writers {
        w.await.unwrap();
    }

    let ids: Vec<i64> = seen.iter().map(|e| e.id.as_deref().unwrap().parse().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids grow, never repeat");
    let logged: Vec<i64> =
        all_events(&apps[1], "").await.iter().map(|e| e["id"].as_i64().unwrap()).filter(|id| *id > start).collect();
    assert_eq!(ids, logged, "the stream delivered exactly the log");
    let changes = seen.iter().filter(|e| e.event == "stock.changed").count();
    assert_eq!(changes, 3 * 4 * (48 + 12 * 3), "one stock.changed per committed movement");

    // Per SKU, versions chain.
    let mut version: BTreeMap<String, i64> = BTreeMap::new();
    for e in seen.iter().filter(|e| e.event == "stock.changed") {
        let d = &e.data["data"];
        let sku = d["sku"].as_str().unwrap().to_owned();
        let prev = version.get(&sku).copied().unwrap_or(0);
        assert_eq!(d["previous_version"], json!(prev), "{sku}: versions chain");
        assert_eq!(d["version"], json!(prev + 1));
        assert_eq!(d["delta_on_hand"], json!(1));
        version.insert(sku, prev + 1);
    }
}

#[tokio::test]
async fn status_events_are_written_once_per_crossing_even_when_stock_hovers() {
    let app = spawn_app().await;
    app.admin(
        "PUT",
        "/v1/admin/products/HOVER",
        Some(json!({ "name": "Hover", "price": { "amount": 100, "currency": "EUR" }, "low_stock_threshold": 5 })),
    )
    .await
    .assert_status(201);
    for delta in [10, -5, 1, -1, 1, -1, -5, 3, 4] {
        app.adjust("HOVER", delta, if delta > 0 { "restock" } else { "shrinkage" }).await.assert_status(200);
    }
    // available: 10 in_stock (back), 5 low, 6 recovered, 5 low, 6 recovered, 5 low, 0 out, 3 back (low), 7 recovered
    let status: Vec<Value> = all_events(&app, "&types=stock.low,stock.out,stock.back,stock.recovered").await;
    assert_eq!(
        topics(&status),
        [
            "stock.back",
            "stock.low",
            "stock.recovered",
            "stock.low",
            "stock.recovered",
            "stock.low",
            "stock.out",
            "stock.back",
            "stock.recovered"
        ]
    );
    assert_eq!(
        status[7]["data"],
        json!({ "sku": "HOVER", "available": 3, "low_stock_threshold": 5, "status": "low", "previous_status": "out", "version": 8 })
    );
    let level = app.level("HOVER").await;
    assert_eq!(level["status"], "in_stock");

    // A threshold edit that crosses writes its event too, without a new version.
    app.admin(
        "PUT",
        "/v1/admin/products/HOVER",
        Some(json!({ "name": "Hover", "price": { "amount": 100, "currency": "EUR" }, "low_stock_threshold": 7 })),
    )
    .await
    .assert_status(200);
    let after = all_events(&app, "&types=stock.*&sku=HOVER").await;
    let last = after.last().unwrap();
    assert_eq!(last["type"], "stock.low");
    assert_eq!(last["data"]["version"], 9);
    let product = app.get("/v1/products/HOVER", Auth::None).await;
    assert_eq!(product.body["status"], "low");
    assert_eq!(app.level("HOVER").await["version"], 9, "a threshold edit is not a stock version");
}

#[tokio::test]
async fn the_public_stream_starts_with_each_skus_state_and_follows_changes_on_other_replicas() {
    let apps = spawn_replicas(2, &[]).await;
    apps[0].stocked("PUB-A", 100, 3).await;
    apps[0].stocked("PUB-B", 100, 0).await;
    let mut stream = SseClient::connect(&apps[1], "/v1/stock/stream?skus=PUB-A,PUB-B", false, None).await;
    let first = stream.next(Duration::from_secs(2)).await.unwrap();
    let second = stream.next(Duration::from_secs(2)).await.unwrap();
    assert_eq!(first.event, "stock");
    assert_eq!(first.data, json!({ "sku": "PUB-A", "available": 3, "status": "in_stock", "version": 1 }));
    assert_eq!(second.data, json!({ "sku": "PUB-B", "available": 0, "status": "out", "version": 0 }));

    // A change on the other replica reaches this one's client within a second.
    let sent = Instant::now();
    apps[0].adjust("PUB-B", 2, "restock").await.assert_status(200);
    let update = stream.next(Duration::from_secs(1)).await.expect("the change within 1 s");
    assert!(sent.elapsed() < Duration::from_secs(1));
    assert_eq!(update.data, json!({ "sku": "PUB-B", "available": 2, "status": "in_stock", "version": 1 }));

    // Only its SKUs: a change of another product is not sent.
    apps[0].stocked("PUB-C", 100, 1).await;
    apps[0].adjust("PUB-A", -1, "shrinkage").await.assert_status(200);
    let next = stream.next(Duration::from_secs(1)).await.unwrap();
    assert_eq!(next.data["sku"], "PUB-A");
    assert_eq!(next.data["available"], 2);

    for bad in ["skus=", "skus=NOPE", "skus=bad%20sku", "skus=PUB-A,NOPE"] {
        apps[1].get(&format!("/v1/stock/stream?{bad}"), Auth::None).await.assert_problem(400, "invalid_query");
    }
}

#[tokio::test]
async fn the_event_list_filters_by_type_family_and_sku_and_order_events_carry_the_order() {
    let app = spawn_app().await;
    app.stocked("LIST-A", 250, 5).await;
    app.stocked("LIST-B", 100, 5).await;
    let token = app.session().await;
    app.add(&token, "LIST-A", 2).await.assert_status(200);
    let order = app.checkout(&token, "k1").await;
    order.assert_status(201);

    let placed = all_events(&app, "&types=order.*").await;
    assert_eq!(topics(&placed), ["order.placed"]);
    assert_eq!(placed[0]["data"]["order"], order.body, "the order as the API renders it");
    let a = all_events(&app, "&sku=LIST-A").await;
    assert_eq!(topics(&a), ["stock.changed", "stock.back", "stock.changed", "order.placed"]);
    assert!(a.iter().all(|e| e["data"]["sku"] == "LIST-A" || e["type"] == "order.placed"));
    let reservation = a.iter().find(|e| e["data"]["kind"] == "reservation").expect("the reservation's event");
    assert_eq!(reservation["data"]["order_id"], order.body["id"]);
    assert_eq!(reservation["data"]["delta_reserved"], 2);
    for e in all_events(&app, "").await {
        assert!(e["at"].as_str().unwrap().ends_with('Z'));
    }
    for bad in ["types=stock.nope", "types=nope.*", "after=x", "after=-1", "limit=0", "sku=bad%20sku"] {
        app.get(&format!("/v1/admin/events?{bad}"), Auth::Admin).await.assert_problem(400, "invalid_query");
    }
    app.get("/v1/admin/events", Auth::None).await.assert_problem(401, "unauthorized");
}

#[tokio::test]
async fn a_dropped_listen_connection_delays_events_but_loses_none() {
    let apps = spawn_replicas(2, &[]).await;
    apps[0].stocked("DROP", 100, 1).await;
    let last = all_events(&apps[0], "").await.last().unwrap()["id"].as_i64().unwrap();
    let mut stream =
        SseClient::connect(&apps[1], "/v1/admin/events/stream?types=stock.changed", true, Some(last)).await;
    let killed: i64 = sqlx::query_scalar(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
         WHERE datname = current_database() AND query LIKE 'LISTEN%'",
    )
    .fetch_one(&apps[0].db)
    .await
    .unwrap();
    assert!(killed >= 2, "each replica listens on a connection of its own ({killed})");
    for _ in 0..5 {
        apps[0].adjust("DROP", 1, "restock").await.assert_status(200);
    }
    let mut versions = Vec::new();
    while versions.len() < 5 {
        let e = stream.next(Duration::from_secs(3)).await.expect("every event, at most delayed");
        versions.push(e.data["data"]["version"].as_i64().unwrap());
    }
    assert_eq!(versions, [2, 3, 4, 5, 6]);
    // And the connection comes back.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let metrics = apps[1].get("/metrics", Auth::None).await.text;
        if metrics.contains("stockcart_event_listen_reconnects_total 1") {
            assert!(metrics.contains("stockcart_stream_clients 1"));
            break;
        }
        assert!(Instant::now() < deadline, "LISTEN reconnected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn retention_deletes_old_events_and_a_resume_from_before_it_is_told_to_reset() {
    let apps = spawn_replicas(2, &[("STOCKCART_EVENT_RETENTION", "1s")]).await;
    apps[0].stocked("OLD", 100, 1).await;
    let first = all_events(&apps[0], "").await;
    assert!(!first.is_empty());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !all_events(&apps[1], "").await.is_empty() {
        assert!(Instant::now() < deadline, "old events are deleted");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let movements = apps[0].get("/v1/admin/inventory/OLD/movements", Auth::Admin).await;
    assert_eq!(movements.body["items"].as_array().unwrap().len(), 1, "the ledger is kept");

    let mut stream = SseClient::connect(&apps[1], "/v1/admin/events/stream", true, Some(0)).await;
    let reset = stream.next(Duration::from_secs(2)).await.unwrap();
    assert_eq!(reset.event, "reset");
    apps[0].adjust("OLD", 1, "restock").await.assert_status(200);
    let next = stream.next(Duration::from_secs(2)).await.unwrap();
    assert_eq!(next.event, "stock.changed");
    assert!(next.id.unwrap().parse::<i64>().unwrap() > reset.id.unwrap().parse::<i64>().unwrap());
}

/// Retention deletes the log's oldest events in order up to the first one not old enough, and
/// looks no further than a batch: a young event keeps every event after it, however old.
#[tokio::test]
async fn retention_deletes_the_old_prefix_of_the_log_and_stops_at_the_first_young_event() {
    let app = crate::helpers::spawn_on(
        &crate::helpers::fresh_database().await,
        &[("STOCKCART_ROLLUP_INTERVAL", "0"), ("STOCKCART_EVENT_RETENTION", "366d")],
    )
    .await;
    for sku in ["P1", "P2", "P3", "P4"] {
        app.stocked(sku, 100, 1).await;
    }
    let mut conn = app.db.acquire().await.unwrap();
    stockcart::store::events::sequence_all(&mut conn).await.unwrap();
    stockcart::tasks::rollup::catch_up(&app.db, 5000).await.unwrap();
    let positions: Vec<i64> =
        sqlx::query_scalar("SELECT position FROM outbox_events ORDER BY position").fetch_all(&mut *conn).await.unwrap();
    assert!(positions.len() >= 4, "{positions:?}");
    let young = positions[positions.len() / 2];
    sqlx::query("UPDATE outbox_events SET at = CASE WHEN position = $1 THEN now() ELSE now() - interval '2 days' END")
        .bind(young)
        .execute(&mut *conn)
        .await
        .unwrap();
    let cutoff = chrono::Utc::now() - chrono::Duration::days(1);
    let deleted = stockcart::store::events::prune(&mut conn, cutoff, 2).await.unwrap();
    assert_eq!(deleted, 2.min(positions.iter().filter(|p| **p < young).count() as i64));
    while stockcart::store::events::prune(&mut conn, cutoff, 2).await.unwrap() > 0 {}
    let left: Vec<i64> =
        sqlx::query_scalar("SELECT position FROM outbox_events ORDER BY position").fetch_all(&mut *conn).await.unwrap();
    let expected: Vec<i64> = positions.iter().copied().filter(|p| *p >= young).collect();
    assert_eq!(left, expected, "the old prefix goes, the young event and all after it stay");
    let pruned: i64 = sqlx::query_scalar("SELECT value FROM event_log_marks WHERE name = 'pruned'")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(pruned, young - 1);
}

#[tokio::test]
async fn stream_connections_past_the_limit_are_refused_with_retry_after() {
    let app =
        crate::helpers::spawn_on(&crate::helpers::fresh_database().await, &[("STOCKCART_STREAM_LIMIT", "1")]).await;
    app.stocked("LIM", 100, 1).await;
    let _first = SseClient::connect(&app, "/v1/stock/stream?skus=LIM", false, None).await;
    let second = app.get("/v1/admin/events/stream", Auth::Admin).await;
    assert_eq!(second.status, 503);
    assert!(second.header("retry-after").is_some());
}

#[tokio::test]
async fn a_graceful_stop_ends_open_streams_at_once() {
    let url = crate::helpers::fresh_database().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_stockcart"))
        .arg("serve")
        .env("DATABASE_URL", &url)
        .env("STOCKCART_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("STOCKCART_BIND", format!("127.0.0.1:{port}"))
        .env("STOCKCART_SHUTDOWN_TIMEOUT", "30s")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.get(format!("{base}/readyz")).send().await.map(|r| r.status() != 200).unwrap_or(true) {
        assert!(Instant::now() < deadline, "the server became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut stream =
        client.get(format!("{base}/v1/admin/events/stream")).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(stream.status(), 200);
    stream.chunk().await.unwrap(); // retry: 2000

    let stopping = Instant::now();
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    // The stream ends (the client reconnects elsewhere) instead of holding the stop for the
    // whole 30 s grace period.
    let ended =
        tokio::time::timeout(Duration::from_secs(5), async { while let Ok(Some(_)) = stream.chunk().await {} }).await;
    assert!(ended.is_ok(), "the stream ended on SIGTERM");
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap()).await.unwrap();
    assert!(status.success(), "graceful stop exits 0");
    assert!(stopping.elapsed() < Duration::from_secs(10), "stopped in {:?}", stopping.elapsed());
}

#[tokio::test]
async fn a_public_stream_resumed_on_another_replica_gets_changes_and_threshold_crossings_it_missed() {
    let apps = spawn_replicas(2, &[]).await;
    apps[0].stocked("RES-A", 100, 8).await;
    apps[0].stocked("RES-B", 100, 8).await;
    all_events(&apps[0], "").await; // everything sequenced: the snapshot's id covers it
    let mut first = SseClient::connect(&apps[0], "/v1/stock/stream?skus=RES-A", false, None).await;
    let snapshot = first.next(Duration::from_secs(2)).await.unwrap();
    let seen: i64 = snapshot.id.unwrap().parse().unwrap();
    drop(first);
    // While away: a change of RES-A, a change of another SKU, and a threshold edit that makes
    // RES-A low without any stock change.
    apps[0].adjust("RES-A", -1, "shrinkage").await.assert_status(200);
    apps[0].adjust("RES-B", -1, "shrinkage").await.assert_status(200);
    apps[0]
        .admin(
            "PUT",
            "/v1/admin/products/RES-A",
            Some(json!({ "name": "A", "price": { "amount": 100, "currency": "EUR" }, "low_stock_threshold": 7 })),
        )
        .await
        .assert_status(200);
    let mut again = SseClient::connect(&apps[1], "/v1/stock/stream?skus=RES-A", false, Some(seen)).await;
    let changed = again.next(Duration::from_secs(2)).await.unwrap();
    assert_eq!(changed.data, json!({ "sku": "RES-A", "available": 7, "status": "in_stock", "version": 2 }));
    let crossed = again.next(Duration::from_secs(2)).await.unwrap();
    assert_eq!(crossed.data, json!({ "sku": "RES-A", "available": 7, "status": "low", "version": 2 }));
    assert!(again.next(Duration::from_millis(500)).await.is_none(), "nothing of other SKUs, nothing twice");
}

/// Sequencers racing (several connections numbering at once, besides the app's own hub) while
/// writers commit out of order: every event gets one position, and a reader asking only for
/// "after the last position I saw" sees every event, at its final position, exactly once.
/// That is what the sequencers' turns (row locks on the events, then on the `sequenced` mark)
/// must guarantee: no position below one already visible can appear later, no numbered event is
/// numbered again, and no position is handed out in vain.
#[tokio::test]
async fn racing_sequencers_number_each_event_once_and_a_reader_following_them_misses_none() {
    let app = crate::helpers::spawn_on(
        &crate::helpers::fresh_database().await,
        &[("STOCKCART_ROLLUP_INTERVAL", "0"), ("STOCKCART_EVENT_RETENTION", "366d")],
    )
    .await;
    // Four writers, four sequencers and a reader at once: more than the test pool holds.
    let db = sqlx::postgres::PgPoolOptions::new().max_connections(10).connect(&app.db_url).await.unwrap();
    let mut conn = db.acquire().await.unwrap();
    stockcart::store::events::sequence_all(&mut conn).await.unwrap();
    let start: i64 =
        sqlx::query_scalar("SELECT coalesce(max(position), 0) FROM outbox_events").fetch_one(&mut *conn).await.unwrap();
    drop(conn);

    let (writers_n, rounds) = (4, 60);
    let writers: Vec<_> = (0..writers_n)
        .map(|w| {
            let db = db.clone();
            tokio::spawn(async move {
                for i in 0..rounds {
                    // One to three events a transaction, held open a moment now and then so
                    // that later inserts commit first.
                    let mut tx = db.begin().await.unwrap();
                    for k in 0..(1 + i % 3) {
                        sqlx::query("INSERT INTO outbox_events (topic, payload) VALUES ('test.race', $1)")
                            .bind(json!({ "writer": w, "round": i, "k": k }))
                            .execute(&mut *tx)
                            .await
                            .unwrap();
                    }
                    if i % 7 == 0 {
                        tokio::time::sleep(Duration::from_millis(3)).await;
                    }
                    tx.commit().await.unwrap();
                }
            })
        })
        .collect();
    let written: i64 = (0..rounds).map(|i| 1 + i % 3).sum::<i64>() * writers_n;

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sequencers: Vec<_> = (0..4)
        .map(|_| {
            let (db, stop) = (db.clone(), stop.clone());
            tokio::spawn(async move {
                let mut conn = db.acquire().await.unwrap();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    // A small limit, so that the sequencers overlap often.
                    stockcart::store::events::sequence(&mut conn, 5, "").await.unwrap();
                }
            })
        })
        .collect();

    // The reader follows the log as the hub does: only ever "after the last position seen".
    let mut seen: Vec<i64> = Vec::new();
    let mut last = start;
    let deadline = Instant::now() + Duration::from_secs(60);
    while (seen.len() as i64) < written {
        assert!(Instant::now() < deadline, "the reader saw {} of {written} events", seen.len());
        let page: Vec<i64> = sqlx::query_scalar(
            "SELECT position FROM outbox_events WHERE position > $1 AND topic = 'test.race' ORDER BY position",
        )
        .bind(last)
        .fetch_all(&db)
        .await
        .unwrap();
        if let Some(&end) = page.last() {
            last = end;
        }
        seen.extend(page);
    }
    for w in writers {
        w.await.unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for s in sequencers {
        s.await.unwrap();
    }

    let numbered: Vec<i64> =
        sqlx::query_scalar("SELECT position FROM outbox_events WHERE topic = 'test.race' ORDER BY position")
            .fetch_all(&db)
            .await
            .unwrap();
    assert_eq!(numbered.len() as i64, written, "every event was numbered");
    assert_eq!(seen, numbered, "the reader saw each event once, at its final position, in order");
    let mark: i64 =
        sqlx::query_scalar("SELECT value FROM event_log_marks WHERE name = 'sequenced'").fetch_one(&db).await.unwrap();
    assert_eq!(mark, *numbered.last().unwrap(), "the mark is the last position handed out");
    assert_eq!(numbered, (start + 1..=mark).collect::<Vec<i64>>(), "no position was handed out in vain");
}
