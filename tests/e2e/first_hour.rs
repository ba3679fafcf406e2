//! The first hour as a user: tables that fit, init and config check, the kept demo, help that
//! teaches, the numbers in CSV and with their change, `--fail-on`, pruning, and hints that say
//! what happened.

use std::path::Path;
use std::time::Duration;

use kri_sandbox::faults::{Fault, FaultRule};
use kri_sandbox::{Scenario, ctr};
use serde_json::Value;
use unicode_width::UnicodeWidthStr;

use crate::helper::{Kri, run_kri, test_now};

const SLUGS: [&str; 3] = [
    "pp_reported_phish_fn_rate_pct",
    "pp_malicious_clicks_post_delivery_7d",
    "ctr_mean_time_to_close_hours_30d",
];

fn cfg_arg(cfg: &Path) -> &str {
    cfg.to_str().expect("utf-8 path")
}

/// Every CTR table too, so the table carries every KRI.
fn everything(k: &Kri) -> std::path::PathBuf {
    k.config(&k.ctr_table(ctr::DEMO_CLIENT_SECRET, "enabled = true\n"))
}

#[tokio::test]
async fn tables_fit_80_columns_never_break_a_slug_and_colour_only_on_a_terminal() {
    let k = Kri::default().await;
    let cfg = everything(&k);
    assert_eq!(
        k.run(&["--config", cfg_arg(&cfg), "run"], &[("COLUMNS", "80")])
            .await
            .code,
        0
    );
    for args in [&["run"][..], &["kris"], &["values"], &["history"], &["run", "--plan"]] {
        for (cols, max) in [(Some("80"), 80), (None, 100), (Some("200"), 200)] {
            let mut all = vec!["--config", cfg_arg(&cfg)];
            all.extend_from_slice(args);
            let envs: Vec<(&str, &str)> = cols.map(|c| ("COLUMNS", c)).into_iter().collect();
            let out = k.run(&all, &envs).await;
            assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
            for line in out.stdout.lines() {
                assert!(
                    line.width() <= max,
                    "{args:?} at {max}: {} columns: `{line}`",
                    line.width()
                );
            }
            assert!(!out.stdout.contains('\u{1b}'), "{args:?}: no colour when piped");
            if args != ["run", "--plan"] && args != ["history"] {
                for slug in SLUGS {
                    assert!(
                        out.stdout.contains(slug),
                        "{args:?} at {max}: `{slug}` broken:\n{}",
                        out.stdout
                    );
                }
            }
        }
    }
    let out = k.run(&["--config", cfg_arg(&cfg), "kris"], &[("COLUMNS", "80")]).await;
    assert!(out.stdout.lines().count() <= 16, "kris fits a screen:\n{}", out.stdout);
    assert!(out.stdout.contains("hidden: MEANING"), "{}", out.stdout);

    // On a terminal: bands in colour, unless NO_COLOR.
    let kri = env!("CARGO_BIN_EXE_kri");
    let tty = |no_color: bool| {
        let mut c = std::process::Command::new("script");
        c.args([
            "-qec",
            &format!("{kri} --config {} values --limit 3", cfg_arg(&cfg)),
            "/dev/null",
        ])
        .env("KRI_TEST_NOW", test_now().to_rfc3339())
        .env("TERM", "xterm")
        .env_remove("NO_COLOR");
        if no_color {
            c.env("NO_COLOR", "1");
        }
        c.output()
    };
    if let Ok(out) = tty(false) {
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("\u{1b}[33mamber\u{1b}[0m") || text.contains("\u{1b}[32mgreen"),
            "{text}"
        );
        let plain = String::from_utf8_lossy(&tty(true).expect("script").stdout).into_owned();
        assert!(!plain.contains('\u{1b}'), "NO_COLOR: {plain}");
    }
}

