//! Issue 17: no input reaches the database unparsed, every client number is range-checked
//! without overflow, JSON objects name each member once, and every request is bounded in time.

use serde_json::json;

use crate::helpers::{spawn_app, Auth};

/// A NUL byte is the one character PostgreSQL refuses in text: wherever a client can place
/// one, the answer is the route's own 4xx, never a 500 from the database.
#[tokio::test]
async fn a_nul_byte_anywhere_is_refused_before_the_database() {
    let app = spawn_app().await;
    app.stocked("A", 100, 5).await;
    let token = app.session().await;

    app.get("/v1/products/A%00", Auth::None).await.assert_problem(404, "unknown_sku");
    app.get("/v1/products/%00", Auth::None).await.assert_problem(404, "unknown_sku");
    app.get("/v1/admin/inventory/A%00", Auth::Admin).await.assert_problem(404, "unknown_sku");
    app.get("/v1/admin/inventory/A%00/movements", Auth::Admin).await.assert_problem(404, "unknown_sku");
    app.admin("POST", "/v1/admin/inventory/A%00/adjustments", Some(json!({ "delta": 1, "reason": "restock" })))
        .await
        .assert_problem(404, "unknown_sku");
    app.put_product("A%00", "x", 1).await.assert_problem(422, "invalid_sku");
    app.request("PUT", "/v1/cart/items/A%00", Auth::Bearer(&token), Some(&json!({ "quantity": 1 })), &[])
        .await
        .assert_problem(404, "unknown_sku");
    app.request("DELETE", "/v1/cart/items/A%00", Auth::Bearer(&token), None, &[])
        .await
        .assert_problem(404, "unknown_sku");
    app.get("/v1/orders/A%00", Auth::Bearer(&token)).await.assert_problem(404, "unknown_order");

    app.get("/v1/products?after=A%00", Auth::None).await.assert_problem(400, "invalid_query");
    app.get("/v1/admin/events?sku=A%00", Auth::Admin).await.assert_problem(400, "invalid_query");
    app.get("/v1/admin/orders?status=paid%00", Auth::Admin).await.assert_problem(400, "invalid_query");
    app.get("/v1/stock/stream?skus=A%00", Auth::None).await.assert_problem(400, "invalid_query");

    app.add(&token, "A\0", 1).await.assert_problem(422, "invalid_sku");
    app.admin(
        "PUT",
        "/v1/admin/products/B",
        Some(json!({ "name": "x\0", "price": { "amount": 1, "currency": "EUR" } })),
    )
    .await
    .assert_problem(422, "invalid_name");
    app.admin(
        "POST",
        "/v1/admin/inventory/A/adjustments",
        Some(json!({ "delta": 1, "reason": "restock", "reference": "\0" })),
    )
    .await
    .assert_problem(422, "invalid_reference");
    app.admin("POST", "/v1/admin/sessions/attach", Some(json!({ "token": token, "customer_id": "c\0" })))
        .await
        .assert_problem(422, "invalid_customer_id");
    app.admin("POST", "/v1/admin/sessions/attach", Some(json!({ "token": "sc_\0", "customer_id": "c" })))
        .await
        .assert_problem(404, "unknown_session");
    app.get("/v1/products/A", Auth::None).await.assert_status(200);
}

#[tokio::test]
async fn an_order_cursor_outside_what_postgresql_holds_is_an_invalid_query() {
    let app = spawn_app().await;
    let token = app.session().await;
    let zero = "00000000-0000-0000-0000-000000000000";
    for micros in ["-300000000000000000", "300000000000000000", "9223372036854775807", "-9223372036854775808"] {
        let after = format!("{micros}_{zero}");
        app.get(&format!("/v1/orders?after={after}"), Auth::Bearer(&token)).await.assert_problem(400, "invalid_query");
        app.get(&format!("/v1/admin/orders?after={after}"), Auth::Admin).await.assert_problem(400, "invalid_query");
    }
    let ok = app.get(&format!("/v1/admin/orders?after=1700000000000000_{zero}"), Auth::Admin).await;
    ok.assert_status(200);
}

