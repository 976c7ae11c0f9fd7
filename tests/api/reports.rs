//! Reports: a known history built through the API, every figure checked in JSON and CSV, read
//! both from the newest movements (before the rollups reach them) and from the rollups.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::{fresh_database, spawn_on, spawn_replicas, Auth, Reply, TestApp};

async fn report(app: &TestApp, path: &str) -> Value {
    let r = app.get(path, Auth::Admin).await;
    assert_eq!(r.status.as_u16(), 200, "{path}: {}", r.text);
    assert_eq!(r.header("content-type"), Some("application/json"), "{path}");
    r.body
}

async fn report_csv(app: &TestApp, path: &str) -> Reply {
    let r = app.request("GET", path, Auth::Admin, None, &[("Accept", "text/csv")]).await;
    r.assert_status(200);
    assert_eq!(r.header("content-type"), Some("text/csv; charset=utf-8"), "{path}");
    r
}

/// A CSV field as the JSON value reads: null empty, strings bare, Money as its amount.
fn as_field(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Object(m) => m["amount"].to_string(),
        v => v.to_string(),
    }
}

/// The CSV has the columns as its header and, row by row, the same values as the JSON items.
/// Time out of stock, and a reservation's age, run on between two reads of a report: the later
/// read's figure is the earlier one's or a few seconds more (reads on a loaded machine are
/// seconds apart).
#[track_caller]
fn assert_ran_on(earlier: i64, later: i64, context: &str) {
    assert!((0..=5).contains(&(later - earlier)), "{context}: {later} seconds after {earlier}");
}

async fn assert_csv_matches(app: &TestApp, path: &str, columns: &[&str], items: &[Value]) {
    let r = report_csv(app, path).await;
    let mut reader = csv::Reader::from_reader(r.text.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(header, columns, "{path}");
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), items.len(), "{path}: {}", r.text);
    for (row, item) in rows.iter().zip(items) {
        for (i, column) in columns.iter().enumerate() {
            let expected =
                if *column == "currency" { as_field(&item["revenue"]["currency"]) } else { as_field(&item[*column]) };
            let field = row.get(i).unwrap();
            if (*column == "stockout_seconds" || column.starts_with("age_")) && item[*column].is_i64() {
                assert_ran_on(item[*column].as_i64().unwrap(), field.parse().unwrap(), &format!("{path}: {column}"));
            } else if item[*column].is_number() {
                // The same digits, read by the same parser as the JSON was.
                assert_eq!(serde_json::from_str::<Value>(field).unwrap(), item[*column], "{path}: column {column}");
            } else {
                assert_eq!(field, expected, "{path}: column {column} of {item}");
            }
        }
    }
}

async fn buy(app: &TestApp, lines: &[(&str, i64)], key: &str) -> (String, Value) {
    let token = app.session().await;
    for (sku, quantity) in lines {
        app.add(&token, sku, *quantity).await.assert_status(200);
    }
    let order = app.checkout(&token, key).await;
    order.assert_status(201);
    (token, order.body)
}

/// Sequences the event log and rolls everything up, as the replicas' tasks do every few seconds.
async fn roll_up_everything(app: &TestApp) {
    let mut conn = app.db.acquire().await.unwrap();
    stockcart::store::events::sequence_all(&mut conn).await.unwrap();
    drop(conn);
    stockcart::tasks::rollup::catch_up(&app.db, 5000).await.unwrap();
}

/// Equal, floats to the last bit or two (serde_json's reading of a float may be off by one ulp).
fn same(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) if a.is_f64() || b.is_f64() => (x - y).abs() <= 1e-12 * y.abs().max(1.0),
        _ => a == b,
    }
}

fn item<'a>(items: &'a Value, sku: &str) -> &'a Value {
    items["items"].as_array().unwrap().iter().find(|i| i["sku"] == sku).unwrap_or_else(|| panic!("{sku} in {items}"))
}

/// Sums the series' columns (a history written across the top of an hour spans two buckets).
fn series_sums(series: &Value) -> Value {
    let mut sums = json!({ "received": 0, "sold": 0, "released": 0, "shipped": 0, "adjusted": 0, "reserved_delta": 0 });
    for b in series["items"].as_array().unwrap() {
        let start = b["bucket_start"].as_str().unwrap();
        assert!(start.ends_with(":00:00.000000Z"), "{start}");
        for (k, v) in sums.as_object_mut().unwrap() {
            *v = json!(v.as_i64().unwrap() + b[k.as_str()].as_i64().unwrap());
        }
    }
    sums
}