#[tokio::test]
async fn init_writes_a_config_that_config_check_validates_without_calling_anything() {
    let k = Kri::default().await;
    let dir = k.dir.path();
    let out = run_kri(dir, &["init"], &[]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let text = std::fs::read_to_string(dir.join("kri.toml")).expect("written");
    for table in [
        "[store]",
        "[proofpoint]",
        "[connectors.tap]",
        "[connectors.efd]",
        "[connectors.clear]",
        "[connectors.ctr]",
    ] {
        assert!(text.contains(table), "{table}");
    }
    assert!(text.contains("KRI_PROOFPOINT__CREDENTIALS") && text.contains("KRI_CONNECTORS__CTR__CLIENT_SECRET"));
    assert!(
        !text.lines().any(|l| l.trim_start().starts_with("credentials =")),
        "credentials are left to the environment"
    );
    let again = run_kri(dir, &["init"], &[]).await;
    assert_eq!(again.code, 2, "never overwrites: {again:?}");
    assert!(again.stderr.contains("--force"));
    assert_eq!(run_kri(dir, &["init", "--force"], &[]).await.code, 0);

    // Without credentials: exit 2, said once, nothing called, no store made.
    let hits = k.sandbox.total_hits();
    let out = run_kri(dir, &["config", "check"], &[]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert_eq!(
        out.stderr.matches("KRI_PROOFPOINT__CREDENTIALS").count(),
        1,
        "{}",
        out.stderr
    );
    let secret = "principal-x:s3cr3t-value";
    let out = run_kri(
        dir,
        &["config", "check", "--output", "json"],
        &[("KRI_PROOFPOINT__CREDENTIALS", secret)],
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!out.all().contains("s3cr3t-value"), "secrets are redacted");
    let check = out.json();
    let cred = check["settings"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["key"] == "proofpoint.credentials"))
        .expect("listed");
    assert_eq!(
        cred["from"], "environment variable KRI_PROOFPOINT__CREDENTIALS",
        "{cred}"
    );
    // Every value in force is listed, the defaults too, each with where it came from.
    let setting = |key: &str| {
        check["settings"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["key"] == key))
            .unwrap_or_else(|| panic!("{key} not listed: {check}"))
            .clone()
    };
    assert!(
        setting("connectors.tap.lookback_minutes")["from"]
            .as_str()
            .unwrap()
            .ends_with("kri.toml")
    );
    for (key, value) in [
        ("connectors.tap.timeout", "\"1m\""),
        ("connectors.tap.run_timeout", "\"15m\""),
        ("serve.listen", "\"127.0.0.1:9741\""),
        ("connectors.tap.concurrency", "4"),
        ("connectors.tap.proxy", "\"from the environment\""),
        ("store.keep_days", "400"),
    ] {
        let s = setting(key);
        assert_eq!(
            (s["value"].as_str(), s["from"].as_str()),
            (Some(value), Some("default")),
            "{s}"
        );
    }
    let base = check["settings"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["key"] == "proofpoint.base_url"))
        .expect("listed");
    assert!(
        base["from"].as_str().unwrap_or_default().ends_with("kri.toml"),
        "{base}"
    );
    assert_eq!(k.sandbox.total_hits(), hits, "config check calls nothing");
    assert!(!dir.join("kri.db").exists(), "and creates no store");
}

#[tokio::test]
async fn every_config_error_is_reported_at_once_with_where_and_a_suggestion() {
    let k = Kri::default().await;
    let cfg = k.config(
        "[connectors.tap]\nschedul = \"hourly\"\n[connectors.efd]\nschedule = \"weekly\"\n[thresholds.pp_vap_count]\nred = 1\n",
    );
    let out = k
        .run(
            &["--config", cfg_arg(&cfg), "config", "check"],
            &[
                ("KRI_THRESHOLDS__PP_VAP_COUNT__AMBER", "30"),
                ("KRI_CONNECTORS__TAPP__ENABLED", "true"),
            ],
        )
        .await;
    assert_eq!(out.code, 2, "{out:?}");
    let m = out.stderr;
    assert!(m.contains("4 config errors"), "{m}");
    assert!(
        m.contains("connectors.tap.schedul") && m.contains("did you mean `schedule`?"),
        "{m}"
    );
    assert!(m.contains("\"daily\", \"hourly\"") && m.contains("weekly"), "{m}");
    assert!(
        m.contains("environment variable KRI_THRESHOLDS__PP_VAP_COUNT__AMBER"),
        "{m}"
    );
    assert!(
        m.contains("connectors.tapp") && m.contains("did you mean `tap`?"),
        "{m}"
    );

    // A store path that is not a store is a config error.
    std::fs::write(k.dir.path().join("kri.db"), "not a database at all, just text").expect("write");
    let cfg = k.config("");
    let out = k.run(&["--config", cfg_arg(&cfg), "history"], &[]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("not a kri store"), "{}", out.stderr);
}