#[tokio::test]
async fn deltas_at_the_ends_of_i64_are_invalid_deltas_alone_and_in_a_batch() {
    let app = spawn_app().await;
    app.stocked("A", 100, 5).await;
    for delta in [i64::MIN, i64::MIN + 1, i64::MAX, -1_000_000_001, 1_000_000_001] {
        app.adjust("A", delta, "correction").await.assert_problem(422, "invalid_delta");
        let batch = app
            .admin(
                "POST",
                "/v1/admin/inventory/batch",
                Some(json!({ "adjustments": [
                    { "sku": "A", "delta": 1, "reason": "restock" },
                    { "sku": "A", "delta": delta, "reason": "correction" },
                ] })),
            )
            .await;
        batch.assert_problem(422, "invalid_batch");
        assert_eq!(
            batch.body["errors"],
            json!([{ "index": 1, "sku": "A", "code": "invalid_delta", "detail": batch.body["errors"][0]["detail"] }])
        );
    }
    let level = app.level("A").await;
    assert_eq!((level["on_hand"].as_i64(), level["version"].as_i64()), (Some(5), Some(1)));
    app.adjust("A", -5, "shrinkage").await.assert_status(200);
}

/// Two parsers of one document (a gateway that checks it, this service that applies it) must
/// not read different values from it, so a member named twice is malformed.
#[tokio::test]
async fn a_stale_cart_change_racing_a_revocation_is_never_a_server_error() {
    let app = spawn_app().await;
    app.stocked("RACE", 100, 1000).await;
    for _ in 0..30 {
        let token = app.session().await;
        app.add(&token, "RACE", 1).await.assert_status(200);
        // The change carries a stale If-Match, so it answers from a read after its lock is
        // gone, just as the revocation deletes the guest cart.
        let line = json!({ "sku": "RACE", "quantity": 1 });
        let stale = app.request("POST", "/v1/cart/items", Auth::Bearer(&token), Some(&line), &[("If-Match", "\"0\"")]);
        let revoke = app.request("DELETE", "/v1/session", Auth::Bearer(&token), None, &[]);
        let (stale, revoke) = tokio::join!(stale, revoke);
        assert!(matches!(stale.status.as_u16(), 412 | 401), "{} {}", stale.status, stale.text);
        revoke.assert_status(204);
    }
}