const STOCK: &[&str] = &[
    "sku",
    "name",
    "on_hand",
    "reserved",
    "available",
    "status",
    "units_sold",
    "units_received",
    "velocity_per_day",
    "days_of_cover",
    "sell_through",
    "stockout_seconds",
    "last_movement_at",
];
const MOVEMENTS: &[&str] = &["bucket_start", "received", "sold", "released", "shipped", "adjusted", "reserved_delta"];
const TOP: &[&str] = &["sku", "name", "units", "revenue", "currency", "abc"];
const RESERVATIONS: &[&str] =
    &["open_orders", "units", "oldest_at", "age_p50_seconds", "age_p90_seconds", "expiring_within_5m"];

/// Checks every report against the history of `every_figure_of_every_report_...`.
async fn check_reports(app: &TestApp, c_out_since: Instant, d_created: Instant, orders: &[String]) {
    // Stock health, 30 days: velocity = sold / 30, cover = available / velocity.
    let stock = report(app, "/v1/admin/reports/stock").await;
    let skus: Vec<&str> = stock["items"].as_array().unwrap().iter().map(|i| i["sku"].as_str().unwrap()).collect();
    assert_eq!(skus, ["A", "B", "C", "D"]);
    assert_eq!(stock["next"], Value::Null);
    let a = item(&stock, "A");
    let expected_a = json!({
        "sku": "A", "name": "Product A", "on_hand": 8, "reserved": 2, "available": 6, "status": "in_stock",
        "units_sold": 5, "units_received": 12, "velocity_per_day": 5.0 / 30.0,
        "days_of_cover": 6.0 / (5.0 / 30.0), "sell_through": 5.0 / 11.0, "stockout_seconds": 0,
    });
    for (k, v) in expected_a.as_object().unwrap() {
        assert!(same(&a[k], v), "A.{k}: {a}");
    }
    assert!(a["last_movement_at"].as_str().is_some(), "{a}");
    let b = item(&stock, "B");
    assert_eq!(
        (&b["on_hand"], &b["reserved"], &b["available"], &b["status"]),
        (&json!(3), &json!(0), &json!(3), &json!("low"))
    );
    assert_eq!((&b["units_sold"], &b["units_received"]), (&json!(2), &json!(5)));
    assert!(same(&b["velocity_per_day"], &json!(2.0 / 30.0)), "{b}");
    assert!(same(&b["days_of_cover"], &json!(3.0 / (2.0 / 30.0))), "{b}");
    assert!(same(&b["sell_through"], &json!(0.4)), "{b}");
    assert_eq!(b["stockout_seconds"], 0);
    let c = item(&stock, "C");
    assert_eq!((&c["available"], &c["status"], &c["units_sold"]), (&json!(0), &json!("out"), &json!(3)));
    assert_eq!((&c["days_of_cover"], &c["sell_through"]), (&json!(0.0), &json!(1.0)));
    let out = c["stockout_seconds"].as_i64().unwrap();
    assert!(out >= 2 && out <= c_out_since.elapsed().as_secs() as i64 + 1, "C out {out}s");
    let d = item(&stock, "D");
    assert_eq!((&d["units_sold"], &d["velocity_per_day"]), (&json!(0), &json!(0.0)));
    assert_eq!(
        (&d["days_of_cover"], &d["sell_through"], &d["last_movement_at"]),
        (&Value::Null, &Value::Null, &Value::Null)
    );
    let out = d["stockout_seconds"].as_i64().unwrap();
    assert!(out >= 2 && out <= d_created.elapsed().as_secs() as i64 + 1, "D out {out}s");
    assert_csv_matches(app, "/v1/admin/reports/stock", STOCK, stock["items"].as_array().unwrap()).await;

    // Filters, sorts and pages.
    let low_first = report(app, "/v1/admin/reports/stock?sort=days_of_cover&limit=2").await;
    let order: Vec<&str> = low_first["items"].as_array().unwrap().iter().map(|i| i["sku"].as_str().unwrap()).collect();
    assert_eq!(order, ["C", "A"]);
    let rest = report(
        app,
        &format!("/v1/admin/reports/stock?sort=days_of_cover&limit=2&after={}", low_first["next"].as_str().unwrap()),
    )
    .await;
    let order: Vec<&str> = rest["items"].as_array().unwrap().iter().map(|i| i["sku"].as_str().unwrap()).collect();
    assert_eq!(order, ["B", "D"]);
    assert_eq!(rest["next"], Value::Null);
    let sellers = report(app, "/v1/admin/reports/stock?sort=units_sold").await;
    let order: Vec<&str> = sellers["items"].as_array().unwrap().iter().map(|i| i["sku"].as_str().unwrap()).collect();
    assert_eq!(order, ["A", "C", "B", "D"]);
    let out = report(app, "/v1/admin/reports/stock?status=out&window=7d").await;
    let order: Vec<&str> = out["items"].as_array().unwrap().iter().map(|i| i["sku"].as_str().unwrap()).collect();
    assert_eq!(order, ["C", "D"]);
    assert!(same(&item(&out, "C")["velocity_per_day"], &json!(3.0 / 7.0)));
    // Pages in SKU order read only their own SKUs: the same items as the whole list.
    let first = report(app, "/v1/admin/reports/stock?limit=3").await;
    let last = report(app, &format!("/v1/admin/reports/stock?limit=3&after={}", first["next"].as_str().unwrap())).await;
    assert_eq!(last["next"], Value::Null);
    let paged: Vec<&Value> =
        first["items"].as_array().unwrap().iter().chain(last["items"].as_array().unwrap()).collect();
    let whole: Vec<&Value> = stock["items"].as_array().unwrap().iter().collect();
    assert_eq!(paged.len(), whole.len());
    for (p, w) in paged.iter().zip(&whole) {
        let out = |v: &Value| v["stockout_seconds"].as_i64().unwrap();
        assert_ran_on(out(w), out(p), &format!("{p} against {w}: stockout_seconds"));
        assert!(STOCK.iter().all(|k| *k == "stockout_seconds" || same(&p[*k], &w[*k])), "{p} against {w}");
    }

    // Movement series: one SKU and all, hourly and daily.
    for bucket in ["hour", "day"] {
        let a = report(app, &format!("/v1/admin/reports/movements?sku=A&bucket={bucket}")).await;
        assert_eq!(
            series_sums(&a),
            json!({ "received": 12, "sold": 5, "released": 1, "shipped": 3, "adjusted": -1, "reserved_delta": 2 })
        );
        assert_csv_matches(
            app,
            &format!("/v1/admin/reports/movements?sku=A&bucket={bucket}"),
            MOVEMENTS,
            a["items"].as_array().unwrap(),
        )
        .await;
        let all = report(app, &format!("/v1/admin/reports/movements?bucket={bucket}")).await;
        assert_eq!(
            series_sums(&all),
            json!({ "received": 20, "sold": 10, "released": 1, "shipped": 5, "adjusted": -1, "reserved_delta": 5 })
        );
        assert_csv_matches(
            app,
            &format!("/v1/admin/reports/movements?bucket={bucket}"),
            MOVEMENTS,
            all["items"].as_array().unwrap(),
        )
        .await;
    }
    let d = report(app, "/v1/admin/reports/movements?sku=D").await;
    assert_eq!(d["items"], json!([]));

    // Best sellers: revenue A 5000, B 500, C 150 of 5650: before B 88.5%, before C 97.3%.
    let by_units = report(app, "/v1/admin/reports/top").await;
    let money = |amount: i64| json!({ "amount": amount, "currency": "EUR" });
    assert_eq!(
        by_units["items"],
        json!([
            { "sku": "A", "name": "Product A", "units": 5, "revenue": money(5000), "abc": "A" },
            { "sku": "C", "name": "Product C", "units": 3, "revenue": money(150), "abc": "C" },
            { "sku": "B", "name": "Product B", "units": 2, "revenue": money(500), "abc": "B" },
        ])
    );
    assert_csv_matches(app, "/v1/admin/reports/top", TOP, by_units["items"].as_array().unwrap()).await;
    let by_revenue = report(app, "/v1/admin/reports/top?by=revenue&limit=2&window=1d").await;
    let order: Vec<&str> = by_revenue["items"].as_array().unwrap().iter().map(|i| i["sku"].as_str().unwrap()).collect();
    assert_eq!(order, ["A", "B"]);
    assert_csv_matches(
        app,
        "/v1/admin/reports/top?by=revenue&limit=2&window=1d",
        TOP,
        by_revenue["items"].as_array().unwrap(),
    )
    .await;

    // Reservations held now: the orders of C (oldest) and of A's second buyer.
    let held = report(app, "/v1/admin/reports/reservations").await;
    assert_eq!((&held["open_orders"], &held["units"], &held["expiring_within_5m"]), (&json!(2), &json!(5), &json!(2)));
    assert_eq!(held["oldest_at"], json!(orders[0]));
    let (p50, p90) = (held["age_p50_seconds"].as_i64().unwrap(), held["age_p90_seconds"].as_i64().unwrap());
    assert!(p50 <= p90 && p90 >= 2 && p90 <= c_out_since.elapsed().as_secs() as i64 + 1, "{held}");
    assert_csv_matches(app, "/v1/admin/reports/reservations", RESERVATIONS, std::slice::from_ref(&held)).await;
}

