//! Cross-replica properties, with real concurrent HTTP requests against two app instances
//! that share one database and keep their own caches and pools.

use std::time::Duration;

use futures_util::future::join_all;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn concurrent_adjustments_on_two_replicas_are_all_versioned_and_ledgered() {
    let apps = spawn_replicas(2, &[]).await;
    apps[0].stocked("HOT", 100, 50).await;
    // 60 removals of 1 and 20 additions of 1 race; removals beyond stock fail cleanly.
    let mut requests = Vec::new();
    for i in 0..80 {
        let delta = if i % 4 == 0 { 1 } else { -1 };
        let reason = if delta > 0 { "return" } else { "shrinkage" };
        requests.push(apps[i % 2].adjust("HOT", delta, reason));
    }
    let replies = join_all(requests).await;
    let ok = replies.iter().filter(|r| r.status == 200).count() as i64;
    for r in &replies {
        assert!(r.status == 200 || (r.status == 409 && r.code() == "insufficient_stock"), "{}", r.text);
    }
    let level = apps[1].level("HOT").await;
    assert_eq!(level["version"].as_i64().unwrap(), 1 + ok, "version rose by exactly the successes");
    let versions: Vec<i64> =
        sqlx::query_scalar("SELECT version_after FROM stock_movements WHERE sku = 'HOT' ORDER BY id")
            .fetch_all(&apps[0].db)
            .await
            .unwrap();
    assert_eq!(versions, (1..=1 + ok).collect::<Vec<_>>(), "one movement per version, in order");
    let sum: i64 = sqlx::query_scalar("SELECT sum(delta_on_hand)::bigint FROM stock_movements WHERE sku = 'HOT'")
        .fetch_one(&apps[0].db)
        .await
        .unwrap();
    assert_eq!(sum, level["on_hand"].as_i64().unwrap());
    apps[0].assert_invariants().await;
}

#[tokio::test]
async fn reads_on_one_replica_see_writes_acknowledged_by_the_other() {
    let apps = spawn_replicas(2, &[]).await;
    let (a, b) = (&apps[0], &apps[1]);
    a.stocked("TEE", 1999, 5000).await;
    let token = a.session().await;
    for round in 1..=1000i64 {
        // Alternate which replica writes; the other reads right after the acknowledgement.
        let (writer, reader) = if round % 2 == 0 { (a, b) } else { (b, a) };
        let quantity = round % 900 + 1;
        let path = "/v1/cart/items/TEE";
        writer
            .request("PUT", path, Auth::Bearer(&token), Some(&json!({ "quantity": quantity })), &[])
            .await
            .assert_status(200);
        let cart = reader.cart(&token).await;
        assert_eq!(cart.body["version"].as_i64(), Some(round), "stale read at round {round}");
        assert_eq!(cart.body["lines"][0]["quantity"].as_i64(), Some(quantity), "stale read at round {round}");
    }
}

#[tokio::test]
async fn coalesced_session_reads_keep_read_your_writes_with_thirty_two_shoppers_per_replica() {
    let apps = spawn_replicas(2, &[]).await;
    let (a, b) = (&apps[0], &apps[1]);
    a.stocked("TEE", 1999, 5000).await;
    let tokens = join_all((0..64).map(|_| a.session())).await;
    // 64 shoppers at once, 16 rounds each (1,024 rounds): at any moment 32 write on each
    // replica and read on the other, so reads really are coalesced, and each read must still
    // see the write acknowledged just before it.
    join_all(tokens.iter().enumerate().map(|(i, token)| async move {
        for round in 1..=16i64 {
            let (writer, reader) = if (round + i as i64) % 2 == 0 { (a, b) } else { (b, a) };
            let quantity = round * 7 + i as i64;
            writer
                .request("PUT", "/v1/cart/items/TEE", Auth::Bearer(token), Some(&json!({ "quantity": quantity })), &[])
                .await
                .assert_status(200);
            let cart = reader.cart(token).await;
            assert_eq!(cart.body["version"].as_i64(), Some(round), "stale read: shopper {i}, round {round}");
            assert_eq!(
                cart.body["lines"][0]["quantity"].as_i64(),
                Some(quantity),
                "stale read: shopper {i}, round {round}"
            );
        }
    }))
    .await;
    let (mut reads, mut requests) = (0.0, 0.0);
    for app in &apps {
        let metrics = app.get("/metrics", Auth::None).await.text;
        reads += metric(&metrics, "stockcart_session_reads_total");
        requests += metric(&metrics, "stockcart_session_read_requests_total");
    }
    assert!(requests >= 1024.0, "every cart read authenticated through the coalesced reads: {requests}");
    assert!(requests > reads, "no read was shared: {reads} reads for {requests} requests");
}

