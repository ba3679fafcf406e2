//! Many tenants in one config: `[tenants] dir`, per-tenant secrets, `--tenant`, and each
//! tenant's values, pools and rows kept apart, against a sandbox serving several tenants.

use kri_sandbox::{Scenario, tenant_credentials, tenant_vap_users};
use serde_json::Value;

use crate::helper::{Kri, kri};

/// `kri.toml` with the sandbox as every tenant's API (a default) and `[tenants] dir`.
fn base(k: &Kri, extra: &str) -> std::path::PathBuf {
    let text = format!(
        "[store]\npath = \"{}\"\n\n[proofpoint]\nbase_url = \"{}\"\n\n[tenants]\ndir = \"tenants.d\"\n{extra}",
        k.db().display(),
        k.sandbox.base_url()
    );
    let path = k.dir.path().join("kri.toml");
    std::fs::write(&path, text).expect("write config");
    std::fs::create_dir_all(k.dir.path().join("tenants.d")).expect("tenants.d");
    path
}

fn tenant_file(k: &Kri, name: &str, text: &str) {
    std::fs::write(k.dir.path().join("tenants.d").join(format!("{name}.toml")), text).expect("tenant file");
}

fn creds(i: u32) -> String {
    let (p, s) = tenant_credentials(i);
    format!("{p}:{s}")
}

/// Three tenants, their secrets three ways: in the file, in the tenant's own variable, in a
/// `credentials_file`.
pub async fn three_tenants() -> (Kri, std::path::PathBuf, Vec<(&'static str, &'static str)>) {
    let k = Kri::new(Scenario {
        tenants: 3,
        ..Scenario::default()
    })
    .await;
    let cfg = base(&k, "");
    tenant_file(&k, "alpha", &format!("[proofpoint]\ncredentials = \"{}\"\n", creds(1)));
    tenant_file(&k, "acme-eu", "[connectors.clear]\nenabled = false\n");
    let secret = k.dir.path().join("gamma.secret");
    std::fs::write(&secret, format!("{}\n", creds(3))).expect("secret file");
    tenant_file(
        &k,
        "gamma",
        &format!("[proofpoint]\ncredentials_file = \"{}\"\n", secret.display()),
    );
    let env = vec![("KRI_TENANT_ACME_EU__PROOFPOINT__CREDENTIALS", "tenant-0002:secret-0002")];
    (k, cfg, env)
}

fn of_tenant<'a>(run: &'a Value, tenant: &str) -> Vec<&'a Value> {
    run["connectors"]
        .as_array()
        .expect("connectors")
        .iter()
        .filter(|c| c["tenant"] == tenant)
        .collect()
}

