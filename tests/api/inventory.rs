//! Inventory: levels, adjustments, absolute sets, batches and the movement ledger.

use std::time::Instant;

use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
async fn a_new_product_has_an_empty_level_at_version_0() {
    let app = spawn_app().await;
    app.stocked("MUG", 800, 0).await;
    let level = app.get("/v1/admin/inventory/MUG", Auth::Admin).await;
    level.assert_status(200);
    assert_eq!(level.header("etag"), Some("\"0\""));
    assert_eq!(
        level.body,
        json!({ "sku": "MUG", "on_hand": 0, "reserved": 0, "available": 0, "version": 0, "low_stock_threshold": 0, "status": "out" })
    );
}

#[tokio::test]
async fn an_adjustment_bumps_the_version_and_answers_the_level() {
    let app = spawn_app().await;
    app.stocked("MUG", 800, 0).await;
    let r = app
        .admin(
            "POST",
            "/v1/admin/inventory/MUG/adjustments",
            Some(json!({ "delta": 10, "reason": "restock", "reference": "PO-1" })),
        )
        .await;
    r.assert_status(200);
    assert_eq!(r.header("etag"), Some("\"1\""));
    assert_eq!(r.body["on_hand"], 10);
    assert_eq!(r.body["available"], 10);
    assert_eq!(r.body["version"], 1);
    app.assert_invariants().await;
}

/// MUG after three adjustments: +10 (restock, PO-1), -3 (shrinkage), +1 (correction, sent with
/// If-Match), so at version 3 with 8 on hand.
async fn mug_with_three_movements() -> TestApp {
    let app = spawn_app().await;
    app.stocked("MUG", 800, 0).await;
    app.admin(
        "POST",
        "/v1/admin/inventory/MUG/adjustments",
        Some(json!({ "delta": 10, "reason": "restock", "reference": "PO-1" })),
    )
    .await
    .assert_status(200);
    app.adjust("MUG", -3, "shrinkage").await.assert_status(200);
    let fresh = app.adjust_if_match("MUG", 1, "correction", 2).await;
    fresh.assert_status(200);
    assert_eq!(fresh.body["on_hand"], 8);
    app
}

#[tokio::test]
async fn a_stale_if_match_changes_nothing_and_shows_the_current_level() {
    let app = spawn_app().await;
    app.stocked("MUG", 800, 10).await;
    app.adjust("MUG", -3, "shrinkage").await.assert_status(200);
    let stale = app.adjust_if_match("MUG", 1, "correction", 1).await;
    stale.assert_problem(412, "version_mismatch");
    assert_eq!(stale.body["current"]["version"], 2);
    assert_eq!(stale.header("etag"), Some("\"2\""));
    assert_eq!(app.level("MUG").await["on_hand"], 7);
}

#[tokio::test]
async fn on_hand_may_not_fall_below_reserved() {
    let app = mug_with_three_movements().await;
    let r = app.adjust("MUG", -9, "shrinkage").await;
    r.assert_problem(409, "insufficient_stock");
    assert_eq!(app.level("MUG").await["version"], 3);
}

#[tokio::test]
async fn the_ledger_has_one_row_per_version_summing_to_the_level() {
    let app = mug_with_three_movements().await;
    let ledger = app.movements("MUG", "").await;
    ledger.assert_status(200);
    let items = ledger.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(items[0]["kind"], "adjustment");
    assert_eq!(items[0]["reason"], "restock");
    assert_eq!(items[0]["reference"], "PO-1");
    assert_eq!(items[0]["delta_on_hand"], 10);
    assert_eq!(items[0]["delta_reserved"], 0);
    assert_eq!(items[0]["on_hand_after"], 10);
    assert_eq!(items[0]["reserved_after"], 0);
    assert_eq!(items[0]["version_after"], 1);
    assert!(items[0]["order_id"].is_null());
    assert!(items[0]["at"].as_str().unwrap().ends_with('Z'));
    let versions: Vec<i64> = items.iter().map(|m| m["version_after"].as_i64().unwrap()).collect();
    assert_eq!(versions, [1, 2, 3]);
    let sum: i64 = items.iter().map(|m| m["delta_on_hand"].as_i64().unwrap()).sum();
    assert_eq!(sum, 8);
    app.assert_invariants().await;
}