#[tokio::test]
async fn coalesced_cart_changes_keep_read_your_writes_with_thirty_two_shoppers_per_replica() {
    let apps = spawn_replicas(2, &[]).await;
    let (a, b) = (&apps[0], &apps[1]);
    a.stocked("TEE", 1999, 50_000).await;
    let tokens = join_all((0..64).map(|_| a.session())).await;
    // 64 shoppers, 16 rounds each (1,024 rounds): at any moment 32 change their carts on each
    // replica, so changes really share transactions; each names the version it read (If-Match)
    // on the other replica, and each read must see the change acknowledged just before it.
    join_all(tokens.iter().enumerate().map(|(i, token)| async move {
        for round in 1..=16i64 {
            let (writer, reader) = if (round + i as i64) % 2 == 0 { (a, b) } else { (b, a) };
            let tag = format!("\"{}\"", round - 1);
            let body = json!({ "sku": "TEE", "quantity": i as i64 % 3 + 1 });
            let added =
                writer.request("POST", "/v1/cart/items", Auth::Bearer(token), Some(&body), &[("If-Match", &tag)]).await;
            added.assert_status(200);
            assert_eq!(added.body["version"].as_i64(), Some(round), "shopper {i}, round {round}");
            let cart = reader.cart(token).await;
            assert_eq!(cart.body["version"].as_i64(), Some(round), "stale read: shopper {i}, round {round}");
            assert_eq!(
                cart.body["lines"][0]["quantity"].as_i64(),
                Some(round * (i as i64 % 3 + 1)),
                "stale read: shopper {i}, round {round}"
            );
        }
    }))
    .await;
    let (mut batches, mut changes) = (0.0, 0.0);
    for app in &apps {
        let metrics = app.get("/metrics", Auth::None).await.text;
        batches += metric(&metrics, "stockcart_cart_change_batches_total");
        changes += metric(&metrics, "stockcart_cart_changes_total");
    }
    assert!(changes >= 1024.0, "every change went through the coalesced changes: {changes}");
    assert!(changes > batches, "no transaction was shared: {batches} for {changes} changes");
    apps[0].assert_invariants().await;
}

#[tokio::test]
async fn a_refused_change_in_a_shared_transaction_fails_alone() {
    let apps = spawn_replicas(2, &[]).await;
    let a = &apps[0];
    a.stocked("FEW", 500, 3).await;
    a.stocked("MANY", 500, 1000).await;
    let tokens = join_all((0..48).map(|_| a.session())).await;
    for token in &tokens {
        a.add(token, "MANY", 1).await.assert_status(200);
    }
    // At once on one replica: a third ask for more than there is, a third send a stale
    // If-Match, a third make a good change. Only the first two thirds are refused.
    let replies = join_all(tokens.iter().enumerate().map(|(i, token)| async move {
        match i % 3 {
            0 => a.add(token, "FEW", 4).await,
            1 => {
                let body = json!({ "sku": "MANY", "quantity": 1 });
                a.request("POST", "/v1/cart/items", Auth::Bearer(token), Some(&body), &[("If-Match", "\"0\"")]).await
            }
            _ => a.add(token, "MANY", 2).await,
        }
    }))
    .await;
    for (i, reply) in replies.iter().enumerate() {
        match i % 3 {
            0 => {
                reply.assert_problem(409, "insufficient_stock");
                assert_eq!(reply.body["shortages"][0]["available"], 3, "{}", reply.text);
            }
            1 => {
                reply.assert_problem(412, "version_mismatch");
                assert_eq!(reply.header("etag"), Some("\"1\""));
            }
            _ => assert_eq!(reply.body["lines"][0]["quantity"], 3, "{}", reply.text),
        }
    }
    for (i, token) in tokens.iter().enumerate() {
        let cart = apps[1].cart(token).await;
        let (version, quantity) = if i % 3 == 2 { (2, 3) } else { (1, 1) };
        assert_eq!(cart.body["version"].as_i64(), Some(version), "shopper {i}: a refused change wrote nothing");
        assert_eq!(cart.body["lines"][0]["quantity"].as_i64(), Some(quantity), "shopper {i}");
        assert_eq!(cart.body["lines"].as_array().unwrap().len(), 1, "shopper {i}");
    }
}