#[tokio::test]
async fn read_only_commands_create_no_file_and_no_folder() {
    let k = Kri::default().await;
    let cfg = k.config("");
    let text = std::fs::read_to_string(&cfg).expect("config").replace(
        &k.db().display().to_string(),
        &k.dir.path().join("sub/kri.db").display().to_string(),
    );
    std::fs::write(&cfg, text).expect("rewrite");
    for args in [
        &["history"][..],
        &["values"],
        &["kris"],
        &["run", "--plan"],
        &["config", "check"],
        &["values", "--output", "csv"],
    ] {
        let mut all = vec!["--config", cfg_arg(&cfg)];
        all.extend_from_slice(args);
        let out = k.run(&all, &[]).await;
        assert_eq!(out.code, 0, "{args:?}: {out:?}");
        assert!(
            !k.dir.path().join("sub").exists(),
            "{args:?} created the store's folder"
        );
    }
    let empty = tempfile::tempdir().expect("dir");
    // Without any config there is nothing to read: said (exit 2), and still nothing created.
    let out = run_kri(empty.path(), &["history"], &[]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("no config"), "{out:?}");
    assert!(!empty.path().join("kri.db").exists(), "kri history created kri.db");
}

#[tokio::test]
async fn every_command_teaches_with_examples_exit_codes_completions_and_a_man_page() {
    let dir = tempfile::tempdir().expect("dir");
    for cmd in [
        "run",
        "test",
        "kris",
        "history",
        "values",
        "serve",
        "daemon",
        "report",
        "demo",
        "sandbox",
        "init",
        "completions",
        "man",
    ] {
        let out = run_kri(dir.path(), &[cmd, "--help"], &[]).await;
        assert_eq!(out.code, 0, "{cmd}");
        assert!(
            out.stdout.contains("Examples:") && out.stdout.contains("Exit codes"),
            "{cmd}:\n{}",
            out.stdout
        );
    }
    let out = run_kri(dir.path(), &["config", "check", "--help"], &[]).await;
    assert!(out.stdout.contains("Examples:"), "{}", out.stdout);
    let out = run_kri(dir.path(), &["values", "--help"], &[]).await;
    assert!(
        out.stdout.contains("--limit") && out.stdout.contains("How many values"),
        "{}",
        out.stdout
    );
    let out = run_kri(dir.path(), &["--version"], &[]).await;
    assert!(
        out.stdout.contains("commit ") && out.stdout.contains("built 20"),
        "{}",
        out.stdout
    );
    for shell in ["bash", "zsh", "fish"] {
        let out = run_kri(dir.path(), &["completions", shell], &[]).await;
        assert_eq!(out.code, 0);
        assert!(out.stdout.contains("kri") && out.stdout.contains("history"), "{shell}");
    }
    let out = run_kri(dir.path(), &["man"], &[]).await;
    assert!(
        out.stdout.contains(".TH kri") && out.stdout.contains("serve"),
        "{}",
        out.stdout
    );
}

