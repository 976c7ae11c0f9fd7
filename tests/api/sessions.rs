//! Sessions: issue, read, revoke, attach to a customer with the cart merge rules.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn sessions_are_issued_read_and_revoked() {
    let app = spawn_app().await;
    let r = app.request("POST", "/v1/sessions", Auth::None, None, &[]).await;
    r.assert_status(201);
    let token = r.body["token"].as_str().unwrap().to_owned();
    assert!(token.len() >= 32);
    assert!(r.body["expires_at"].as_str().unwrap().ends_with('Z'));
    // Only a hash is stored.
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM sessions WHERE token_hash = convert_to($1, 'UTF8')")
        .bind(&token)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(stored, 0);

    let me = app.get("/v1/session", Auth::Bearer(&token)).await;
    me.assert_status(200);
    assert!(me.body["customer_id"].is_null());
    assert!(me.body["expires_at"].is_string());

    app.get("/v1/session", Auth::None).await.assert_problem(401, "unauthorized");
    let unknown = app.get("/v1/session", Auth::Bearer("sc_not-a-token")).await;
    unknown.assert_problem(401, "unauthorized");
    assert_eq!(unknown.header("www-authenticate"), Some("Bearer"));
    app.get("/v1/session", Auth::Admin).await.assert_problem(401, "unauthorized");

    let gone = app.request("DELETE", "/v1/session", Auth::Bearer(&token), None, &[]).await;
    gone.assert_status(204);
    app.get("/v1/session", Auth::Bearer(&token)).await.assert_problem(401, "unauthorized");
    app.cart(&token).await.assert_problem(401, "unauthorized");
}

#[tokio::test]
async fn sessions_expire_and_slide() {
    let app = spawn_on(&fresh_database().await, &[("STOCKCART_SESSION_TTL", "2s")]).await;
    let token = app.session().await;
    for _ in 0..3 {
        tokio::time::sleep(std::time::Duration::from_millis(900)).await;
        app.get("/v1/session", Auth::Bearer(&token)).await.assert_status(200);
    }
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    app.get("/v1/session", Auth::Bearer(&token)).await.assert_problem(401, "unauthorized");
}

#[tokio::test]
async fn checking_out_is_activity_that_slides_the_session() {
    let app = spawn_on(&fresh_database().await, &[("STOCKCART_SESSION_TTL", "2s")]).await;
    app.stocked("TEE", 1999, 10).await;
    let token = app.session().await;
    app.add(&token, "TEE", 1).await.assert_status(200);
    tokio::time::sleep(std::time::Duration::from_millis(900)).await;
    app.checkout(&token, "k1").await.assert_status(201);
    tokio::time::sleep(std::time::Duration::from_millis(900)).await;
    app.checkout(&token, "k2").await.assert_problem(422, "empty_cart");
    // 3.3 s after the last cart change: alive only because both checkouts slid it.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    app.get("/v1/session", Auth::Bearer(&token)).await.assert_status(200);
}