#[tokio::test]
async fn concurrent_changes_of_one_cart_are_each_applied_once() {
    let apps = spawn_replicas(2, &[]).await;
    apps[0].stocked("TEE", 1999, 1000).await;
    let token = apps[0].session().await;
    // 40 adds of one cart at once over both replicas, including its very first change (which
    // creates the cart): many meet in one batch, which must apply them one after another.
    let replies = join_all((0..40).map(|i| apps[i % 2].add(&token, "TEE", 1))).await;
    let mut versions: Vec<i64> = replies
        .iter()
        .map(|r| {
            r.assert_status(200);
            r.body["version"].as_i64().unwrap()
        })
        .collect();
    versions.sort_unstable();
    assert_eq!(versions, (1..=40).collect::<Vec<_>>(), "one version per change");
    let cart = apps[1].cart(&token).await;
    assert_eq!(cart.body["lines"][0]["quantity"], 40);
    assert_eq!(cart.body["version"], 40);
}

/// A change reads its cart without a lock, then writes only if the cart is still as read.
/// Here another change of the cart lands between the two (held back by the row lock it
/// takes, as a change in flight on another replica would): the write must not be made on the
/// cart as read, and the change is decided again, under the lock, on the cart that change left.
#[tokio::test]
async fn a_change_whose_cart_changed_after_it_was_read_is_decided_again() {
    let app = spawn_app().await;
    app.stocked("TEE", 1999, 100).await;
    let token = app.session().await;
    app.add(&token, "TEE", 1).await.assert_status(200);
    let cart: uuid::Uuid = sqlx::query_scalar("SELECT id FROM carts").fetch_one(&app.db).await.unwrap();
    let relocked_before = metric(&app.get("/metrics", Auth::None).await.text, "stockcart_cart_changes_relocked_total");

    // The change reads the cart (version 1, one TEE); its write waits for the lock; meanwhile
    // another change of the cart makes five TEEs, version 2.
    let other_change = change_cart_once_one_waits(&app, cart, "%bumped%", 5).await;
    let (added, ()) = tokio::join!(app.add(&token, "TEE", 2), other_change);
    added.assert_status(200);
    assert_eq!(added.body["version"], 3, "{}", added.body);
    assert_eq!(added.body["lines"][0]["quantity"], 7, "made on the cart the other change left: {}", added.body);
    let cart = app.cart(&token).await;
    assert_eq!((cart.body["version"].clone(), cart.body["lines"][0]["quantity"].clone()), (json!(3), json!(7)));
    let relocked = metric(&app.get("/metrics", Auth::None).await.text, "stockcart_cart_changes_relocked_total");
    assert_eq!(relocked - relocked_before, 1.0, "the change was made by a round that locks");
}

/// A cart change that lands while a checkout waits for the cart's lock (held back here by a
/// row lock, as one in flight on another replica would be) must be in the order: checkout
/// reads the lines only once it holds the lock, in a snapshot that sees that change.
#[tokio::test]
async fn a_checkout_orders_the_cart_a_change_left_while_it_waited_for_the_lock() {
    let app = spawn_app().await;
    app.stocked("TEE", 1000, 100).await;
    let token = app.session().await;
    app.add(&token, "TEE", 1).await.assert_status(200);
    let cart: uuid::Uuid = sqlx::query_scalar("SELECT id FROM carts").fetch_one(&app.db).await.unwrap();

    // Another change of the cart makes three TEEs, version 2, while the checkout waits.
    let other_change =
        change_cart_once_one_waits(&app, cart, "%FROM carts WHERE id = ANY($1) ORDER BY id FOR UPDATE%", 3).await;
    let (placed, ()) = tokio::join!(app.checkout(&token, "after-the-wait"), other_change);
    placed.assert_status(201);
    assert_eq!(placed.body["lines"][0]["quantity"], 3, "{}", placed.body);
    assert_eq!(placed.body["total"]["amount"], 3000, "{}", placed.body);
    assert_eq!(app.level("TEE").await["reserved"], 3);
    app.assert_invariants().await;
}

/// Takes `cart`'s row lock now and returns a future that, once a statement matching
/// `statement` (a LIKE pattern) waits for a lock, changes the cart as a cart change would
/// (every line to `quantity`, version + 1) and commits: a change in flight elsewhere, landing
/// at the worst moment.
async fn change_cart_once_one_waits<'a>(
    app: &'a TestApp,
    cart: uuid::Uuid,
    statement: &'a str,
    quantity: i32,
) -> impl std::future::Future<Output = ()> + 'a {
    let mut other = app.db.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM carts WHERE id = $1 FOR UPDATE").bind(cart).execute(&mut *other).await.unwrap();
    async move {
        let waiting = async {
            loop {
                let n: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE $1",
                )
                .bind(statement)
                .fetch_one(&app.db)
                .await
                .unwrap();
                if n > 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), waiting).await.expect("a statement waits for the cart's lock");
        sqlx::query("UPDATE cart_lines SET quantity = $2 WHERE cart_id = $1")
            .bind(cart)
            .bind(quantity)
            .execute(&mut *other)
            .await
            .unwrap();
        sqlx::query("UPDATE carts SET version = version + 1 WHERE id = $1")
            .bind(cart)
            .execute(&mut *other)
            .await
            .unwrap();
        other.commit().await.unwrap();
    }
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("{name} is not in /metrics"))
}

