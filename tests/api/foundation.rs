//! The service foundation: operations endpoints, the error model for what actix answers by
//! itself, migrations (refusal, status, concurrency, divergence), the data-only role, the
//! embedded default, and readiness when the database goes away.

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use serde_json::{json, Value};
use sqlx::{postgres::PgPoolOptions, PgPool};

use crate::helpers::*;

const BIN: &str = env!("CARGO_BIN_EXE_stockcart");

#[tokio::test]
async fn health_readiness_and_request_ids() {
    let app = spawn_app().await;
    let r = app.get("/healthz", Auth::None).await;
    r.assert_status(200);
    assert!(r.header("x-request-id").is_some_and(|id| !id.is_empty()));
    app.get("/readyz", Auth::None).await.assert_status(200);

    let echoed = app.request("GET", "/healthz", Auth::None, None, &[("X-Request-Id", "trace-me-42")]).await;
    assert_eq!(echoed.header("x-request-id"), Some("trace-me-42"));
    let missing = app.get("/no/such/route", Auth::None).await;
    assert!(missing.header("x-request-id").is_some());
}

#[tokio::test]
async fn actix_level_errors_are_problem_documents() {
    let app = spawn_app().await;
    app.get("/no/such/route", Auth::None).await.assert_problem(404, "not_found");
    app.request("DELETE", "/healthz", Auth::None, None, &[]).await.assert_problem(405, "method_not_allowed");
    app.request("PATCH", "/v1/cart", Auth::None, None, &[]).await.assert_problem(405, "method_not_allowed");

    let url = format!("{}/v1/admin/products/SKU-1", app.address);
    let send = |body: Vec<u8>, content_type: Option<&'static str>| {
        let mut req = app.client.put(&url).bearer_auth(ADMIN_TOKEN).body(body);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        async move { Reply::from(req.send().await.unwrap()).await }
    };
    send(b"{\"name\": ".to_vec(), Some("application/json")).await.assert_problem(400, "malformed_json");
    send(b"".to_vec(), Some("application/json")).await.assert_problem(400, "malformed_json");
    send(b"{\"name\":\"x\"}".to_vec(), Some("text/plain")).await.assert_problem(415, "unsupported_media_type");
    send(b"{\"name\":\"x\"}".to_vec(), None).await.assert_problem(415, "unsupported_media_type");
    send(b"[1, 2]".to_vec(), Some("application/json")).await.assert_problem(422, "invalid_body");
    // Last, and on a connection of its own: the server may close it without reading the body.
    let big = format!("{{\"name\": \"{}\"}}", "x".repeat(70 * 1024));
    let own = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let too_large =
        own.put(&url).bearer_auth(ADMIN_TOKEN).header("content-type", "application/json").body(big).send().await;
    Reply::from(too_large.unwrap()).await.assert_problem(413, "payload_too_large");
    // Integers must be integers.
    for amount in ["1.0", "1e2", "19.99"] {
        let body = format!("{{\"name\": \"n\", \"price\": {{\"amount\": {amount}, \"currency\": \"EUR\"}}}}");
        send(body.into_bytes(), Some("application/json")).await.assert_problem(422, "invalid_number");
    }
    // Nothing above created the product.
    app.get("/v1/products/SKU-1", Auth::None).await.assert_problem(404, "unknown_sku");
}

#[tokio::test]
async fn an_oversized_request_head_is_never_a_server_error() {
    let app = spawn_app().await;
    // A client of its own: the server may close these connections, and a closed connection
    // left in the app client's pool would fail the next, unrelated request.
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let huge = "a".repeat(64 * 1024);
    let result = client.get(format!("{}/healthz", app.address)).header("x-huge", huge).send().await;
    if let Ok(r) = result {
        let r = Reply::from(r).await;
        r.assert_problem(431, "request_header_fields_too_large");
    }
    // Far larger than actix buffers: refused or the connection closed, never a 5xx.
    let enormous = "a".repeat(512 * 1024);
    if let Ok(r) = client.get(format!("{}/healthz", app.address)).header("x-huge", enormous).send().await {
        assert!(r.status().is_client_error(), "status {}", r.status());
    }
    // And the server still serves.
    app.get("/healthz", Auth::None).await.assert_status(200);
}