#[tokio::test]
async fn values_since_with_previous_and_delta_csv_and_one_run_in_full() {
    let k = Kri::default().await;
    let cfg = k.config("[connectors.efd]\nenabled = false\n[connectors.clear]\nenabled = false\n");
    let first = k.run_only(&cfg, "tap", &[]).await;
    assert_eq!(first.code, 0, "{}", first.stderr);
    k.advance(chrono::Duration::hours(2));
    let second = k.run_only(&cfg, "tap", &[]).await.json();
    let values = k
        .run(
            &[
                "--config",
                cfg_arg(&cfg),
                "--output",
                "json",
                "values",
                "pp_vap_count",
                "--since",
                "7d",
            ],
            &[],
        )
        .await
        .json();
    let rows = values["values"].as_array().expect("rows");
    assert_eq!(rows.len(), 2, "{values}");
    assert_eq!(rows[0]["previous"], rows[1]["value"]);
    assert_eq!(rows[0]["delta"].as_f64(), Some(0.0));
    assert!(rows[1]["previous"].is_null());
    assert_eq!(
        (rows[0]["module"].as_str(), rows[0]["connector"].as_str()),
        (Some("tap"), Some("proofpoint-tap"))
    );
    let since = k
        .run(
            &["--config", cfg_arg(&cfg), "--output", "json", "values", "--since", "1h"],
            &[],
        )
        .await
        .json();
    assert_eq!(
        since["values"].as_array().map(Vec::len),
        Some(5),
        "only the second run: {since}"
    );

    let csv = k
        .run(
            &["--config", cfg_arg(&cfg), "--output", "csv", "values", "pp_vap_count"],
            &[],
        )
        .await;
    assert_eq!(csv.code, 0, "{csv:?}");
    let lines: Vec<&str> = csv.stdout.lines().collect();
    assert_eq!(
        lines[0],
        "measured_at,slug,module,connector,value,previous,delta,unit,status,band,message,run_id,tenant,\
         title,owner,band_since,stale,acknowledged_by,overdue",
        "the contract's columns first, then the practice's"
    );
    assert_eq!(lines.len(), 3, "{}", csv.stdout);
    assert!(
        lines[1].contains(",tap,proofpoint-tap,12,12,0,count,ok,amber,"),
        "{}",
        lines[1]
    );
    let hist = k
        .run(&["--config", cfg_arg(&cfg), "--output", "csv", "history"], &[])
        .await;
    assert!(
        hist.stdout.starts_with("run_id,module,connector,started_at"),
        "{}",
        hist.stdout
    );
    let refused = k
        .run(&["--config", cfg_arg(&cfg), "--output", "csv", "kris"], &[])
        .await;
    assert_eq!(refused.code, 2);

    let id = second["run_id"].as_str().expect("id");
    let one = k
        .run(
            &[
                "--config",
                cfg_arg(&cfg),
                "--output",
                "json",
                "history",
                "--run",
                &id[..8],
            ],
            &[],
        )
        .await
        .json();
    assert_eq!(one["runs"][0]["run_id"], id, "{one}");
    assert_eq!(one["values"].as_array().map(Vec::len), Some(5), "{one}");
    let out = k.run(&["--config", cfg_arg(&cfg), "history", "--run", id], &[]).await;
    assert!(
        out.stdout.contains(id) && out.stdout.contains("pp_vap_count"),
        "{}",
        out.stdout
    );
    let csv = k
        .run(
            &["--config", cfg_arg(&cfg), "--output", "csv", "history", "--run", id],
            &[],
        )
        .await;
    assert!(
        csv.stdout.starts_with("run_id,") && csv.stdout.contains(id),
        "{}",
        csv.stdout
    );
    let out = k
        .run(&["--config", cfg_arg(&cfg), "history", "--run", "ffffffff"], &[])
        .await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("no run"), "{}", out.stderr);
}

#[tokio::test]
async fn fail_on_exits_3_at_or_past_the_band_and_a_failure_stays_1() {
    let k = Kri::default().await;
    let cfg = k.config("[connectors.tap]\nenabled = false\n[connectors.clear]\nenabled = false\n");
    // EFD's value in the sandbox is amber.
    let run = |level: &'static str| {
        let cfg = cfg.clone();
        let k = &k;
        async move {
            k.run(&["--config", cfg_arg(&cfg), "run", "--fail-on", level], &[])
                .await
        }
    };
    assert_eq!(run("red").await.code, 0);
    let amber = run("amber").await;
    assert_eq!(amber.code, 3, "{amber:?}");
    assert!(amber.stderr.contains("--fail-on"), "{}", amber.stderr);
    k.sandbox
        .set_faults(vec![FaultRule::always("/v2/efd", Fault::Status(500))]);
    assert_eq!(run("amber").await.code, 1, "a failure is 1, not 3");
}

