//! Test support: one throwaway PostgreSQL cluster per test run (or the server of
//! `DATABASE_URL` when it is set), a migrated template database, and for every test its own
//! database cloned from that template. `spawn_app` starts an app instance on a free port;
//! `spawn_replicas` starts several instances sharing one database, like replicas.

use std::{
    collections::HashMap,
    ffi::CStr,
    path::PathBuf,
    sync::{Mutex, OnceLock},
};

use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
use sqlx::{postgres::PgPoolOptions, PgPool};
use stockcart::{config::Settings, embedded_pg::EmbeddedPg, startup::Application};
use uuid::Uuid;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

pub struct Cluster {
    /// URL of the server without a database name, e.g. `postgres://u@host:port/`.
    base: String,
    template: String,
    _watchdog: Mutex<Option<std::process::Child>>,
}

impl Cluster {
    pub fn url(&self, database: &str) -> String {
        format!("{}{database}", self.base)
    }
}

/// Runs a future to completion on a runtime of its own (safe from inside a test runtime).
pub fn block_on<F: std::future::Future + Send + 'static>(f: F) -> F::Output
where
    F::Output: Send + 'static,
{
    on_own_runtime(f).join().expect("setup thread panicked")
}

/// Runs a future on a thread and runtime of its own; join the handle to wait for it.
fn on_own_runtime<F: std::future::Future + Send + 'static>(f: F) -> std::thread::JoinHandle<F::Output>
where
    F::Output: Send + 'static,
{
    std::thread::spawn(move || tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f))
}

pub fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        let (base, watchdog) = match std::env::var("DATABASE_URL").ok().filter(|u| !u.is_empty()) {
            Some(url) => {
                let without_query = url.split('?').next().unwrap().to_owned();
                let cut = without_query.rfind('/').expect("DATABASE_URL has a path");
                (without_query[..=cut].to_owned(), None)
            }
            None => {
                let (pg, child) = throwaway_pg();
                (format!("postgres://postgres@127.0.0.1:{}/", pg.port()), Some(child))
            }
        };
        let template = format!("stockcart_template_{}", Uuid::new_v4().simple());
        let admin_url = format!("{base}postgres");
        let template_url = format!("{base}{template}");
        let name = template.clone();
        block_on(async move {
            let pool =
                PgPoolOptions::new().max_connections(1).connect(&admin_url).await.expect("connect to the test server");
            sqlx::query(&format!("CREATE DATABASE {name}")).execute(&pool).await.expect("create the template");
            pool.close().await;
            stockcart::migrate::run(&template_url).await.expect("migrate the template");
        });
        Cluster { base, template, _watchdog: Mutex::new(watchdog) }
    })
}

/// A throwaway cluster for this test run, on tmpfs when there is room for it there.
pub fn throwaway_pg() -> (EmbeddedPg, std::process::Child) {
    EmbeddedPg::start_ephemeral_in(&scratch_dir()).expect("start a throwaway PostgreSQL")
}

/// Every test clones the template into a database of its own and drops it again, some 400
/// files made and unlinked each time: file-system work that on ext4 cost a noticeable share
/// of the run's CPU. On tmpfs it is cheaper, and the cluster's data dies with the run anyway.
/// The cluster stays well under 1 GB, WAL included; a small /dev/shm (Docker gives a
/// container 64 MB) would fill up, so then the temp dir it is.
fn scratch_dir() -> PathBuf {
    const SHM: &CStr = c"/dev/shm";
    const ROOM: u128 = 2 << 30;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let usable = unsafe { libc::statvfs(SHM.as_ptr(), &mut st) == 0 && libc::access(SHM.as_ptr(), libc::W_OK) == 0 };
    if usable && st.f_bavail as u128 * st.f_frsize as u128 >= ROOM {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    }
}

/// A fresh database cloned from the migrated template; returns its URL.
/// A login role on `url`'s database with data rights only (no DDL, no ownership), as a DBA
/// would give the service, minus whatever `revoke` takes away; the URL that logs in as it, or
/// `None` when the cluster's URL does not log in as `postgres` (the role cannot be swapped in).
pub async fn data_only_role(url: &str, revoke: &[&str]) -> Option<String> {
    let role = format!("app_{}", uuid::Uuid::new_v4().simple());
    let owner = PgPoolOptions::new().max_connections(1).connect(url).await.unwrap();
    let database: String = sqlx::query_scalar("SELECT current_database()").fetch_one(&owner).await.unwrap();
    let mut statements = vec![
        format!("CREATE ROLE {role} LOGIN"),
        format!("GRANT CONNECT ON DATABASE {database} TO {role}"),
        format!("GRANT USAGE ON SCHEMA public TO {role}"),
        format!("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}"),
        format!("GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role}"),
    ];
    statements.extend(revoke.iter().map(|table| format!("REVOKE ALL ON {table} FROM {role}")));
    for sql in statements {
        sqlx::query(&sql).execute(&owner).await.unwrap();
    }
    let role_url = url.replacen("://postgres@", &format!("://{role}@"), 1);
    (role_url != url).then_some(role_url)
}