#[tokio::test]
async fn a_price_change_on_one_replica_shows_in_the_next_cart_read_on_the_other() {
    let apps = spawn_replicas(2, &[]).await;
    let (a, b) = (&apps[0], &apps[1]);
    a.stocked("TEE", 1999, 10).await;
    let token = a.session().await;
    a.add(&token, "TEE", 2).await.assert_status(200);
    // B caches the cart.
    assert_eq!(b.cart(&token).await.body["subtotal"]["amount"], 3998);
    assert_eq!(b.cart(&token).await.body["subtotal"]["amount"], 3998);
    a.put_product("TEE", "Tee, reduced", 1500).await.assert_status(200);
    let after = b.cart(&token).await;
    assert_eq!(after.body["lines"][0]["unit_price"]["amount"], 1500);
    assert_eq!(after.body["lines"][0]["name"], "Tee, reduced");
    assert_eq!(after.body["subtotal"]["amount"], 3000);
    assert_eq!(b.get("/v1/products/TEE", Auth::None).await.body["price"]["amount"], 1500);
}

#[tokio::test]
async fn a_session_revoked_on_one_replica_is_refused_by_the_other() {
    let apps = spawn_replicas(2, &[]).await;
    let token = apps[0].session().await;
    apps[1].cart(&token).await.assert_status(200);
    apps[1].cart(&token).await.assert_status(200);
    apps[0].request("DELETE", "/v1/session", Auth::Bearer(&token), None, &[]).await.assert_status(204);
    apps[1].cart(&token).await.assert_problem(401, "unauthorized");
    apps[1].get("/v1/session", Auth::Bearer(&token)).await.assert_problem(401, "unauthorized");
    // Writes authenticate inside their transaction; they refuse it too, and change nothing.
    apps[0].stocked("TEE", 100, 5).await;
    let add = apps[1].add(&token, "TEE", 1).await;
    add.assert_problem(401, "unauthorized");
    assert_eq!(add.header("www-authenticate"), Some("Bearer"));
    apps[1].request("DELETE", "/v1/cart", Auth::Bearer(&token), None, &[]).await.assert_problem(401, "unauthorized");
    apps[1].checkout(&token, "after-revoke").await.assert_problem(401, "unauthorized");
    let carts: i64 = sqlx::query_scalar("SELECT count(*) FROM cart_lines").fetch_one(&apps[0].db).await.unwrap();
    assert_eq!(carts, 0);
}

#[tokio::test]
async fn concurrent_changes_of_one_cart_lose_no_update() {
    let apps = spawn_replicas(2, &[]).await;
    apps[0].stocked("TEE", 1999, 1000).await;
    apps[0].stocked("CAP", 999, 1000).await;
    let token = apps[0].session().await;
    let requests = (0..60).map(|i| apps[i % 2].add(&token, if i % 3 == 0 { "CAP" } else { "TEE" }, 2));
    for r in join_all(requests).await {
        r.assert_status(200);
        // Each answer is the cart right after its own change: one change of 2 units per version,
        // also when the change waited for another (its first read was stale and was redone).
        assert_eq!(r.body["item_count"].as_i64().unwrap(), 2 * r.body["version"].as_i64().unwrap(), "{}", r.body);
    }
    let cart = apps[1].cart(&token).await;
    assert_eq!(cart.body["version"], 60);
    assert_eq!(cart.body["item_count"], 120);
}

/// A shopper logs in (attach) while their adds are in flight on two replicas: every add is
/// answered 200, and every one is in the customer's cart, whether it landed in the guest cart
/// before the merge or in the customer's cart after it.
#[tokio::test]
async fn adds_racing_a_login_are_never_lost() {
    let apps = spawn_replicas(2, &[]).await;
    apps[0].stocked("TEE", 1999, 100_000).await;
    for round in 0..5 {
        let token = apps[0].session().await;
        apps[0].add(&token, "TEE", 1).await.assert_status(200);
        let adds = join_all((0..30).map(|i| apps[i % 2].add(&token, "TEE", 1)));
        let body = json!({ "token": token, "customer_id": format!("c-{round}") });
        let attach = apps[1].admin("POST", "/v1/admin/sessions/attach", Some(body));
        let (answers, attached) = tokio::join!(adds, attach);
        attached.assert_status(200);
        for r in &answers {
            r.assert_status(200);
        }
        let cart = apps[0].cart(&token).await;
        assert_eq!(cart.body["item_count"], 31, "round {round}: {}", cart.body);
    }
}

