//! The dashboard in a real headless Chromium, driven over WebDriver (chromedriver): every KRI
//! tile is there, a KRI link leads to its chart, and Run now with the token starts a run.
//! Screenshots at 375 px and 1280 px land in `target/tmp/screenshots/` to be looked at.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them). Without them the
//! test says so and passes, except under CI (`CI=true`), where it fails.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

use crate::helper::Kri;
use crate::serve::{TOKEN, all_connectors, selected_slugs};

const CHROMIUM: &str = "/usr/bin/chromium";
const DRIVER: &str = "/usr/bin/chromedriver";

/// A WebDriver session on a chromedriver this test started.
struct Browser {
    driver: tokio::process::Child,
    http: reqwest::Client,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start() -> Option<Browser> {
        if !Path::new(CHROMIUM).exists() || !Path::new(DRIVER).exists() {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true");
            assert!(!ci, "CI must install chromium and chromium-driver (.ci/run does)");
            eprintln!("SKIPPED: {CHROMIUM} or {DRIVER} missing (apt-get install chromium chromium-driver)");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let driver = tokio::process::Command::new(DRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client");
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while http.get(format!("{base}/status")).send().await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not answer");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().expect("profile dir");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        }}});
        let answer: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .expect("new session")
            .json()
            .await
            .expect("JSON");
        let session = answer["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {answer}"))
            .to_owned();
        Some(Browser {
            driver,
            http,
            session: format!("{base}/session/{session}"),
            _profile: profile,
        })
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut r = self.http.request(method, format!("{}{path}", self.session));
        if let Some(b) = body {
            r = r.json(&b);
        }
        let v: Value = r.send().await.expect("WebDriver call").json().await.expect("JSON");
        assert!(v["value"]["error"].is_null(), "{path}: {v}");
        v["value"].clone()
    }

    async fn go(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    async fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    async fn find_all(&self, css: &str) -> Vec<String> {
        let v = self
            .call(
                reqwest::Method::POST,
                "/elements",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e.as_object()?.values().next()?.as_str().map(str::to_owned))
            .collect()
    }

    async fn find(&self, css: &str) -> String {
        self.find_all(css)
            .await
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no element `{css}`"))
    }

    async fn attribute(&self, element: &str, name: &str) -> Option<String> {
        let v = self
            .call(
                reqwest::Method::GET,
                &format!("/element/{element}/attribute/{name}"),
                None,
            )
            .await;
        v.as_str().map(str::to_owned)
    }

    async fn text(&self, element: &str) -> String {
        let v = self
            .call(reqwest::Method::GET, &format!("/element/{element}/text"), None)
            .await;
        v.as_str().unwrap_or_default().to_owned()
    }

    async fn click(&self, element: &str) {
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/click"),
            Some(json!({})),
        )
        .await;
    }

    async fn type_in(&self, element: &str, text: &str) {
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    async fn script(&self, js: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": js, "args": []})),
        )
        .await
    }

    /// A PNG of the page at `width` px, as tall as the page (at most 4000 px).
    async fn screenshot(&self, width: u32, file: &Path) {
        self.call(
            reqwest::Method::POST,
            "/window/rect",
            Some(json!({"width": width, "height": 900})),
        )
        .await;
        let height = self
            .script("return document.documentElement.scrollHeight")
            .await
            .as_u64()
            .unwrap_or(900)
            .clamp(600, 4000);
        self.call(
            reqwest::Method::POST,
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        )
        .await;
        let png = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap_or_default())
            .expect("base64 PNG");
        std::fs::write(file, bytes).expect("write the screenshot");
    }

    async fn close(mut self) {
        let _ = self.http.delete(&self.session).send().await;
        let _ = self.driver.kill().await;
    }
}

