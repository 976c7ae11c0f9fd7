//! Checkout and the order lifecycle, on one instance. Cross-replica races are in concurrency.rs.

use std::{str::FromStr, time::Duration};

use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::*;

/// A shop with TEE at 19.99 (10 in stock) and CAP at 15.00 (5), and a shopper whose cart holds
/// two TEE and one CAP.
async fn a_full_cart() -> (TestApp, String) {
    let app = spawn_app().await;
    app.stocked("TEE", 1999, 10).await;
    app.stocked("CAP", 1500, 5).await;
    let token = app.session().await;
    app.add(&token, "TEE", 2).await.assert_status(200);
    app.add(&token, "CAP", 1).await.assert_status(200);
    (app, token)
}

#[tokio::test]
async fn checkout_requires_an_idempotency_key_of_1_to_255_characters() {
    let (app, token) = a_full_cart().await;
    app.request("POST", "/v1/checkout", Auth::Bearer(&token), None, &[])
        .await
        .assert_problem(400, "idempotency_key_required");
    let long_key = "k".repeat(256);
    app.checkout(&token, &long_key).await.assert_problem(400, "invalid_idempotency_key");
}

#[tokio::test]
async fn checkout_reserves_every_line_and_empties_the_cart() {
    let (app, token) = a_full_cart().await;
    let order = app.checkout(&token, "checkout-1").await;
    order.assert_status(201);
    assert_eq!(order.body["status"], "awaiting_payment");
    assert_eq!(order.body["total"], json!({ "amount": 5498, "currency": "EUR" }));
    assert_eq!(order.body["lines"].as_array().unwrap().len(), 2);
    assert!(order.body["expires_at"].as_str().unwrap() > order.body["created_at"].as_str().unwrap());
    let id = order.body["id"].as_str().unwrap().to_owned();
    assert!(order.header("idempotent-replayed").is_none());

    let level = app.level("TEE").await;
    assert_eq!(
        (level["on_hand"].as_i64(), level["reserved"].as_i64(), level["available"].as_i64()),
        (Some(10), Some(2), Some(8))
    );
    let ledger = app.get("/v1/admin/inventory/TEE/movements", Auth::Admin).await;
    let last = ledger.body["items"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["kind"], "reservation");
    assert_eq!(last["delta_reserved"], 2);
    assert_eq!(last["order_id"], id.as_str());
    assert_eq!(app.cart(&token).await.body["lines"], json!([]));
    assert_eq!(app.get("/v1/products/TEE", Auth::None).await.body["available"], 8);

    let events: Vec<String> =
        sqlx::query_scalar("SELECT topic FROM outbox_events ORDER BY id").fetch_all(&app.db).await.unwrap();
    assert!(events.contains(&"order.placed".to_owned()));
    assert_eq!(events.iter().filter(|t| *t == "stock.changed").count(), 4);
    app.assert_invariants().await;
}

#[tokio::test]
async fn an_order_keeps_the_prices_it_was_placed_at() {
    let (app, token) = a_full_cart().await;
    let order = app.checkout(&token, "checkout-1").await;
    order.assert_status(201);
    app.put_product("TEE", "Tee", 9999).await.assert_status(200);
    let read = app.order(&token, order.body["id"].as_str().unwrap()).await;
    assert_eq!(read.body["lines"][1]["unit_price"]["amount"], 1999);
}

#[tokio::test]
async fn the_same_key_replays_the_first_answer_exactly() {
    let (app, token) = a_full_cart().await;
    let order = app.checkout(&token, "checkout-1").await;
    order.assert_status(201);
    let replay = app.checkout(&token, "checkout-1").await;
    replay.assert_status(201);
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(replay.body, order.body);
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM orders").fetch_one(&app.db).await.unwrap();
    assert_eq!(orders, 1);
    // A new key is a new checkout, of what is now an empty cart.
    app.checkout(&token, "checkout-2").await.assert_problem(422, "empty_cart");
    app.assert_invariants().await;
}

#[tokio::test]
async fn an_idempotency_key_is_scoped_to_its_session() {
    let (app, token) = a_full_cart().await;
    app.checkout(&token, "checkout-1").await.assert_status(201);
    let other = app.session().await;
    app.checkout(&other, "checkout-1").await.assert_problem(422, "empty_cart");
}