#[tokio::test]
async fn every_figure_of_every_report_from_the_newest_movements_and_from_the_rollups() {
    // Unpaid orders expire after 4 minutes: both open orders expire within 5. No rollups
    // until the test asks: the first reading is from the raw newest movements alone.
    let app =
        spawn_on(&fresh_database().await, &[("STOCKCART_PAYMENT_TIMEOUT", "4m"), ("STOCKCART_ROLLUP_INTERVAL", "0")])
            .await;
    let d_created = Instant::now();
    app.put_product("D", "Product D", 10).await.assert_status(201);
    app.stocked("A", 1000, 10).await;
    app.adjust("A", 2, "return").await.assert_status(200);
    app.adjust("A", -1, "correction").await.assert_status(200);
    app.stocked("B", 250, 5).await;
    app.admin(
        "PUT",
        "/v1/admin/products/B",
        Some(json!({ "name": "Product B", "price": { "amount": 250, "currency": "EUR" }, "low_stock_threshold": 3 })),
    )
    .await
    .assert_status(200);
    app.stocked("C", 50, 3).await;

    let (_, shipped) = buy(&app, &[("A", 3), ("B", 2)], "k1").await;
    let id = shipped["id"].as_str().unwrap();
    app.admin("POST", &format!("/v1/admin/orders/{id}/payment"), Some(json!({ "reference": "pay-1" })))
        .await
        .assert_status(200);
    app.admin("POST", &format!("/v1/admin/orders/{id}/ship"), None).await.assert_status(200);
    let (token, cancelled) = buy(&app, &[("A", 1)], "k2").await;
    let id = cancelled["id"].as_str().unwrap();
    app.request("POST", &format!("/v1/orders/{id}/cancel"), Auth::Bearer(&token), None, &[]).await.assert_status(200);
    let c_out_since = Instant::now();
    let (_, c_order) = buy(&app, &[("C", 3)], "k3").await;
    let (_, a_order) = buy(&app, &[("A", 2)], "k4").await;
    let orders =
        [c_order["created_at"].as_str().unwrap().to_owned(), a_order["created_at"].as_str().unwrap().to_owned()];
    tokio::time::sleep(Duration::from_millis(2100)).await;

    // From the newest movements alone, then from the rollups alone: the same figures.
    let cursor: i64 = sqlx::query_scalar("SELECT position FROM report_cursor").fetch_one(&app.db).await.unwrap();
    assert_eq!(cursor, 0, "nothing rolled up yet");
    check_reports(&app, c_out_since, d_created, &orders).await;
    roll_up_everything(&app).await;
    let behind: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM outbox_events WHERE position IS NULL OR position > (SELECT position FROM report_cursor)",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(behind, 0, "everything rolled up");
    check_reports(&app, c_out_since, d_created, &orders).await;
    // A replica with no second connection to spare (a pool of one) reads every SKU of a report
    // on its one connection instead of half on each of two: the same figures.
    let lone = spawn_on(
        &app.db_url,
        &[("STOCKCART_POOL_SIZE", "1"), ("STOCKCART_PAYMENT_TIMEOUT", "4m"), ("STOCKCART_ROLLUP_INTERVAL", "0")],
    )
    .await;
    check_reports(&lone, c_out_since, d_created, &orders).await;
    app.assert_invariants().await;
}