#[tokio::test]
async fn a_member_named_twice_is_malformed_json() {
    let app = spawn_app().await;
    app.stocked("A", 100, 5).await;
    let token = app.session().await;
    let send = |method: &'static str, path: &'static str, auth: &'static str, body: &'static str| {
        let client = app.client.clone();
        let url = format!("{}{path}", app.address);
        let auth = if auth == "admin" { crate::helpers::ADMIN_TOKEN.to_owned() } else { token.clone() };
        async move {
            let r = client
                .request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), url)
                .bearer_auth(auth)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            crate::helpers::Reply::from(r).await
        }
    };
    send("POST", "/v1/admin/inventory/A/adjustments", "admin", r#"{"delta": 1, "reason": "restock", "delta": -1}"#)
        .await
        .assert_problem(400, "malformed_json");
    send(
        "POST",
        "/v1/admin/inventory/batch",
        "admin",
        r#"{"adjustments": [{"sku": "A", "delta": 1, "reason": "restock", "sku": "B"}]}"#,
    )
    .await
    .assert_problem(400, "malformed_json");
    send(
        "PUT",
        "/v1/admin/products/A",
        "admin",
        r#"{"name": "x", "price": {"amount": 1, "amount": 2, "currency": "EUR"}}"#,
    )
    .await
    .assert_problem(400, "malformed_json");
    send("POST", "/v1/cart/items", "session", r#"{"sku": "A", "quantity": 1, "quantity": 999}"#)
        .await
        .assert_problem(400, "malformed_json");
    let level = app.level("A").await;
    assert_eq!(level["version"].as_i64(), Some(1));
    // The same members once each are fine.
    send("POST", "/v1/cart/items", "session", r#"{"sku": "A", "quantity": 1, "extra": {"sku": "B"}}"#)
        .await
        .assert_status(200);
}

// ---------------------------------------------------------------------------------------------
// Failure behaviour: every request is bounded in time, whatever the database does.

/// A TCP proxy in front of the test database that can freeze: frozen, it still accepts
/// connections and reads what it is sent, but forwards nothing either way, which is how a
/// PostgreSQL stopped with SIGSTOP looks from the service (the kernel keeps the sockets open).
struct Freezer {
    port: u16,
    frozen: tokio::sync::watch::Sender<bool>,
}

impl Freezer {
    async fn start(upstream_port: u16) -> Freezer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (frozen, watch) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let watch = watch.clone();
                tokio::spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream_port)).await else { return };
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::spawn(pipe(cr, sw, watch.clone()));
                    tokio::spawn(pipe(sr, cw, watch));
                });
            }
        });
        Freezer { port, frozen }
    }

    fn freeze(&self, frozen: bool) {
        self.frozen.send_replace(frozen);
    }
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut frozen: tokio::sync::watch::Receiver<bool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if frozen.wait_for(|f| !*f).await.is_err() {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// The test database's URL with its port replaced.
fn via_port(db_url: &str, port: u16) -> String {
    use std::str::FromStr;
    let upstream = sqlx::postgres::PgConnectOptions::from_str(db_url).unwrap().get_port();
    let url = db_url.replacen(&format!(":{upstream}/"), &format!(":{port}/"), 1);
    assert_ne!(url, db_url, "the test database URL names its port");
    url
}

fn upstream_port(db_url: &str) -> u16 {
    use std::str::FromStr;
    sqlx::postgres::PgConnectOptions::from_str(db_url).unwrap().get_port()
}

/// An app whose pool reaches the database through `port` (its `db` pool goes direct).
async fn spawn_via(db_url: &str, port: u16, overrides: &[(&str, &str)]) -> crate::helpers::TestApp {
    let settings = crate::helpers::test_settings(overrides);
    let pool = stockcart::startup::connect_lazy(&settings, &via_port(db_url, port)).unwrap();
    crate::helpers::spawn_with_pool(db_url, settings, pool).await
}

/// Asserts a 503 `database_unavailable` with `Retry-After`, and returns how long it took.
async fn timed_unavailable(
    app: &crate::helpers::TestApp,
    method: &str,
    path: &str,
    auth: Auth<'_>,
    body: Option<serde_json::Value>,
) -> std::time::Duration {
    let started = std::time::Instant::now();
    let r = app.request(method, path, auth, body.as_ref(), &[]).await;
    let took = started.elapsed();
    r.assert_problem(503, "database_unavailable");
    assert!(r.header("retry-after").is_some_and(|v| v.parse::<u64>().is_ok()), "{method} {path}: {:?}", r.headers);
    took
}

#[tokio::test]
async fn a_frozen_database_fails_every_request_within_the_request_timeout_and_recovers() {
    let db_url = crate::helpers::fresh_database().await;
    let freezer = Freezer::start(upstream_port(&db_url)).await;
    let app = spawn_via(&db_url, freezer.port, &[("STOCKCART_REQUEST_TIMEOUT", "2s")]).await;
    app.stocked("A", 100, 5).await;
    let token = app.session().await;
    app.add(&token, "A", 1).await.assert_status(200);
    app.get("/readyz", Auth::None).await.assert_status(200);

    freezer.freeze(true);
    let limit = std::time::Duration::from_millis(2000 + 1500);
    let product = json!({ "name": "B", "price": { "amount": 1, "currency": "EUR" } });
    let (a, b, c, d, e, f, g) = tokio::join!(
        timed_unavailable(&app, "GET", "/v1/products/A", Auth::None, None),
        timed_unavailable(&app, "GET", "/v1/products", Auth::None, None),
        timed_unavailable(&app, "POST", "/v1/sessions", Auth::None, None),
        timed_unavailable(&app, "GET", "/v1/cart", Auth::Bearer(&token), None),
        timed_unavailable(
            &app,
            "POST",
            "/v1/cart/items",
            Auth::Bearer(&token),
            Some(json!({ "sku": "A", "quantity": 1 }))
        ),
        timed_unavailable(&app, "PUT", "/v1/admin/products/B", Auth::Admin, Some(product)),
        timed_unavailable(&app, "GET", "/readyz", Auth::None, None),
    );
    for took in [a, b, c, d, e, f] {
        assert!(took < limit, "a request took {took:?} on a frozen database");
    }
    assert!(g < std::time::Duration::from_millis(2000), "/readyz took {g:?}");
    // Still frozen: the next ones are as quick, whatever the first left behind in the pool,
    // checkouts included, however many wait in the queue (the queue's own catch-up is for
    // checkout.rs; the client hears in time either way and retries with its key).
    let checkouts = futures_util::future::join_all((0..5).map(|i| {
        let (app, token) = (&app, &token);
        async move {
            let started = std::time::Instant::now();
            let key = format!("frozen-{i}");
            let r = app.request("POST", "/v1/checkout", Auth::Bearer(token), None, &[("Idempotency-Key", &key)]).await;
            r.assert_problem(503, "database_unavailable");
            started.elapsed()
        }
    }))
    .await;
    assert!(checkouts.iter().all(|took| *took < limit), "{checkouts:?}");
    assert!(timed_unavailable(&app, "GET", "/v1/products/A", Auth::None, None).await < limit);
    app.get("/healthz", Auth::None).await.assert_status(200);

    freezer.freeze(false);
    let recovered = std::time::Instant::now();
    loop {
        let r = app.get("/v1/products/A", Auth::None).await;
        if r.status == 200 {
            break;
        }
        assert!(recovered.elapsed() < std::time::Duration::from_secs(15), "no recovery: {}", r.text);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    app.get("/readyz", Auth::None).await.assert_status(200);
    app.add(&token, "A", 1).await.assert_status(200);
    app.assert_invariants().await;
}

#[tokio::test]
async fn a_database_that_accepts_connections_and_never_answers_gets_503s_in_time() {
    // Bound and never accepted from: the kernel completes the handshake, nothing answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let db_url = crate::helpers::fresh_database().await;
    let app = spawn_via(&db_url, silent.local_addr().unwrap().port(), &[("STOCKCART_REQUEST_TIMEOUT", "1500ms")]).await;
    let limit = std::time::Duration::from_millis(1500 + 1500);
    let (a, b, c) = tokio::join!(
        timed_unavailable(&app, "GET", "/v1/products/A", Auth::None, None),
        timed_unavailable(&app, "POST", "/v1/sessions", Auth::None, None),
        timed_unavailable(&app, "GET", "/readyz", Auth::None, None),
    );
    assert!(a < limit && b < limit, "{a:?} {b:?}");
    assert!(c < std::time::Duration::from_secs(2), "/readyz took {c:?}");
    app.get("/healthz", Auth::None).await.assert_status(200);
    // Telling a wrong admin token, or a session token, from the admin token needs no database.
    let started = std::time::Instant::now();
    app.get("/v1/admin/inventory/A", Auth::Bearer("wrong-admin-token")).await.assert_problem(401, "unauthorized");
    let session_like = format!("sc_{}", "ab".repeat(32));
    app.get("/v1/admin/inventory/A", Auth::Bearer(&session_like)).await.assert_problem(403, "forbidden");
    assert!(started.elapsed() < std::time::Duration::from_millis(1000), "{:?}", started.elapsed());
    drop(silent);
}

/// Raw HTTP/1.1 over TCP, for what reqwest will not send: a body that trickles in.
async fn raw_exchange(
    address: &str,
    head: &str,
    trickle: &[u8],
    every: std::time::Duration,
) -> (String, std::time::Duration) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let started = std::time::Instant::now();
    stream.write_all(head.as_bytes()).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let trickle = trickle.to_vec();
    let writer = tokio::spawn(async move {
        for byte in trickle {
            tokio::time::sleep(every).await;
            if write.write_all(&[byte]).await.is_err() {
                return;
            }
        }
    });
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(20), read.read_to_end(&mut answer)).await;
    writer.abort();
    (String::from_utf8_lossy(&answer).into_owned(), started.elapsed())
}