#[tokio::test]
async fn values_come_a_page_at_a_time_and_all_of_them_with_all() {
    let k = Kri::default().await;
    let cfg = k.config("[connectors.efd]\nenabled = false\n[connectors.clear]\nenabled = false\n");
    for _ in 0..3 {
        assert_eq!(k.run_only(&cfg, "tap", &[]).await.code, 0);
        k.advance(chrono::Duration::hours(1));
    }
    let values = |extra: &[&str]| {
        let mut args = vec!["--config", cfg_arg(&cfg), "--output", "json", "values"];
        args.extend_from_slice(extra);
        let args: Vec<String> = args.into_iter().map(str::to_owned).collect();
        let k = &k;
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            k.run(&args, &[]).await.json()
        }
    };
    // Followed from page to page, the cursors give every value once, newest first.
    let mut seen = Vec::new();
    let mut page = values(&["--limit", "4"]).await;
    loop {
        let rows = page["values"].as_array().expect("rows").clone();
        assert!(rows.len() <= 4, "{page}");
        seen.extend(rows);
        let Some(next) = page["next_cursor"].as_str().map(str::to_owned) else {
            break;
        };
        page = values(&["--limit", "4", "--cursor", &next]).await;
    }
    assert_eq!(seen.len(), 15, "three runs of five KRIs");
    let all = values(&["--all"]).await;
    assert_eq!(all["values"].as_array(), Some(&seen), "--all: the same values");
    assert!(all["next_cursor"].is_null());
    let times: Vec<&str> = seen.iter().filter_map(|v| v["measured_at"].as_str()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first: {times:?}");

    // For people, the page ends with the way on; a cursor kri never gave is a usage error.
    let out = k.run(&["--config", cfg_arg(&cfg), "values", "--limit", "2"], &[]).await;
    assert!(out.stdout.contains("More values: add --cursor "), "{}", out.stdout);
    let out = k
        .run(&["--config", cfg_arg(&cfg), "values", "--cursor", "yesterday"], &[])
        .await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("is not one kri gave"), "{}", out.stderr);
    let out = k
        .run(&["--config", cfg_arg(&cfg), "values", "--all", "--limit", "5"], &[])
        .await;
    assert_eq!(out.code, 2, "--all with --limit: {out:?}");
    let csv = k
        .run(&["--config", cfg_arg(&cfg), "--output", "csv", "values", "--all"], &[])
        .await;
    assert_eq!(
        csv.stdout.lines().count(),
        16,
        "one header, every value: {}",
        csv.stdout
    );
}

#[tokio::test]
async fn old_runs_are_pruned_but_each_kris_last_good_value_stays() {
    let k = Kri::default().await;
    let cfg = k.config("");
    let cfg_text = std::fs::read_to_string(&cfg)
        .expect("cfg")
        .replace("[store]\n", "[store]\nkeep_days = 30\n");
    std::fs::write(&cfg, cfg_text).expect("write");
    let args = ["--config", cfg_arg(&cfg), "run", "--only", "efd, CLEAR"];
    assert_eq!(k.run(&args, &[]).await.code, 0);
    k.advance(chrono::Duration::days(40));
    k.sandbox
        .set_faults(vec![FaultRule::always("/v2/efd", Fault::Status(500))]);
    assert_eq!(k.run(&args, &[]).await.code, 1);
    let history = k
        .run(&["--config", cfg_arg(&cfg), "--output", "json", "history"], &[])
        .await
        .json();
    let values = k
        .run(&["--config", cfg_arg(&cfg), "--output", "json", "values"], &[])
        .await
        .json();
    // CLEAR's old value is superseded and pruned; EFD's old one is its last good value: kept.
    let rows = values["values"].as_array().expect("rows");
    let of = |slug: &str| rows.iter().filter(|r| r["slug"] == slug).count();
    assert_eq!(of("pp_reported_phish_fn_rate_pct"), 1, "{values:#}");
    assert_eq!(of("pp_dmarc_enforcement_pct"), 2, "{values:#}");
    assert_eq!(
        history["runs"].as_array().map(Vec::len),
        Some(3),
        "the old clear run is gone: {history:#}"
    );
}