#[tokio::test]
async fn a_shortage_changes_nothing_and_names_every_short_line() {
    let app = spawn_app().await;
    app.stocked("A", 100, 5).await;
    app.stocked("B", 100, 5).await;
    app.stocked("C", 100, 5).await;
    let token = app.session().await;
    app.add(&token, "A", 3).await.assert_status(200);
    app.add(&token, "B", 4).await.assert_status(200);
    app.add(&token, "C", 5).await.assert_status(200);
    // Stock moves after the cart was filled.
    app.adjust("B", -2, "shrinkage").await.assert_status(200);
    app.adjust("C", -4, "shrinkage").await.assert_status(200);
    let cart_before = app.cart(&token).await.body;

    let r = app.checkout(&token, "short-1").await;
    r.assert_problem(409, "insufficient_stock");
    assert_eq!(
        r.body["shortages"],
        json!([{ "sku": "B", "requested": 4, "available": 3 }, { "sku": "C", "requested": 5, "available": 1 }])
    );
    assert_eq!(app.cart(&token).await.body, cart_before);
    assert_eq!(app.level("A").await["reserved"], 0);
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM orders").fetch_one(&app.db).await.unwrap();
    assert_eq!(orders, 0);
    // The refusal is the key's answer, replayed as such.
    let again = app.checkout(&token, "short-1").await;
    again.assert_problem(409, "insufficient_stock");
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body, r.body);
    app.assert_invariants().await;
}