#[tokio::test]
async fn openapi_documents_every_route_and_docs_work_offline() {
    let app = spawn_app().await;
    let doc = app.get("/openapi.json", Auth::None).await;
    doc.assert_status(200);
    assert!(doc.body["openapi"].as_str().unwrap().starts_with("3."));
    for (method, path) in stockcart::openapi::endpoints() {
        assert!(doc.body["paths"][path][method].is_object(), "{method} {path} missing from the document");
        let concrete = path.replace("{sku}", "SKU-1").replace("{id}", "00000000-0000-0000-0000-000000000000");
        let r = app.request(&method.to_uppercase(), &concrete, Auth::None, None, &[]).await;
        assert!(
            r.code() != "not_found" && r.code() != "method_not_allowed",
            "{method} {path} is documented but not routed: {}",
            r.text
        );
        assert!(r.status.as_u16() < 500 || path == "/readyz", "{method} {path}: {}", r.text);
    }
    // The viewer and the plain table both name no other host.
    for path in ["/docs", "/docs?plain"] {
        let docs = app.get(path, Auth::None).await;
        docs.assert_status(200);
        assert!(!docs.text.contains("http://") && !docs.text.contains("https://"), "{path}");
    }
    assert!(app.get("/docs?plain", Auth::None).await.text.contains("<td><code>/v1/checkout</code></td>"));
}