#[tokio::test]
async fn a_movement_committed_just_before_a_report_is_in_it() {
    let replicas = spawn_replicas(2, &[]).await;
    let (first, second) = (&replicas[0], &replicas[1]);
    first.stocked("FRESH", 100, 1).await;
    roll_up_everything(first).await;
    for n in 1..=5 {
        // Written on one replica, read at once on the other, with the rollups behind or not.
        first.adjust("FRESH", 1, "restock").await.assert_status(200);
        let stock = report(second, "/v1/admin/reports/stock").await;
        assert_eq!(item(&stock, "FRESH")["units_received"], 1 + n, "after {n} restocks");
        let token = second.session().await;
        second.add(&token, "FRESH", 1).await.assert_status(200);
        second.checkout(&token, "k").await.assert_status(201);
        let top = report(first, "/v1/admin/reports/top").await;
        assert_eq!(item(&top, "FRESH")["units"], n);
        let held = report(first, "/v1/admin/reports/reservations").await;
        assert_eq!(held["units"], n);
        if n % 2 == 0 {
            roll_up_everything(first).await;
        }
    }
}

#[tokio::test]
async fn followers_on_two_replicas_at_once_count_each_movement_once() {
    let replicas = spawn_replicas(2, &[]).await;
    let app = &replicas[0];
    let skus: Vec<String> = (0..40).map(|i| format!("R{i:02}")).collect();
    for sku in &skus {
        app.put_product(sku, "Rolled", 10).await.assert_status(201);
    }
    // Writers on both replicas while both replicas' tasks and two more followers roll up.
    let write = |app: &'static TestApp, round: i64| async move {
        let lines: Vec<Value> = (0..40)
            .map(|i| json!({ "sku": format!("R{i:02}"), "delta": 1 + (i + round) % 3, "reason": "restock" }))
            .collect();
        app.admin("POST", "/v1/admin/inventory/batch", Some(json!({ "adjustments": lines }))).await.assert_status(200);
    };
    let replicas: &'static Vec<TestApp> = Box::leak(Box::new(replicas));
    let mut tasks = Vec::new();
    for round in 0..30 {
        tasks.push(tokio::spawn(write(&replicas[(round % 2) as usize], round)));
    }
    let followers: Vec<_> = (0..2)
        .map(|i| {
            let pool = replicas[i].db.clone();
            tokio::spawn(async move {
                for _ in 0..20 {
                    stockcart::tasks::rollup::catch_up(&pool, 7).await.unwrap();
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        })
        .collect();
    for t in tasks.into_iter().chain(followers) {
        t.await.unwrap();
    }
    roll_up_everything(&replicas[0]).await;
    // The rollups hold exactly what the ledger says, per SKU and in the all-SKU rows.
    let mismatches: i64 = sqlx::query_scalar(
        r#"WITH ledger AS (
               SELECT sku, sum(received) AS received, count(*) AS n FROM report_movement_facts GROUP BY sku
           ), hourly AS (SELECT sku, sum(received) AS received FROM report_hourly WHERE sku <> '*' GROUP BY sku),
           running AS (
               -- Exact before running_from (V15); the hours from it on are in report_hourly.
               SELECT l.sku,
                      coalesce((SELECT r.received FROM report_running r, report_cursor c
                                WHERE r.sku = l.sku AND r.hour < c.running_from ORDER BY r.hour DESC LIMIT 1), 0)
                      + coalesce((SELECT sum(h.received) FROM report_hourly h, report_cursor c
                                  WHERE h.sku = l.sku AND h.hour >= c.running_from), 0) AS received
               FROM ledger l
           ),
           totals AS (SELECT sku, received FROM report_last_movement)
           SELECT count(*) FROM ledger l
           LEFT JOIN hourly h USING (sku) LEFT JOIN running r USING (sku) LEFT JOIN totals t USING (sku)
           WHERE h.received IS DISTINCT FROM l.received OR coalesce(r.received, 0) IS DISTINCT FROM l.received
              OR coalesce(t.received, 0) IS DISTINCT FROM l.received"#,
    )
    .fetch_one(&replicas[0].db)
    .await
    .unwrap();
    assert_eq!(mismatches, 0);
    let (all, total): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT sum(received)::int8 FROM report_hourly WHERE sku = '*'), (SELECT sum(received)::int8 FROM report_movement_facts)",
    )
    .fetch_one(&replicas[0].db)
    .await
    .unwrap();
    assert_eq!(all, total);
    let stock = report(&replicas[1], "/v1/admin/reports/stock?limit=200").await;
    for i in 0..40i64 {
        let expected: i64 = (0..30).map(|round| 1 + (i + round) % 3).sum();
        assert_eq!(item(&stock, &format!("R{i:02}"))["units_received"], expected);
    }
}