#[tokio::test]
async fn a_body_that_trickles_in_is_cut_off_with_408() {
    let app =
        crate::helpers::spawn_on(&crate::helpers::fresh_database().await, &[("STOCKCART_REQUEST_TIMEOUT", "1s")]).await;
    let body = br#"{"name": "slow", "price": {"amount": 1, "currency": "EUR"}}"#;
    let head = format!(
        "PUT /v1/admin/products/SLOW HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        crate::helpers::ADMIN_TOKEN,
        body.len()
    );
    let (answer, took) = raw_exchange(&app.address, &head, body, std::time::Duration::from_millis(300)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout") && answer.contains("application/problem+json"), "{answer}");
    assert!(took < std::time::Duration::from_secs(4), "{took:?}");
    app.get("/v1/products/SLOW", Auth::None).await.assert_problem(404, "unknown_sku");

    // A head that never ends is dropped too (actix answers it, or closes, by itself).
    let (answer, took) =
        raw_exchange(&app.address, "GET /healthz HTTP/1.1\r\nHost: x\r\n", b"", std::time::Duration::ZERO).await;
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(took < std::time::Duration::from_secs(4), "{took:?}");
}

// ---------------------------------------------------------------------------------------------
// Session creation is limited per client address.

#[tokio::test]
async fn session_creation_is_limited_per_client_address() {
    let db = crate::helpers::fresh_database().await;
    let app = crate::helpers::spawn_on(&db, &[("STOCKCART_SESSION_RATE_LIMIT", "3/min")]).await;
    let create = |xff: Option<&'static str>| {
        let headers: Vec<(&str, &str)> = xff.map(|v| ("X-Forwarded-For", v)).into_iter().collect();
        let app = &app;
        async move { app.request("POST", "/v1/sessions", Auth::None, None, &headers).await }
    };
    for _ in 0..3 {
        create(None).await.assert_status(201);
    }
    let refused = create(None).await;
    refused.assert_problem(429, "rate_limited");
    let wait: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=20).contains(&wait), "{wait}");
    // Untrusted peers cannot choose their address.
    create(Some("203.0.113.9")).await.assert_problem(429, "rate_limited");

    // Behind a trusted proxy, each forwarded client has a quota of its own.
    let proxied = crate::helpers::spawn_on(
        &db,
        &[("STOCKCART_SESSION_RATE_LIMIT", "2/min"), ("STOCKCART_TRUSTED_PROXIES", "127.0.0.1, ::1")],
    )
    .await;
    for client in ["198.51.100.1", "198.51.100.2"] {
        for _ in 0..2 {
            proxied
                .request("POST", "/v1/sessions", Auth::None, None, &[("X-Forwarded-For", client)])
                .await
                .assert_status(201);
        }
        proxied
            .request("POST", "/v1/sessions", Auth::None, None, &[("X-Forwarded-For", client)])
            .await
            .assert_problem(429, "rate_limited");
    }
    // A client cannot escape by prepending addresses: the proxy's own entry is the rightmost.
    proxied
        .request("POST", "/v1/sessions", Auth::None, None, &[("X-Forwarded-For", "1.1.1.1, 198.51.100.1")])
        .await
        .assert_problem(429, "rate_limited");

    let unlimited = crate::helpers::spawn_on(&db, &[("STOCKCART_SESSION_RATE_LIMIT", "0")]).await;
    for _ in 0..20 {
        unlimited.session().await;
    }
}