/// The launch-day rush: 300 buyers, 100 units, two replicas.
#[tokio::test]
async fn three_hundred_buyers_for_one_hundred_units_never_oversell() {
    let apps = &spawn_replicas(2, &[]).await;
    apps[0].stocked("DROP", 4999, 100).await;
    let tokens = apps[0].shoppers_in_bulk(300, "DROP", 1).await;
    let replies = join_all(tokens.iter().enumerate().map(|(i, t)| apps[(i + 1) % 2].checkout(t, "buy"))).await;
    let created = replies.iter().filter(|r| r.status == 201).count();
    let refused = replies.iter().filter(|r| r.status == 409 && r.code() == "insufficient_stock").count();
    for r in &replies {
        assert!(r.status.as_u16() < 500, "server error: {}", r.text);
    }
    assert_eq!((created, refused), (100, 200));
    let level = apps[1].level("DROP").await;
    assert_eq!((level["available"].as_i64(), level["reserved"].as_i64()), (Some(0), Some(100)));
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM orders").fetch_one(&apps[0].db).await.unwrap();
    assert_eq!(orders, 100);
    apps[0].assert_invariants().await;
}

#[tokio::test]
async fn fifty_concurrent_duplicates_of_one_checkout_make_one_order() {
    let apps = spawn_replicas(2, &[]).await;
    apps[0].stocked("TEE", 1999, 10).await;
    let token = apps[0].session().await;
    apps[0].add(&token, "TEE", 3).await.assert_status(200);
    let replies = join_all((0..50).map(|i| apps[i % 2].checkout(&token, "same-key"))).await;
    let mut ids = std::collections::HashSet::new();
    for r in &replies {
        match r.status.as_u16() {
            201 => {
                ids.insert(r.body["id"].as_str().unwrap().to_owned());
            }
            409 => assert_eq!(r.code(), "idempotency_in_progress"),
            other => panic!("unexpected {other}: {}", r.text),
        }
    }
    assert_eq!(ids.len(), 1, "every success is the same order");
    assert_eq!(replies.iter().filter(|r| r.status == 201 && r.header("idempotent-replayed").is_none()).count(), 1);
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM orders").fetch_one(&apps[0].db).await.unwrap();
    assert_eq!(orders, 1);
    assert_eq!(apps[1].level("TEE").await["reserved"], 3);
    apps[0].assert_invariants().await;
}

#[tokio::test]
async fn expiry_run_by_two_replicas_releases_once() {
    let url = fresh_database().await;
    let settings = [("STOCKCART_PAYMENT_TIMEOUT", "1s"), ("STOCKCART_EXPIRY_INTERVAL", "50ms")];
    let apps = &[spawn_on(&url, &settings).await, spawn_on(&url, &settings).await];
    apps[0].stocked("TEE", 1999, 100).await;
    let tokens = join_all((0..20).map(|i| async move {
        let token = apps[i % 2].session().await;
        apps[i % 2].add(&token, "TEE", 2).await.assert_status(200);
        apps[i % 2].checkout(&token, "k").await.assert_status(201);
        token
    }))
    .await;
    assert_eq!(tokens.len(), 20);
    assert_eq!(apps[0].level("TEE").await["reserved"], 40);
    // Both replicas' expiry tasks, plus direct passes racing them.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (x, y) = tokio::join!(
        stockcart::tasks::expire_due_orders(&apps[0].db),
        stockcart::tasks::expire_due_orders(&apps[1].db)
    );
    x.unwrap();
    y.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let level = apps[1].level("TEE").await;
    assert_eq!((level["reserved"].as_i64(), level["available"].as_i64()), (Some(0), Some(100)));
    let releases: i64 = sqlx::query_scalar("SELECT count(*) FROM stock_movements WHERE kind = 'release'")
        .fetch_one(&apps[0].db)
        .await
        .unwrap();
    assert_eq!(releases, 20, "one release per order, whichever replica did it");
    let expired: i64 = sqlx::query_scalar("SELECT count(*) FROM orders WHERE status = 'expired'")
        .fetch_one(&apps[0].db)
        .await
        .unwrap();
    assert_eq!(expired, 20);
    apps[0].assert_invariants().await;
}

