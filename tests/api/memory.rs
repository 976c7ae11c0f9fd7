//! Shopper memory: recently viewed products and popular products, across two instances.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::{json, Value};
use stockcart::{domain::TokenHash, store::memory};

use crate::helpers::{fresh_database, spawn_replicas, spawn_with_pool, test_settings, Auth, Reply, TestApp};

async fn view(app: &TestApp, token: &str, sku: &str) {
    app.get(&format!("/v1/products/{sku}"), Auth::Bearer(token)).await.assert_status(200);
}

async fn recent(app: &TestApp, token: &str, query: &str) -> Vec<Value> {
    let r = app.get(&format!("/v1/session/recently-viewed{query}"), Auth::Bearer(token)).await;
    r.assert_status(200);
    r.body["items"].as_array().unwrap().clone()
}

fn skus(items: &[Value]) -> Vec<&str> {
    items.iter().map(|p| p["sku"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn a_view_on_one_replica_is_in_recently_viewed_on_the_other_at_once() {
    let apps = spawn_replicas(2, &[]).await;
    apps[0].stocked("RV-A", 100, 5).await;
    apps[0].stocked("RV-B", 200, 0).await;
    let token = apps[0].session().await;
    view(&apps[0], &token, "RV-A").await;
    assert_eq!(skus(&recent(&apps[1], &token, "").await), ["RV-A"]);
    view(&apps[1], &token, "RV-B").await;
    view(&apps[0], &token, "RV-A").await;
    let items = recent(&apps[1], &token, "").await;
    assert_eq!(skus(&items), ["RV-A", "RV-B"], "distinct, most recent first");
    // As product reads render them: the current price and availability.
    apps[0].put_product("RV-B", "Product RV-B", 250).await.assert_status(200);
    apps[0].adjust("RV-B", 3, "restock").await.assert_status(200);
    let b = &recent(&apps[1], &token, "").await[1];
    assert_eq!(b["price"], json!({ "amount": 250, "currency": "EUR" }));
    assert_eq!(b["available"], 3);
    assert_eq!(*b, apps[1].get("/v1/products/RV-B", Auth::None).await.body);
}

#[tokio::test]
async fn the_list_keeps_the_twenty_most_recent_and_each_session_its_own() {
    let apps = spawn_replicas(2, &[]).await;
    for i in 0..25 {
        apps[0].stocked(&format!("CAP-{i:02}"), 100, 1).await;
    }
    let (mine, theirs) = (apps[0].session().await, apps[1].session().await);
    for i in 0..25 {
        view(&apps[i % 2], &mine, &format!("CAP-{i:02}")).await;
    }
    view(&apps[1], &theirs, "CAP-00").await;
    let items = recent(&apps[1], &mine, "").await;
    assert_eq!(items.len(), 20);
    assert_eq!(items[0]["sku"], "CAP-24");
    assert_eq!(items[19]["sku"], "CAP-05");
    let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM recent_views").fetch_one(&apps[0].db).await.unwrap();
    assert_eq!(kept, 21, "bounded in the database too: 20 + the other session's one");
    assert_eq!(skus(&recent(&apps[0], &mine, "?limit=3").await), ["CAP-24", "CAP-23", "CAP-22"]);
    assert_eq!(skus(&recent(&apps[0], &theirs, "").await), ["CAP-00"], "sessions do not share lists");

    // Without a session token a read records nothing; a bad one is no error either.
    apps[0].get("/v1/products/CAP-01", Auth::None).await.assert_status(200);
    apps[0].get("/v1/products/CAP-01", Auth::Bearer("sc_not_a_session")).await.assert_status(200);
    for bad in ["?limit=0", "?limit=21", "?limit=x"] {
        apps[0]
            .get(&format!("/v1/session/recently-viewed{bad}"), Auth::Bearer(&mine))
            .await
            .assert_problem(400, "invalid_query");
    }
    apps[0].get("/v1/session/recently-viewed", Auth::None).await.assert_problem(401, "unauthorized");
    apps[0].get("/v1/session/recently-viewed", Auth::Bearer("sc_nope")).await.assert_problem(401, "unauthorized");
}

#[tokio::test]
async fn recently_viewed_merges_into_the_customers_list_at_attach() {
    let apps = spawn_replicas(2, &[]).await;
    for sku in ["M-1", "M-2", "M-3"] {
        apps[0].stocked(sku, 100, 1).await;
    }
    let (phone, laptop) = (apps[0].session().await, apps[1].session().await);
    let attach = |token: &str| json!({ "token": token, "customer_id": "cust-7" });
    apps[0].admin("POST", "/v1/admin/sessions/attach", Some(attach(&phone))).await.assert_status(200);
    view(&apps[0], &phone, "M-1").await;
    view(&apps[1], &laptop, "M-2").await;
    view(&apps[1], &laptop, "M-3").await;
    apps[1].admin("POST", "/v1/admin/sessions/attach", Some(attach(&laptop))).await.assert_status(200);
    let phone_list = recent(&apps[0], &phone, "").await;
    assert_eq!(skus(&phone_list), ["M-3", "M-2", "M-1"]);
    assert_eq!(recent(&apps[1], &laptop, "").await, phone_list, "one list for every session of the customer");
}

#[tokio::test]
async fn popular_products_count_views_on_every_replica() {
    let apps = spawn_replicas(2, &[]).await;
    for sku in ["POP-A", "POP-B", "POP-C"] {
        apps[0].stocked(sku, 100, 1).await;
    }
    for (sku, n) in [("POP-A", 3), ("POP-B", 5), ("POP-C", 1)] {
        for i in 0..n {
            apps[i % 2].get(&format!("/v1/products/{sku}"), Auth::None).await.assert_status(200);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = apps[1].get("/v1/popular-products?window=1h", Auth::None).await;
        r.assert_status(200);
        let items = r.body["items"].as_array().unwrap();
        let counts: Vec<(&str, i64)> =
            items.iter().map(|p| (p["sku"].as_str().unwrap(), p["views"].as_i64().unwrap())).collect();
        if counts == [("POP-B", 5), ("POP-A", 3), ("POP-C", 1)] {
            assert_eq!(items[0]["name"], "Product POP-B");
            break;
        }
        assert!(Instant::now() < deadline, "both replicas' counts within 10 s: {counts:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let day = apps[0].get("/v1/popular-products?window=24h&limit=1", Auth::None).await;
    assert_eq!(skus(day.body["items"].as_array().unwrap()), ["POP-B"]);
    for bad in ["?window=2h", "?limit=0", "?limit=101"] {
        apps[0].get(&format!("/v1/popular-products{bad}"), Auth::None).await.assert_problem(400, "invalid_query");
    }
}

#[tokio::test]
async fn the_product_read_answers_while_recording_fails_and_the_failure_is_counted() {
    let url = fresh_database().await;
    // The views table is out of reach: every recording fails.
    let Some(role_url) = crate::helpers::data_only_role(&url, &["recent_view_lists"]).await else {
        eprintln!("skipped: DATABASE_URL does not log in as `postgres`, so the role cannot be swapped in");
        return;
    };
    let settings = test_settings(&[]);
    let pool = stockcart::startup::connect_lazy(&settings, &role_url).unwrap();
    let app = spawn_with_pool(&url, settings, pool).await;
    app.stocked("FAIL-1", 100, 2).await;
    let token = app.session().await;
    let read = app.get("/v1/products/FAIL-1", Auth::Bearer(&token)).await;
    read.assert_status(200);
    assert_eq!(read.body["available"], 2);
    app.get("/v1/products/NOPE", Auth::Bearer(&token)).await.assert_problem(404, "unknown_sku");
    let metrics = app.get("/metrics", Auth::None).await.text;
    assert!(metrics.contains("stockcart_view_record_failures_total 2"), "{metrics}");
}

#[tokio::test]
async fn coalesced_views_keep_read_your_writes_with_thirty_two_shoppers_per_replica() {
    let apps = spawn_replicas(2, &[]).await;
    let (a, b) = (&apps[0], &apps[1]);
    let catalog: Vec<String> = (0..24).map(|i| format!("RYW-{i:02}")).collect();
    a.stocked_in_bulk(&catalog, 100, 5).await;
    let tokens = join_all((0..64).map(|_| a.session())).await;
    let client = brisk_client();
    // 64 shoppers at once, 24 rounds each (1,536 views): at any moment 32 view on each
    // replica and read their list on the other, so views really are coalesced, and each list
    // must already hold the view acknowledged just before it, most recent first. Shoppers
    // revisit products and pass the cap of 20.
    join_all(tokens.iter().enumerate().map(|(i, token)| {
        let (catalog, client) = (&catalog, &client);
        async move {
            let mut expected: Vec<&str> = Vec::new();
            for round in 0..24usize {
                let (viewer, reader) = if (round + i) % 2 == 0 { (a, b) } else { (b, a) };
                let sku = catalog[(i + round * 5 + round / 3) % catalog.len()].as_str();
                get(client, viewer, &format!("/v1/products/{sku}"), token).await.assert_status(200);
                expected.retain(|s| *s != sku);
                expected.insert(0, sku);
                expected.truncate(20);
                let list = get(client, reader, "/v1/session/recently-viewed", token).await;
                list.assert_status(200);
                assert_eq!(
                    skus(list.body["items"].as_array().unwrap()),
                    expected,
                    "stale list: shopper {i}, round {round}"
                );
            }
        }
    }))
    .await;
    let (mut reads, mut requests) = (0.0, 0.0);
    for app in &apps {
        let metrics = app.get("/metrics", Auth::None).await.text;
        reads += metric(&metrics, "stockcart_view_reads_total");
        requests += metric(&metrics, "stockcart_view_read_requests_total");
    }
    assert!(requests >= 1536.0, "every view went through the coalesced reads: {requests}");
    assert!(requests > reads, "no read was shared: {reads} reads for {requests} requests");
}

#[tokio::test]
async fn one_batch_records_a_sessions_views_of_the_same_and_of_different_products_once_each() {
    let apps = spawn_replicas(2, &[]).await;
    let catalog: Vec<String> = (0..25).map(|i| format!("ONE-{i:02}")).collect();
    apps[0].stocked_in_bulk(&catalog, 100, 1).await;
    let (token, other) = (apps[0].session().await, apps[1].session().await);
    let (mine, theirs) = (TokenHash::of(&token).0, TokenHash::of(&other).0);

    // The same product twice and another one in one statement (ON CONFLICT may not touch a
    // row twice), an unknown product, and a token that is no session.
    let batch = [
        (&mine, "ONE-00"),
        (&mine, "ONE-01"),
        (&theirs, "ONE-01"),
        (&mine, "ONE-00"),
        (&mine, "NOPE"),
        (&vec![0u8; 32], "ONE-02"),
    ];
    let hashes: Vec<Vec<u8>> = batch.iter().map(|(h, _)| h.to_vec()).collect();
    let asked: Vec<String> = batch.iter().map(|(_, s)| s.to_string()).collect();
    let reads = memory::read_and_record(&apps[0].db, &hashes, &asked).await.unwrap();
    let answered: Vec<(usize, &str, bool)> =
        reads.iter().map(|r| (r.index, r.product.sku.as_str(), r.recorded)).collect();
    assert_eq!(
        answered.iter().copied().collect::<std::collections::BTreeSet<_>>(),
        [(0, "ONE-00", true), (1, "ONE-01", true), (2, "ONE-01", true), (3, "ONE-00", true), (5, "ONE-02", false)]
            .into_iter()
            .collect(),
    );
    assert_eq!(list(&apps[1], &token).await, "ONE-00 ONE-01", "distinct, the later view of ONE-00 first");
    assert_eq!(list(&apps[1], &other).await, "ONE-01");

    // 25 products and one repeated in one statement: the 20 latest are kept, in order.
    let asked: Vec<String> = catalog.iter().cloned().chain(["ONE-03".to_owned()]).collect();
    let hashes = vec![mine.clone(); asked.len()];
    memory::read_and_record(&apps[0].db, &hashes, &asked).await.unwrap();
    let expected: Vec<String> =
        ["ONE-03".to_owned()].into_iter().chain((6..25).rev().map(|i| format!("ONE-{i:02}"))).collect();
    assert_eq!(list(&apps[1], &token).await, expected.join(" "));
    let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM recent_views").fetch_one(&apps[0].db).await.unwrap();
    assert_eq!(kept, 21, "bounded in the database too: 20 + the other session's one");

    // Over HTTP, on both replicas at once: the same session views products at the same moment,
    // each of 30 twice, so that reads share statements. Every read answers; the list stays
    // distinct and, after the next view, holds exactly the 20 latest.
    let many: Vec<String> = (0..30).map(|i| format!("MANY-{i:02}")).collect();
    apps[0].stocked_in_bulk(&many, 100, 1).await;
    join_all(many.iter().chain(many.iter()).enumerate().map(|(i, sku)| view(&apps[i % 2], &token, sku))).await;
    let items = recent(&apps[0], &token, "").await;
    let seen = skus(&items);
    assert!(seen.len() <= 20, "{seen:?}");
    assert_eq!(seen.iter().collect::<std::collections::BTreeSet<_>>().len(), seen.len(), "distinct: {seen:?}");
    view(&apps[1], &token, "ONE-00").await;
    let items = recent(&apps[0], &token, "").await;
    let seen = skus(&items);
    assert_eq!(seen.len(), 20, "{seen:?}");
    assert_eq!(seen[0], "ONE-00");
    assert_eq!(seen.iter().collect::<std::collections::BTreeSet<_>>().len(), 20, "distinct: {seen:?}");
    let rows: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM recent_views v JOIN sessions s ON s.cart_id = v.cart_id WHERE s.token_hash = $1",
    )
    .bind(&mine)
    .fetch_one(&apps[0].db)
    .await
    .unwrap();
    assert_eq!(rows, 20);
}

/// A client that drops a connection idle for 2 s, before the server's keep-alive (5 s) closes
/// it: with 64 shoppers on a loaded machine, a request sent on a connection just as the server
/// closes it fails (IncompleteMessage), which says nothing about views.
fn brisk_client() -> reqwest::Client {
    reqwest::Client::builder().pool_max_idle_per_host(64).pool_idle_timeout(Duration::from_secs(2)).build().unwrap()
}

async fn get(client: &reqwest::Client, app: &TestApp, path: &str, token: &str) -> Reply {
    Reply::from(client.get(format!("{}{path}", app.address)).bearer_auth(token).send().await.expect("request sent"))
        .await
}

async fn list(app: &TestApp, token: &str) -> String {
    skus(&recent(app, token, "").await).join(" ")
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("{name} is not in /metrics"))
}
