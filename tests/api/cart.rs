//! The cart: versions, If-Match, the add/set/remove rules and bad inputs.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn a_cart_is_built_line_by_line_with_versions() {
    let app = spawn_app().await;
    app.stocked("TEE", 1999, 10).await;
    app.stocked("CAP", 1500, 3).await;
    let token = app.session().await;

    let empty = app.cart(&token).await;
    empty.assert_status(200);
    assert_eq!(empty.header("etag"), Some("\"0\""));
    assert_eq!(empty.body["lines"], json!([]));
    assert_eq!(empty.body["subtotal"], json!({ "amount": 0, "currency": "EUR" }));
    assert_eq!(empty.body["item_count"], 0);

    let r = app.add(&token, "TEE", 2).await;
    r.assert_status(200);
    assert_eq!(r.body["version"], 1);
    assert_eq!(r.header("etag"), Some("\"1\""));
    let r = app.add(&token, "TEE", 1).await;
    assert_eq!(r.body["lines"][0]["quantity"], 3);
    let r = app.add(&token, "CAP", 1).await;
    assert_eq!(r.body["version"], 3);
    assert_eq!(
        r.body["lines"],
        json!([
            { "sku": "TEE", "name": "Product TEE", "quantity": 3, "unit_price": { "amount": 1999, "currency": "EUR" }, "line_total": { "amount": 5997, "currency": "EUR" } },
            { "sku": "CAP", "name": "Product CAP", "quantity": 1, "unit_price": { "amount": 1500, "currency": "EUR" }, "line_total": { "amount": 1500, "currency": "EUR" } },
        ])
    );
    assert_eq!(r.body["item_count"], 4);
    assert_eq!(r.body["subtotal"]["amount"], 7497);

    let set =
        app.request("PUT", "/v1/cart/items/TEE", Auth::Bearer(&token), Some(&json!({ "quantity": 5 })), &[]).await;
    set.assert_status(200);
    assert_eq!(set.body["lines"][0]["quantity"], 5);
    let zero =
        app.request("PUT", "/v1/cart/items/CAP", Auth::Bearer(&token), Some(&json!({ "quantity": 0 })), &[]).await;
    assert_eq!(zero.body["lines"].as_array().unwrap().len(), 1);
    let removed = app.request("DELETE", "/v1/cart/items/TEE", Auth::Bearer(&token), None, &[]).await;
    removed.assert_status(200);
    assert_eq!(removed.body["lines"], json!([]));
    assert_eq!(removed.body["version"], 6);
    app.add(&token, "CAP", 2).await.assert_status(200);
    let cleared = app.request("DELETE", "/v1/cart", Auth::Bearer(&token), None, &[]).await;
    cleared.assert_status(200);
    assert_eq!(cleared.body["lines"], json!([]));
    assert_eq!(cleared.body["version"], 8);
    assert_eq!(app.cart(&token).await.body, cleared.body);
}

#[tokio::test]
async fn if_match_guards_every_cart_change() {
    let app = spawn_app().await;
    app.stocked("TEE", 1999, 10).await;
    let token = app.session().await;
    app.add(&token, "TEE", 1).await.assert_status(200);
    let stale = app
        .request(
            "POST",
            "/v1/cart/items",
            Auth::Bearer(&token),
            Some(&json!({ "sku": "TEE", "quantity": 1 })),
            &[("If-Match", "\"0\"")],
        )
        .await;
    stale.assert_problem(412, "version_mismatch");
    assert_eq!(stale.body["current"]["version"], 1);
    assert_eq!(stale.body["current"]["lines"][0]["quantity"], 1);
    assert_eq!(stale.header("etag"), Some("\"1\""));
    app.request("DELETE", "/v1/cart", Auth::Bearer(&token), None, &[("If-Match", "\"7\"")])
        .await
        .assert_problem(412, "version_mismatch");
    app.request(
        "PUT",
        "/v1/cart/items/TEE",
        Auth::Bearer(&token),
        Some(&json!({ "quantity": 3 })),
        &[("If-Match", "\"0\"")],
    )
    .await
    .assert_problem(412, "version_mismatch");
    let ok = app
        .request(
            "POST",
            "/v1/cart/items",
            Auth::Bearer(&token),
            Some(&json!({ "sku": "TEE", "quantity": 1 })),
            &[("If-Match", "\"1\"")],
        )
        .await;
    ok.assert_status(200);
    assert_eq!(ok.body["version"], 2);
    assert_eq!(app.cart(&token).await.body["lines"][0]["quantity"], 2);
}

