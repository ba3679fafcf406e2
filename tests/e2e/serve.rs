//! `kri serve` and `kri daemon` as an operator runs them: the real binary against the sandbox,
//! its clock moved by the test through `KRI_TEST_CLOCK_FILE` (never a sleep to wait for a
//! schedule), HTTP answers read with a real client, signals sent for real.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use kri_sandbox::faults::{Fault, FaultRule};
use kri_sandbox::{Scenario, ctr};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

use crate::helper::{Kri, test_now};

pub const TOKEN: &str = "serve-token-0123456789abcdef";

/// A running `kri serve` (or `kri daemon`).
pub struct Served {
    child: tokio::process::Child,
    pub base: String,
    clock_file: PathBuf,
    /// Every stdout line (NDJSON events) so far.
    lines: mpsc::UnboundedReceiver<String>,
    pub seen: Vec<Value>,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
    pub http: reqwest::Client,
}

impl Kri {
    /// Start `kri --config CFG --output json ARGS` (serve or daemon) at the helper's "now", and
    /// wait for its start line.
    pub async fn start(&self, cfg: &std::path::Path, args: &[&str], envs: &[(&str, &str)]) -> Served {
        let clock_file = self.dir.path().join("now.txt");
        write_time(&clock_file, self.now());
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_kri"));
        cmd.args(["--config", cfg.to_str().expect("utf-8"), "--output", "json"])
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, _) in std::env::vars() {
            if k.starts_with("KRI_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("KRI_TEST_CLOCK_FILE", &clock_file);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("kri starts");
        let (tx, lines) = mpsc::unbounded_channel();
        let mut out = BufReader::new(child.stdout.take().expect("stdout")).lines();
        tokio::spawn(async move {
            while let Ok(Some(line)) = out.next_line().await {
                let _ = tx.send(line);
            }
        });
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut err = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let keep = stderr.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = err.next_line().await {
                keep.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let mut served = Served {
            child,
            base: String::new(),
            clock_file,
            lines,
            seen: Vec::new(),
            stderr,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
        };
        let started = served.event("started").await;
        served.base = started["listen"]
            .as_str()
            .unwrap_or_default()
            .trim_end_matches('/')
            .to_owned();
        served
    }

    /// Move "now" for the sandbox and a running kri.
    pub fn move_to(&self, served: &Served, to: DateTime<Utc>) {
        self.advance(to - self.now());
        write_time(&served.clock_file, to);
    }
}

fn write_time(path: &std::path::Path, t: DateTime<Utc>) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, t.to_rfc3339()).expect("write the clock");
    std::fs::rename(&tmp, path).expect("move the clock");
}

impl Served {
    /// The next stdout event of this kind (every line must be one JSON object).
    pub async fn event(&mut self, kind: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match tokio::time::timeout(left, self.lines.recv()).await {
                Ok(Some(line)) => line,
                _ => panic!("no `{kind}` event; stderr:\n{}\nseen: {:#?}", self.stderr(), self.seen),
            };
            let v: Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {line}"));
            self.seen.push(v.clone());
            if v["event"] == kind {
                return v;
            }
        }
    }

    /// `run` events until one for each of `modules` arrived, returned by module.
    pub async fn runs_of(&mut self, modules: &[&str]) -> Vec<Value> {
        let mut got: Vec<Value> = Vec::new();
        while !modules.iter().all(|m| got.iter().any(|r| run_module(r) == *m)) {
            got.push(self.event("run").await);
        }
        got
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let r = self.http.get(format!("{}{path}", self.base)).send().await.expect("GET");
        (r.status().as_u16(), r.text().await.expect("body"))
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let (status, body) = self.get(path).await;
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {body}"))
    }

    pub async fn post(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut r = self.http.post(format!("{}{path}", self.base));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        let r = r.send().await.expect("POST");
        let status = r.status().as_u16();
        (status, r.json().await.expect("JSON answer"))
    }

    /// POST `body` as JSON.
    pub async fn post_json(&self, path: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
        let mut r = self.http.post(format!("{}{path}", self.base)).json(body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        let r = r.send().await.expect("POST");
        let status = r.status().as_u16();
        (status, r.json().await.expect("JSON answer"))
    }

    /// Poll `path` until `ok` says yes (at most 60 s): for things that happen in the background.
    pub async fn until(&self, path: &str, ok: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let v = self.get_json(path).await;
            if ok(&v) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "{path} never got there: {v:#}\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn signal(&self, signal: i32) {
        let pid = self.child.id().expect("running") as i32;
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    }

    /// Wait for the exit: the code and how long it took.
    pub async fn exit(&mut self, within: Duration) -> (i32, Duration) {
        let t0 = Instant::now();
        let status = tokio::time::timeout(within, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("still running after {within:?}; stderr:\n{}", self.stderr()))
            .expect("wait");
        while let Ok(line) = self.lines.try_recv() {
            self.seen
                .push(serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")));
        }
        (status.code().unwrap_or(-1), t0.elapsed())
    }
}

/// The selected KRIs in a `kri kris --output json` answer (or `GET /api/v1/kris`).
pub fn selected_slugs(kris: &Value) -> Vec<String> {
    kris["connectors"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["kris"].as_array().cloned().unwrap_or_default())
        .filter(|k| k["selected"] == true)
        .filter_map(|k| k["slug"].as_str().map(str::to_owned))
        .collect()
}

pub fn run_module(run: &Value) -> &str {
    run["connectors"][0]["module"]
        .as_str()
        .or_else(|| run["module"].as_str())
        .unwrap_or_default()
}

fn at(t: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(t).expect("time").to_utc()
}

fn schedule_of<'a>(s: &'a Value, module: &str) -> &'a Value {
    s["connectors"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["module"] == module)
        .unwrap_or_else(|| panic!("{module} not in {s}"))
}