/// H's 4 units sold now, 2 placed 30 hours ago and 1 placed 50 hours ago, at 100 each.
async fn sales_of_h_in_every_window(app: &TestApp) {
    for (days, units) in [(1, 4), (2, 6), (3, 7), (7, 15)] {
        let path = format!("/v1/admin/reports/stock?window={days}d");
        assert_eq!(item(&report(app, &path).await, "H")["units_sold"], units, "{path}");
        let top = report(app, &format!("/v1/admin/reports/top?window={days}d&by=units")).await;
        assert_eq!(item(&top, "H")["units"], units, "top over {days}d");
        assert_eq!(item(&top, "H")["revenue"]["amount"], units * 100, "top over {days}d");
    }
}

/// Sales counted hours and days ago (at the hour each order was placed), with the running
/// totals written through different hours (V15): whatever hour they are written through, and
/// after the step that writes the hours completed since, every window's figures are the same.
#[tokio::test]
async fn window_sums_do_not_depend_on_the_hour_running_totals_are_written_through() {
    let app = spawn_on(&fresh_database().await, &[("STOCKCART_ROLLUP_INTERVAL", "0")]).await;
    app.stocked("H", 100, 50).await;
    let mut ids = Vec::new();
    for (quantity, key) in [(1, "h1"), (2, "h2"), (4, "h3"), (8, "h4")] {
        let (_, order) = buy(&app, &[("H", quantity)], key).await;
        ids.push(uuid::Uuid::parse_str(order["id"].as_str().unwrap()).unwrap());
    }
    // Placed 50 and 30 hours ago: in the 3-day window, one of them in the 2-day window, neither
    // in the 1-day window. One placed 150 hours ago is in the 7-day window alone: the 3-day
    // window finds its running total before the two days searched first (V16).
    for (id, hours) in [(ids[0], 50), (ids[1], 30), (ids[3], 150)] {
        sqlx::query("UPDATE orders SET created_at = now() - make_interval(hours => $2) WHERE id = $1")
            .bind(id)
            .bind(hours)
            .execute(&app.db)
            .await
            .unwrap();
    }
    sales_of_h_in_every_window(&app).await;
    roll_up_everything(&app).await;
    sales_of_h_in_every_window(&app).await;
    for hours_ago in [40, 60, 20] {
        sqlx::query(
            "UPDATE report_cursor SET running_from = date_trunc('hour', now() - make_interval(hours => $1), 'UTC')",
        )
        .bind(hours_ago)
        .execute(&app.db)
        .await
        .unwrap();
        sales_of_h_in_every_window(&app).await;
        // The next step writes the completed hours and moves running_from to this hour.
        roll_up_everything(&app).await;
        let behind: bool =
            sqlx::query_scalar("SELECT running_from < date_trunc('hour', now(), 'UTC') FROM report_cursor")
                .fetch_one(&app.db)
                .await
                .unwrap();
        assert!(!behind, "running totals written through this hour");
        sales_of_h_in_every_window(&app).await;
    }
}

