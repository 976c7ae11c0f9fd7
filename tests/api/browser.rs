//! The dashboard and the API viewer in a real browser: Debian's Chromium driven through
//! WebDriver (chromedriver), spoken to with plain HTTP. Skipped, with a message, where
//! chromedriver is not installed (`.ci/run` installs it).

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_replicas, ADMIN_TOKEN};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

struct Browser {
    driver: Child,
    base: String,
    session: String,
    client: reqwest::Client,
    _profile: std::path::PathBuf,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        // A test that failed never closed its browser, and killing the driver leaves Chromium
        // running: end the processes of this test's own profile.
        let _ = Command::new("pkill").arg("-f").arg(self._profile.as_os_str()).status();
        let _ = std::fs::remove_dir_all(&self._profile);
    }
}

impl Browser {
    async fn start() -> Option<Browser> {
        let driver_bin = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())?;
        let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())?;
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let driver = Command::new(driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let profile = std::env::temp_dir().join(format!("stockcart-chromium-{}", uuid::Uuid::new_v4().simple()));
        let client = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while client.get(format!("{base}/status")).send().await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // The flags the machine's notes ask for: as root, headless, and no background traffic
        // to hosts this machine cannot reach.
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1400,1000",
        ]
        .iter()
        .map(|a| a.to_string())
        .chain([format!("--user-data-dir={}", profile.display())])
        .collect::<Vec<_>>();
        let created: Value = client
            .post(format!("{base}/session"))
            .json(&json!({ "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                // The console, for the policy violations and failed loads it reports.
                "goog:loggingPrefs": { "browser": "ALL" },
                "goog:chromeOptions": { "binary": chromium, "args": args }
            } } }))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let session = created["value"]["sessionId"].as_str()?.to_owned();
        Some(Browser { driver, base, session, client, _profile: profile })
    }

    async fn cmd(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut req = self.client.request(method, url);
        if !body.is_null() {
            req = req.json(&body);
        }
        let r = req.send().await.unwrap();
        let v: Value = r.json().await.unwrap();
        v["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", json!({ "url": url })).await;
    }

    async fn js(&self, script: &str) -> Value {
        self.cmd(reqwest::Method::POST, "/execute/sync", json!({ "script": script, "args": [] })).await
    }

    async fn find(&self, css: &str) -> String {
        let v = self.cmd(reqwest::Method::POST, "/element", json!({ "using": "css selector", "value": css })).await;
        v[ELEMENT].as_str().unwrap_or_else(|| panic!("no element {css}: {v}")).to_owned()
    }

    async fn type_into(&self, css: &str, text: &str) {
        let el = self.find(css).await;
        self.cmd(reqwest::Method::POST, &format!("/element/{el}/clear"), json!({})).await;
        self.cmd(reqwest::Method::POST, &format!("/element/{el}/value"), json!({ "text": text })).await;
    }

    async fn click(&self, css: &str) {
        let el = self.find(css).await;
        self.cmd(reqwest::Method::POST, &format!("/element/{el}/click"), json!({})).await;
    }

    /// Waits until `script` (an expression) is true in the page.
    async fn until(&self, what: &str, within: Duration, script: &str) -> Duration {
        let start = Instant::now();
        loop {
            if self.js(&format!("return !!({script});")).await == json!(true) {
                return start.elapsed();
            }
            assert!(start.elapsed() < within, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn find_xpath(&self, xpath: &str) -> String {
        let v = self.cmd(reqwest::Method::POST, "/element", json!({ "using": "xpath", "value": xpath })).await;
        v[ELEMENT].as_str().unwrap_or_else(|| panic!("no element {xpath}: {v}")).to_owned()
    }

    /// Every resource the page loaded came from `base`: nothing from another host.
    async fn assert_nothing_fetched_from_another_host(&self, base: &str) {
        let fetched = self.js("return performance.getEntriesByType('resource').map(e => e.name)").await;
        for url in fetched.as_array().unwrap() {
            assert!(url.as_str().unwrap().starts_with(base), "a request to another host: {url}");
        }
    }

    /// The console's errors and warnings so far (it reports Content-Security-Policy violations
    /// and failed loads there); reading them empties the log.
    async fn console_problems(&self) -> Vec<String> {
        let log = self.cmd(reqwest::Method::POST, "/se/log", json!({ "type": "browser" })).await;
        log.as_array()
            .into_iter()
            .flatten()
            .filter(|entry| matches!(entry["level"].as_str(), Some("SEVERE" | "WARNING")))
            .map(|entry| entry["message"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    async fn screenshot(&self) -> Vec<u8> {
        use base64::Engine;
        let v = self.cmd(reqwest::Method::GET, "/screenshot", Value::Null).await;
        base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap()).unwrap()
    }
}

fn cell(sku: &str, field: &str) -> String {
    format!("document.querySelector('tr[data-sku=\"{sku}\"] td[data-field=\"{field}\"]')")
}

#[tokio::test]
async fn the_dashboard_signs_in_shows_stock_and_follows_changes_from_another_replica() {
    let Some(browser) = Browser::start().await else {
        eprintln!("skipped: chromium and chromedriver are not installed (apt-get install chromium chromium-driver)");
        return;
    };
    let apps = spawn_replicas(2, &[]).await;
    apps[0].stocked("DASH-A", 1200, 5).await;
    apps[0].stocked("DASH-B", 800, 1).await;
    let base = &apps[0].address;

    // A wrong token shows an error, not a blank page.
    browser.goto(&format!("{base}/dashboard")).await;
    browser.until("the sign-in form", Duration::from_secs(10), "!document.getElementById('sign-in').hidden").await;
    browser.type_into("#token", "not-the-token").await;
    browser.click("#sign-in button").await;
    browser.until("the refusal", Duration::from_secs(5), "!document.getElementById('sign-in-error').hidden").await;
    let error = browser.js("return document.getElementById('sign-in-error').textContent").await;
    assert!(error.as_str().unwrap().contains("not the admin token"), "{error}");

    // The right one shows the seeded SKUs, and the stream goes live.
    browser.type_into("#token", ADMIN_TOKEN).await;
    browser.click("#sign-in button").await;
    browser.until("the stock table", Duration::from_secs(10), &format!("{} !== null", cell("DASH-B", "on_hand"))).await;
    assert_eq!(browser.js(&format!("return {}.textContent", cell("DASH-A", "on_hand"))).await, "5");
    browser
        .until("the live stream", Duration::from_secs(5), "document.getElementById('stream').dataset.stream === 'live'")
        .await;
    let stored = browser.js("return sessionStorage.getItem('stockcart.admin-token')").await;
    assert_eq!(stored, ADMIN_TOKEN, "kept in sessionStorage");
    assert!(!browser.js("return location.href").await.as_str().unwrap().contains(ADMIN_TOKEN), "never in a URL");

    // An adjustment on the other replica shows within a second.
    apps[1].adjust("DASH-A", 3, "restock").await.assert_status(200);
    let took = browser
        .until("the adjustment", Duration::from_secs(1), &format!("{}.textContent === '8'", cell("DASH-A", "on_hand")))
        .await;
    eprintln!("adjustment on the other replica shown after {took:?}");

    // A checkout that empties a SKU turns its badge to out.
    let token = apps[1].session().await;
    apps[1].add(&token, "DASH-B", 1).await.assert_status(200);
    apps[1].checkout(&token, "dash-1").await.assert_status(201);
    browser
        .until(
            "the out badge",
            Duration::from_secs(1),
            &format!("{}.dataset.value === 'out'", cell("DASH-B", "status")),
        )
        .await;
    assert_eq!(browser.js("return document.querySelector('tr[data-sku=\"DASH-B\"]').className").await, "out");
    browser
        .until("the order in the list", Duration::from_secs(2), "document.querySelectorAll('#orders li').length > 0")
        .await;

    // The charts drew something.
    browser
        .until("the charts", Duration::from_secs(5), "document.querySelectorAll('#chart-movements rect').length > 0 && document.getElementById('chart-top').childElementCount > 0")
        .await;

    browser.assert_nothing_fetched_from_another_host(base).await;
    if let Ok(path) = std::env::var("STOCKCART_SCREENSHOT") {
        std::fs::write(path, browser.screenshot().await).unwrap();
    }
    browser.cmd(reqwest::Method::DELETE, "", Value::Null).await;
}

/// `/docs` in the same browser: Swagger UI renders every operation of the document, shows the
/// document's own examples (an answer and a problem), sends a request from the page with a
/// session token given under Authorize, breaks no rule of the page's policy, and loads nothing
/// from another host.
#[tokio::test]
async fn the_api_docs_render_in_swagger_ui_with_the_documents_examples_and_try_requests() {
    let Some(browser) = Browser::start().await else {
        eprintln!("skipped: chromium and chromedriver are not installed (apt-get install chromium chromium-driver)");
        return;
    };
    let app = spawn_app().await;
    app.stocked("TEE-RED-M", 2500, 40).await;
    let base = &app.address;
    let doc: Value = reqwest::get(format!("{base}/openapi.json")).await.unwrap().json().await.unwrap();
    let operations: usize =
        doc["paths"].as_object().unwrap().values().map(|item| item.as_object().unwrap().len()).sum();

    browser.goto(&format!("{base}/docs")).await;
    let took = browser
        .until("the operations", Duration::from_secs(20), "document.querySelectorAll('.opblock').length > 0")
        .await;
    eprintln!("Swagger UI listed the operations after {took:?}");
    assert_eq!(browser.js("return document.querySelectorAll('.opblock').length").await, json!(operations));

    // Expanded, an operation shows its example answer and the examples of its problems, as
    // the document has them.
    let op = "#operations-cart-post_v1_cart_items";
    let add_item = &doc["paths"]["/v1/cart/items"]["post"];
    let answer = add_item["responses"]["200"]["content"]["application/json"]["example"]["id"].as_str().unwrap();
    let problem = doc["components"]["examples"]["insufficient_stock"]["value"]["detail"].as_str().unwrap();
    browser.click(&format!("{op} .opblock-summary-control")).await;
    let text = format!("document.querySelector('{op}').innerText");
    browser.until("the example answer", Duration::from_secs(5), &format!("{text}.includes({answer:?})")).await;
    browser.until("the example problem", Duration::from_secs(5), &format!("{text}.includes({problem:?})")).await;

    // A request tried from the page, with a session token given under Authorize.
    let token = app.session().await;
    app.add(&token, "TEE-RED-M", 2).await.assert_status(200);
    browser.click(".btn.authorize").await;
    let scheme = "//div[contains(@class,'auth-container')][.//code[text()='session']]";
    let input = browser.find_xpath(&format!("{scheme}//input")).await;
    browser.cmd(reqwest::Method::POST, &format!("/element/{input}/value"), json!({ "text": token })).await;
    let apply = browser.find_xpath(&format!("{scheme}//button[contains(@class,'authorize')]")).await;
    browser.cmd(reqwest::Method::POST, &format!("/element/{apply}/click"), json!({})).await;
    browser.click(".modal-ux .close-modal").await;
    let op = "#operations-cart-get_v1_cart";
    browser.click(&format!("{op} .opblock-summary-control")).await;
    browser.until("Try it out", Duration::from_secs(5), &format!("document.querySelector('{op} .try-out__btn')")).await;
    browser.click(&format!("{op} .try-out__btn")).await;
    browser.click(&format!("{op} .execute")).await;
    let live = format!("document.querySelector('{op} .live-responses-table')");
    browser
        .until("the answer", Duration::from_secs(10), &format!("{live} && {live}.innerText.includes('TEE-RED-M')"))
        .await;
    let status = browser.js(&format!("return {live}.querySelector('.response .response-col_status').innerText")).await;
    assert_eq!(status.as_str().unwrap().trim(), "200", "{status}");

    let problems = browser.console_problems().await;
    assert!(problems.is_empty(), "the console reported: {problems:#?}");
    browser.assert_nothing_fetched_from_another_host(base).await;
    browser.cmd(reqwest::Method::DELETE, "", Value::Null).await;
}