/// Every connector enabled, tap hourly at :05, CTR hourly, the others daily.
pub fn all_connectors(k: &Kri, extra: &str) -> PathBuf {
    k.config(&format!(
        "[connectors.tap]\nschedule = \"hourly\"\nat = \":05\"\n{}\n[connectors.efd]\nschedule = \"daily\"\nat = \"06:00\"\n{extra}",
        k.ctr_table(ctr::DEMO_CLIENT_SECRET, "enabled = true\nschedule = \"hourly\"\n")
    ))
}

#[tokio::test]
async fn serve_runs_each_connector_at_once_then_on_its_aligned_schedule() {
    let k = Kri::default().await;
    let cfg = all_connectors(&k, "");
    let mut s = k.start(&cfg, &["serve", "--listen", "127.0.0.1:0"], &[]).await;
    let started = s.seen[0].clone();
    let tap_next = started["connectors"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["module"] == "tap"))
        .map(|c| at(c["next_run"].as_str().unwrap_or_default()))
        .expect("tap in the start line");
    assert_eq!(tap_next.format("%H:%M").to_string(), "11:05", "{started}");
    assert!(
        tap_next < at("2026-11-23T11:06:00Z"),
        "jitter under a minute: {tap_next}"
    );

    // The first run of each connector starts at once.
    let first = s.runs_of(&["tap", "efd", "clear", "ctr"]).await;
    assert_eq!(first.len(), 4, "one run each: {first:#?}");
    for r in &first {
        assert_eq!(r["connectors"][0]["status"], "ok", "{r}");
    }
    let (code, ready) = s.get("/readyz").await;
    assert_eq!((code, ready.as_str()), (200, "ready\n"));

    let sched = s.get_json("/api/v1/schedule").await;
    let efd_next = at(schedule_of(&sched, "efd")["next_run"].as_str().expect("next run"));
    assert_eq!(efd_next.format("%d %H:%M").to_string(), "24 06:00", "{sched}");
    assert_eq!(
        at(schedule_of(&sched, "tap")["next_run"].as_str().expect("next")),
        tap_next
    );

    // Before the slot nothing runs; past it tap and ctr (hourly) run, efd and clear (daily) do not.
    k.move_to(&s, at("2026-11-23T11:04:00Z"));
    k.move_to(&s, tap_next + chrono::Duration::seconds(1));
    let second = s.runs_of(&["tap", "ctr"]).await;
    assert_eq!(second.len(), 2, "{second:#?}");
    let runs = s.get_json("/api/v1/runs?limit=100").await;
    let count = |m: &str| {
        runs["runs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["module"] == m)
            .count()
    };
    assert_eq!(
        (count("tap"), count("ctr"), count("efd"), count("clear")),
        (2, 2, 1, 1),
        "{runs:#}"
    );
    let next = at(schedule_of(&s.get_json("/api/v1/schedule").await, "tap")["next_run"]
        .as_str()
        .expect("next"));
    assert_eq!(next, tap_next + chrono::Duration::hours(1), "no drift");

    s.signal(libc::SIGTERM);
    let (code, _) = s.exit(Duration::from_secs(30)).await;
    assert_eq!(code, 0, "{}", s.stderr());
    assert_eq!(s.seen.last().map(|e| e["event"].clone()), Some("stopped".into()));
}