#[tokio::test]
async fn each_tenant_gets_its_own_values_pools_and_rows() {
    let (k, cfg, env) = three_tenants().await;
    let cfg = cfg.to_str().expect("utf-8");
    let out = k.run(&["--config", cfg, "run", "--output", "json"], &env).await;
    assert_eq!(out.code, 0, "{}", out.all());
    let run = out.json();
    for (name, i, modules) in [("alpha", 1, 3), ("acme-eu", 2, 2), ("gamma", 3, 3)] {
        let connectors = of_tenant(&run, name);
        assert_eq!(connectors.len(), modules, "{name}: {run:#}");
        let tap = connectors.iter().find(|c| c["module"] == "tap").expect("tap ran");
        let vap = tap["kris"]
            .as_array()
            .and_then(|ks| ks.iter().find(|x| x["slug"] == "pp_vap_count"))
            .expect("pp_vap_count");
        assert_eq!(vap["value"], tenant_vap_users(i), "{name} reads its own tenant");
        assert!(k.sandbox.tenant_hits(i) > 0, "{name} called as tenant {i}");
        assert!(k.sandbox.pool_calls(i, "siem") <= 1800);
        assert!(k.sandbox.pool_calls(i, "campaign-ids") <= 50);
    }
    assert_eq!(
        k.sandbox.tenant_hits(0),
        0,
        "no call with the default tenant's credentials"
    );

    // A second run is incremental per tenant: each tenant's windows were kept apart.
    let before: Vec<u64> = (1..=3).map(|i| k.sandbox.tenant_hits(i)).collect();
    let again = k.run(&["--config", cfg, "run", "--output", "json"], &env).await;
    assert_eq!(again.code, 0, "{}", again.all());
    for (i, b) in (1..=3).zip(&before) {
        let second = k.sandbox.tenant_hits(i) - b;
        assert!(second * 4 < *b, "tenant {i}: first run {b} calls, second {second}");
    }

    // --tenant: one tenant's rows only; tenant in every JSON row and in CSV.
    let values = k
        .run(
            &["--config", cfg, "--tenant", "alpha", "values", "--output", "json"],
            &env,
        )
        .await;
    assert_eq!(values.code, 0, "{}", values.all());
    let rows = values.json()["values"].as_array().cloned().expect("values");
    assert!(
        !rows.is_empty() && rows.iter().all(|r| r["tenant"] == "alpha"),
        "{rows:#?}"
    );
    let vap: Vec<&Value> = rows.iter().filter(|r| r["slug"] == "pp_vap_count").collect();
    assert_eq!(vap[0]["value"], tenant_vap_users(1));
    assert_eq!(
        vap[0]["previous"],
        tenant_vap_users(1),
        "the previous value is alpha's own"
    );
    let history = k.run(&["--config", cfg, "history", "--output", "json"], &env).await;
    let runs = history.json()["runs"].as_array().cloned().expect("runs");
    assert_eq!(runs.len(), 16, "(3 + 2 + 3) connectors × 2 runs: {runs:#?}");
    let csv = k
        .run(
            &["--config", cfg, "--tenant", "gamma", "history", "--output", "csv"],
            &env,
        )
        .await;
    let mut lines = csv.stdout.lines();
    assert!(lines.next().expect("header").ends_with(",tenant"), "{}", csv.stdout);
    assert!(lines.all(|l| l.ends_with(",gamma")), "{}", csv.stdout);
    let table = k.run(&["--config", cfg, "values"], &[("COLUMNS", "160")]).await;
    assert!(
        table.stdout.contains("TENANT") && table.stdout.contains("acme-eu"),
        "{}",
        table.stdout
    );

    // A tenant that does not exist is a usage error that lists the tenants.
    let nope = k.run(&["--config", cfg, "--tenant", "alpa", "values"], &env).await;
    assert_eq!(nope.code, 2);
    assert!(
        nope.stderr.contains("did you mean `alpha`") && nope.stderr.contains("acme-eu, alpha, gamma"),
        "{}",
        nope.stderr
    );

    // No tenant's secret anywhere: output, logs, store.
    let store = k.dump_store().await;
    for i in 1..=3 {
        let (_, secret) = tenant_credentials(i);
        for text in [&out.all(), &again.all(), &store] {
            assert!(!text.contains(&secret), "tenant {i}'s secret leaked");
        }
    }
}

#[tokio::test]
async fn run_plan_and_test_name_the_tenant() {
    let (k, cfg, env) = three_tenants().await;
    let cfg = cfg.to_str().expect("utf-8");
    let plan = k
        .run(
            &[
                "--config", cfg, "--tenant", "gamma", "run", "--plan", "--output", "json",
            ],
            &env,
        )
        .await;
    assert_eq!(plan.code, 0, "{}", plan.all());
    let rows = plan.json()["plan"].as_array().cloned().expect("plan");
    assert!(
        !rows.is_empty() && rows.iter().all(|r| r["tenant"] == "gamma"),
        "{rows:#?}"
    );
    let test = k
        .run(
            &["--config", cfg, "--tenant", "alpha", "test", "tap", "--output", "json"],
            &env,
        )
        .await;
    assert_eq!(test.code, 0, "{}", test.all());
    let probe = &test.json()["probes"][0];
    assert_eq!(probe["tenant"], "alpha");
    assert!(
        probe["message"]
            .as_str()
            .unwrap_or_default()
            .contains(&tenant_vap_users(1).to_string()),
        "{probe:#}"
    );
    // `kri kris` shows one tenant's thresholds and says so.
    let kris = k.run(&["--config", cfg, "kris"], &env).await;
    assert!(
        kris.stderr.contains("3 tenants") && kris.stderr.contains("--tenant"),
        "{}",
        kris.stderr
    );
}