#[tokio::test]
async fn attaching_merges_the_guest_cart_into_the_customers_cart() {
    let app = spawn_app().await;
    app.stocked("A", 100, 5000).await;
    app.stocked("B", 200, 5000).await;
    app.stocked("C", 300, 5000).await;

    // Device 1 logs in with A x2.
    let phone = app.session().await;
    app.add(&phone, "A", 2).await.assert_status(200);
    let r = app.attach(&phone, "cust-1").await;
    r.assert_status(200);
    assert_eq!(r.body["lines"][0]["quantity"], 2);
    assert!(r.header("etag").is_some());

    // Device 2 had A x998 and B x1 as a guest: summed and capped at 999.
    let laptop = app.session().await;
    app.add(&laptop, "A", 998).await.assert_status(200);
    app.add(&laptop, "B", 1).await.assert_status(200);
    let merged = app.attach(&laptop, "cust-1").await;
    merged.assert_status(200);
    let lines = merged.body["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 2);
    assert_eq!((lines[0]["sku"].as_str(), lines[0]["quantity"].as_i64()), (Some("A"), Some(999)));
    assert_eq!((lines[1]["sku"].as_str(), lines[1]["quantity"].as_i64()), (Some("B"), Some(1)));

    // Both devices now see one cart, and a change on one shows on the other.
    app.add(&phone, "C", 1).await.assert_status(200);
    let seen = app.cart(&laptop).await;
    assert_eq!(seen.body["lines"].as_array().unwrap().len(), 3);
    assert_eq!(seen.body["id"], app.cart(&phone).await.body["id"]);
    assert_eq!(app.get("/v1/session", Auth::Bearer(&laptop)).await.body["customer_id"], "cust-1");

    // Repeating the attach changes nothing.
    let before = app.cart(&laptop).await.body;
    let again = app.attach(&laptop, "cust-1").await;
    again.assert_status(200);
    assert_eq!(again.body, before);
}

#[tokio::test]
async fn a_session_attached_to_a_customer_cannot_be_taken_over() {
    let app = spawn_app().await;
    let laptop = app.session().await;
    app.attach(&laptop, "cust-1").await.assert_status(200);
    app.attach(&laptop, "cust-2").await.assert_problem(409, "session_already_attached");
}

#[tokio::test]
async fn attaching_needs_a_live_session_and_a_customer_id() {
    let app = spawn_app().await;
    let laptop = app.session().await;
    app.attach("sc_nope", "cust-1").await.assert_problem(404, "unknown_session");
    app.attach(&laptop, "").await.assert_problem(422, "invalid_customer_id");
    app.admin("POST", "/v1/admin/sessions/attach", Some(json!({ "customer_id": "x" })))
        .await
        .assert_problem(422, "invalid_token");
}

#[tokio::test]
async fn attaching_is_for_the_storefront_backend_only() {
    let app = spawn_app().await;
    let phone = app.session().await;
    app.request(
        "POST",
        "/v1/admin/sessions/attach",
        Auth::Bearer(&phone),
        Some(&json!({ "token": phone, "customer_id": "x" })),
        &[],
    )
    .await
    .assert_problem(403, "forbidden");
}

#[tokio::test]
async fn a_merge_keeps_at_most_one_hundred_lines() {
    let app = spawn_app().await;
    let skus: Vec<String> = (0..110).map(|i| format!("S{i:03}")).collect();
    app.stocked_in_bulk(&skus, 10, 10).await;
    let first = app.session().await;
    app.in_cart_in_bulk(&first, &skus[..60]).await;
    app.attach(&first, "big").await.assert_status(200);
    let second = app.session().await;
    app.in_cart_in_bulk(&second, &skus[50..]).await;
    let merged = app.attach(&second, "big").await;
    merged.assert_status(200);
    let lines = merged.body["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 100);
    // The customer's own 60 lines stay; overlapping lines were summed.
    assert_eq!(lines.iter().find(|l| l["sku"] == "S055").unwrap()["quantity"], 2);
    assert!(lines.iter().any(|l| l["sku"] == "S000"));
}

/// Every replica runs the purge; expired sessions and their guest carts go, customer carts stay.
#[tokio::test]
async fn expired_sessions_and_their_guest_carts_are_purged() {
    let url = fresh_database().await;
    let settings = [("STOCKCART_SESSION_TTL", "1s"), ("STOCKCART_PURGE_INTERVAL", "100ms")];
    let apps = [spawn_on(&url, &settings).await, spawn_on(&url, &settings).await];
    apps[0].stocked("TEE", 100, 10).await;
    let guest = apps[0].session().await;
    apps[0].add(&guest, "TEE", 1).await.assert_status(200);
    let member = apps[1].session().await;
    apps[1].add(&member, "TEE", 2).await.assert_status(200);
    apps[1].attach(&member, "keeps-cart").await.assert_status(200);
    tokio::time::sleep(std::time::Duration::from_millis(1800)).await;
    let sessions: i64 = sqlx::query_scalar("SELECT count(*) FROM sessions").fetch_one(&apps[0].db).await.unwrap();
    let carts: Vec<Option<String>> =
        sqlx::query_scalar("SELECT customer_id FROM carts").fetch_all(&apps[0].db).await.unwrap();
    assert_eq!(sessions, 0);
    assert_eq!(carts, [Some("keeps-cart".to_owned())]);
    apps[0].cart(&guest).await.assert_problem(401, "unauthorized");
}

/// A session makes no cart row: a visitor who never adds anything leaves one row, not two.
/// Until the first change the cart reads as empty at version 0, with the id it keeps.
#[tokio::test]
async fn a_session_makes_no_cart_row_until_its_first_change() {
    let apps = spawn_replicas(2, &[("STOCKCART_PURGE_INTERVAL", "100ms")]).await;
    apps[0].stocked("LAZY", 100, 10).await;
    let token = apps[0].session().await;
    let carts =
        || async { sqlx::query_scalar::<_, i64>("SELECT count(*) FROM carts").fetch_one(&apps[0].db).await.unwrap() };
    assert_eq!(carts().await, 0);

    let empty = apps[1].cart(&token).await;
    empty.assert_status(200);
    assert_eq!(empty.header("etag"), Some("\"0\""));
    assert_eq!(empty.body["version"], 0);
    assert_eq!(empty.body["lines"], json!([]));
    assert_eq!(empty.body["item_count"], 0);
    assert!(empty.body["updated_at"].as_str().unwrap().ends_with('Z'));
    // Reading it, viewing a product and the purge task running make no row either, and the
    // purge keeps the views of a cart that is not written yet.
    apps[0].get("/v1/products/LAZY", Auth::Bearer(&token)).await.assert_status(200);
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert_eq!(carts().await, 0);
    let viewed = apps[1].get("/v1/session/recently-viewed", Auth::Bearer(&token)).await;
    assert_eq!(viewed.body["items"][0]["sku"], "LAZY");

    // A stale If-Match on the first change is refused against version 0.
    apps[1].add_if_match(&token, "LAZY", 1, 3).await.assert_problem(412, "version_mismatch");
    assert_eq!(carts().await, 0);
    let added = apps[1].add_if_match(&token, "LAZY", 2, 0).await;
    added.assert_status(200);
    assert_eq!(added.body["version"], 1);
    assert_eq!(added.body["id"], empty.body["id"], "the cart keeps the id it was read with");
    assert_eq!(carts().await, 1);
    let read = apps[0].cart(&token).await;
    assert_eq!(read.body["lines"][0]["quantity"], 2);
    assert_eq!(read.body["version"], 1);
}

/// A checkout or an attach of a session that never wrote its cart works on the empty cart.
#[tokio::test]
async fn a_cart_never_written_checks_out_empty_and_attaches() {
    let app = spawn_app().await;
    let token = app.session().await;
    app.checkout(&token, "never-written").await.assert_problem(422, "empty_cart");
    let attached = app.attach(&token, "lazy-customer").await;
    attached.assert_status(200);
    assert_eq!(attached.body["lines"], json!([]));
    let carts: Vec<Option<String>> =
        sqlx::query_scalar("SELECT customer_id FROM carts").fetch_all(&app.db).await.unwrap();
    assert_eq!(carts, [Some("lazy-customer".to_owned())], "the customer's cart, and no guest cart");
    app.add(&token, "NOPE", 1).await.assert_problem(404, "unknown_sku");
}

/// A first change racing the revocation of its session, on two replicas: the change either
/// comes first (and the revoke deletes the cart it made) or finds the session gone (401).
/// Either way no guest cart is left without a session.
#[tokio::test]
async fn a_first_change_racing_a_revoke_leaves_no_cart_behind() {
    let apps = spawn_replicas(2, &[]).await;
    apps[0].stocked("RACE", 100, 1000).await;
    let mut tokens = Vec::new();
    for _ in 0..40 {
        tokens.push(apps[0].session().await);
    }
    let races = tokens.iter().map(|token| async {
        let (added, revoked) = tokio::join!(
            apps[0].add(token, "RACE", 1),
            apps[1].request("DELETE", "/v1/session", Auth::Bearer(token), None, &[])
        );
        assert!(matches!(added.status.as_u16(), 200 | 401), "add answered {}", added.status);
        revoked.assert_status(204);
    });
    futures_util::future::join_all(races).await;
    let orphans: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM carts c WHERE customer_id IS NULL AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.cart_id = c.id)",
    )
    .fetch_one(&apps[0].db)
    .await
    .unwrap();
    assert_eq!(orphans, 0);
    let (sessions, lines): (i64, i64) =
        sqlx::query_as("SELECT (SELECT count(*) FROM sessions), (SELECT count(*) FROM cart_lines)")
            .fetch_one(&apps[0].db)
            .await
            .unwrap();
    assert_eq!((sessions, lines), (0, 0));
}