#[tokio::test]
async fn pages_api_and_metrics_answer_with_the_stored_values_and_no_secret() {
    let k = Kri::default().await;
    let cfg = all_connectors(&k, "");
    let mut s = k.start(&cfg, &["serve", "--listen", "127.0.0.1:0"], &[]).await;
    s.runs_of(&["tap", "efd", "clear", "ctr"]).await;

    // The API answers exactly what the CLI prints.
    let cli = |args: &'static [&'static str]| {
        let cfg = cfg.clone();
        let k = &k;
        async move {
            let mut all = vec!["--config", cfg.to_str().expect("utf-8"), "--output", "json"];
            all.extend_from_slice(args);
            k.run(&all, &[]).await.json()
        }
    };
    assert_eq!(s.get_json("/api/v1/values").await, cli(&["values"]).await);
    assert_eq!(
        s.get_json("/api/v1/values?slug=pp_vap_count").await,
        cli(&["values", "pp_vap_count"]).await
    );
    assert_eq!(s.get_json("/api/v1/runs").await, cli(&["history"]).await);
    assert_eq!(s.get_json("/api/v1/kris").await, cli(&["kris"]).await);
    let (code, body) = s.get("/api/v1/values?slug=pp_nope").await;
    assert_eq!(code, 404, "{body}");
    // Pages: the API and the CLI agree page by page, each page's cursor leading to the next.
    let first = s.get_json("/api/v1/values?limit=3").await;
    assert_eq!(first["values"].as_array().map(Vec::len), Some(3), "{first}");
    let cursor = first["next_cursor"].as_str().expect("a next page").to_owned();
    let second = s.get_json(&format!("/api/v1/values?limit=3&cursor={cursor}")).await;
    let config = cfg.to_str().expect("utf-8");
    let args = [
        "--config", config, "--output", "json", "values", "--limit", "3", "--cursor", &cursor,
    ];
    assert_eq!(second, k.run(&args, &[]).await.json());
    assert_ne!(
        second["values"][0], first["values"][0],
        "the next page, not the first again"
    );
    let (code, body) = s.get("/api/v1/values?cursor=%1b%5b2J").await;
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("is not one kri gave") && !body.contains('\x1b'), "{body}");

    // Every selected KRI has its tile, with its stored value; its page has the chart.
    let (code, page) = s.get("/").await;
    assert_eq!(code, 200);
    let values = s.get_json("/api/v1/values").await;
    let slugs = selected_slugs(&cli(&["kris"]).await);
    assert_eq!(slugs.len(), 10, "{slugs:?}");
    for slug in &slugs {
        assert!(page.contains(&format!("data-slug=\"{slug}\"")), "no tile for {slug}");
        let (code, kp) = s.get(&format!("/kri/{slug}")).await;
        assert_eq!(code, 200, "{slug}");
        assert!(kp.contains("<svg") && kp.contains(slug.as_str()), "{slug}");
    }
    let vap = values["values"]
        .as_array()
        .and_then(|v| v.iter().find(|v| v["slug"] == "pp_vap_count"))
        .expect("vap stored");
    assert!(
        page.contains(&format!(">{}<", vap["value"])),
        "the tile shows {}",
        vap["value"]
    );
    assert!(page.contains("Newest CTR incidents"), "the CTR feed is on the page");
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "nothing loaded from elsewhere"
    );
    for module in ["tap", "efd", "clear", "ctr"] {
        for id in [format!("run-now-{module}"), format!("test-{module}")] {
            let at = page
                .find(&format!("id=\"{id}\""))
                .unwrap_or_else(|| panic!("no button {id}"));
            let tag_end = at + page[at..].find('>').expect("tag end");
            assert!(page[at..tag_end].contains(" disabled"), "no token: {id} is disabled");
        }
    }
    assert!(page.contains("KRI_SERVE__TOKEN"), "the page says how to enable them");
    let (code, _) = s.get("/kri/pp_nope").await;
    assert_eq!(code, 404);

    // /metrics parses as Prometheus text and carries every KRI with its labels.
    let (code, metrics) = s.get("/metrics").await;
    assert_eq!(code, 200);
    let lines = metrics.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("Prometheus text");
    for slug in &slugs {
        let sample = scrape
            .samples
            .iter()
            .find(|m| m.metric == "kri_value" && m.labels.get("slug") == Some(slug.as_str()))
            .unwrap_or_else(|| panic!("no kri_value for {slug}:\n{metrics}"));
        assert!(sample.labels.get("module").is_some() && sample.labels.get("unit").is_some());
        let stored = values["values"]
            .as_array()
            .and_then(|v| v.iter().find(|v| v["slug"] == slug.as_str()))
            .and_then(|v| v["value"].as_f64())
            .expect("stored");
        assert_eq!(sample.value, prometheus_parse::Value::Gauge(stored), "{slug}");
        for metric in ["kri_threshold", "kri_band", "kri_status"] {
            assert!(
                scrape
                    .samples
                    .iter()
                    .any(|m| m.metric == metric && m.labels.get("slug") == Some(slug.as_str())),
                "{metric} {slug}"
            );
        }
    }
    for metric in [
        "kri_up",
        "kri_last_success_timestamp_seconds",
        "kri_last_run_duration_seconds",
        "kri_runs_total",
        "kri_next_run_timestamp_seconds",
        "kri_pool_calls_24h",
        "kri_pool_remaining_24h",
    ] {
        assert!(
            scrape.samples.iter().any(|m| m.metric == metric),
            "{metric}:\n{metrics}"
        );
    }
    let people_left = scrape
        .samples
        .iter()
        .find(|m| m.metric == "kri_pool_remaining_24h" && m.labels.get("pool") == Some("people"))
        .expect("people pool");
    assert!(
        matches!(people_left.value, prometheus_parse::Value::Gauge(v) if v < 50.0),
        "{metrics}"
    );

    // Read fresh per scrape: a new value shows at once.
    let before = s.get("/metrics").await.1;
    k.move_to(&s, at("2026-11-23T11:06:00Z"));
    s.runs_of(&["tap", "ctr"]).await;
    assert_ne!(before, s.get("/metrics").await.1);

    // A page asked for under another host name (DNS rebinding) is refused.
    let evil = s
        .http
        .get(format!("{}/api/v1/values", s.base))
        .header("host", "attacker.example:9741")
        .send()
        .await
        .expect("GET");
    assert_eq!(evil.status().as_u16(), 421);
    let body = evil.text().await.unwrap_or_default();
    assert!(body.contains("allowed_hosts"), "{body}");
    let local = s
        .http
        .get(format!("{}/healthz", s.base))
        .header("host", "localhost:9741")
        .send()
        .await
        .expect("GET");
    assert_eq!(local.status().as_u16(), 200);

    // No secret in any answer.
    let secrets = [
        k.sandbox.credentials(),
        kri_sandbox::DEMO_SECRET.to_owned(),
        ctr::DEMO_CLIENT_SECRET.to_owned(),
    ];
    for path in [
        "/",
        "/kri/pp_vap_count",
        "/metrics",
        "/api/v1/runs",
        "/api/v1/values",
        "/api/v1/kris",
        "/api/v1/schedule",
    ] {
        let body = s.get(path).await.1;
        for secret in &secrets {
            assert!(!body.contains(secret.as_str()), "{path} shows a secret");
        }
    }
    s.signal(libc::SIGTERM);
    assert_eq!(s.exit(Duration::from_secs(30)).await.0, 0);
}