pub async fn fresh_database() -> String {
    let cluster = cluster();
    let name = format!("stockcart_test_{}", Uuid::new_v4().simple());
    let admin_url = cluster.url("postgres");
    let create = format!("CREATE DATABASE {name} TEMPLATE {}", cluster.template);
    let mut conn: sqlx::PgConnection = sqlx::Connection::connect(&admin_url).await.expect("connect to the test server");
    sqlx::query(&create).execute(&mut conn).await.expect("create a test database");
    let url = cluster.url(&name);
    live_databases().lock().unwrap_or_else(|e| e.into_inner()).insert(url.clone(), 0);
    url
}

/// An empty database with no schema at all.
pub async fn empty_database() -> String {
    let cluster = cluster();
    let name = format!("stockcart_empty_{}", Uuid::new_v4().simple());
    let mut conn: sqlx::PgConnection = sqlx::Connection::connect(&cluster.url("postgres")).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.unwrap();
    cluster.url(&name)
}

pub fn test_settings(overrides: &[(&str, &str)]) -> Settings {
    let mut vars: HashMap<String, String> = [
        ("STOCKCART_BIND", "127.0.0.1:0"),
        ("STOCKCART_ADMIN_TOKEN", ADMIN_TOKEN),
        ("STOCKCART_WORKERS", "2"),
        ("STOCKCART_POOL_SIZE", "10"),
        // Production's 5 s answers a request on a release build; a debug build under four tests
        // at once on a loaded 2-core CI machine ran three times slower than here, and a
        // 10,000-line batch once met the 5 s deadline there (503). Tests of the deadline itself
        // set their own.
        ("STOCKCART_REQUEST_TIMEOUT", "30s"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in overrides {
        vars.insert(k.to_string(), v.to_string());
    }
    Settings::from_lookup(|k| vars.get(k).cloned()).expect("valid test settings")
}

pub struct TestApp {
    pub address: String,
    pub db_url: String,
    /// A pool for looking under the hood (ledger sums, corruption); not the app's own.
    pub db: PgPool,
    pub client: reqwest::Client,
    handle: actix_web::dev::ServerHandle,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Sends the stop command at once; the future only waits for it.
        drop(self.handle.stop(false));
        release_database(&self.db_url);
    }
}

/// The databases `fresh_database` made, with how many app instances still use each: the last
/// one to go drops it, so a test run does not leave hundreds of databases behind.
fn live_databases() -> &'static Mutex<HashMap<String, usize>> {
    static LIVE: OnceLock<Mutex<HashMap<String, usize>>> = OnceLock::new();
    LIVE.get_or_init(|| Mutex::new(HashMap::new()))
}

fn use_database(url: &str) {
    if let Some(count) = live_databases().lock().unwrap_or_else(|e| e.into_inner()).get_mut(url) {
        *count += 1;
    }
}

fn release_database(url: &str) {
    let mut live = live_databases().lock().unwrap_or_else(|e| e.into_inner());
    let Some(count) = live.get_mut(url) else { return };
    *count -= 1;
    if *count > 0 {
        return;
    }
    live.remove(url);
    drop(live);
    let name = url.rsplit('/').next().unwrap_or_default().to_owned();
    let admin_url = cluster().url("postgres");
    // In the background: with the stopping app's connections still open, DROP ... WITH (FORCE)
    // ends them and then polls every 100 ms until they are gone, a wait that made up most of a
    // short test's time. A drop still pending when the run ends dies with the throwaway cluster
    // (on a DATABASE_URL server, that database stays behind).
    // Not joined, so nothing here can panic the test: this runs in Drop, possibly while a
    // failed test unwinds.
    drop(on_own_runtime(async move {
        if let Ok(mut conn) = <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url).await {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut conn).await;
        }
    }));
}

pub async fn spawn_app() -> TestApp {
    spawn_on(&fresh_database().await, &[]).await
}

/// `n` app instances sharing one fresh database: replicas, each with its own pool and cache.
pub async fn spawn_replicas(n: usize, overrides: &[(&str, &str)]) -> Vec<TestApp> {
    let url = fresh_database().await;
    let mut apps = Vec::new();
    for _ in 0..n {
        apps.push(spawn_on(&url, overrides).await);
    }
    apps
}