/// Buyers, cancellations, payments, shipments and restocks all at once, then the checker.
#[tokio::test]
async fn a_mixed_concurrent_workload_keeps_every_invariant() {
    let apps = &spawn_replicas(2, &[]).await;
    for sku in ["M1", "M2", "M3"] {
        apps[0].stocked(sku, 1000, 30).await;
    }
    let shoppers = join_all((0..40).map(|i| async move {
        let app = &apps[i % 2];
        let token = app.session().await;
        for (j, sku) in ["M1", "M2", "M3"].iter().enumerate() {
            if (i + j) % 2 == 0 {
                app.add(&token, sku, 1 + (i % 3) as i64).await;
            }
        }
        let order = apps[(i + 1) % 2].checkout(&token, "mixed").await;
        assert!(order.status.as_u16() < 500, "{}", order.text);
        if order.status != 201 {
            return;
        }
        let id = order.body["id"].as_str().unwrap().to_owned();
        match i % 4 {
            0 => {
                app.request("POST", &format!("/v1/orders/{id}/cancel"), Auth::Bearer(&token), None, &[])
                    .await
                    .assert_status(200);
            }
            1 | 2 => {
                app.admin("POST", &format!("/v1/admin/orders/{id}/payment"), Some(json!({ "reference": "p" })))
                    .await
                    .assert_status(200);
                if i % 4 == 2 {
                    apps[i % 2].admin("POST", &format!("/v1/admin/orders/{id}/ship"), None).await.assert_status(200);
                }
            }
            _ => {}
        }
    }));
    let restocks = join_all((0..10).map(|i| apps[i % 2].adjust(["M1", "M2", "M3"][i % 3], 2, "restock")));
    let (_, restocked) = tokio::join!(shoppers, restocks);
    for r in restocked {
        r.assert_status(200);
    }
    apps[0].assert_invariants().await;
}

#[tokio::test]
async fn a_replica_whose_copy_of_a_cart_is_behind_brings_it_up_to_date_exactly() {
    // Three replicas, each change on one of them at random, so each replica's copy of the
    // cart is current, a few versions behind (caught up from the cart's recent line writes)
    // or too far behind or past a price change or a checkout (read whole). Every answer and
    // every read must be the cart a fresh read would show.
    let apps = spawn_replicas(3, &[]).await;
    let skus: Vec<String> = (0..12).map(|i| format!("CU-{i:02}")).collect();
    apps[0].stocked_in_bulk(&skus, 100, 100_000).await;
    let token = apps[0].session().await;
    let mut price: Vec<i64> = vec![100; skus.len()];
    let mut lines: Vec<(usize, i64)> = Vec::new();
    let mut version = 0i64;
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    for step in 0..400 {
        let app = &apps[next(3) as usize];
        let s = next(skus.len() as u64) as usize;
        let kind = next(20);
        let answer = match kind {
            0..=9 => {
                let quantity = next(3) as i64 + 1;
                match lines.iter_mut().find(|(k, _)| *k == s) {
                    Some(line) => line.1 += quantity,
                    None => lines.push((s, quantity)),
                }
                app.add(&token, &skus[s], quantity).await
            }
            10..=14 => {
                let quantity = next(4) as i64;
                match (lines.iter_mut().find(|(k, _)| *k == s), quantity) {
                    (_, 0) => lines.retain(|(k, _)| *k != s),
                    (Some(line), _) => line.1 = quantity,
                    (None, _) => lines.push((s, quantity)),
                }
                app.set_item(&token, &skus[s], quantity).await
            }
            15..=16 => {
                lines.retain(|(k, _)| *k != s);
                app.remove_item(&token, &skus[s]).await
            }
            17 => {
                lines.clear();
                app.clear_cart(&token).await
            }
            18 => {
                price[s] += 7;
                app.put_product(&skus[s], &format!("Product {}", skus[s]), price[s]).await.assert_status(200);
                app.cart(&token).await
            }
            _ if !lines.is_empty() => {
                app.checkout(&token, &format!("catch-up-{step}")).await.assert_status(201);
                lines.clear();
                app.cart(&token).await
            }
            _ => app.cart(&token).await,
        };
        answer.assert_status(200);
        let got = answer.body["version"].as_i64().unwrap();
        // Steps 18 and up read the cart after a price change or a checkout: a checkout bumps
        // the version, a price change does not.
        assert!(got > version || (kind >= 18 && got == version), "step {step}: version {got} after {version}");
        version = got;
        for reply in [answer, apps[next(3) as usize].cart(&token).await] {
            let shown: Vec<(String, i64, i64)> = reply.body["lines"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| {
                    let sku = l["sku"].as_str().unwrap().to_owned();
                    (sku, l["quantity"].as_i64().unwrap(), l["unit_price"]["amount"].as_i64().unwrap())
                })
                .collect();
            let expected: Vec<(String, i64, i64)> =
                lines.iter().map(|&(k, q)| (skus[k].clone(), q, price[k])).collect();
            assert_eq!(shown, expected, "step {step}");
            assert_eq!(reply.body["version"].as_i64(), Some(version), "step {step}");
        }
    }
    let mut reads = [0.0; 3];
    for app in &apps {
        let metrics = app.get("/metrics", Auth::None).await.text;
        for (i, how) in ["cached", "caught_up", "whole"].iter().enumerate() {
            reads[i] += metric(&metrics, &format!("stockcart_cart_change_reads_total{{read=\"{how}\"}}"));
        }
    }
    let [cached, caught_up, whole] = reads;
    assert!(cached > 0.0 && caught_up > 0.0 && whole > 0.0, "every way was taken: {reads:?}");
    assert!(caught_up > whole, "most copies behind were caught up: {reads:?}");
    apps[0].assert_invariants().await;
}