#[tokio::test]
async fn run_now_and_test_need_the_token_and_never_double_a_run() {
    let k = Kri::new(Scenario {
        latency: Duration::from_millis(300),
        ..Scenario::default()
    })
    .await;
    let cfg = k.config("[connectors.tap]\nenabled = false\n[connectors.clear]\nenabled = false\n");

    // Without a token: disabled, and the answer says how to enable them.
    let mut s = k.start(&cfg, &["serve", "--listen", "127.0.0.1:0"], &[]).await;
    s.runs_of(&["efd"]).await;
    let (code, body) = s.post("/api/v1/runs?module=efd", Some(TOKEN)).await;
    assert_eq!(code, 403, "{body}");
    assert!(
        body["error"].as_str().unwrap_or_default().contains("KRI_SERVE__TOKEN"),
        "{body}"
    );
    assert_eq!(s.post("/api/v1/test?module=efd", None).await.0, 403);
    s.signal(libc::SIGTERM);
    assert_eq!(s.exit(Duration::from_secs(30)).await.0, 0);

    // With one: 401 without it or with a wrong one, 202 with it.
    let mut s = k
        .start(
            &cfg,
            &["serve", "--listen", "127.0.0.1:0"],
            &[("KRI_SERVE__TOKEN", TOKEN)],
        )
        .await;
    // This period's run was made by the first start: not made again on a restart.
    let skipped = s.event("skipped").await;
    assert_eq!(skipped["module"], "efd", "{skipped}");
    assert_eq!(s.get("/readyz").await.0, 200, "a skipped slot counts as done");
    assert_eq!(s.post("/api/v1/runs?module=efd", None).await.0, 401);
    assert_eq!(
        s.post("/api/v1/runs?module=efd", Some("wrong-token-0123456789"))
            .await
            .0,
        401
    );
    assert_eq!(s.post("/api/v1/test?module=efd", None).await.0, 401);
    let (code, body) = s.post("/api/v1/runs?module=nope", Some(TOKEN)).await;
    assert_eq!(code, 404, "{body}");

    let (code, first) = s.post("/api/v1/runs?module=efd", Some(TOKEN)).await;
    assert_eq!((code, first["status"].as_str()), (202, Some("started")), "{first}");
    let run_id = first["run_id"].as_str().expect("run id").to_owned();
    // Pressed again while it runs: the same run, not a second one.
    let (code, again) = s.post("/api/v1/runs?module=efd", Some(TOKEN)).await;
    assert_eq!(
        (code, again["run_id"].as_str()),
        (202, Some(run_id.as_str())),
        "{again}"
    );
    assert_eq!(again["status"], "already_running");
    let done = s.event("run").await;
    assert_eq!(done["run_id"], run_id.as_str(), "{done}");
    // One run for the period (the first start's), and the Run now.
    let runs = s.get_json("/api/v1/runs?module=efd").await;
    assert_eq!(runs["runs"].as_array().map(Vec::len), Some(2), "{runs}");
    assert_eq!(runs["runs"][0]["run_id"], run_id.as_str());

    let (code, t) = s.post("/api/v1/test?module=efd", Some(TOKEN)).await;
    assert_eq!(code, 202, "{t}");
    let id = t["test_id"].as_str().expect("test id").to_owned();
    let result = s.until(&format!("/api/v1/test/{id}"), |v| v["state"] == "done").await;
    assert_eq!(result["probe"]["status"], "ok", "{result}");
    assert!(!s.stderr().contains(TOKEN) && !s.seen.iter().any(|e| e.to_string().contains(TOKEN)));
    s.signal(libc::SIGTERM);
    assert_eq!(s.exit(Duration::from_secs(30)).await.0, 0);
}

