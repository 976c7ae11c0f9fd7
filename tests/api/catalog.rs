//! Catalog: products, their listing, and the bad inputs of the admin endpoint.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn products_are_created_updated_read_and_listed() {
    let app = spawn_app().await;
    let created = app.put_product("TEE-1", "T-shirt", 1999).await;
    created.assert_status(201);
    assert_eq!(created.body["sku"], "TEE-1");
    assert_eq!(created.body["price"], json!({ "amount": 1999, "currency": "EUR" }));
    assert_eq!(created.body["available"], 0);

    let updated = app
        .admin(
            "PUT",
            "/v1/admin/products/TEE-1",
            Some(json!({ "name": "Tee", "price": { "amount": 2499, "currency": "EUR" }, "low_stock_threshold": 5 })),
        )
        .await;
    updated.assert_status(200);
    assert_eq!(updated.body["name"], "Tee");

    let read = app.get("/v1/products/TEE-1", Auth::None).await;
    read.assert_status(200);
    assert_eq!(read.body["name"], "Tee");
    assert_eq!(read.body["price"]["amount"], 2499);
    assert_eq!(read.body["available"], 0);
    // Renaming and repricing did not touch the stock level's version or ledger.
    let level = app.level("TEE-1").await;
    assert_eq!(level["version"], 0);
    assert_eq!(level["low_stock_threshold"], 5);

    app.get("/v1/products/NOPE", Auth::None).await.assert_problem(404, "unknown_sku");
    app.get("/v1/products/bad%20sku", Auth::None).await.assert_problem(404, "unknown_sku");
}

#[tokio::test]
async fn the_product_list_pages_by_sku() {
    let app = spawn_app().await;
    for sku in ["C", "A", "E", "B", "D"] {
        app.put_product(sku, sku, 100).await.assert_status(201);
    }
    let first = app.get("/v1/products?limit=2", Auth::None).await;
    first.assert_status(200);
    let skus = |r: &Reply| {
        r.body["items"].as_array().unwrap().iter().map(|p| p["sku"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
    };
    assert_eq!(skus(&first), ["A", "B"]);
    let next = first.body["next"].as_str().unwrap().to_owned();
    let second = app.get(&format!("/v1/products?limit=2&after={next}"), Auth::None).await;
    assert_eq!(skus(&second), ["C", "D"]);
    let third =
        app.get(&format!("/v1/products?limit=2&after={}", second.body["next"].as_str().unwrap()), Auth::None).await;
    assert_eq!(skus(&third), ["E"]);
    assert!(third.body["next"].is_null());
    assert_eq!(skus(&app.get("/v1/products", Auth::None).await).len(), 5);

    for bad in ["limit=0", "limit=201", "limit=ten", "after=%20not%20a%20cursor"] {
        app.get(&format!("/v1/products?{bad}"), Auth::None).await.assert_problem(400, "invalid_query");
    }
}

#[tokio::test]
async fn bad_product_input_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let put = |sku: &str, body: serde_json::Value| {
        let (app, path) = (&app, format!("/v1/admin/products/{sku}"));
        async move { app.admin("PUT", &path, Some(body)).await }
    };
    let price = json!({ "amount": 100, "currency": "EUR" });
    put("bad%20sku", json!({ "name": "x", "price": price })).await.assert_problem(422, "invalid_sku");
    put(&"x".repeat(65), json!({ "name": "x", "price": price })).await.assert_problem(422, "invalid_sku");
    put("OK-1", json!({ "price": price })).await.assert_problem(422, "invalid_name");
    put("OK-1", json!({ "name": "", "price": price })).await.assert_problem(422, "invalid_name");
    put("OK-1", json!({ "name": "x".repeat(201), "price": price })).await.assert_problem(422, "invalid_name");
    put("OK-1", json!({ "name": "x" })).await.assert_problem(422, "invalid_price");
    put("OK-1", json!({ "name": "x", "price": { "amount": -1, "currency": "EUR" } }))
        .await
        .assert_problem(422, "invalid_price");
    put("OK-1", json!({ "name": "x", "price": { "amount": "100", "currency": "EUR" } }))
        .await
        .assert_problem(422, "invalid_price");
    put("OK-1", json!({ "name": "x", "price": { "amount": 100, "currency": "USD" } }))
        .await
        .assert_problem(422, "currency_mismatch");
    put("OK-1", json!({ "name": "x", "price": price, "low_stock_threshold": -1 }))
        .await
        .assert_problem(422, "invalid_threshold");
    put("OK-1", json!({ "name": "x", "price": { "amount": 1e2, "currency": "EUR" } }))
        .await
        .assert_problem(422, "invalid_number");
    put("OK-1", json!({ "name": "x", "price": { "amount": u64::MAX, "currency": "EUR" } }))
        .await
        .assert_problem(422, "invalid_price");
    // Authentication comes first.
    let anonymous = app
        .request("PUT", "/v1/admin/products/OK-1", Auth::None, Some(&json!({ "name": "x", "price": price })), &[])
        .await;
    anonymous.assert_problem(401, "unauthorized");
    assert_eq!(anonymous.header("www-authenticate"), Some("Bearer"));
    app.request(
        "PUT",
        "/v1/admin/products/OK-1",
        Auth::Bearer("wrong-token"),
        Some(&json!({ "name": "x", "price": price })),
        &[],
    )
    .await
    .assert_problem(401, "unauthorized");
    let shopper = app.session().await;
    app.request(
        "PUT",
        "/v1/admin/products/OK-1",
        Auth::Bearer(&shopper),
        Some(&json!({ "name": "x", "price": price })),
        &[],
    )
    .await
    .assert_problem(403, "forbidden");
    app.get("/v1/products/OK-1", Auth::None).await.assert_problem(404, "unknown_sku");
    let list = app.get("/v1/products", Auth::None).await;
    assert_eq!(list.body["items"], json!([]));
}
