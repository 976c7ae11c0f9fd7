//! `stockcart loadgen`, briefly, against two test replicas: it must run, report and verify.

use std::time::Duration;

use stockcart::loadgen::{self, Options, Scenario};

use crate::helpers::*;

fn options(apps: &[TestApp]) -> Options {
    Options {
        urls: apps.iter().map(|a| a.address.clone()).collect(),
        admin_token: ADMIN_TOKEN.into(),
        users: 8,
        admins: 1,
        duration: Duration::from_secs(2),
        skus: 20,
        stock: 200,
        ..Options::default()
    }
}

#[tokio::test]
async fn a_mixed_run_reports_and_verifies() {
    let apps = spawn_replicas(2, &[]).await;
    let summary = loadgen::run(options(&apps), false).await.unwrap();
    assert!(summary.passed(), "{}", summary.table());
    for op in ["add", "get_cart", "browse", "checkout"] {
        assert!(summary.op(op).is_some_and(|o| o.count > 0), "no {op} in\n{}", summary.table());
    }
    let json = summary.to_json();
    assert_eq!(json["passed"], true);
    assert!(json["operations"]["add"]["p99_ms"].as_f64().unwrap() > 0.0);
}

#[tokio::test]
async fn a_launch_day_rush_on_one_sku_sells_exactly_the_stock() {
    let apps = spawn_replicas(2, &[]).await;
    let rush = Options { scenario: Scenario::Checkout, hot: true, users: 16, stock: 25, ..options(&apps) };
    let summary = loadgen::run(rush, false).await.unwrap();
    assert!(summary.passed(), "{}", summary.table());
    let level = apps[0].level("LG-00000").await;
    assert_eq!(level["reserved"], 25, "every unit sold once: {}", summary.table());
    assert_eq!(level["available"], 0);
}