#[tokio::test]
async fn sigterm_mid_run_exits_0_within_the_grace_period_and_keeps_the_last_good_values() {
    let k = Kri::default().await;
    let cfg = k.config(
        "[serve]\ngrace = \"2s\"\n[connectors.tap]\nenabled = false\n[connectors.efd]\nschedule = \"hourly\"\n",
    );
    let good = k.run_only(&cfg, "efd", &[]).await;
    assert_eq!(good.code, 0, "{}", good.stderr);
    let good_value = crate::helper::kri(&good.json(), "pp_dmarc_enforcement_pct")["value"].clone();

    // EFD now hangs: its run is in progress when the signal comes.
    k.sandbox.set_faults(vec![FaultRule::always("/v2/efd", Fault::Hang)]);
    let mut s = k.start(&cfg, &["serve", "--listen", "127.0.0.1:0"], &[]).await;
    s.runs_of(&["clear"]).await;
    s.until("/api/v1/schedule", |v| !schedule_of(v, "efd")["running"].is_null())
        .await;
    let (code, why) = s.get("/readyz").await;
    assert_eq!(code, 503, "{why}");
    assert!(why.contains("first run since start of: efd"), "{why}");
    s.signal(libc::SIGTERM);
    let (code, took) = s.exit(Duration::from_secs(20)).await;
    assert_eq!(code, 0, "{}", s.stderr());
    assert!(took < Duration::from_secs(7), "grace 2s, took {took:?}");
    assert!(took >= Duration::from_secs(2), "the run had its grace period: {took:?}");
    let kinds: Vec<&str> = s.seen.iter().filter_map(|e| e["event"].as_str()).collect();
    assert!(kinds.ends_with(&["stopping", "run", "stopped"]), "{kinds:?}");

    // The cancelled run is recorded as failed, whole; the last good value is untouched.
    let history = k
        .run(
            &[
                "--config",
                cfg.to_str().unwrap(),
                "--output",
                "json",
                "history",
                "--module",
                "efd",
            ],
            &[],
        )
        .await
        .json();
    let newest = &history["runs"][0];
    assert_eq!(newest["status"], "failed", "{history}");
    assert!(
        newest["error"].as_str().unwrap_or_default().contains("cancelled"),
        "{newest}"
    );
    let values = k
        .run(
            &[
                "--config",
                cfg.to_str().unwrap(),
                "--output",
                "json",
                "values",
                "pp_dmarc_enforcement_pct",
            ],
            &[],
        )
        .await
        .json();
    assert_eq!(values["values"][0]["status"], "failed");
    assert_eq!(
        values["values"][0]["run_id"], newest["run_id"],
        "the run's value row is written with it"
    );
    assert_eq!(values["values"][1]["value"], good_value, "{values}");
    let store = kri_core::Store::open(&k.db()).expect("store");
    let check: String = store
        .call("integrity", |c| c.query_row("PRAGMA integrity_check", [], |r| r.get(0)))
        .await
        .expect("check");
    assert_eq!(check, "ok");
}