/// How one replica's cart changes found their carts so far: (cached, caught up, read whole).
async fn change_reads(app: &TestApp) -> [f64; 3] {
    let metrics = app.get("/metrics", Auth::None).await.text;
    ["cached", "caught_up", "whole"]
        .map(|how| metric(&metrics, &format!("stockcart_cart_change_reads_total{{read=\"{how}\"}}")))
}

#[tokio::test]
async fn a_copy_behind_is_caught_up_only_while_the_carts_history_covers_it() {
    let apps = spawn_replicas(2, &[]).await;
    let (a, b) = (&apps[0], &apps[1]);
    let skus: Vec<String> = (0..10).map(|i| format!("H-{i}")).collect();
    a.stocked_in_bulk(&skus, 100, 1000).await;
    let token = a.session().await;
    let lines = |reply: &Reply| -> Vec<(String, i64)> {
        let lines = reply.body["lines"].as_array().unwrap();
        lines.iter().map(|l| (l["sku"].as_str().unwrap().to_owned(), l["quantity"].as_i64().unwrap())).collect()
    };
    for sku in &skus {
        a.add(&token, sku, 1).await.assert_status(200);
    }
    // Three changes elsewhere: A's copy is three versions behind, within the history.
    b.set_item(&token, "H-3", 5).await.assert_status(200);
    b.remove_item(&token, "H-0").await.assert_status(200);
    b.add(&token, "H-0", 2).await.assert_status(200);
    let before = change_reads(a).await;
    let answer = a.add(&token, "H-9", 1).await;
    let after = change_reads(a).await;
    assert_eq!(after[1] - before[1], 1.0, "caught up: {before:?} -> {after:?}");
    assert_eq!(lines(&answer), lines(&b.cart(&token).await));
    assert_eq!(lines(&answer)[9], ("H-0".to_owned(), 2), "a line removed and added again comes last");
    assert_eq!(lines(&answer)[8], ("H-9".to_owned(), 2));

    // Clearing ten lines writes ten entries: the history keeps eight, so it no longer covers
    // the version before the clear, and A reads the cart whole.
    b.clear_cart(&token).await.assert_status(200);
    let before = change_reads(a).await;
    let answer = a.add(&token, "H-1", 1).await;
    let after = change_reads(a).await;
    assert_eq!(after[2] - before[2], 1.0, "read whole: {before:?} -> {after:?}");
    assert_eq!(lines(&answer), vec![("H-1".to_owned(), 1)]);

    // A checkout bumps the version without a history: read whole again, and empty.
    b.add(&token, "H-2", 1).await.assert_status(200);
    b.checkout(&token, "history-1").await.assert_status(201);
    let before = change_reads(a).await;
    let answer = a.add(&token, "H-4", 3).await;
    let after = change_reads(a).await;
    assert_eq!(after[2] - before[2], 1.0, "read whole after a checkout: {before:?} -> {after:?}");
    assert_eq!(lines(&answer), vec![("H-4".to_owned(), 3)]);

    // A stale If-Match is refused with the cart as it is, caught up or not.
    b.add(&token, "H-5", 1).await.assert_status(200);
    let version = answer.body["version"].as_i64().unwrap();
    let refused = a.add_if_match(&token, "H-6", 1, version).await;
    refused.assert_problem(412, "version_mismatch");
    let current = b.cart(&token).await;
    assert_eq!(refused.body["current"]["lines"], current.body["lines"]);
    assert_eq!(refused.body["current"]["version"], current.body["version"]);
}