pub async fn spawn_on(db_url: &str, overrides: &[(&str, &str)]) -> TestApp {
    let settings = test_settings(overrides);
    let pool = stockcart::startup::connect_lazy(&settings, db_url).expect("a pool");
    spawn_with_pool(db_url, settings, pool).await
}

pub async fn spawn_with_pool(db_url: &str, settings: Settings, pool: PgPool) -> TestApp {
    let admin_token = settings.admin_token.clone().unwrap();
    use_database(db_url);
    let app = Application::build(settings, pool, admin_token).expect("build the app");
    let address = format!("http://127.0.0.1:{}", app.port());
    let handle = app.server_handle();
    tokio::spawn(app.run_until_stopped());
    let db = PgPoolOptions::new().max_connections(4).connect_lazy(db_url).unwrap();
    // Idle connections are dropped well before the server's keep-alive (5 s) closes them: a
    // request sent on a connection the server is closing that moment fails with
    // IncompleteMessage (seen in CI after a test waited seconds for PostgreSQL to stop).
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .pool_idle_timeout(std::time::Duration::from_secs(1))
        .build()
        .unwrap();
    TestApp { address, db_url: db_url.to_owned(), db, client, handle }
}

/// A response read whole: status, headers and JSON body (Null when the body is not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    pub async fn from(r: Response) -> Reply {
        let status = r.status();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply { status, headers, body, text }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }

    /// Asserts a problem document with this status and code.
    #[track_caller]
    pub fn assert_problem(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text);
        assert_eq!(self.code(), code, "body: {}", self.text);
        assert_eq!(self.header("content-type"), Some("application/problem+json"), "body: {}", self.text);
        assert_eq!(self.body["status"], json!(status));
    }

    #[track_caller]
    pub fn assert_status(&self, status: u16) -> &Reply {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text);
        self
    }
}

pub enum Auth<'a> {
    None,
    Admin,
    Bearer(&'a str),
}

impl TestApp {
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        auth: Auth<'_>,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.client.request(method, format!("{}{path}", self.address));
        match auth {
            Auth::None => {}
            Auth::Admin => req = req.bearer_auth(ADMIN_TOKEN),
            Auth::Bearer(t) => req = req.bearer_auth(t),
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        Reply::from(req.send().await.expect("request sent")).await
    }

    pub async fn get(&self, path: &str, auth: Auth<'_>) -> Reply {
        self.request("GET", path, auth, None, &[]).await
    }

    pub async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        self.request(method, path, Auth::Admin, body.as_ref(), &[]).await
    }

    /// Creates or updates a product priced in EUR.
    pub async fn put_product(&self, sku: &str, name: &str, price: i64) -> Reply {
        self.admin(
            "PUT",
            &format!("/v1/admin/products/{sku}"),
            Some(json!({ "name": name, "price": { "amount": price, "currency": "EUR" } })),
        )
        .await
    }

    /// A product with `on_hand` units in stock.
    pub async fn stocked(&self, sku: &str, price: i64, on_hand: i64) {
        self.put_product(sku, &format!("Product {sku}"), price).await.assert_status(201);
        if on_hand > 0 {
            self.adjust(sku, on_hand, "restock").await.assert_status(200);
        }
    }

    pub async fn adjust(&self, sku: &str, delta: i64, reason: &str) -> Reply {
        self.admin(
            "POST",
            &format!("/v1/admin/inventory/{sku}/adjustments"),
            Some(json!({ "delta": delta, "reason": reason })),
        )
        .await
    }

    pub async fn level(&self, sku: &str) -> Value {
        let r = self.get(&format!("/v1/admin/inventory/{sku}"), Auth::Admin).await;
        r.assert_status(200);
        r.body
    }

    pub async fn session(&self) -> String {
        let r = self.request("POST", "/v1/sessions", Auth::None, None, &[]).await;
        r.assert_status(201);
        r.body["token"].as_str().unwrap().to_owned()
    }

    pub async fn add(&self, token: &str, sku: &str, quantity: i64) -> Reply {
        self.request(
            "POST",
            "/v1/cart/items",
            Auth::Bearer(token),
            Some(&json!({ "sku": sku, "quantity": quantity })),
            &[],
        )
        .await
    }

    pub async fn cart(&self, token: &str) -> Reply {
        self.get("/v1/cart", Auth::Bearer(token)).await
    }

    pub async fn checkout(&self, token: &str, key: &str) -> Reply {
        self.request("POST", "/v1/checkout", Auth::Bearer(token), None, &[("Idempotency-Key", key)]).await
    }

    /// Runs the invariant checker against this app's database and asserts it passes.
    pub async fn assert_invariants(&self) {
        let report = stockcart::invariants::check(&self.db).await.expect("run the checker");
        assert!(report.ok(), "invariants violated: {:#?}", report.violations);
    }
}