#[tokio::test]
async fn every_tenant_error_is_named_with_its_file_and_key_at_once() {
    let k = Kri::new(Scenario::default()).await;
    let cfg = base(&k, "[connectors.tap]\nbogus = 1\n");
    tenant_file(
        &k,
        "a",
        &format!(
            "[proofpoint]\ncredentials = \"{}\"\n[connectors.efd]\nschedul = \"hourly\"\n",
            creds(1)
        ),
    );
    tenant_file(
        &k,
        "b",
        &format!(
            "[proofpoint]\ncredentials = \"{}\"\n[store]\npath = \"x.db\"\n",
            creds(1)
        ),
    );
    tenant_file(&k, "c", "");
    tenant_file(&k, "d", &format!("[proofpoint]\ncredentials = \"{}\"\n", creds(1)));
    tenant_file(&k, "Bad Name", "");
    let cfg = cfg.to_str().expect("utf-8");
    let out = k
        .run(
            &["--config", cfg, "config", "check"],
            &[
                ("KRI_TENANT_ZED__PROOFPOINT__CREDENTIALS", "x:y"),
                ("KRI_TENANT_D__CONNECTORS__EFD__ENABLED", "maybe"),
            ],
        )
        .await;
    assert_eq!(out.code, 2, "{}", out.all());
    let e = &out.stderr;
    let a = k.dir.path().join("tenants.d/a.toml");
    for needle in [
        // the tenants folder: a bad file name, with the fix
        "Bad Name.toml",
        "`bad-name.toml`",
        // a stray tenant variable
        "KRI_TENANT_ZED__PROOFPOINT__CREDENTIALS: there is no tenant `zed`",
        // a tenant file's unknown key: the tenant, the key, the near miss, the file
        "tenant `a`: connectors.efd.schedul",
        "did you mean `schedule`",
        &a.display().to_string(),
        // a table only kri.toml may have
        "[store] cannot be set per tenant",
        // a tenant without credentials: its file and its own variable
        "tenant `c`: proofpoint.credentials",
        "KRI_TENANT_C__PROOFPOINT__CREDENTIALS",
        // a tenant variable's bad value names that variable
        "KRI_TENANT_D__CONNECTORS__EFD__ENABLED",
    ] {
        assert!(e.contains(needle), "missing `{needle}` in:\n{e}");
    }
    assert_eq!(
        e.matches("connectors.tap.bogus").count(),
        1,
        "a default's error is said once:\n{e}"
    );
    assert!(!e.contains("secret-0001"), "{e}");
}

#[tokio::test]
async fn a_thousand_tenant_files_load_and_validate() {
    let k = Kri::new(Scenario::default()).await;
    let cfg = base(&k, "");
    for i in 0..1000u32 {
        tenant_file(
            &k,
            &format!("t{i:04}"),
            &format!(
                "[proofpoint]\ncredentials = \"tenant-{i:04}:secret-{i:04}\"\n[thresholds.pp_vap_count]\namber = {}\n",
                5 + i % 7
            ),
        );
    }
    let cfg = cfg.to_str().expect("utf-8");
    let started = std::time::Instant::now();
    let out = k
        .run(&["--config", cfg, "config", "check", "--output", "json"], &[])
        .await;
    let took = started.elapsed();
    assert_eq!(out.code, 0, "{}", out.all());
    let tenants = out.json()["tenants"].as_array().cloned().expect("tenants");
    assert_eq!(tenants.len(), 1000);
    assert_eq!(tenants[999]["tenant"], "t0999");
    // Not a timing assertion (debug build, shared machine); the figure is for the record.
    eprintln!("config check of 1000 tenant files (debug build): {took:?}");
    let kris = k
        .run(&["--config", cfg, "--tenant", "t0006", "kris", "--output", "json"], &[])
        .await;
    let vap = kris.json()["connectors"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["module"] == "tap").cloned())
        .expect("tap");
    assert_eq!(
        kri(&json_kris(&vap), "pp_vap_count")["amber"],
        11.0,
        "t0006's own threshold"
    );
}

/// `{"connectors":[{"kris": …}]}` of one connector, for [`kri`].
fn json_kris(connector: &Value) -> Value {
    serde_json::json!({ "connectors": [connector] })
}