#[tokio::test]
async fn the_ledger_pages_by_cursor() {
    let app = mug_with_three_movements().await;
    let page = app.movements("MUG", "limit=2").await;
    assert_eq!(page.body["items"].as_array().unwrap().len(), 2);
    let rest = app.movements("MUG", &format!("limit=2&after={}", page.body["next"].as_str().unwrap())).await;
    assert_eq!(rest.body["items"][0]["version_after"], 3);
    assert!(rest.body["next"].is_null());
    app.movements("MUG", "after=xyz").await.assert_problem(400, "invalid_query");
}

#[tokio::test]
async fn an_absolute_set_requires_a_current_if_match() {
    let app = spawn_app().await;
    app.stocked("LAMP", 5000, 4).await;
    app.set_level("LAMP", 7, None).await.assert_problem(428, "precondition_required");
    let stale = app.set_level("LAMP", 7, Some(0)).await;
    stale.assert_problem(412, "version_mismatch");
    assert_eq!(stale.body["current"]["on_hand"], 4);
    let set = app.set_level("LAMP", 7, Some(1)).await;
    set.assert_status(200);
    assert_eq!(set.body["on_hand"], 7);
    assert_eq!(set.body["version"], 2);
    let ledger = app.movements("LAMP", "").await;
    assert_eq!(ledger.body["items"][1]["kind"], "set");
    assert_eq!(ledger.body["items"][1]["delta_on_hand"], 3);
    app.assert_invariants().await;
}

#[tokio::test]
async fn stock_cannot_fall_below_what_open_orders_hold() {
    let app = spawn_app().await;
    app.stocked("LAMP", 5000, 4).await;
    app.set_level("LAMP", 7, Some(1)).await.assert_status(200);
    let token = app.session().await;
    app.add(&token, "LAMP", 5).await.assert_status(200);
    app.checkout(&token, "order-1").await.assert_status(201);
    app.set_level("LAMP", 4, Some(3)).await.assert_problem(409, "insufficient_stock");
    app.adjust("LAMP", -3, "shrinkage").await.assert_problem(409, "insufficient_stock");
    assert_eq!(app.level("LAMP").await["version"], 3);
    app.assert_invariants().await;
}

#[tokio::test]
async fn an_absolute_set_refuses_a_negative_level_or_an_unknown_sku() {
    let app = spawn_app().await;
    app.stocked("LAMP", 5000, 4).await;
    app.set_level("LAMP", -1, Some(1)).await.assert_problem(422, "invalid_on_hand");
    app.set_level("NOPE", 1, Some(0)).await.assert_problem(404, "unknown_sku");
    assert_eq!(app.level("LAMP").await["version"], 1);
}

/// An adjustment of PEN (5 in stock, version 1) with this body; asserts nothing changed after.
async fn adjust_pen(app: &TestApp, sku: &str, body: Value) -> Reply {
    let reply = app.admin("POST", &format!("/v1/admin/inventory/{sku}/adjustments"), Some(body)).await;
    let level = app.level("PEN").await;
    assert_eq!((level["on_hand"].as_i64(), level["version"].as_i64()), (Some(5), Some(1)));
    reply
}

async fn pen() -> TestApp {
    let app = spawn_app().await;
    app.stocked("PEN", 100, 5).await;
    app
}

#[tokio::test]
async fn adjusting_an_unknown_sku_is_not_found() {
    let app = pen().await;
    adjust_pen(&app, "NOPE", json!({ "delta": 1, "reason": "restock" })).await.assert_problem(404, "unknown_sku");
    adjust_pen(&app, "bad%20sku", json!({ "delta": 1, "reason": "restock" })).await.assert_problem(404, "unknown_sku");
}