#[tokio::test]
async fn a_second_signal_exits_at_once() {
    let k = Kri::new(Scenario {
        faults: vec![FaultRule::always("/v2/efd", Fault::Hang)],
        ..Scenario::default()
    })
    .await;
    let cfg =
        k.config("[serve]\ngrace = \"10m\"\n[connectors.tap]\nenabled = false\n[connectors.clear]\nenabled = false\n");
    let mut s = k.start(&cfg, &["daemon"], &[]).await;
    assert!(s.seen[0]["listen"].is_null(), "the daemon serves no HTTP");
    tokio::time::sleep(Duration::from_millis(300)).await; // the run is under way
    s.signal(libc::SIGTERM);
    s.event("stopping").await;
    s.signal(libc::SIGINT);
    let (code, took) = s.exit(Duration::from_secs(10)).await;
    assert_ne!(code, 0);
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[tokio::test]
async fn the_daemon_writes_ndjson_retries_failures_and_a_clean_stop_after_a_failure_is_exit_0() {
    let k = Kri::new(Scenario {
        faults: vec![FaultRule::always("/v2/efd", Fault::Status(500))],
        ..Scenario::default()
    })
    .await;
    let cfg = k.config("[connectors.tap]\nenabled = false\n[connectors.clear]\nenabled = false\n");
    let mut s = k.start(&cfg, &["daemon"], &[]).await;
    let failed = s.event("run").await;
    assert_eq!(failed["connectors"][0]["status"], "failed", "{failed}");
    // Retried after a minute, not at once and not at the next daily slot.
    assert_eq!(failed["next_run"], "2026-11-23T10:21:00Z", "{failed}");
    let hits = k.sandbox.hits("/v2/efd/dmarc/domains");
    k.move_to(&s, at("2026-11-23T10:21:01Z"));
    let retry = s.event("run").await;
    assert_eq!(
        retry["next_run"], "2026-11-23T10:23:01Z",
        "the back-off doubles: {retry}"
    );
    assert!(k.sandbox.hits("/v2/efd/dmarc/domains") > hits);
    k.sandbox.set_faults(Vec::new());
    k.move_to(&s, at("2026-11-23T10:23:02Z"));
    let ok = s.event("run").await;
    assert_eq!(ok["connectors"][0]["status"], "ok", "{ok}");
    assert_eq!(ok["next_run"].as_str().map(|t| &t[..13]), Some("2026-11-24T00"), "{ok}");
    // A clean stop after failed runs is still exit 0.
    k.sandbox
        .set_faults(vec![FaultRule::always("/v2/efd", Fault::Status(500))]);
    s.signal(libc::SIGTERM);
    assert_eq!(s.exit(Duration::from_secs(30)).await.0, 0);
    assert!(s.seen.iter().all(|e| e["event"].is_string() && e["at"].is_string()));
}

#[tokio::test]
async fn a_public_address_without_a_token_is_refused_unless_read_only_is_said() {
    let k = Kri::default().await;
    let cfg = k.config("");
    let out = k
        .run(
            &["--config", cfg.to_str().unwrap(), "serve", "--listen", "0.0.0.0:0"],
            &[],
        )
        .await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("public_read_only") && out.stderr.contains("KRI_SERVE__TOKEN"),
        "{}",
        out.stderr
    );
    let out = k
        .run(
            &["--config", cfg.to_str().unwrap(), "serve", "--listen", "localhost"],
            &[],
        )
        .await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("--listen") && out.stderr.contains("IP:PORT"),
        "{}",
        out.stderr
    );
    let out = k
        .run(
            &["--config", cfg.to_str().unwrap(), "serve"],
            &[("KRI_SERVE__TOKEN", "short")],
        )
        .await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("serve.token") && !out.stderr.contains("short\""),
        "{}",
        out.stderr
    );

    let cfg = k.config(
        "[serve]\npublic_read_only = true\nallowed_hosts = [\"kri.example.org\"]\n[connectors.tap]\nenabled = false\n",
    );
    let mut s = k.start(&cfg, &["serve", "--listen", "0.0.0.0:0"], &[]).await;
    assert!(
        s.seen[0]["listen"]
            .as_str()
            .unwrap_or_default()
            .starts_with("http://0.0.0.0:")
    );
    let port = s.base.rsplit(':').next().unwrap_or_default().to_owned();
    let at = |host: &'static str| {
        let (http, url) = (s.http.clone(), format!("http://127.0.0.1:{port}/healthz"));
        async move {
            http.get(url)
                .header("host", host)
                .send()
                .await
                .expect("GET")
                .status()
                .as_u16()
        }
    };
    assert_eq!(at("kri.example.org").await, 200, "a name in allowed_hosts");
    assert_eq!(
        at("other.example.org").await,
        421,
        "any other name, once allowed_hosts is set"
    );
    s.signal(libc::SIGTERM);
    assert_eq!(s.exit(Duration::from_secs(30)).await.0, 0);
}