#[tokio::test]
async fn pay_ship_and_cancel_move_stock_correctly() {
    let app = spawn_app().await;
    app.stocked("TEE", 1999, 10).await;
    let buy = |key: &'static str, quantity: i64| {
        let app = &app;
        async move {
            let token = app.session().await;
            app.add(&token, "TEE", quantity).await.assert_status(200);
            let order = app.checkout(&token, key).await;
            order.assert_status(201);
            (token, order.body["id"].as_str().unwrap().to_owned())
        }
    };
    let (alice, first) = buy("k1", 2).await;
    let (_, second) = buy("k2", 3).await;
    assert_eq!(app.level("TEE").await["reserved"], 5);

    let pay = |id: &str, body: serde_json::Value| {
        let (app, path) = (&app, format!("/v1/admin/orders/{id}/payment"));
        async move { app.admin("POST", &path, Some(body)).await }
    };
    pay(&first, json!({})).await.assert_problem(422, "invalid_reference");
    app.admin("POST", &format!("/v1/admin/orders/{first}/ship"), None).await.assert_problem(409, "invalid_transition");
    let paid = pay(&first, json!({ "reference": "psp-123" })).await;
    paid.assert_status(200);
    assert_eq!(paid.body["status"], "paid");
    pay(&first, json!({ "reference": "psp-123" })).await.assert_problem(409, "invalid_transition");
    let shipped = app.admin("POST", &format!("/v1/admin/orders/{first}/ship"), None).await;
    shipped.assert_status(200);
    assert_eq!(shipped.body["status"], "shipped");
    let level = app.level("TEE").await;
    assert_eq!((level["on_hand"].as_i64(), level["reserved"].as_i64()), (Some(8), Some(3)));
    app.request("POST", &format!("/v1/orders/{first}/cancel"), Auth::Bearer(&alice), None, &[])
        .await
        .assert_problem(409, "invalid_transition");

    let cancelled = app.request("POST", &format!("/v1/orders/{second}/cancel"), Auth::Admin, None, &[]).await;
    cancelled.assert_problem(401, "unauthorized");
    let owner_token = {
        // The second order's session: find it through the admin list, then cancel as its owner.
        let list = app.get("/v1/admin/orders?status=awaiting_payment", Auth::Admin).await;
        assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
        list.body["items"][0]["id"].as_str().unwrap().to_owned()
    };
    assert_eq!(owner_token, second);
    let session_id: uuid::Uuid = sqlx::query_scalar("SELECT session_id FROM orders WHERE id = $1::uuid")
        .bind(&second)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(!session_id.is_nil());

    let ledger = app.get("/v1/admin/inventory/TEE/movements", Auth::Admin).await;
    let kinds: Vec<&str> =
        ledger.body["items"].as_array().unwrap().iter().map(|m| m["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["adjustment", "reservation", "reservation", "shipment"]);

    let all = app.get("/v1/admin/orders", Auth::Admin).await;
    let ids: Vec<&str> = all.body["items"].as_array().unwrap().iter().map(|o| o["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [second.as_str(), first.as_str()], "newest first");
    app.get("/v1/admin/orders?status=lost", Auth::Admin).await.assert_problem(400, "invalid_query");
    app.get("/v1/admin/orders?after=nonsense", Auth::Admin).await.assert_problem(400, "invalid_query");
    app.admin("POST", "/v1/admin/orders/not-an-id/ship", None).await.assert_problem(404, "unknown_order");
    app.admin("POST", &format!("/v1/admin/orders/{}/ship", uuid::Uuid::new_v4()), None)
        .await
        .assert_problem(404, "unknown_order");
    app.assert_invariants().await;
}

#[tokio::test]
async fn shoppers_cancel_their_orders_and_list_them() {
    let app = spawn_app().await;
    app.stocked("TEE", 1999, 10).await;
    let token = app.session().await;
    let mut ids = Vec::new();
    for key in ["a", "b", "c"] {
        app.add(&token, "TEE", 1).await.assert_status(200);
        let order = app.checkout(&token, key).await;
        order.assert_status(201);
        ids.push(order.body["id"].as_str().unwrap().to_owned());
    }
    let cancelled =
        app.request("POST", &format!("/v1/orders/{}/cancel", ids[0]), Auth::Bearer(&token), None, &[]).await;
    cancelled.assert_status(200);
    assert_eq!(cancelled.body["status"], "cancelled");
    let again = app.request("POST", &format!("/v1/orders/{}/cancel", ids[0]), Auth::Bearer(&token), None, &[]).await;
    again.assert_status(200);
    assert_eq!(app.level("TEE").await["reserved"], 2);
    // A paid order can still be cancelled, and releases its stock.
    app.admin("POST", &format!("/v1/admin/orders/{}/payment", ids[1]), Some(json!({ "reference": "p" })))
        .await
        .assert_status(200);
    app.request("POST", &format!("/v1/orders/{}/cancel", ids[1]), Auth::Bearer(&token), None, &[])
        .await
        .assert_status(200);
    assert_eq!(app.level("TEE").await["reserved"], 1);

    let page = app.get("/v1/orders?limit=2", Auth::Bearer(&token)).await;
    let first: Vec<&str> = page.body["items"].as_array().unwrap().iter().map(|o| o["id"].as_str().unwrap()).collect();
    assert_eq!(first, [ids[2].as_str(), ids[1].as_str()]);
    let rest = app
        .get(&format!("/v1/orders?limit=2&after={}", page.body["next"].as_str().unwrap()), Auth::Bearer(&token))
        .await;
    assert_eq!(rest.body["items"][0]["id"], ids[0].as_str());
    assert!(rest.body["next"].is_null());
    app.assert_invariants().await;
}

#[tokio::test]
async fn unpaid_orders_expire_and_release_their_stock() {
    let app = spawn_on(
        &fresh_database().await,
        &[("STOCKCART_PAYMENT_TIMEOUT", "1s"), ("STOCKCART_EXPIRY_INTERVAL", "200ms")],
    )
    .await;
    app.stocked("TEE", 1999, 10).await;
    let token = app.session().await;
    app.add(&token, "TEE", 4).await.assert_status(200);
    let order = app.checkout(&token, "late").await;
    let id = order.body["id"].as_str().unwrap().to_owned();
    assert_eq!(app.level("TEE").await["reserved"], 4);
    tokio::time::sleep(Duration::from_millis(1800)).await;
    let read = app.get(&format!("/v1/orders/{id}"), Auth::Bearer(&token)).await;
    assert_eq!(read.body["status"], "expired");
    assert_eq!(app.level("TEE").await["reserved"], 0);
    app.admin("POST", &format!("/v1/admin/orders/{id}/payment"), Some(json!({ "reference": "late" })))
        .await
        .assert_problem(409, "invalid_transition");
    app.request("POST", &format!("/v1/orders/{id}/cancel"), Auth::Bearer(&token), None, &[])
        .await
        .assert_problem(409, "invalid_transition");
    let releases: i64 = sqlx::query_scalar("SELECT count(*) FROM stock_movements WHERE kind = 'release'")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(releases, 1);
    let expired_events: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox_events WHERE topic = 'order.expired'")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(expired_events, 1);
    app.assert_invariants().await;
}

#[tokio::test]
async fn the_invariant_checker_catches_a_corrupted_database() {
    let app = spawn_app().await;
    app.stocked("TEE", 1999, 10).await;
    let token = app.session().await;
    app.add(&token, "TEE", 2).await.assert_status(200);
    app.checkout(&token, "k").await.assert_status(201);
    app.assert_invariants().await;
    let report = app.get("/v1/admin/invariants", Auth::Admin).await;
    assert_eq!(report.body["ok"], true);

    // Reserved no longer matches open orders, nor the ledger.
    sqlx::query("UPDATE stock_levels SET reserved = reserved + 1 WHERE sku = 'TEE'").execute(&app.db).await.unwrap();
    let report = stockcart::invariants::check(&app.db).await.unwrap();
    assert!(!report.ok());
    assert!(report.violations.iter().any(|v| v.contains("open orders hold 2")), "{:?}", report.violations);
    assert!(report.violations.iter().any(|v| v.contains("ledger sums")), "{:?}", report.violations);
    let api = app.get("/v1/admin/invariants", Auth::Admin).await;
    assert_eq!(api.body["ok"], false);

    // The CLI exits non-zero too.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_stockcart"))
        .arg("check-invariants")
        .env("DATABASE_URL", &app.db_url)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("INVARIANTS VIOLATED"));
    // The ledger is append-only.
    assert!(sqlx::query("DELETE FROM stock_movements").execute(&app.db).await.is_err());

    // An idempotency key whose order is gone: its foreign key (checked at commit, since the key
    // is written before its order) must be switched off to corrupt it.
    sqlx::query("ALTER TABLE idempotency_keys DISABLE TRIGGER ALL").execute(&app.db).await.unwrap();
    sqlx::query("UPDATE idempotency_keys SET order_id = gen_random_uuid()").execute(&app.db).await.unwrap();
    let report = stockcart::invariants::check(&app.db).await.unwrap();
    assert!(
        report.violations.iter().any(|v| v.contains("1 idempotency keys name an order")),
        "{:?}",
        report.violations
    );

    // References with no foreign key (V18), written around their writers.
    let token = app.session().await;
    app.add(&token, "TEE", 1).await.assert_status(200);
    sqlx::query("INSERT INTO cart_lines (cart_id, sku, quantity) SELECT cart_id, 'GONE', 1 FROM cart_lines LIMIT 1")
        .execute(&app.db)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO order_lines (order_id, position, sku, name, quantity, unit_price, line_total)
         VALUES (gen_random_uuid(), 0, 'TEE', 'Tee', 1, 1999, 1999)",
    )
    .execute(&app.db)
    .await
    .unwrap();
    let report = stockcart::invariants::check(&app.db).await.unwrap();
    assert!(report.violations.iter().any(|v| v == "1 cart lines name no product"), "{:?}", report.violations);
    assert!(
        report.violations.iter().any(|v| v == "1 order lines name no order or no stock level"),
        "{:?}",
        report.violations
    );
}

fn checkout_request(token: &str, key: &str) -> stockcart::checkout::CheckoutRequest {
    stockcart::checkout::CheckoutRequest { token: stockcart::domain::TokenHash::of(token), key: key.into() }
}

/// What a coalesced batch must decide exactly as if its checkouts had run one after another.
#[tokio::test]
async fn a_coalesced_batch_decides_like_checkouts_in_sequence() {
    let app = spawn_app().await;
    app.stocked("FEW", 1000, 5).await;
    app.stocked("MANY", 1000, 100).await;
    // Two devices of one customer share a cart; two other shoppers compete for FEW.
    let phone = app.session().await;
    let laptop = app.session().await;
    for token in [&phone, &laptop] {
        app.attach(token, "c-1").await.assert_status(200);
    }
    app.add(&phone, "MANY", 2).await.assert_status(200);
    let (ann, bob) = (app.session().await, app.session().await);
    app.add(&ann, "FEW", 3).await.assert_status(200);
    app.add(&bob, "FEW", 3).await.assert_status(200);
    app.add(&bob, "MANY", 1).await.assert_status(200);

    let batch = vec![
        checkout_request(&phone, "p"),
        checkout_request(&laptop, "l"),
        checkout_request(&ann, "a"),
        checkout_request(&bob, "b"),
        checkout_request(&phone, "p"),
        checkout_request("sc_not-a-session", "x"),
    ];
    let answers = stockcart::checkout::place_batch(&mut app.db.acquire().await.unwrap(), &test_settings(&[]), &batch)
        .await
        .unwrap();
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [201, 422, 201, 409, 201, 401]);
    assert_eq!(answers[5].body["code"], "unauthorized");
    assert_eq!(answers[1].body["code"], "empty_cart");
    assert_eq!(answers[3].body["shortages"], json!([{ "sku": "FEW", "requested": 3, "available": 2 }]));
    assert!(answers[4].replayed && !answers[0].replayed);
    assert_eq!(answers[4].body, answers[0].body);
    // Bob's refused order reserved nothing, not even its MANY line, and kept his cart.
    assert_eq!(app.level("MANY").await["reserved"], 2);
    assert_eq!(app.cart(&bob).await.body["lines"].as_array().unwrap().len(), 2);
    // Each key's answer is stored: a later replay over HTTP gives the same.
    let replay = app.checkout(&bob, "b").await;
    replay.assert_problem(409, "insufficient_stock");
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(replay.body, answers[3].body);
    let replay = app.checkout(&laptop, "l").await;
    replay.assert_problem(422, "empty_cart");
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    let replay = app.checkout(&phone, "p").await;
    replay.assert_status(201);
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(replay.body, answers[0].body);
    // Only the keys whose checkout placed an order name one.
    let naming: i64 = sqlx::query_scalar("SELECT count(*) FROM idempotency_keys WHERE order_id IS NOT NULL")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(naming, 2);
    app.assert_invariants().await;
}