#[tokio::test]
async fn hints_say_what_happened() {
    let k = Kri::new(Scenario {
        faults: vec![FaultRule::always("/v2/efd", Fault::Status(500))],
        ..Scenario::default()
    })
    .await;
    let cfg = k.config("");
    let out = k.run(&["--config", cfg_arg(&cfg), "run", "--only", " EFD "], &[]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        !out.stdout.contains("no KRI selected"),
        "a failed KRI is not an unselected one:\n{}",
        out.stdout
    );
    let out = k
        .run(
            &["--config", cfg_arg(&cfg), "run", "--only", "efd"],
            &[("KRI_CONNECTORS__EFD__ENABLED", "false")],
        )
        .await;
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("KRI_CONNECTORS__EFD__ENABLED"),
        "blamed on the variable: {}",
        out.stderr
    );
    let out = k.run(&["--config", cfg_arg(&cfg), "run", "--only", "ctr"], &[]).await;
    assert!(out.stderr.contains("off by default"), "{}", out.stderr);
}

#[tokio::test]
async fn a_kept_demo_and_the_sandbox_let_every_command_be_tried_without_an_account() {
    let dir = tempfile::tempdir().expect("dir");
    let keep = dir.path().join("demo");
    let out = run_kri(
        dir.path(),
        &["demo", "--keep", "demo"],
        &[("KRI_TEST_NOW", &test_now().to_rfc3339())],
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    let cfg = std::fs::read_to_string(keep.join("kri.toml")).expect("kept config");
    assert!(keep.join("kri.db").exists());
    let port = cfg
        .split("http://127.0.0.1:")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .expect("the sandbox's port")
        .to_owned();
    let noted = run_kri(dir.path(), &["--config", "mine.toml", "demo"], &[]).await;
    assert_eq!(noted.code, 0, "{noted:?}");
    assert!(
        noted.stderr.contains("does not read mine.toml"),
        "--config is not silently ignored: {}",
        noted.stderr
    );
    let how = if port == "9740" {
        "`kri sandbox &`".to_owned()
    } else {
        format!("`kri sandbox --listen 127.0.0.1:{port} &`")
    };
    assert!(
        out.stderr.contains(&how),
        "the exact command to serve the kept config: {}",
        out.stderr
    );
    let again = run_kri(dir.path(), &["demo", "--keep", "demo"], &[]).await;
    assert_eq!(again.code, 2, "never overwrites: {again:?}");

    let mut sandbox = tokio::process::Command::new(env!("CARGO_BIN_EXE_kri"))
        .args(["sandbox", "--listen", &format!("127.0.0.1:{port}")])
        .env("KRI_TEST_NOW", test_now().to_rfc3339())
        .kill_on_drop(true)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kri sandbox");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port.parse::<u16>().expect("port")))
        .await
        .is_err()
    {
        assert!(std::time::Instant::now() < deadline, "the sandbox did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let now = test_now().to_rfc3339();
    let envs = [("KRI_TEST_NOW", now.as_str())];
    for args in [
        &["values"][..],
        &["history"],
        &["kris"],
        &["test"],
        &["run"],
        &["run", "--plan"],
        &["config", "check"],
        &["ctr", "incidents", "list", "--limit", "3"],
    ] {
        let out = run_kri(&keep, args, &envs).await;
        assert_eq!(out.code, 0, "{args:?}: {out:?}");
    }
    let values: Value =
        serde_json::from_str(&run_kri(&keep, &["--output", "json", "values"], &envs).await.stdout).expect("json");
    assert!(
        values["values"].as_array().is_some_and(|v| v.len() >= 20),
        "two runs stored: {values}"
    );

    // The README's [tenants] walkthrough on the sandbox, run as written.
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).expect("README");
    let start = readme
        .find("```sh\ncd demo && mkdir tenants.d")
        .expect("the walkthrough in README.md");
    let block = &readme[start + 6..];
    let block = &block[..block.find("```").expect("end of the block")];
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_kri"))
        .parent()
        .expect("bin dir");
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let walk = tokio::process::Command::new("sh")
        .args(["-ec", block])
        .current_dir(dir.path())
        .env("PATH", path)
        .env("KRI_TEST_NOW", &now)
        .env("NO_COLOR", "1")
        .output()
        .await
        .expect("sh runs");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&walk.stdout),
        String::from_utf8_lossy(&walk.stderr),
    );
    assert!(
        walk.status.success(),
        "the walkthrough failed:\n{block}\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("globex") && stdout.contains("pp_vap_count"), "{stdout}");
    let _ = sandbox.kill().await;
}