/// While a replica's copies of carts are current (every change of a cart through it), it
/// decides changes on them without reading the cart; each write then requires what the
/// decision assumed. Every change made elsewhere meanwhile (stock taken, a price changed, the
/// cart changed on the other replica, the session revoked) must still be seen, never overwritten.
#[tokio::test]
async fn changes_decided_on_a_replicas_copies_still_see_every_change_made_elsewhere() {
    let apps = spawn_replicas(2, &[]).await;
    let (a, b) = (&apps[0], &apps[1]);
    a.stocked("TEE", 1999, 100).await;
    a.stocked("HAT", 500, 5).await;
    a.stocked("MUG", 800, 10).await;
    let token = a.session().await;
    // Every change through A, one at a time: A's copy is always current, so A learns that its
    // copies pay and stops reading.
    for k in 0..40 {
        a.set_item(&token, "TEE", 1 + k % 2).await.assert_status(200);
    }
    a.set_item(&token, "HAT", 3).await.assert_status(200);
    let before = unread(a).await;
    assert!(before > 0.0, "no change was decided on a copy");

    // Stock taken by someone else: the copy cannot know; the write's requirement does.
    let hat = a.set_item(&token, "HAT", 4).await;
    hat.assert_status(200);
    a.adjust("HAT", -3, "shrinkage").await.assert_status(200);
    let relocked_before = relocked(a).await;
    let refused = a.set_item(&token, "HAT", 3).await;
    refused.assert_problem(409, "insufficient_stock");
    assert_eq!(refused.body["shortages"][0]["available"], 2, "{}", refused.text);
    // Decided on the copy, its write found the stock short, and a locked round refused it.
    assert_eq!(relocked(a).await, relocked_before + 1.0);
    assert_eq!(a.cart(&token).await.body["version"], hat.body["version"]);

    // A's copies pay again (the refusal above counted as a copy that did not), then a change
    // on the other replica: A's copy is now a version behind.
    for _ in 0..4 {
        a.add(&token, "TEE", 1).await.assert_status(200);
    }
    let on_b = b.add(&token, "MUG", 2).await;
    on_b.assert_status(200);
    let relocked_before = relocked(a).await;
    let next = a.add(&token, "TEE", 1).await;
    assert_eq!(relocked(a).await, relocked_before + 1.0, "the copy behind was not decided on and refused by the write");
    next.assert_status(200);
    assert_eq!(next.body["version"].as_i64(), Some(on_b.body["version"].as_i64().unwrap() + 1));
    let lines = next.body["lines"].as_array().unwrap();
    let quantity = |sku: &str| lines.iter().find(|l| l["sku"] == sku).map(|l| l["quantity"].as_i64().unwrap());
    assert_eq!(quantity("MUG"), Some(2), "A overwrote B's change: {}", next.text);
    assert_eq!(quantity("TEE"), Some(7));
    assert_eq!(quantity("HAT"), Some(4));
    // A stale If-Match is refused from the cart as it is, not from a copy.
    let stale = a.add_if_match(&token, "TEE", 1, on_b.body["version"].as_i64().unwrap()).await;
    stale.assert_problem(412, "version_mismatch");

    // A price changed: the next change answers the new price.
    for _ in 0..3 {
        a.add(&token, "TEE", 1).await.assert_status(200);
    }
    a.put_product("TEE", "Tee, reduced", 1500).await.assert_status(200);
    let repriced = a.add(&token, "TEE", 1).await;
    repriced.assert_status(200);
    let tee = repriced.body["lines"].as_array().unwrap().iter().find(|l| l["sku"] == "TEE").unwrap().clone();
    assert_eq!(tee["unit_price"]["amount"], 1500, "{}", repriced.text);
    assert_eq!(tee["name"], "Tee, reduced");
    assert_eq!(b.cart(&token).await.body, a.cart(&token).await.body);

    // Revoked on the other replica: refused, nothing written.
    for _ in 0..3 {
        a.add(&token, "TEE", 1).await.assert_status(200);
    }
    let last = a.cart(&token).await.body;
    b.request("DELETE", "/v1/session", Auth::Bearer(&token), None, &[]).await.assert_status(204);
    a.add(&token, "TEE", 1).await.assert_problem(401, "unauthorized");
    // The guest cart went with its session, or stays as it was: never changed after.
    let version: Option<i64> = sqlx::query_scalar("SELECT version FROM carts WHERE id = $1::uuid")
        .bind(last["id"].as_str().unwrap())
        .fetch_optional(&a.db)
        .await
        .unwrap();
    assert!(version.is_none() || version == last["version"].as_i64(), "{version:?} after {last}");
    assert!(unread(a).await > before, "no later change was decided on a copy");
    a.assert_invariants().await;
}

/// Changes a replica decided on its copies, unread, and made.
async fn unread(app: &TestApp) -> f64 {
    metric(&app.get("/metrics", Auth::None).await.text, "stockcart_cart_change_reads_total{read=\"none\"}")
}

/// Changes a replica's first round could not make, made by a locked round.
async fn relocked(app: &TestApp) -> f64 {
    metric(&app.get("/metrics", Auth::None).await.text, "stockcart_cart_changes_relocked_total")
}