/// A duplicate still in flight elsewhere blocks only itself: a batch that meets its key fails
/// as a whole and is answered one checkout at a time, so only the duplicate hears
/// `idempotency_in_progress`.
#[tokio::test]
async fn a_key_held_by_a_checkout_in_flight_blocks_only_its_duplicate() {
    let app = spawn_app().await;
    app.stocked("TEE", 1000, 10).await;
    let (ann, bob, cat) = (app.session().await, app.session().await, app.session().await);
    for token in [&ann, &bob, &cat] {
        app.add(token, "TEE", 1).await.assert_status(200);
    }
    // Ann's key, claimed by a checkout that has not committed yet.
    let mut in_flight = app.db.begin().await.unwrap();
    sqlx::query("INSERT INTO idempotency_keys (session_id, key) SELECT id, 'a' FROM sessions WHERE token_hash = $1")
        .bind(stockcart::domain::TokenHash::of(&ann).0)
        .execute(&mut *in_flight)
        .await
        .unwrap();
    let options = PgConnectOptions::from_str(&app.db_url).unwrap().options([("lock_timeout", "300ms")]);
    let pool = PgPoolOptions::new().max_connections(4).connect_with(options).await.unwrap();
    let settings = test_settings(&[]);

    let batch = [checkout_request(&ann, "a"), checkout_request(&bob, "b")];
    assert!(stockcart::checkout::place_batch(&mut pool.acquire().await.unwrap(), &settings, &batch).await.is_err());
    assert_eq!(app.level("TEE").await["reserved"], 0);

    // Through the queue, batched or not: Ann is told to retry, Cat's order is placed.
    let checkouts = stockcart::checkout::Checkouts::start(pool.clone(), std::sync::Arc::new(settings), 1, 64);
    let (a, c) =
        tokio::join!(checkouts.place(checkout_request(&ann, "a")), checkouts.place(checkout_request(&cat, "c")));
    let (a, c) = (a.unwrap(), c.unwrap());
    assert_eq!((a.status, a.body["code"].as_str()), (409, Some("idempotency_in_progress")));
    assert_eq!(c.status, 201);

    // Once the other checkout is gone, Ann's key is hers.
    in_flight.rollback().await.unwrap();
    assert_eq!(checkouts.place(checkout_request(&ann, "a")).await.unwrap().status, 201);
    assert_eq!(app.level("TEE").await["reserved"], 2);
    app.assert_invariants().await;
}