#[tokio::test]
async fn a_delta_is_a_nonzero_integer_within_bounds() {
    let app = pen().await;
    let refused = |body: Value, code: &'static str| {
        let app = &app;
        async move { adjust_pen(app, "PEN", body).await.assert_problem(422, code) }
    };
    refused(json!({ "delta": 0, "reason": "restock" }), "invalid_delta").await;
    refused(json!({ "reason": "restock" }), "invalid_delta").await;
    refused(json!({ "delta": "5", "reason": "restock" }), "invalid_delta").await;
    refused(json!({ "delta": 1.5, "reason": "restock" }), "invalid_number").await;
    refused(json!({ "delta": 9_223_372_036_854_775_807i64, "reason": "restock" }), "invalid_delta").await;
    refused(json!({ "delta": u64::MAX, "reason": "restock" }), "invalid_delta").await;
    let raw = app
        .client
        .post(format!("{}/v1/admin/inventory/PEN/adjustments", app.address))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body("{\"delta\": 100000000000000000000000000, \"reason\": \"restock\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 422);
}

#[tokio::test]
async fn a_reason_is_from_the_list_and_a_reference_at_most_200_characters() {
    let app = pen().await;
    adjust_pen(&app, "PEN", json!({ "delta": 1, "reason": "gift" })).await.assert_problem(422, "invalid_reason");
    adjust_pen(&app, "PEN", json!({ "delta": 1 })).await.assert_problem(422, "invalid_reason");
    adjust_pen(&app, "PEN", json!({ "delta": 1, "reason": "restock", "reference": "x".repeat(201) }))
        .await
        .assert_problem(422, "invalid_reference");
}

#[tokio::test]
async fn inventory_is_for_the_admin_only() {
    let app = pen().await;
    app.get("/v1/admin/inventory/PEN", Auth::None).await.assert_problem(401, "unauthorized");
    let shopper = app.session().await;
    app.get("/v1/admin/inventory/PEN", Auth::Bearer(&shopper)).await.assert_problem(403, "forbidden");
    app.request(
        "POST",
        "/v1/admin/inventory/PEN/adjustments",
        Auth::Bearer(&shopper),
        Some(&json!({ "delta": 1, "reason": "restock" })),
        &[],
    )
    .await
    .assert_problem(403, "forbidden");
    let level = app.level("PEN").await;
    assert_eq!((level["on_hand"].as_i64(), level["version"].as_i64()), (Some(5), Some(1)));
}

fn batch_of(n: usize, skus: usize, delta: i64) -> Vec<Value> {
    (0..n).map(|i| json!({ "sku": format!("B-{:05}", i % skus), "delta": delta, "reason": "restock" })).collect()
}

async fn seed_skus(app: &TestApp, n: usize) {
    let adjustments: Vec<Value> =
        (0..n).map(|i| format!("B-{i:05}")).collect::<Vec<_>>().into_iter().map(|s| json!(s)).collect();
    // Products are created directly: 10,000 PUTs would only measure HTTP.
    let skus: Vec<String> = adjustments.iter().map(|s| s.as_str().unwrap().to_owned()).collect();
    sqlx::query("INSERT INTO products (sku, name, price_amount, price_currency) SELECT s, s, 100, 'EUR' FROM unnest($1::text[]) s")
        .bind(&skus)
        .execute(&app.db)
        .await
        .unwrap();
    sqlx::query("INSERT INTO stock_levels (sku, on_hand) SELECT s, 0 FROM unnest($1::text[]) s")
        .bind(&skus)
        .execute(&app.db)
        .await
        .unwrap();
}

async fn ledger_rows(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM stock_movements").fetch_one(&app.db).await.unwrap()
}