/// The texts whose colour is below WCAG AA contrast against the background behind them (the
/// first opaque background up the tree): 4.5:1, or 3:1 for large text (24 px, or 18.66 px bold).
const CONTRAST: &str = r#"
const rgb = s => (s.match(/[\d.]+/g) || []).map(Number);
const lum = c => { const [r, g, b] = c.slice(0, 3).map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); }); return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
const background = el => { for (let e = el; e; e = e.parentElement) { const c = rgb(getComputedStyle(e).backgroundColor); if (c.length === 3 || (c.length === 4 && c[3] > 0.99)) return c; } return [255, 255, 255]; };
const low = [];
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
while (walker.nextNode()) {
  const node = walker.currentNode, el = node.parentElement;
  if (!el || !node.textContent.trim() || el.closest('svg')) continue;
  const st = getComputedStyle(el);
  if (st.visibility === 'hidden' || st.display === 'none' || el.getClientRects().length === 0) continue;
  const fg = rgb(st.color), bg = background(el);
  const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
  const ratio = (a + 0.05) / (b + 0.05);
  const size = parseFloat(st.fontSize), bold = parseInt(st.fontWeight, 10) >= 700;
  const need = (size >= 24 || (bold && size >= 18.66)) ? 3 : 4.5;
  if (ratio < need) low.push(node.textContent.trim().slice(0, 40) + ' ' + ratio.toFixed(2) + ':1 ' + st.color + ' on ' + bg);
}
return low;
"#;

fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