/// One method per cart and order endpoint, so a test reads as the shopper's actions.
impl TestApp {
    /// `POST /v1/cart/items` with any body, for the refusals of bad input.
    pub async fn add_body(&self, token: &str, body: Value) -> Reply {
        self.request("POST", "/v1/cart/items", Auth::Bearer(token), Some(&body), &[]).await
    }

    /// `POST /v1/cart/items` sent with `If-Match: "<version>"`.
    pub async fn add_if_match(&self, token: &str, sku: &str, quantity: i64, version: i64) -> Reply {
        let body = json!({ "sku": sku, "quantity": quantity });
        let etag = format!("\"{version}\"");
        self.request("POST", "/v1/cart/items", Auth::Bearer(token), Some(&body), &[("If-Match", &etag)]).await
    }

    /// `PUT /v1/cart/items/{sku}`.
    pub async fn set_item(&self, token: &str, sku: &str, quantity: i64) -> Reply {
        let body = json!({ "quantity": quantity });
        self.request("PUT", &format!("/v1/cart/items/{sku}"), Auth::Bearer(token), Some(&body), &[]).await
    }

    /// `PUT /v1/cart/items/{sku}` sent with `If-Match: "<version>"`.
    pub async fn set_item_if_match(&self, token: &str, sku: &str, quantity: i64, version: i64) -> Reply {
        let body = json!({ "quantity": quantity });
        let etag = format!("\"{version}\"");
        let path = format!("/v1/cart/items/{sku}");
        self.request("PUT", &path, Auth::Bearer(token), Some(&body), &[("If-Match", &etag)]).await
    }

    /// `DELETE /v1/cart/items/{sku}`.
    pub async fn remove_item(&self, token: &str, sku: &str) -> Reply {
        self.request("DELETE", &format!("/v1/cart/items/{sku}"), Auth::Bearer(token), None, &[]).await
    }

    /// `DELETE /v1/cart`.
    pub async fn clear_cart(&self, token: &str) -> Reply {
        self.request("DELETE", "/v1/cart", Auth::Bearer(token), None, &[]).await
    }

    /// `DELETE /v1/cart` sent with `If-Match: "<version>"`.
    pub async fn clear_cart_if_match(&self, token: &str, version: i64) -> Reply {
        let etag = format!("\"{version}\"");
        self.request("DELETE", "/v1/cart", Auth::Bearer(token), None, &[("If-Match", &etag)]).await
    }

    /// `GET /v1/orders/{id}` as the shopper.
    pub async fn order(&self, token: &str, id: &str) -> Reply {
        self.get(&format!("/v1/orders/{id}"), Auth::Bearer(token)).await
    }

    /// `GET /v1/orders` as the shopper.
    pub async fn orders(&self, token: &str) -> Reply {
        self.get("/v1/orders", Auth::Bearer(token)).await
    }

    /// `POST /v1/orders/{id}/cancel` as the shopper.
    pub async fn cancel(&self, token: &str, id: &str) -> Reply {
        self.request("POST", &format!("/v1/orders/{id}/cancel"), Auth::Bearer(token), None, &[]).await
    }
}