#[tokio::test]
async fn a_batch_of_ten_thousand_is_all_or_nothing_and_fast() {
    let app = spawn_app().await;
    seed_skus(&app, 10_000).await;

    // A bad line at the very end: nothing at all changes, and the line is named.
    let mut lines = batch_of(10_000, 10_000, 5);
    lines[9_999]["reason"] = json!("gift");
    lines[5]["delta"] = json!(0);
    let r = app.admin("POST", "/v1/admin/inventory/batch", Some(json!({ "adjustments": lines }))).await;
    r.assert_problem(422, "invalid_batch");
    let errors = r.body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2);
    assert_eq!(
        errors[0],
        json!({ "index": 5, "sku": "B-00005", "code": "invalid_delta", "detail": errors[0]["detail"] })
    );
    assert_eq!(errors[1]["index"], 9_999);
    assert_eq!(errors[1]["code"], "invalid_reason");
    assert_eq!(ledger_rows(&app).await, 0);

    // An unknown SKU at the end is named too.
    let mut lines = batch_of(10_000, 10_000, 5);
    lines[9_999]["sku"] = json!("NOT-THERE");
    let r = app.admin("POST", "/v1/admin/inventory/batch", Some(json!({ "adjustments": lines }))).await;
    assert_eq!(r.status.as_u16(), 422, "{}", r.text);
    assert_eq!(r.body["errors"], json!([{ "index": 9_999, "sku": "NOT-THERE", "code": "unknown_sku" }]));
    assert_eq!(ledger_rows(&app).await, 0);

    // The whole batch, timed.
    let lines = batch_of(10_000, 10_000, 5);
    let started = Instant::now();
    let r = app.admin("POST", "/v1/admin/inventory/batch", Some(json!({ "adjustments": lines }))).await;
    let elapsed = started.elapsed();
    r.assert_status(200);
    assert_eq!(r.body["applied"], 10_000);
    eprintln!("batch of 10,000 adjustments over 10,000 SKUs applied in {elapsed:?} (debug build, HTTP included)");
    assert_eq!(ledger_rows(&app).await, 10_000);

    // Too much taken from one line: 409, nothing changed.
    let mut lines = batch_of(10_000, 10_000, -1);
    lines[9_999]["delta"] = json!(-6);
    let r = app.admin("POST", "/v1/admin/inventory/batch", Some(json!({ "adjustments": lines }))).await;
    r.assert_problem(409, "insufficient_stock");
    assert_eq!(r.body["errors"], json!([{ "index": 9_999, "sku": "B-09999", "code": "insufficient_stock" }]));
    assert_eq!(ledger_rows(&app).await, 10_000);

    // Repeated SKUs in one batch: one version and one movement per line, in order.
    let lines = batch_of(30, 3, 2);
    app.admin("POST", "/v1/admin/inventory/batch", Some(json!({ "adjustments": lines }))).await.assert_status(200);
    let level = app.level("B-00001").await;
    assert_eq!((level["on_hand"].as_i64(), level["version"].as_i64()), (Some(25), Some(11)));

    let too_many = batch_of(10_001, 10, 1);
    app.admin("POST", "/v1/admin/inventory/batch", Some(json!({ "adjustments": too_many })))
        .await
        .assert_problem(422, "invalid_batch");
    app.admin("POST", "/v1/admin/inventory/batch", Some(json!({ "adjustments": [] })))
        .await
        .assert_problem(422, "invalid_batch");
    app.admin("POST", "/v1/admin/inventory/batch", Some(json!({}))).await.assert_problem(422, "invalid_batch");
    app.assert_invariants().await;
}

/// Batches touching the same SKUs in opposite orders, at once, on two replicas: the stock
/// module locks rows in SKU order, so none deadlocks and all apply.
#[tokio::test]
async fn concurrent_batches_do_not_deadlock() {
    let apps = spawn_replicas(2, &[]).await;
    seed_skus(&apps[0], 50).await;
    let forward = batch_of(50, 50, 1);
    let backward: Vec<Value> = forward.iter().rev().cloned().collect();
    let mut requests = Vec::new();
    for i in 0..16 {
        let app = &apps[i % 2];
        let lines = if i % 2 == 0 { forward.clone() } else { backward.clone() };
        requests.push(app.admin("POST", "/v1/admin/inventory/batch", Some(json!({ "adjustments": lines }))));
    }
    for r in futures_util::future::join_all(requests).await {
        r.assert_status(200);
    }
    let level = apps[1].level("B-00007").await;
    assert_eq!((level["on_hand"].as_i64(), level["version"].as_i64()), (Some(16), Some(16)));
    apps[0].assert_invariants().await;
}