/// `/docs` is Swagger UI from files embedded in the binary: each is served with its type, an
/// ETag that a revalidation answers with 304, and the viewer's own policy. The page points
/// readers without JavaScript to the plain table.
#[tokio::test]
async fn the_api_viewer_is_served_from_the_binary_with_etags_and_its_own_policy() {
    let app = spawn_app().await;
    let page = app.get("/docs", Auth::None).await;
    page.assert_status(200);
    assert!(page.text.contains("<noscript>") && page.text.contains("href=\"/docs?plain\""), "{}", page.text);
    let csp = page.header("content-security-policy").unwrap().to_owned();
    for directive in ["default-src 'none'", "script-src 'self';", "connect-src 'self'", "frame-ancestors 'none'"] {
        assert!(csp.contains(directive), "{directive} in {csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    for (file, content_type, needle) in [
        ("/docs/init.js", "text/javascript", "SwaggerUIBundle({"),
        ("/docs/swagger-ui-bundle.js", "text/javascript", "SwaggerUIBundle"),
        ("/docs/swagger-ui.css", "text/css", ".swagger-ui"),
    ] {
        assert!(page.text.contains(&format!("\"{file}\"")), "the page loads {file}");
        let r = app.get(file, Auth::None).await;
        r.assert_status(200);
        assert!(r.header("content-type").unwrap().starts_with(content_type), "{file}");
        assert!(r.text.contains(needle), "{file}");
        assert_eq!(r.header("cache-control"), Some("no-cache"), "{file}");
        assert_eq!(r.header("content-security-policy"), Some(csp.as_str()), "{file}");
        let etag = r.header("etag").unwrap().to_owned();
        let again = app.request("GET", file, Auth::None, None, &[("If-None-Match", &etag)]).await;
        assert_eq!(again.status.as_u16(), 304, "{file}");
        assert!(again.text.is_empty());
    }
    let plain = app.get("/docs?plain", Auth::None).await;
    assert!(plain.text.contains("<table>"));
    let missing = app.get("/docs/nothing.js", Auth::None).await;
    missing.assert_status(404);
    assert_eq!(missing.code(), "not_found");
}

#[tokio::test]
async fn metrics_expose_requests_pool_and_cache() {
    let app = spawn_app().await;
    app.get("/healthz", Auth::None).await;
    let token = app.session().await;
    app.cart(&token).await.assert_status(200);
    app.cart(&token).await.assert_status(200);
    let m = app.get("/metrics", Auth::None).await;
    m.assert_status(200);
    for needle in [
        "stockcart_http_requests_total{route=\"/healthz\",method=\"GET\",status=\"200\"} 1",
        "stockcart_http_request_duration_seconds_bucket{route=\"/v1/cart\"",
        "stockcart_db_pool_connections{state=\"idle\"}",
        "stockcart_cart_cache_hits_total 1",
        "stockcart_cart_cache_misses_total 1",
        "stockcart_cart_cache_hit_ratio 0.5",
    ] {
        assert!(m.text.contains(needle), "missing {needle:?} in\n{}", m.text);
    }
}

fn stockcart(args: &[&str], database_url: &str) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .env("DATABASE_URL", database_url)
        .env("STOCKCART_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("STOCKCART_BIND", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("run the stockcart binary")
}

#[tokio::test]
async fn serve_refuses_a_database_with_pending_migrations() {
    let url = empty_database().await;
    let out = stockcart(&["serve"], &url);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Pending: V1__init"), "{stderr}");

    let status = stockcart(&["migrate", "--status"], &url);
    let stdout = String::from_utf8_lossy(&status.stdout);
    assert!(stdout.contains("pending") && stdout.contains("V1__init"), "{stdout}");
    assert_eq!(status.status.code(), Some(3));
    // --status changed nothing.
    let pool = PgPoolOptions::new().max_connections(1).connect(&url).await.unwrap();
    let history: Option<String> =
        sqlx::query_scalar("SELECT to_regclass('refinery_schema_history')::text").fetch_one(&pool).await.unwrap();
    assert!(history.is_none());

    let migrated = stockcart(&["migrate"], &url);
    assert!(migrated.status.success(), "{}", String::from_utf8_lossy(&migrated.stderr));
    let status = stockcart(&["migrate", "--status"], &url);
    assert!(status.status.success());
    assert!(String::from_utf8_lossy(&status.stdout).contains("applied    V1__init"));
}

#[tokio::test]
async fn concurrent_migrations_from_two_processes_apply_once() {
    let url = empty_database().await;
    let spawn = || {
        Command::new(BIN)
            .arg("migrate")
            .env("DATABASE_URL", &url)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let pool = PgPoolOptions::new().max_connections(1).connect(&url).await.unwrap();
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM refinery_schema_history").fetch_one(&pool).await.unwrap();
    // Each migration once: as many history rows as migration files (versions need not be dense).
    let files = std::fs::read_dir("migrations")
        .unwrap()
        .filter(|f| f.as_ref().unwrap().path().extension().is_some_and(|e| e == "sql"))
        .count();
    assert_eq!(rows, files as i64);
}

#[tokio::test]
async fn a_divergent_migration_is_reported_and_refused() {
    let url = fresh_database().await;
    let pool = PgPoolOptions::new().max_connections(1).connect(&url).await.unwrap();
    sqlx::query("UPDATE refinery_schema_history SET checksum = '1' WHERE version = 1").execute(&pool).await.unwrap();
    let status = stockcart(&["migrate", "--status"], &url);
    assert!(String::from_utf8_lossy(&status.stdout).contains("divergent  V1__init"));
    let serve = stockcart(&["serve"], &url);
    assert!(!serve.status.success());
    assert!(String::from_utf8_lossy(&serve.stderr).contains("Divergent: V1__init"));
    // And a running replica reports it as not ready.
    let app = spawn_on(&url, &[]).await;
    app.get("/readyz", Auth::None).await.assert_problem(503, "schema_not_current");
}

/// The service needs data rights only: no DDL, no ownership.
#[tokio::test]
async fn serves_as_a_role_with_data_rights_only() {
    let url = fresh_database().await;
    let Some(role_url) = crate::helpers::data_only_role(&url, &[]).await else {
        eprintln!("skipped: DATABASE_URL does not log in as `postgres`, so the role cannot be swapped in");
        return;
    };

    // It cannot change the schema...
    let role_pool = PgPoolOptions::new().max_connections(1).connect(&role_url).await.unwrap();
    assert!(sqlx::query("CREATE TABLE intruder (x int)").execute(&role_pool).await.is_err());
    // ...yet it serves every kind of write.
    let settings = test_settings(&[]);
    let pool = stockcart::startup::connect_lazy(&settings, &role_url).unwrap();
    let app = spawn_with_pool(&url, settings, pool).await;
    app.get("/readyz", Auth::None).await.assert_status(200);
    app.stocked("ROLE-1", 500, 10).await;
    let token = app.session().await;
    app.add(&token, "ROLE-1", 2).await.assert_status(200);
    let order = app.checkout(&token, "k1").await;
    order.assert_status(201);
    app.assert_invariants().await;
}

#[tokio::test]
async fn readyz_turns_503_when_the_database_stops() {
    let (pg, child) = throwaway_pg();
    let url = pg.url("postgres");
    stockcart::migrate::run(&url).await.unwrap();
    let app = spawn_on(&url, &[]).await;
    app.get("/readyz", Auth::None).await.assert_status(200);
    stockcart::embedded_pg::stop_ephemeral(child);
    let r = app.get("/readyz", Auth::None).await;
    r.assert_problem(503, "database_unavailable");
    // A request that needs the database is a 503 too, never a 500.
    let r = app.get("/v1/products", Auth::None).await;
    assert_eq!(r.status.as_u16(), 503, "{}", r.text);
    app.get("/healthz", Auth::None).await.assert_status(200);
}

/// `cargo run --release` with no DATABASE_URL: a private cluster in the data directory,
/// which a second start reuses.
#[tokio::test]
async fn the_default_run_starts_a_private_cluster_and_reuses_it() {
    let dir = std::env::temp_dir().join(format!("stockcart-embedded-{}", uuid::Uuid::new_v4().simple()));
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let start = || {
        Command::new(BIN)
            .env_remove("DATABASE_URL")
            .env_remove("STOCKCART_ADMIN_TOKEN")
            .env("STOCKCART_DATA_DIR", &dir)
            .env("STOCKCART_BIND", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let wait_ready = || async {
        for _ in 0..300 {
            if let Ok(r) = client.get(format!("{base}/readyz")).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the embedded run never became ready");
    };
    let stop = |child: std::process::Child| {
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        child.wait_with_output().unwrap()
    };

    let first = start();
    wait_ready().await;
    let token = std::fs::read_to_string(dir.join("admin-token")).unwrap();
    let created = client
        .put(format!("{base}/v1/admin/products/KEEP-1"))
        .bearer_auth(token.trim())
        .json(&json!({ "name": "Kept", "price": { "amount": 100, "currency": "EUR" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let out = stop(first);
    assert!(out.status.success(), "graceful stop exits 0");
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("admin token: ") && printed.contains(token.trim()), "{printed}");

    let second = start();
    wait_ready().await;
    let kept: Value = client.get(format!("{base}/v1/products/KEEP-1")).send().await.unwrap().json().await.unwrap();
    assert_eq!(kept["name"], "Kept");
    stop(second);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The test harness itself: a test's database goes when its last app instance does.
#[tokio::test]
async fn a_test_database_is_dropped_when_its_last_replica_ends() {
    let mut apps = spawn_replicas(2, &[]).await;
    let name = apps[0].db_url.rsplit('/').next().unwrap().to_owned();
    let admin = PgPoolOptions::new().max_connections(1).connect(&cluster().url("postgres")).await.unwrap();
    let exists = |admin: PgPool, name: String| async move {
        sqlx::query_scalar::<_, bool>("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(name)
            .fetch_one(&admin)
            .await
            .unwrap()
    };
    drop(apps.pop());
    assert!(exists(admin.clone(), name.clone()).await, "still used by a replica");
    drop(apps);
    // The drop runs in the background, off the test's time.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while exists(admin.clone(), name.clone()).await {
        assert!(std::time::Instant::now() < deadline, "dropped after its last replica ended");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