#[tokio::test]
async fn serve_schedules_every_tenant_and_labels_pages_api_and_metrics() {
    use crate::serve::TOKEN;
    let (k, cfg, env) = three_tenants().await;
    let text = std::fs::read_to_string(&cfg).expect("config");
    std::fs::write(&cfg, format!("{text}\n[serve]\ntoken = \"{TOKEN}\"\n")).expect("config");
    let mut s = k.start(&cfg, &["serve", "--listen", "127.0.0.1:0"], &env).await;
    let started = s.seen[0].clone();
    assert_eq!(started["connectors"].as_array().map(Vec::len), Some(8), "{started}");
    // Every (tenant, connector) runs once at start, each as its own run.
    let mut done = Vec::new();
    while done.len() < 8 {
        let r = s.event("run").await;
        let c = &r["connectors"][0];
        assert_eq!(c["status"], "ok", "{r}");
        done.push(format!(
            "{}/{}",
            c["tenant"].as_str().unwrap_or("?"),
            c["module"].as_str().unwrap_or("?")
        ));
    }
    done.sort();
    assert_eq!(
        done,
        [
            "acme-eu/efd",
            "acme-eu/tap",
            "alpha/clear",
            "alpha/efd",
            "alpha/tap",
            "gamma/clear",
            "gamma/efd",
            "gamma/tap"
        ]
    );

    // The API reads one tenant with ?tenant=, all without.
    let alpha = s.get_json("/api/v1/values?tenant=alpha&limit=100").await;
    let rows = alpha["values"].as_array().cloned().expect("values");
    assert!(
        !rows.is_empty() && rows.iter().all(|r| r["tenant"] == "alpha"),
        "{alpha:#}"
    );
    let (code, _) = s.get("/api/v1/values?tenant=nobody").await;
    assert_eq!(code, 404);
    let schedule = s.get_json("/api/v1/schedule").await;
    assert_eq!(schedule["connectors"].as_array().map(Vec::len), Some(8));

    // Metrics: every KRI sample carries its tenant, and the value is that tenant's.
    let (_, metrics) = s.get("/metrics").await;
    for (name, i) in [("alpha", 1), ("acme-eu", 2), ("gamma", 3)] {
        let line = metrics
            .lines()
            .find(|l| {
                l.starts_with("kri_value{") && l.contains(&format!("tenant=\"{name}\"")) && l.contains("pp_vap_count")
            })
            .unwrap_or_else(|| panic!("no kri_value of {name}:\n{metrics}"));
        let value: f64 = line.rsplit(' ').next().and_then(|v| v.parse().ok()).expect("a number");
        assert_eq!(value, tenant_vap_users(i) as f64, "{line}");
    }
    assert!(
        metrics.contains("kri_pool_calls_24h{tenant=\"gamma\",module=\"tap\",pool=\"siem\"}"),
        "{metrics}"
    );

    // Pages: the overview of all tenants, then one tenant's dashboard.
    let (code, overview) = s.get("/").await;
    assert_eq!(code, 200);
    for name in ["alpha", "acme-eu", "gamma"] {
        assert!(
            overview.contains(&format!("?tenant={name}")),
            "{name} not linked:\n{overview}"
        );
    }
    let (code, page) = s.get("/?tenant=acme-eu").await;
    assert_eq!(code, 200);
    assert!(
        page.contains("acme-eu") && page.contains("kri/pp_vap_count?tenant=acme-eu"),
        "{page}"
    );
    let (code, _) = s.get("/kri/pp_vap_count?tenant=gamma").await;
    assert_eq!(code, 200);
    for page in ["/?tenant=nobody", "/kri/pp_vap_count?tenant=nobody"] {
        let (code, body) = s.get(page).await;
        assert!(
            code == 404 && body.contains("There is no tenant `nobody`"),
            "{page}: {code} {body}"
        );
    }

    // Run now names its tenant: without one it is ambiguous, with one it starts.
    let (code, body) = s.post("/api/v1/runs?module=tap", Some(TOKEN)).await;
    assert_eq!(code, 404, "{body}");
    assert!(
        body["error"].as_str().unwrap_or_default().contains("tenant=NAME"),
        "{body}"
    );
    let (code, body) = s.post("/api/v1/runs?module=tap&tenant=gamma", Some(TOKEN)).await;
    assert_eq!(code, 202, "{body}");
    let r = s.event("run").await;
    assert_eq!(
        (r["connectors"][0]["tenant"].as_str(), r["run_id"].as_str()),
        (Some("gamma"), body["run_id"].as_str())
    );
    s.signal(libc::SIGTERM);
    let (code, _) = s.exit(std::time::Duration::from_secs(30)).await;
    assert_eq!(code, 0);
}

/// Regression: the overview said "0 with a failed connector" while two tenants' TAP runs were
/// `partial` (the SIEM pool throttled): a partial run counts as failed there.
#[tokio::test(flavor = "multi_thread")]
async fn a_partial_run_counts_as_a_failed_connector_on_the_overview() {
    let k = Kri::new(Scenario {
        tenants: 2,
        siem_pool_limit: 0,
        ..Scenario::default()
    })
    .await;
    let cfg = base(
        &k,
        "[connectors.efd]\nenabled = false\n[connectors.clear]\nenabled = false\n",
    );
    tenant_file(&k, "alpha", &format!("[proofpoint]\ncredentials = \"{}\"\n", creds(1)));
    tenant_file(&k, "beta", &format!("[proofpoint]\ncredentials = \"{}\"\n", creds(2)));
    let cfg = cfg.to_str().unwrap();
    let run = k.run(&["--config", cfg, "run", "--output", "json"], &[]).await;
    let run = run.json();
    let statuses: Vec<&str> = run["connectors"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["status"].as_str())
        .collect();
    assert_eq!(statuses, vec!["partial", "partial"], "{run:?}");
    let page = k.dir.path().join("overview.html");
    let report = k
        .run(&["--config", cfg, "report", "--html", page.to_str().unwrap()], &[])
        .await;
    assert_eq!(report.code, 0, "{report:?}");
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("<strong>2</strong> with a failed connector"), "{html}");
}
