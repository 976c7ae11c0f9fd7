//! What a failover does to stockcart, played on one PostgreSQL: every connection cut at once
//! (Patroni demoting a primary, haproxy cutting the sessions to it), a server that stopped
//! taking writes (a demoted primary or a standby reached before the balancer noticed), and a
//! server refusing more clients at start-up. `scripts/ha test` plays the real thing.

use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::{Connection, PgConnection};

use crate::helpers::*;

/// Ends every session on the app's database but `conn`'s own, as a failover does.
async fn cut_every_connection(conn: &mut PgConnection) -> i64 {
    sqlx::query_scalar(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_one(conn)
    .await
    .unwrap()
}

/// A 503 `database_unavailable` must carry a whole number of seconds in `Retry-After`.
fn assert_retryable(r: &Reply, what: &str) {
    r.assert_problem(503, "database_unavailable");
    assert!(r.header("retry-after").is_some_and(|v| v.parse::<u64>().is_ok()), "{what}: {:?}", r.headers);
}

#[tokio::test]
async fn checkouts_cut_by_a_failover_answer_503_and_their_keys_settle_them_exactly_once() {
    let app = spawn_app().await;
    app.stocked("A", 100, 10_000).await;
    let shoppers = app.shoppers_in_bulk(60, "A", 1).await;
    let mut admin = PgConnection::connect(&app.db_url).await.unwrap();

    // Checkouts and cart reads in flight while every connection is cut, three times over.
    let load = futures_util::future::join_all(shoppers.iter().enumerate().map(|(i, token)| {
        let app = &app;
        async move {
            tokio::time::sleep(Duration::from_millis(5 * i as u64)).await;
            let cart = app.cart(token).await;
            let checkout = app.checkout(token, &format!("cut-{i}")).await;
            (cart, checkout)
        }
    }));
    let cuts = async {
        let mut cut = 0;
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(60)).await;
            cut += cut_every_connection(&mut admin).await;
        }
        cut
    };
    let (answers, cut) = tokio::join!(load, cuts);
    assert!(cut > 0, "no connection was cut");
    let mut unknown = 0;
    for (i, (cart, checkout)) in answers.iter().enumerate() {
        match cart.status.as_u16() {
            200 => {}
            _ => assert_retryable(cart, "a cart read"),
        }
        match checkout.status.as_u16() {
            201 => {}
            _ => {
                assert_retryable(checkout, &format!("checkout {i}"));
                unknown += 1;
            }
        }
    }

    // Retried with the same key, every checkout ends with one order, whatever the first
    // attempt's fate was; the pool reconnected on its own.
    let started = Instant::now();
    for (i, token) in shoppers.iter().enumerate() {
        let key = format!("cut-{i}");
        let first = loop {
            let r = app.checkout(token, &key).await;
            if r.status == 201 {
                break r;
            }
            assert_retryable(&r, "a retried checkout");
            assert!(started.elapsed() < Duration::from_secs(15), "no recovery");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let again = app.checkout(token, &key).await;
        again.assert_status(201);
        assert_eq!(again.body["id"], first.body["id"]);
        assert_eq!(again.header("idempotent-replayed"), Some("true"));
        let orders = app.orders(token).await;
        assert_eq!(orders.body["items"].as_array().map(Vec::len), Some(1), "shopper {i}: {}", orders.text);
    }
    let level = app.level("A").await;
    assert_eq!(level["reserved"].as_i64(), Some(shoppers.len() as i64), "{unknown} were unknown at first");
    app.assert_invariants().await;
}

#[tokio::test]
async fn a_server_that_no_longer_takes_writes_is_unavailable_not_an_error_and_not_ready() {
    let app = spawn_app().await;
    app.stocked("A", 100, 10).await;
    let token = app.session().await;
    app.add(&token, "A", 1).await.assert_status(200);
    app.get("/readyz", Auth::None).await.assert_status(200);

    // A demoted primary, as new connections see it: every transaction read-only.
    let mut admin = PgConnection::connect(&app.db_url).await.unwrap();
    let database: String = sqlx::query_scalar("SELECT current_database()").fetch_one(&mut admin).await.unwrap();
    sqlx::query(&format!("ALTER DATABASE {database} SET default_transaction_read_only = on"))
        .execute(&mut admin)
        .await
        .unwrap();
    cut_every_connection(&mut admin).await;

    // Some requests may still meet a cut connection; none may be a 500, and writes must fail.
    for _ in 0..3 {
        assert_retryable(&app.add(&token, "A", 1).await, "a cart change");
        assert_retryable(&app.checkout(&token, "read-only").await, "a checkout");
        assert_retryable(&app.adjust("A", 5, "restock").await, "an adjustment");
        assert_retryable(&app.get("/readyz", Auth::None).await, "/readyz");
    }
    app.get("/healthz", Auth::None).await.assert_status(200);

    // Promoted again: the same pool serves writes with no restart.
    sqlx::query(&format!("ALTER DATABASE {database} RESET default_transaction_read_only"))
        .execute(&mut admin)
        .await
        .unwrap();
    cut_every_connection(&mut admin).await;
    let started = Instant::now();
    loop {
        let r = app.add(&token, "A", 1).await;
        if r.status == 200 {
            break;
        }
        assert_retryable(&r, "a cart change after the promotion");
        assert!(started.elapsed() < Duration::from_secs(10), "no recovery");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.get("/readyz", Auth::None).await.assert_status(200);
    // A checkout worker may still hold a connection the promotion cut: the client retries
    // with its key, as after any 503.
    loop {
        let r = app.checkout(&token, "read-only").await;
        if r.status == 201 {
            break;
        }
        assert_retryable(&r, "a checkout after the promotion");
        assert!(started.elapsed() < Duration::from_secs(10), "no recovery");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(app.cart(&token).await.body["lines"], json!([]));
    app.assert_invariants().await;
}

#[tokio::test]
async fn a_server_refusing_connections_at_start_up_names_the_pool_sizing_rule() {
    let db_url = fresh_database().await;
    let Some(role_url) = data_only_role(&db_url, &[]).await else { return };
    let role = role_url.split("://").nth(1).and_then(|r| r.split('@').next()).unwrap().to_owned();
    let mut admin = PgConnection::connect(&db_url).await.unwrap();
    // A role's connection limit is refused with the same code as max_connections
    // (too_many_connections), and unlike max_connections it can be set per test.
    sqlx::query(&format!("ALTER ROLE {role} CONNECTION LIMIT 0")).execute(&mut admin).await.unwrap();
    let err = stockcart::startup::connect(&test_settings(&[]), &role_url).await.expect_err("a refusal");
    assert!(err.contains("refuses connections"), "{err}");
    assert!(err.contains("STOCKCART_POOL_SIZE") && err.contains("max_connections"), "{err}");
}