/// During a database outage checkouts fail as fast as any other request: every one answers
/// 503 `database_unavailable` with Retry-After within the request timeout, none waiting behind
/// the others' connection timeouts.
#[tokio::test]
async fn checkouts_fail_fast_and_together_when_the_database_stops() {
    let (pg, child) = throwaway_pg();
    let url = pg.url("postgres");
    stockcart::migrate::run(&url).await.unwrap();
    let app = spawn_on(&url, &[("STOCKCART_REQUEST_TIMEOUT", "5s")]).await;
    app.stocked("TEE", 1000, 100).await;
    let tokens = futures_util::future::join_all((0..20).map(|_| async {
        let token = app.session().await;
        app.add(&token, "TEE", 1).await.assert_status(200);
        token
    }))
    .await;

    stockcart::embedded_pg::stop_ephemeral(child);
    let (app, started) = (&app, std::time::Instant::now());
    let replies = futures_util::future::join_all(tokens.iter().enumerate().map(|(i, token)| async move {
        let reply = app.checkout(token, &format!("k{i}")).await;
        (reply, started.elapsed())
    }))
    .await;
    for (reply, took) in replies {
        reply.assert_problem(503, "database_unavailable");
        assert!(reply.header("retry-after").is_some(), "{:?}", reply.headers);
        assert!(took < Duration::from_secs(6), "a checkout answered after {took:?}");
    }
}