// ---------------------------------------------------------------------------------------------
// The HTTP edge.

#[tokio::test]
async fn every_answer_says_nosniff_and_private_answers_are_not_stored() {
    let app = spawn_app().await;
    app.stocked("A", 100, 5).await;
    let token = app.session().await;
    for (method, path, auth) in [
        ("GET", "/healthz", Auth::None),
        ("GET", "/v1/products/A", Auth::None),
        ("GET", "/v1/products/NOPE", Auth::None),
        ("GET", "/nowhere", Auth::None),
        ("PATCH", "/v1/cart", Auth::Bearer(&token)),
        ("GET", "/v1/cart", Auth::Bearer(&token)),
        ("GET", "/v1/session", Auth::Bearer(&token)),
        ("GET", "/docs", Auth::None),
        ("GET", "/openapi.json", Auth::None),
    ] {
        let r = app.request(method, path, auth, None, &[]).await;
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"), "{method} {path}");
        assert!(r.header("content-security-policy").is_some(), "{method} {path}");
        assert!(r.header("strict-transport-security").is_none(), "{method} {path}");
    }
    let created = app.request("POST", "/v1/sessions", Auth::None, None, &[]).await;
    assert_eq!(created.header("cache-control"), Some("no-store"));
    for path in ["/v1/session", "/v1/cart", "/v1/orders"] {
        assert_eq!(app.get(path, Auth::Bearer(&token)).await.header("cache-control"), Some("no-store"), "{path}");
    }
    let added = app.add(&token, "A", 1).await;
    assert_eq!(added.header("cache-control"), Some("no-store"));
    let docs = app.get("/docs", Auth::None).await;
    let csp = docs.header("content-security-policy").unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(docs.header("content-type").unwrap().starts_with("text/html"));

    let tls = crate::helpers::spawn_on(&app.db_url, &[("STOCKCART_HSTS", "true")]).await;
    let r = tls.get("/healthz", Auth::None).await;
    assert!(r.header("strict-transport-security").is_some_and(|v| v.starts_with("max-age=")));
}