#[tokio::test]
async fn report_html_is_one_self_contained_file() {
    let k = Kri::default().await;
    let cfg = all_connectors(&k, "");
    assert_eq!(k.run(&["--config", cfg.to_str().unwrap(), "run"], &[]).await.code, 0);
    let file = k.dir.path().join("report.html");
    let report = [
        "--config",
        cfg.to_str().unwrap(),
        "report",
        "--html",
        file.to_str().unwrap(),
    ];
    let out = k.run(&report, &[]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let html = std::fs::read_to_string(&file).expect("written");
    assert!(html.starts_with("<!DOCTYPE html>") || html.starts_with("<!doctype html>"));
    for slug in ["pp_vap_count", "pp_dmarc_enforcement_pct", "ctr_open_incidents"] {
        assert!(html.contains(&format!("data-slug=\"{slug}\"")), "{slug}");
    }
    for external in ["http://", "https://", "<script", "<link", "src="] {
        assert!(!html.contains(external), "{external} in the report");
    }
    assert!(!html.contains(kri_sandbox::DEMO_SECRET));
    let _ = test_now();

    // Regression: the report went through a predictable `report.html.partial`, and a symlink
    // planted there sent the write to the file it pointed at.
    #[cfg(unix)]
    {
        let victim = k.dir.path().join("victim.txt");
        std::fs::write(&victim, "untouched").expect("victim");
        for planted in ["report.html.partial", "report.partial"] {
            let _ = std::os::unix::fs::symlink(&victim, k.dir.path().join(planted));
        }
        let out = k.run(&report, &[]).await;
        assert_eq!(out.code, 0, "{out:?}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
        let left: Vec<_> = std::fs::read_dir(k.dir.path())
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".partial") && n.starts_with('.'))
            .collect();
        assert!(left.is_empty(), "no temporary file left: {left:?}");
    }
}

/// Regression (slowloris): under the usual 1,024 open files, 1,100 half-sent requests took every
/// descriptor and `GET /` went unanswered for everyone else; a half request stayed open 45 s and
/// more. Now others are answered while they wait, and each is closed after the header deadline.
#[tokio::test]
async fn slow_clients_neither_starve_the_others_nor_stay_for_ever() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Started with the usual soft limit, as a service would be (kri raises its own)...
    let k = Kri::default().await;
    let cfg = k.config("");
    let s = k.start(&cfg, &["serve", "--listen", "127.0.0.1:0"], &[]).await;
    // ...then this test's own 1,100 sockets need more.
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write a struct we own.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max.min(1 << 16);
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
    }
    if limit.rlim_cur < 1400 {
        eprintln!("skipped: this system allows only {} open files", limit.rlim_cur);
        return;
    }
    let addr = s.base.trim_start_matches("http://").to_owned();
    let mut slow = Vec::new();
    for _ in 0..1100 {
        let mut c = tokio::net::TcpStream::connect(&addr).await.expect("connect");
        c.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            .await
            .expect("half a request");
        slow.push(c);
    }
    let (code, page) = tokio::time::timeout(Duration::from_secs(20), s.get("/"))
        .await
        .expect("GET / is answered while 1,100 clients dawdle");
    assert_eq!(code, 200, "{page}");
    // The header deadline (10 s) closes a half request: its read ends (EOF or an error).
    let mut first = slow.remove(0);
    let mut buf = [0u8; 512];
    let closed = tokio::time::timeout(Duration::from_secs(20), first.read(&mut buf)).await;
    assert!(closed.is_ok(), "a half request is still open after 20 s");
}