#[tokio::test]
async fn cart_rules_and_bad_inputs() {
    let app = spawn_app().await;
    app.stocked("TEE", 1999, 10).await;
    app.stocked("RARE", 100, 1).await;
    let token = app.session().await;
    let add = |body: serde_json::Value| {
        let (app, token) = (&app, token.clone());
        async move { app.request("POST", "/v1/cart/items", Auth::Bearer(&token), Some(&body), &[]).await }
    };

    add(json!({ "sku": "NOPE", "quantity": 1 })).await.assert_problem(404, "unknown_sku");
    add(json!({ "sku": "bad sku", "quantity": 1 })).await.assert_problem(422, "invalid_sku");
    add(json!({ "quantity": 1 })).await.assert_problem(422, "invalid_sku");
    for q in [json!(0), json!(-1), json!(1000), json!("1"), json!(null)] {
        add(json!({ "sku": "TEE", "quantity": q })).await.assert_problem(422, "invalid_quantity");
    }
    add(json!({ "sku": "TEE", "quantity": 1.0 })).await.assert_problem(422, "invalid_number");
    add(json!({ "sku": "TEE", "quantity": 1e2 })).await.assert_problem(422, "invalid_number");
    let short = add(json!({ "sku": "RARE", "quantity": 2 })).await;
    short.assert_problem(409, "insufficient_stock");
    assert_eq!(short.body["shortages"], json!([{ "sku": "RARE", "requested": 2, "available": 1 }]));
    add(json!({ "sku": "RARE", "quantity": 1 })).await.assert_status(200);
    add(json!({ "sku": "RARE", "quantity": 1 })).await.assert_problem(409, "insufficient_stock");
    app.request("PUT", "/v1/cart/items/TEE", Auth::Bearer(&token), Some(&json!({ "quantity": 1000 })), &[])
        .await
        .assert_problem(422, "invalid_quantity");
    app.request("PUT", "/v1/cart/items/NOPE", Auth::Bearer(&token), Some(&json!({ "quantity": 1 })), &[])
        .await
        .assert_problem(404, "unknown_sku");
    app.request("PUT", "/v1/cart/items/TEE", Auth::Bearer(&token), Some(&json!({ "quantity": 11 })), &[])
        .await
        .assert_problem(409, "insufficient_stock");
    app.request("POST", "/v1/cart/items", Auth::None, Some(&json!({ "sku": "TEE", "quantity": 1 })), &[])
        .await
        .assert_problem(401, "unauthorized");
    // None of the refusals changed the cart.
    let cart = app.cart(&token).await;
    assert_eq!(cart.body["version"], 1);
    assert_eq!(cart.body["lines"].as_array().unwrap().len(), 1);

    // A line holds at most 999.
    app.adjust("TEE", 5000, "restock").await.assert_status(200);
    add(json!({ "sku": "TEE", "quantity": 999 })).await.assert_status(200);
    add(json!({ "sku": "TEE", "quantity": 1 })).await.assert_problem(422, "invalid_quantity");
}

#[tokio::test]
async fn a_cart_holds_at_most_one_hundred_lines() {
    let app = spawn_app().await;
    for i in 0..101 {
        app.stocked(&format!("L{i:03}"), 10, 5).await;
    }
    let token = app.session().await;
    for i in 0..100 {
        app.add(&token, &format!("L{i:03}"), 1).await.assert_status(200);
    }
    app.add(&token, "L100", 1).await.assert_problem(422, "cart_full");
    app.request("PUT", "/v1/cart/items/L100", Auth::Bearer(&token), Some(&json!({ "quantity": 1 })), &[])
        .await
        .assert_problem(422, "cart_full");
    // Existing lines can still grow.
    app.add(&token, "L000", 1).await.assert_status(200);
}

#[tokio::test]
async fn one_session_cannot_see_or_touch_anothers_cart_or_orders() {
    let app = spawn_app().await;
    app.stocked("TEE", 1999, 10).await;
    let alice = app.session().await;
    let bob = app.session().await;
    app.add(&alice, "TEE", 2).await.assert_status(200);
    let order = app.checkout(&alice, "a-1").await;
    order.assert_status(201);
    let id = order.body["id"].as_str().unwrap();

    assert_eq!(app.cart(&bob).await.body["lines"], json!([]));
    app.get(&format!("/v1/orders/{id}"), Auth::Bearer(&bob)).await.assert_problem(404, "unknown_order");
    app.request("POST", &format!("/v1/orders/{id}/cancel"), Auth::Bearer(&bob), None, &[])
        .await
        .assert_problem(404, "unknown_order");
    assert_eq!(app.get("/v1/orders", Auth::Bearer(&bob)).await.body["items"], json!([]));
    app.get("/v1/orders/not-a-uuid", Auth::Bearer(&alice)).await.assert_problem(404, "unknown_order");
    app.get(&format!("/v1/orders/{id}"), Auth::Bearer(&alice)).await.assert_status(200);
}
