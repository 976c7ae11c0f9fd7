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

    let set = app.set_item(&token, "TEE", 5).await;
    set.assert_status(200);
    assert_eq!(set.body["lines"][0]["quantity"], 5);
    let zero = app.set_item(&token, "CAP", 0).await;
    assert_eq!(zero.body["lines"].as_array().unwrap().len(), 1);
    let removed = app.remove_item(&token, "TEE").await;
    removed.assert_status(200);
    assert_eq!(removed.body["lines"], json!([]));
    assert_eq!(removed.body["version"], 6);
    app.add(&token, "CAP", 2).await.assert_status(200);
    let cleared = app.clear_cart(&token).await;
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
    let stale = app.add_if_match(&token, "TEE", 1, 0).await;
    stale.assert_problem(412, "version_mismatch");
    assert_eq!(stale.body["current"]["version"], 1);
    assert_eq!(stale.body["current"]["lines"][0]["quantity"], 1);
    assert_eq!(stale.header("etag"), Some("\"1\""));
    app.clear_cart_if_match(&token, 7).await.assert_problem(412, "version_mismatch");
    app.set_item_if_match(&token, "TEE", 3, 0).await.assert_problem(412, "version_mismatch");
    let ok = app.add_if_match(&token, "TEE", 1, 1).await;
    ok.assert_status(200);
    assert_eq!(ok.body["version"], 2);
    assert_eq!(app.cart(&token).await.body["lines"][0]["quantity"], 2);
}

/// A shop with TEE (10 in stock) and RARE (1 in stock), and a shopper with one RARE in the cart.
async fn shop_with_a_cart() -> (TestApp, String) {
    let app = spawn_app().await;
    app.stocked("TEE", 1999, 10).await;
    app.stocked("RARE", 100, 1).await;
    let token = app.session().await;
    app.add(&token, "RARE", 1).await.assert_status(200);
    (app, token)
}

/// The cart as it was after the first add: every refusal must leave it so.
async fn assert_cart_unchanged(app: &TestApp, token: &str) {
    let cart = app.cart(token).await;
    assert_eq!(cart.body["version"], 1);
    assert_eq!(cart.body["lines"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn adding_an_unknown_or_malformed_sku_is_refused() {
    let (app, token) = shop_with_a_cart().await;
    app.add_body(&token, json!({ "sku": "NOPE", "quantity": 1 })).await.assert_problem(404, "unknown_sku");
    app.add_body(&token, json!({ "sku": "bad sku", "quantity": 1 })).await.assert_problem(422, "invalid_sku");
    app.add_body(&token, json!({ "quantity": 1 })).await.assert_problem(422, "invalid_sku");
    app.set_item(&token, "NOPE", 1).await.assert_problem(404, "unknown_sku");
    assert_cart_unchanged(&app, &token).await;
}

#[tokio::test]
async fn a_quantity_is_an_integer_from_1_to_999() {
    let (app, token) = shop_with_a_cart().await;
    for q in [json!(0), json!(-1), json!(1000), json!("1"), json!(null)] {
        app.add_body(&token, json!({ "sku": "TEE", "quantity": q })).await.assert_problem(422, "invalid_quantity");
    }
    app.add_body(&token, json!({ "sku": "TEE", "quantity": 1.0 })).await.assert_problem(422, "invalid_number");
    app.add_body(&token, json!({ "sku": "TEE", "quantity": 1e2 })).await.assert_problem(422, "invalid_number");
    app.set_item(&token, "TEE", 1000).await.assert_problem(422, "invalid_quantity");
    assert_cart_unchanged(&app, &token).await;
}

#[tokio::test]
async fn a_cart_cannot_hold_more_than_is_available() {
    let app = spawn_app().await;
    app.stocked("TEE", 1999, 10).await;
    app.stocked("RARE", 100, 1).await;
    let token = app.session().await;
    let short = app.add(&token, "RARE", 2).await;
    short.assert_problem(409, "insufficient_stock");
    assert_eq!(short.body["shortages"], json!([{ "sku": "RARE", "requested": 2, "available": 1 }]));
    app.add(&token, "RARE", 1).await.assert_status(200);
    app.add(&token, "RARE", 1).await.assert_problem(409, "insufficient_stock");
    app.set_item(&token, "TEE", 11).await.assert_problem(409, "insufficient_stock");
    assert_cart_unchanged(&app, &token).await;
}

#[tokio::test]
async fn a_cart_change_needs_a_session() {
    let (app, token) = shop_with_a_cart().await;
    app.request("POST", "/v1/cart/items", Auth::None, Some(&json!({ "sku": "TEE", "quantity": 1 })), &[])
        .await
        .assert_problem(401, "unauthorized");
    assert_cart_unchanged(&app, &token).await;
}

#[tokio::test]
async fn a_line_holds_at_most_999() {
    let (app, token) = shop_with_a_cart().await;
    app.adjust("TEE", 5000, "restock").await.assert_status(200);
    app.add(&token, "TEE", 999).await.assert_status(200);
    app.add(&token, "TEE", 1).await.assert_problem(422, "invalid_quantity");
}

#[tokio::test]
async fn a_cart_holds_at_most_one_hundred_lines() {
    let app = spawn_app().await;
    let skus: Vec<String> = (0..101).map(|i| format!("L{i:03}")).collect();
    app.stocked_in_bulk(&skus, 10, 5).await;
    let token = app.session().await;
    app.in_cart_in_bulk(&token, &skus[..100]).await;
    assert_eq!(app.cart(&token).await.body["lines"].as_array().unwrap().len(), 100);
    app.add(&token, "L100", 1).await.assert_problem(422, "cart_full");
    app.set_item(&token, "L100", 1).await.assert_problem(422, "cart_full");
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
    app.order(&bob, id).await.assert_problem(404, "unknown_order");
    app.cancel(&bob, id).await.assert_problem(404, "unknown_order");
    assert_eq!(app.orders(&bob).await.body["items"], json!([]));
    app.order(&alice, "not-a-uuid").await.assert_problem(404, "unknown_order");
    app.order(&alice, id).await.assert_status(200);
}