/// `kri healthcheck` (a container's HEALTHCHECK): exit 0 from a serving kri's /healthz, 1 with
/// why when nothing answers; never through the environment's proxy.
#[tokio::test]
async fn healthcheck_asks_a_serving_kri_and_fails_when_none_answers() {
    let k = Kri::default().await;
    let cfg = k.config("");
    let s = k.start(&cfg, &["serve", "--listen", "127.0.0.1:0"], &[]).await;
    let url = format!("{}/healthz", s.base);
    let dead_proxy = [
        ("HTTP_PROXY", "http://127.0.0.1:9"),
        ("http_proxy", "http://127.0.0.1:9"),
    ];
    let out = k.run(&["healthcheck", "--url", &url], &dead_proxy).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("healthy"), "{out:?}");
    drop(s);
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let out = k
        .run(&["healthcheck", "--url", &format!("http://{free}/healthz")], &[])
        .await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("unhealthy") && out.stderr.contains(&free.to_string()),
        "{out:?}"
    );
}

/// /metrics as Prometheus's own tools read it: `promtool check metrics` passes on the classic
/// format (what a plain GET gets), OpenMetrics when asked; build and process metrics; each
/// KRI's direction; a last success of 0 for a connector that never had one; the same order at
/// every scrape; and the thresholds each band was computed with, as stored with its value.
#[tokio::test]
async fn metrics_pass_promtool_negotiate_and_export_what_each_value_was_banded_with() {
    let k = Kri::default().await;
    let cfg = k.config(&k.ctr_table("wrong-secret", "enabled = true\n"));
    let mut s = k.start(&cfg, &["serve", "--listen", "127.0.0.1:0"], &[]).await;
    s.runs_of(&["tap", "ctr"]).await;
    // Then a `kri run` on the same store with other thresholds: VAP 12 is red at 5/6.
    let strict = k.dir.path().join("strict.toml");
    std::fs::write(
        &strict,
        std::fs::read_to_string(&cfg).unwrap() + "[thresholds.pp_vap_count]\namber = 5\nred = 6\n",
    )
    .unwrap();
    assert_eq!(k.run_only(&strict, "tap", &[]).await.code, 0);

    let (code, text) = s.get("/metrics").await;
    assert_eq!(code, 200);
    crate::helper::promtool_check_metrics(&text);
    let plain = s.http.get(format!("{}/metrics", s.base)).send().await.unwrap();
    assert!(
        plain.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let open = s
        .http
        .get(format!("{}/metrics", s.base))
        .header(
            "Accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        )
        .send()
        .await
        .unwrap();
    assert!(
        open.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    assert!(open.text().await.unwrap().ends_with("# EOF\n"));

    // The same order at every scrape (the process's own numbers aside).
    let steady = |t: &str| {
        t.lines()
            .filter(|l| !l.contains("process_"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(steady(&text), steady(&s.get("/metrics").await.1));

    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    let find = |metric: &str, pairs: &[(&str, &str)]| {
        scrape
            .samples
            .iter()
            .find(|m| m.metric == metric && pairs.iter().all(|(k, v)| m.labels.get(k) == Some(*v)))
            .map(|m| match m.value {
                prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            })
            .unwrap_or_else(|| panic!("no {metric} {pairs:?}:\n{text}"))
    };
    assert_eq!(find("kri_build_info", &[("version", env!("CARGO_PKG_VERSION"))]), 1.0);
    assert!(find("process_resident_memory_bytes", &[]) > 0.0);
    assert!(find("process_open_fds", &[]) > 0.0);
    assert_eq!(
        find(
            "kri_value",
            &[("slug", "pp_dmarc_enforcement_pct"), ("direction", "lower_is_worse")]
        ),
        60.0
    );
    assert_eq!(
        find(
            "kri_value",
            &[("slug", "pp_vap_count"), ("direction", "higher_is_worse")]
        ),
        12.0
    );
    assert_eq!(find("kri_last_success_timestamp_seconds", &[("module", "ctr")]), 0.0);
    // The newest VAP value was banded red at 5/6 by that run, while the service's config says
    // 10/25: the thresholds exported are those the band was computed with.
    assert_eq!(
        find("kri_band", &[("slug", "pp_vap_count"), ("band", "red")]),
        1.0,
        "{text}"
    );
    assert_eq!(
        find("kri_threshold", &[("slug", "pp_vap_count"), ("level", "amber")]),
        5.0
    );
    assert_eq!(
        find("kri_threshold", &[("slug", "pp_vap_count"), ("level", "red")]),
        6.0
    );
}