#[tokio::test]
async fn cors_answers_preflights_of_allowed_origins_only() {
    let app = crate::helpers::spawn_on(
        &crate::helpers::fresh_database().await,
        &[("STOCKCART_CORS_ORIGINS", "https://shop.example, http://localhost:3000")],
    )
    .await;
    let preflight = |origin: &'static str| {
        let app = &app;
        async move {
            let headers = [
                ("Origin", origin),
                ("Access-Control-Request-Method", "POST"),
                ("Access-Control-Request-Headers", "authorization, content-type, if-match"),
            ];
            app.request("OPTIONS", "/v1/cart/items", Auth::None, None, &headers).await
        }
    };
    let ok = preflight("https://shop.example").await;
    assert_eq!(ok.status.as_u16(), 204, "{}", ok.text);
    assert_eq!(ok.header("access-control-allow-origin"), Some("https://shop.example"));
    assert!(ok.header("access-control-allow-methods").unwrap().contains("POST"));
    let allowed_headers = ok.header("access-control-allow-headers").unwrap().to_ascii_lowercase();
    for h in ["authorization", "content-type", "if-match", "idempotency-key"] {
        assert!(allowed_headers.contains(h), "{allowed_headers}");
    }
    let refused = preflight("https://evil.example").await;
    assert!(refused.header("access-control-allow-origin").is_none());
    assert_ne!(refused.status.as_u16() / 100, 2);

    let get = app.request("GET", "/v1/products", Auth::None, None, &[("Origin", "http://localhost:3000")]).await;
    get.assert_status(200);
    assert_eq!(get.header("access-control-allow-origin"), Some("http://localhost:3000"));
    assert!(get.header("access-control-expose-headers").unwrap().contains("ETag"));
    assert!(get.headers.get_all("vary").iter().any(|v| v.to_str().unwrap().contains("Origin")));
    let other = app.request("GET", "/v1/products", Auth::None, None, &[("Origin", "https://evil.example")]).await;
    assert!(other.header("access-control-allow-origin").is_none());

    // Off by default.
    let plain = spawn_app().await;
    let r = plain.request("GET", "/v1/products", Auth::None, None, &[("Origin", "https://shop.example")]).await;
    assert!(r.header("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn metrics_can_require_a_bearer_token() {
    let db = crate::helpers::fresh_database().await;
    let open = crate::helpers::spawn_on(&db, &[]).await;
    open.get("/metrics", Auth::None).await.assert_status(200);
    let closed = crate::helpers::spawn_on(&db, &[("STOCKCART_METRICS_TOKEN", "metrics-secret-123")]).await;
    let r = closed.get("/metrics", Auth::None).await;
    r.assert_problem(401, "unauthorized");
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    closed.get("/metrics", Auth::Bearer("metrics-secret-12")).await.assert_problem(401, "unauthorized");
    closed.get("/metrics", Auth::Admin).await.assert_problem(401, "unauthorized");
    closed.get("/metrics", Auth::Bearer("metrics-secret-123")).await.assert_status(200);
}

/// Every documented resource answers an undocumented method with 405 and `Allow` naming
/// exactly its documented methods.
#[tokio::test]
async fn a_405_names_the_allowed_methods() {
    let app = spawn_app().await;
    let mut by_path: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
    for (method, path) in stockcart::openapi::endpoints() {
        by_path.entry(path).or_default().push(method.to_ascii_uppercase());
    }
    for (path, methods) in by_path {
        let concrete = path.replace("{sku}", "A").replace("{id}", "00000000-0000-0000-0000-000000000000");
        let other =
            ["PATCH", "PUT", "DELETE", "POST", "GET"].into_iter().find(|m| !methods.iter().any(|d| d == m)).unwrap();
        let r = app.request(other, &concrete, Auth::Admin, None, &[]).await;
        r.assert_problem(405, "method_not_allowed");
        let mut allow: Vec<String> =
            r.header("allow").unwrap_or_default().split(',').map(|m| m.trim().to_owned()).collect();
        let mut expected = methods.clone();
        allow.sort();
        expected.sort();
        assert_eq!(allow, expected, "{other} {path}");
    }
}

#[tokio::test]
async fn the_openapi_document_matches_what_the_server_answers() {
    let app = spawn_app().await;
    let doc = app.get("/openapi.json", Auth::None).await.body;
    let paths = &doc["paths"];
    assert!(paths["/v1/session"]["delete"]["responses"]["204"].get("content").is_none());
    assert!(paths["/docs"]["get"]["responses"]["200"]["content"]["text/html"].is_object());
    assert!(paths["/v1/sessions"]["post"]["responses"]["429"]["description"]
        .as_str()
        .unwrap()
        .contains("rate_limited"));
    for (path, item) in paths.as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if op.get("requestBody").is_some() {
                let responses = &op["responses"];
                assert!(
                    responses["400"]["description"].as_str().unwrap().contains("malformed_json"),
                    "{method} {path}"
                );
                assert!(
                    responses["415"]["description"].as_str().unwrap().contains("unsupported_media_type"),
                    "{method} {path}"
                );
            }
        }
    }
    let schemas = &doc["components"]["schemas"];
    assert_eq!(schemas["AddItem"]["properties"]["sku"]["minLength"], 1);
    let delta = &schemas["Adjustment"]["properties"]["delta"];
    assert_eq!(delta["anyOf"][0]["maximum"], -1);
    assert_eq!(delta["anyOf"][1]["minimum"], 1);
    assert_eq!(schemas["Price"]["properties"]["currency"]["enum"], json!(["EUR"]));
}