#[tokio::test]
async fn bad_parameters_are_invalid_query() {
    let replicas = spawn_replicas(1, &[]).await;
    let app = &replicas[0];
    app.stocked("Q", 100, 1).await;
    for path in [
        "/v1/admin/reports/stock?window=367d",
        "/v1/admin/reports/stock?window=0d",
        "/v1/admin/reports/stock?window=week",
        "/v1/admin/reports/stock?status=gone",
        "/v1/admin/reports/stock?sort=price",
        "/v1/admin/reports/stock?limit=0",
        "/v1/admin/reports/stock?limit=201",
        "/v1/admin/reports/stock?after=nonsense",
        "/v1/admin/reports/movements?bucket=week",
        "/v1/admin/reports/movements?sku=NOPE",
        "/v1/admin/reports/movements?sku=bad%20sku",
        "/v1/admin/reports/movements?from=yesterday",
        "/v1/admin/reports/movements?from=2026-01-01T00:00:00Z&to=2025-01-01T00:00:00Z",
        "/v1/admin/reports/movements?from=2024-01-01T00:00:00Z&to=2026-01-01T00:00:00Z",
        "/v1/admin/reports/top?by=margin",
        "/v1/admin/reports/top?window=400d",
        "/v1/admin/reports/top?limit=abc",
    ] {
        app.get(path, Auth::Admin).await.assert_problem(400, "invalid_query");
    }
    report(app, "/v1/admin/reports/stock?window=366d").await;
    app.get("/v1/admin/reports/stock", Auth::None).await.assert_problem(401, "unauthorized");
    let token = app.session().await;
    app.get("/v1/admin/reports/top", Auth::Bearer(&token)).await.assert_problem(403, "forbidden");
    let empty = report(app, "/v1/admin/reports/reservations").await;
    assert_eq!(
        empty,
        json!({ "open_orders": 0, "units": 0, "oldest_at": null, "age_p50_seconds": null, "age_p90_seconds": null, "expiring_within_5m": 0 })
    );
}