/// Bulk fixtures, written straight into the database: for tests whose rule needs many rows
/// but is not about how they got there.
impl TestApp {
    /// Products `skus`, each priced `price` EUR with `on_hand` in stock. The catalog rows are
    /// inserted in one statement; the stock goes through the batch endpoint, so the ledger and
    /// every invariant hold as if each had been stocked one by one.
    pub async fn stocked_in_bulk(&self, skus: &[String], price: i64, on_hand: i64) {
        sqlx::query(
            "WITH p AS (
                 INSERT INTO products (sku, name, price_amount, price_currency)
                 SELECT sku, 'Product ' || sku, $2, 'EUR' FROM unnest($1::text[]) AS sku RETURNING sku
             ), s AS (INSERT INTO stock_levels (sku, on_hand) SELECT sku, 0 FROM p)
             UPDATE catalog_revision SET revision = revision + 1",
        )
        .bind(skus)
        .bind(price)
        .execute(&self.db)
        .await
        .expect("insert the products");
        if on_hand > 0 {
            let adjustments: Vec<Value> =
                skus.iter().map(|sku| json!({ "sku": sku, "delta": on_hand, "reason": "restock" })).collect();
            self.admin("POST", "/v1/admin/inventory/batch", Some(json!({ "adjustments": adjustments })))
                .await
                .assert_status(200);
        }
    }

    /// `n` shoppers, each with a fresh session (default TTL) whose cart holds `quantity` of
    /// `sku`, as a session request and one add each would leave them; returns their tokens.
    pub async fn shoppers_in_bulk(&self, n: usize, sku: &str, quantity: i32) -> Vec<String> {
        let tokens: Vec<String> =
            (0..n).map(|_| stockcart::domain::SessionToken::generate().as_str().to_owned()).collect();
        let hashes: Vec<Vec<u8>> = tokens.iter().map(|t| stockcart::domain::TokenHash::of(t).0).collect();
        sqlx::query(
            "WITH u AS (SELECT gen_random_uuid() AS cart_id, gen_random_uuid() AS session_id, h FROM unnest($1::bytea[]) AS h),
                  c AS (INSERT INTO carts (id, version) SELECT cart_id, 1 FROM u),
                  l AS (INSERT INTO cart_lines (cart_id, sku, quantity) SELECT cart_id, $2, $3 FROM u)
             INSERT INTO sessions (id, token_hash, cart_id, expires_at)
             SELECT session_id, h, cart_id, now() + interval '30 days' FROM u",
        )
        .bind(&hashes)
        .bind(sku)
        .bind(quantity)
        .execute(&self.db)
        .await
        .expect("create the shoppers");
        tokens
    }

    /// Puts one unit of each of `skus` in the session's cart, as that many adds would (the
    /// cart's version is bumped once per line).
    pub async fn in_cart_in_bulk(&self, token: &str, skus: &[String]) {
        let hash = stockcart::domain::TokenHash::of(token).0;
        // A session's cart has no row until its first change.
        sqlx::query(
            "INSERT INTO carts (id) SELECT cart_id FROM sessions WHERE token_hash = $1 ON CONFLICT (id) DO NOTHING",
        )
        .bind(&hash)
        .execute(&self.db)
        .await
        .expect("create the cart");
        sqlx::query(
            "WITH s AS (SELECT cart_id FROM sessions WHERE token_hash = $1),
                  l AS (INSERT INTO cart_lines (cart_id, sku, quantity)
                        SELECT s.cart_id, sku, 1 FROM s, unnest($2::text[]) WITH ORDINALITY AS u (sku, n) ORDER BY n)
             UPDATE carts c SET version = version + cardinality($2::text[]), updated_at = now() FROM s WHERE c.id = s.cart_id",
        )
        .bind(hash)
        .bind(skus)
        .execute(&self.db)
        .await
        .expect("fill the cart");
    }
}

/// One method per inventory endpoint that the tests send with a version.
impl TestApp {
    /// `POST /v1/admin/inventory/{sku}/adjustments` sent with `If-Match: "<version>"`.
    pub async fn adjust_if_match(&self, sku: &str, delta: i64, reason: &str, version: i64) -> Reply {
        let body = json!({ "delta": delta, "reason": reason });
        let etag = format!("\"{version}\"");
        let path = format!("/v1/admin/inventory/{sku}/adjustments");
        self.request("POST", &path, Auth::Admin, Some(&body), &[("If-Match", &etag)]).await
    }

    /// `PUT /v1/admin/inventory/{sku}`, with `If-Match: "<version>"` when there is one.
    pub async fn set_level(&self, sku: &str, on_hand: i64, version: Option<i64>) -> Reply {
        let body = json!({ "on_hand": on_hand });
        let etag = version.map(|v| format!("\"{v}\""));
        let headers: Vec<(&str, &str)> = etag.iter().map(|e| ("If-Match", e.as_str())).collect();
        self.request("PUT", &format!("/v1/admin/inventory/{sku}"), Auth::Admin, Some(&body), &headers).await
    }

    /// `GET /v1/admin/inventory/{sku}/movements?<query>`.
    pub async fn movements(&self, sku: &str, query: &str) -> Reply {
        self.get(&format!("/v1/admin/inventory/{sku}/movements?{query}"), Auth::Admin).await
    }
}

impl TestApp {
    /// `POST /v1/admin/sessions/attach`: the storefront's backend logs the session in.
    pub async fn attach(&self, token: &str, customer_id: &str) -> Reply {
        self.admin("POST", "/v1/admin/sessions/attach", Some(json!({ "token": token, "customer_id": customer_id })))
            .await
    }
}