#[tokio::test]
async fn the_dashboard_in_a_browser_shows_every_tile_follows_a_link_and_runs_now_with_the_token() {
    let Some(browser) = Browser::start().await else { return };
    let k = Kri::default().await;
    // VAP with an owner and an action, so the tiles show them (and the contrast check reads them).
    let cfg = all_connectors(
        &k,
        "[kris.pp_vap_count]\nowner = \"Head of SecOps\"\naction = \"https://wiki.example/vap\"\n",
    );
    let mut s = k
        .start(
            &cfg,
            &["serve", "--listen", "127.0.0.1:0"],
            &[("KRI_SERVE__TOKEN", TOKEN)],
        )
        .await;
    s.runs_of(&["tap", "efd", "clear", "ctr"]).await;
    let selected = selected_slugs(&s.get_json("/api/v1/kris").await);

    browser.go(&format!("{}/", s.base)).await;
    let mut seen = Vec::new();
    for tile in browser.find_all("article.tile").await {
        seen.push(browser.attribute(&tile, "data-slug").await.unwrap_or_default());
    }
    seen.sort();
    let mut want = selected.clone();
    want.sort();
    assert_eq!(seen, want, "one tile per selected KRI");
    let overflow = browser
        .script("return document.documentElement.scrollWidth > document.documentElement.clientWidth")
        .await;
    let dir = screenshots();
    browser.screenshot(1280, &dir.join("dashboard-1280.png")).await;
    browser.screenshot(375, &dir.join("dashboard-375.png")).await;
    let narrow_overflow = browser
        .script("return document.documentElement.scrollWidth > window.innerWidth")
        .await;
    assert_eq!(overflow, json!(false), "no sideways scroll at 1280 px");
    assert_eq!(narrow_overflow, json!(false), "no sideways scroll at 375 px");

    // A risk manager's reading order: the summary first, then the tiles worst first (the
    // band order never goes back up), each titled in words with its slug under it.
    let summary = browser.text(&browser.find("#summary").await).await;
    assert!(summary.contains("red") && summary.contains("overdue"), "{summary}");
    let bands = browser
        .script("return [...document.querySelectorAll('article.tile')].map(t => t.dataset.band)")
        .await;
    let rank = |b: &Value| match b.as_str() {
        Some("red") => 0,
        Some("amber") => 1,
        Some("green") => 3,
        _ => 2,
    };
    let ranks: Vec<i32> = bands.as_array().unwrap().iter().map(rank).filter(|r| *r != 2).collect();
    assert!(ranks.windows(2).all(|w| w[0] <= w[1]), "worst first: {bands}");
    let vap = browser.find("article.tile[data-slug=\"pp_vap_count\"]").await;
    let vap_text = browser.text(&vap).await;
    assert!(
        vap_text.starts_with("Very Attacked People")
            && vap_text.contains("amber since")
            && vap_text.contains("Owner: Head of SecOps")
            && vap_text.contains("Action: https://wiki.example/vap"),
        "{vap_text}"
    );
    // The action of a breach is a link.
    assert!(
        !browser
            .find_all("article.tile[data-slug=\"pp_vap_count\"] p.action a")
            .await
            .is_empty()
    );

    // Every piece of text meets WCAG AA contrast (4.5:1, 3:1 for large text) on its background.
    let low = browser.script(CONTRAST).await;
    assert_eq!(low, json!([]), "text below WCAG AA contrast on the dashboard");
    // The check itself sees faint text (#aaa on white is 2.3:1).
    let faint = browser
        .script(&format!(
            "const p = document.createElement('p'); p.textContent = 'faint text'; p.style.color = '#aaa'; \
             p.style.background = '#fff'; document.body.appendChild(p); const r = (function () {{ {CONTRAST} }})(); \
             p.remove(); return r;"
        ))
        .await;
    assert!(
        faint.to_string().contains("faint text"),
        "the contrast check missed faint text: {faint}"
    );

    // Follow a KRI's link to its chart.
    let link = browser.find("article.tile[data-slug=\"pp_vap_count\"] a").await;
    browser.click(&link).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !browser.url().await.ends_with("/kri/pp_vap_count") {
        assert!(Instant::now() < deadline, "the link did not lead to the KRI page");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let chart = browser.find("svg[role=\"img\"]").await;
    assert!(
        browser
            .attribute(&chart, "aria-label")
            .await
            .unwrap_or_default()
            .contains("pp_vap_count")
    );
    let low = browser.script(CONTRAST).await;
    assert_eq!(low, json!([]), "text below WCAG AA contrast on the KRI page");
    // The chart has dates on its axis and its amber and red regions shaded; ranges are links;
    // "How it is measured" and the breach log are there; nothing scrolls sideways at 375 px.
    // One run so far: its date under the chart (five dated ticks once there is a span).
    let labels = browser
        .script("return [...document.querySelectorAll('svg.chart text.lbl')].map(t => t.textContent)")
        .await;
    assert!(labels.to_string().contains("2026-11-23"), "a dated axis: {labels}");
    assert_eq!(browser.find_all("svg.chart rect.zone").await.len(), 2);
    assert_eq!(browser.find_all("nav.ranges a").await.len(), 4, "7d 30d 90d 1y");
    let how = browser.text(&browser.find("#how").await).await;
    assert!(how.contains("/v2/people/vap"), "{how}");
    assert!(
        !browser.find_all("#breaches table").await.is_empty(),
        "VAP is amber: a breach"
    );
    browser.screenshot(1280, &dir.join("kri-1280.png")).await;
    browser.screenshot(375, &dir.join("kri-375.png")).await;
    let narrow = browser
        .script("return document.documentElement.scrollWidth > window.innerWidth")
        .await;
    assert_eq!(narrow, json!(false), "no sideways scroll on the KRI page at 375 px");

    // Acknowledge it from the page, with the token.
    browser.screenshot(1280, &dir.join("kri-ack-1280.png")).await;
    browser
        .type_in(&browser.find("#ack-note").await, "known campaign, blocked")
        .await;
    browser.type_in(&browser.find("#ack-by").await, "Ana").await;
    browser.type_in(&browser.find("#ack-token").await, TOKEN).await;
    browser.click(&browser.find("#ack-submit").await).await;
    let status = browser.find("#ack-status").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let said = loop {
        let t = browser.text(&status).await;
        if t.starts_with("Acknowledged") || t.starts_with("HTTP") {
            break t;
        }
        assert!(Instant::now() < deadline, "no answer to Acknowledge: `{t}`");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(said.contains("by Ana") && said.contains("known campaign"), "{said}");
    let values = s.get_json("/api/v1/values?slug=pp_vap_count&limit=1").await;
    assert_eq!(values["values"][0]["acknowledged"]["by"], "Ana", "{values}");

    // Run now, with the token typed in.
    browser.go(&format!("{}/", s.base)).await;
    let token = browser.find("#token").await;
    browser.type_in(&token, TOKEN).await;
    let button = browser.find("#run-now-efd").await;
    browser.click(&button).await;
    let status = browser.find("#action-status").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let said = loop {
        let t = browser.text(&status).await;
        if t.starts_with("Run ") || t.starts_with("HTTP") {
            break t;
        }
        assert!(Instant::now() < deadline, "no answer to Run now: `{t}`");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(said.contains("started for efd"), "{said}");
    let run = s.event("run").await;
    assert!(said.contains(run["run_id"].as_str().unwrap_or("?")), "{said} vs {run}");

    // Test: started, then its result shown.
    let button = browser.find("#test-efd").await;
    browser.click(&button).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let t = browser.text(&status).await;
        if t.starts_with("Test of efd: ") {
            assert!(t.contains(": ok"), "{t}");
            break;
        }
        assert!(Instant::now() < deadline, "no test result on the page: `{t}`");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The report, as a file in the browser: its sections, AA contrast, nothing sideways at 375 px.
    let file = k.dir.path().join("report.html");
    let out = k
        .run(
            &[
                "--config",
                cfg.to_str().unwrap(),
                "report",
                "--html",
                file.to_str().unwrap(),
            ],
            &[],
        )
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    browser.go(&format!("file://{}", file.display())).await;
    for section in ["#summary", "#changes", "#breaches-now", "#trends"] {
        assert!(!browser.find_all(section).await.is_empty(), "{section} in the report");
    }
    let low = browser.script(CONTRAST).await;
    assert_eq!(low, json!([]), "text below WCAG AA contrast in the report");
    browser.screenshot(1280, &dir.join("report-1280.png")).await;
    browser.screenshot(375, &dir.join("report-375.png")).await;
    let narrow = browser
        .script("return document.documentElement.scrollWidth > window.innerWidth")
        .await;
    assert_eq!(narrow, json!(false), "no sideways scroll in the report at 375 px");
    browser.close().await;
    s.signal(libc::SIGTERM);
    assert_eq!(s.exit(Duration::from_secs(30)).await.0, 0);
}

#[tokio::test]
async fn the_tenants_overview_and_a_tenant_dashboard_in_a_browser() {
    let Some(browser) = Browser::start().await else { return };
    let (k, cfg, env) = crate::tenants::three_tenants().await;
    let mut envs = env.clone();
    envs.push(("KRI_SERVE__TOKEN", TOKEN));
    let mut s = k.start(&cfg, &["serve", "--listen", "127.0.0.1:0"], &envs).await;
    for _ in 0..8 {
        s.event("run").await;
    }
    browser.go(&format!("{}/", s.base)).await;
    let rows = browser.find_all("table.tenants tbody tr").await;
    assert_eq!(rows.len(), 3, "one row per tenant");
    // The tenant × KRI matrix: a row per tenant, a cell per KRI, each with its band's letter.
    assert_eq!(browser.find_all("table.matrix tbody tr").await.len(), 3);
    let cells = browser
        .script("return [...document.querySelectorAll('table.matrix td a')].map(a => a.textContent)")
        .await;
    let cells: Vec<String> = serde_json::from_value(cells).unwrap();
    assert!(
        !cells.is_empty() && cells.iter().all(|c| ["R", "A", "G", "–"].contains(&c.as_str())),
        "{cells:?}"
    );
    let low = browser.script(CONTRAST).await;
    assert_eq!(low, json!([]), "text below WCAG AA contrast on the overview");
    let dir = screenshots();
    browser.screenshot(375, &dir.join("overview-375.png")).await;
    let narrow = browser
        .script("return document.documentElement.scrollWidth > window.innerWidth")
        .await;
    assert_eq!(narrow, json!(false), "no sideways page scroll at 375 px");
    // At 375 px a tenant is a card: its row as wide as the page, its cells one under another.
    let card = browser
        .script(
            "const r = document.querySelector('table.tenants tbody tr'); \
             return getComputedStyle(r).display === 'block' && r.getBoundingClientRect().width <= window.innerWidth",
        )
        .await;
    assert_eq!(card, json!(true), "the tenants table stacks at 375 px");
    browser.screenshot(1280, &dir.join("overview-1280.png")).await;

    // Follow a tenant's link to its dashboard: the tenant's tiles, and Run now for that tenant.
    let link = browser.find("table.tenants a[href$=\"?tenant=gamma\"]").await;
    browser.click(&link).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !browser.url().await.ends_with("?tenant=gamma") {
        assert!(
            Instant::now() < deadline,
            "the link did not lead to the tenant's dashboard"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!browser.find_all("article.tile").await.is_empty(), "gamma's tiles");
    let low = browser.script(CONTRAST).await;
    assert_eq!(low, json!([]), "text below WCAG AA contrast on a tenant's dashboard");
    let token = browser.find("#token").await;
    browser.type_in(&token, TOKEN).await;
    let button = browser.find("#run-now-efd").await;
    browser.click(&button).await;
    let run = s.event("run").await;
    assert_eq!(run["connectors"][0]["tenant"], "gamma", "{run}");
    assert_eq!(run["connectors"][0]["module"], "efd", "{run}");
    browser.close().await;
    s.signal(libc::SIGTERM);
    assert_eq!(s.exit(Duration::from_secs(30)).await.0, 0);
}
