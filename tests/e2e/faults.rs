//! The fault-injection suite: the real binary against a sandbox that cuts bodies, stalls, hangs,
//! redirects to another origin, echoes requests, answers 5xx/401/403 to everything, plus
//! concurrent runs and damaged state. After a fault the values come back exact on the next run,
//! and no secret appears in stdout, stderr, logs or any table of the store.

use kri_sandbox::ctr::DEMO_CLIENT_SECRET;
use kri_sandbox::tap::expected;
use kri_sandbox::{DEMO_SECRET, Fault, FaultRule, Recorder, Scenario};
use serde_json::{Value, json};

use crate::helper::{Kri, Outcome, connector, kri};

const SIEM_KRIS: [&str; 3] = [
    "pp_malicious_delivered_24h",
    "pp_malicious_clicks_post_delivery_7d",
    "pp_bec_impostor_7d",
];

/// TAP only (EFD and CLEAR off), plus `extra` under `[connectors.tap]`.
fn tap_only(extra: &str) -> String {
    format!("[connectors.efd]\nenabled = false\n[connectors.clear]\nenabled = false\n[connectors.tap]\n{extra}")
}

async fn run_json(k: &Kri, cfg: &std::path::Path, envs: &[(&str, &str)]) -> Outcome {
    k.run(&["--config", cfg.to_str().unwrap(), "run", "--output", "json"], envs)
        .await
}

/// Every TAP KRI has exactly the sandbox's value.
fn assert_tap_exact(run: &Value) {
    for (slug, want) in [
        ("pp_vap_count", json!(12)),
        ("pp_malicious_delivered_24h", json!(expected::DELIVERED_24H)),
        (
            "pp_malicious_clicks_post_delivery_7d",
            json!(expected::CLICKS_PERMITTED_7D),
        ),
        ("pp_bec_impostor_7d", json!(expected::BEC_IMPOSTOR_7D)),
        ("pp_cred_phish_campaigns_30d", json!(expected::CRED_PHISH_CAMPAIGNS_30D)),
    ] {
        let v = kri(run, slug);
        assert_eq!((&v["value"], &v["status"]), (&want, &json!("ok")), "{slug}: {v}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_siem_answer_that_fails_to_arrive_or_parse_is_a_failed_window_read_again_next_run() {
    for fault in [
        Fault::CutBody,
        Fault::CutHalfway,
        Fault::EmptyOk,
        Fault::Body(200, r#"{"error": "upstream busy"}"#.into()),
        Fault::Body(200, "<html><body>maintenance</body></html>".into()),
    ] {
        let k = Kri::new(Scenario {
            // Two bad hours: fewer than the three failures in a row that stop the pool.
            faults: vec![FaultRule::first(2, "/v2/siem/all", fault.clone())],
            ..Default::default()
        })
        .await;
        let cfg = k.config(&tap_only(""));
        let first = run_json(&k, &cfg, &[]).await;
        assert_eq!(first.code, 1, "{fault:?}: {first:?}");
        let run = first.json();
        for slug in SIEM_KRIS {
            let v = kri(&run, slug);
            assert_eq!(
                (&v["status"], &v["value"]),
                (&json!("failed"), &json!(null)),
                "{fault:?} {slug}"
            );
            let m = v["message"].as_str().unwrap();
            assert!(m.contains("2 of") && m.contains("reads them again"), "{fault:?}: {m}");
        }
        assert_eq!(
            kri(&run, "pp_vap_count")["value"],
            json!(12),
            "{fault:?}: other KRIs go on"
        );

        let siem_before = k.sandbox.hits("/v2/siem/all");
        let second = run_json(&k, &cfg, &[]).await;
        assert_eq!(second.code, 0, "{fault:?}: {second:?}");
        assert_tap_exact(&second.json());
        let reread = k.sandbox.hits("/v2/siem/all") - siem_before;
        assert!(
            (2..=4).contains(&reread),
            "{fault:?}: the 2 failed hours (+ the current and look-back ones) are read again, not all: {reread}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_204_is_an_empty_window_because_the_server_said_so() {
    let k = Kri::new(Scenario {
        faults: vec![FaultRule::always("/v2/siem/all", Fault::NoContent)],
        ..Default::default()
    })
    .await;
    let cfg = k.config(&tap_only("kris = [\"pp_malicious_delivered_24h\"]\n"));
    let out = run_json(&k, &cfg, &[]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(kri(&out.json(), "pp_malicious_delivered_24h")["value"], json!(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_body_times_out_and_a_hung_request_is_retried_within_bounds() {
    let k = Kri::new(Scenario {
        faults: vec![
            FaultRule::first(1, "/v2/siem/all", Fault::StallBody),
            FaultRule::first(1, "/v2/people/vap", Fault::Hang),
        ],
        ..Default::default()
    })
    .await;
    let cfg = k.config(&tap_only("timeout = \"2s\"\nsiem_timeout_seconds = 2\n"));
    let started = std::time::Instant::now();
    let first = run_json(&k, &cfg, &[]).await;
    assert!(started.elapsed() < std::time::Duration::from_secs(30), "bounded");
    assert_eq!(first.code, 1, "{first:?}");
    let run = first.json();
    // The hung VAP call timed out after 2 s and its retry got the answer.
    assert_eq!(kri(&run, "pp_vap_count")["value"], json!(12), "{run}");
    assert_eq!(k.sandbox.hits("/v2/people/vap"), 2);
    let m = kri(&run, "pp_malicious_delivered_24h")["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(m.contains("1 of 24") && m.contains("timed out"), "{m}");
    let second = run_json(&k, &cfg, &[]).await;
    assert_eq!(second.code, 0, "{second:?}");
    assert_tap_exact(&second.json());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_api_answering_503_to_everything_gets_a_few_calls_and_exit_1() {
    let k = Kri::new(Scenario {
        faults: vec![FaultRule::always("/v2/", Fault::Status(503))],
        ..Default::default()
    })
    .await;
    let cfg = k.config(&tap_only(""));
    let out = run_json(&k, &cfg, &[]).await;
    assert_eq!(out.code, 1, "{out:?}");
    let total = k.sandbox.total_hits();
    assert!(total <= 40, "{total} requests: {:?}", k.sandbox.all_hits());
    let run = out.json();
    let tap = connector(&run, "tap");
    assert_eq!(tap["status"], "failed");
    assert_eq!(tap["api_calls"], json!(total), "every request on the wire is counted");
    let m = kri(&run, "pp_malicious_delivered_24h")["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(m.contains("HTTP 503"), "{m}");
    // The pool counts say the same as the wire (retries included), so --plan tells the truth.
    let plan = k
        .run(
            &["--config", cfg.to_str().unwrap(), "run", "--plan", "--output", "json"],
            &[],
        )
        .await;
    let used: u64 = plan.json()["plan"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["used_24h"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(used, total, "{}", plan.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_refused_everywhere_make_a_handful_of_calls() {
    for (fault, expect) in [
        (Fault::Status(401), "HTTP 401"),
        (Fault::Status(403), "HTTP 403"),
        (Fault::Status(400), "HTTP 400"),
    ] {
        let k = Kri::new(Scenario {
            faults: vec![FaultRule::always("/v2/", fault.clone())],
            ..Default::default()
        })
        .await;
        let cfg = k.config(&tap_only(""));
        let out = run_json(&k, &cfg, &[]).await;
        assert_eq!(out.code, 1, "{out:?}");
        // People 1; SIEM and campaign ids: 3 failures stop each pool, plus at most 3 more that
        // were already in flight (concurrency 4).
        let total = k.sandbox.total_hits();
        assert!(total <= 13, "{fault:?}: {total} requests: {:?}", k.sandbox.all_hits());
        assert!(out.stdout.contains(expect), "{fault:?}: {}", out.stdout);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redirect_to_another_origin_is_refused_and_nothing_reaches_it() {
    let elsewhere = Recorder::start().await.unwrap();
    let to = elsewhere.base_url();
    let k = Kri::new(Scenario {
        faults: vec![
            FaultRule::always(
                "/v2/",
                Fault::Redirect {
                    status: 307,
                    to: to.clone(),
                },
            ),
            FaultRule::always(
                "/v1/token",
                Fault::Redirect {
                    status: 308,
                    to: to.clone(),
                },
            ),
        ],
        ..Default::default()
    })
    .await;
    let cfg = k.config(&format!(
        "[connectors.efd]\nenabled = false\n[connectors.clear]\nenabled = false\n{}",
        k.ctr_table(DEMO_CLIENT_SECRET, "enabled = true\n")
    ));
    let out = run_json(&k, &cfg, &[("RUST_LOG", "debug")]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(
        elsewhere.count(),
        0,
        "sent to another origin: {:?}",
        elsewhere.requests()
    );
    let run = out.json();
    for slug in ["pp_vap_count", "ctr_open_incidents"] {
        let m = kri(&run, slug)["message"].as_str().unwrap().to_owned();
        assert!(
            m.contains("refused a redirect") && m.contains(&k.sandbox.base_url()) && m.contains(&to),
            "{slug}: {m}"
        );
    }
    assert!(!out.all().contains(kri_sandbox::faults::EVIL_TOKEN));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_same_origin_redirect_is_followed_and_the_hop_is_counted() {
    let k = Kri::default().await;
    k.sandbox.set_faults(vec![FaultRule::once(
        "/v2/people/vap",
        Fault::Redirect {
            status: 302,
            to: k.sandbox.base_url(),
        },
    )]);
    let cfg = k.config(&tap_only("kris = [\"pp_vap_count\"]\n"));
    let out = run_json(&k, &cfg, &[]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(kri(&out.json(), "pp_vap_count")["value"], json!(12));
    assert_eq!(k.sandbox.hits("/v2/people/vap"), 2);
    assert_eq!(connector(&out.json(), "tap")["api_calls"], json!(2));
}

#[tokio::test(flavor = "multi_thread")]
async fn echoed_credentials_and_tokens_appear_nowhere() {
    let k = Kri::new(Scenario {
        faults: vec![
            FaultRule::always("/v2/people", Fault::Echo(400)),
            FaultRule::always("/v2/siem", Fault::Echo(500)),
            FaultRule::always("/v2/campaign", Fault::Echo(403)),
            FaultRule::always("/v2/efd", Fault::Echo(502)),
            FaultRule::always("/api/v1/tric", Fault::Echo(403)),
        ],
        ..Default::default()
    })
    .await;
    let cfg = k.config_with(Some(""), &k.ctr_table(DEMO_CLIENT_SECRET, "enabled = true\n"));
    let envs = [
        ("KRI_PROOFPOINT__CREDENTIALS", k.sandbox.credentials()),
        ("RUST_LOG", "trace".to_owned()),
    ];
    let envs: Vec<(&str, &str)> = envs.iter().map(|(a, b)| (*a, b.as_str())).collect();
    let mut seen = String::new();
    for args in [
        vec!["run", "--output", "json"],
        vec!["run"],
        vec!["test"],
        vec!["history"],
        vec!["values"],
    ] {
        let mut all = vec!["--config", cfg.to_str().unwrap()];
        all.extend(args.iter());
        let out = k.run(&all, &envs).await;
        seen.push_str(&out.all());
    }
    // The token endpoint echoing the form (client_secret included) on a 400.
    k.sandbox
        .set_faults(vec![FaultRule::always("/v1/token", Fault::Echo(400))]);
    let out = k
        .run(&["--config", cfg.to_str().unwrap(), "run", "--only", "ctr"], &envs)
        .await;
    seen.push_str(&out.all());
    assert!(seen.contains("[redacted]"), "the echoes reached the messages, scrubbed");
    assert!(seen.contains("authorization: Basic [redacted]"), "{seen}");
    let store = k.dump_store().await;
    assert!(store.contains("[redacted]"), "the store keeps the scrubbed messages");
    let basic = "ZGVtby1wcmluY2lwYWw6ZGVtby1zZWNyZXQ"; // base64("demo-principal:demo-secret")
    for leaked in [DEMO_SECRET, basic, DEMO_CLIENT_SECRET, "ctr-token-"] {
        assert!(!seen.contains(leaked), "`{leaked}` in the output:\n{seen}");
        assert!(!store.contains(leaked), "`{leaked}` in the store");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hung_module_is_stopped_by_its_run_timeout_and_the_others_finish() {
    let k = Kri::new(Scenario {
        faults: vec![FaultRule::always("/v2/siem/all", Fault::Hang)],
        ..Default::default()
    })
    .await;
    let cfg = k.config("[connectors.tap]\nrun_timeout = \"3s\"\nsiem_timeout_seconds = 600\n");
    let started = std::time::Instant::now();
    let out = run_json(&k, &cfg, &[]).await;
    let took = started.elapsed();
    assert_eq!(out.code, 1, "{out:?}");
    assert!(took < std::time::Duration::from_secs(20), "took {took:?}");
    let run = out.json();
    let m = kri(&run, "pp_malicious_delivered_24h")["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(m.contains("stopped after 3s (its run_timeout)"), "{m}");
    assert_eq!(kri(&run, "pp_dmarc_enforcement_pct")["value"], json!(60));
    assert_eq!(kri(&run, "pp_reported_phish_fn_rate_pct")["value"], json!(7.5));
}

#[tokio::test(flavor = "multi_thread")]
async fn two_runs_at_once_never_read_a_window_twice() {
    let k = Kri::default().await;
    let cfg = k.config(&tap_only(""));
    let args = ["--config", cfg.to_str().unwrap(), "run", "--output", "json"];
    let (a, b) = tokio::join!(k.run(&args, &[]), k.run(&args, &[]));
    let siem = k.sandbox.hits("/v2/siem/all");
    assert_eq!(siem, 168, "each of the 168 windows read once: {a:?} {b:?}");
    assert_eq!(k.sandbox.hits("/v2/campaign/ids"), 30);
    let refused: Vec<&Outcome> = [&a, &b].into_iter().filter(|o| o.code != 0).collect();
    for r in &refused {
        let err = connector(&r.json(), "tap")["error"].as_str().unwrap().to_owned();
        assert!(
            err.contains("is being run by pid") && err.contains("(kri run)"),
            "{err}"
        );
    }
    // Waiting instead of refusing: the second run goes after the first and reads almost nothing.
    let waiting = [
        "--config",
        cfg.to_str().unwrap(),
        "run",
        "--wait",
        "60s",
        "--output",
        "json",
    ];
    let before = k.sandbox.hits("/v2/siem/all");
    let (c, d) = tokio::join!(k.run(&waiting, &[]), k.run(&waiting, &[]));
    assert_eq!((c.code, d.code), (0, 0), "{c:?} {d:?}");
    assert!(k.sandbox.hits("/v2/siem/all") - before <= 6);
    assert_tap_exact(&d.json());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_damaged_state_row_is_dropped_and_read_again_without_failing_other_kris() {
    let k = Kri::default().await;
    let cfg = k.config(&tap_only(""));
    assert_eq!(run_json(&k, &cfg, &[]).await.code, 0);
    let store = kri_core::Store::open(&k.db()).unwrap();
    let damaged: String = store
        .call("damage", |c| {
            let key: String = c.query_row(
                "SELECT key FROM state WHERE key LIKE 'siem/%' ORDER BY key DESC LIMIT 1 OFFSET 5",
                [],
                |r| r.get(0),
            )?;
            c.execute("UPDATE state SET value = '{\"mark\": 7' WHERE key = ?1", [&key])?;
            c.execute(
                "INSERT INTO state (namespace, key, value, updated_at) VALUES ('tap', 'siem/garbage', '1', 'x')",
                [],
            )?;
            // One campaign day in an older shape: read again (one call of the 50 a day).
            c.execute(
                "UPDATE state SET version = 0 WHERE key = (SELECT MIN(key) FROM state WHERE key LIKE 'campaign-day/%')",
                [],
            )?;
            Ok(key)
        })
        .await
        .unwrap();
    drop(store);
    let before = k.sandbox.hits("/v2/siem/all");
    let out = run_json(&k, &cfg, &[("RUST_LOG", "warn")]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_tap_exact(&out.json());
    assert!(
        out.stderr.contains(&damaged) && out.stderr.contains("dropped") && out.stderr.contains("siem/garbage"),
        "{}",
        out.stderr
    );
    assert!(
        k.sandbox.hits("/v2/siem/all") - before <= 4,
        "only the damaged hour is read again"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn number_looking_secrets_and_ids_keep_the_characters_written() {
    for (id, secret) in [("0042", "00123"), ("7", "3.10"), ("12", "1e3")] {
        let k = Kri::new(Scenario {
            ctr_client_id: id.into(),
            ctr_client_secret: secret.into(),
            ..Default::default()
        })
        .await;
        let table = k.ctr_table("unused", "enabled = true\n");
        let table = table
            .lines()
            .filter(|l| !l.starts_with("client_secret") && !l.starts_with("client_id"))
            .collect::<Vec<_>>()
            .join("\n");
        let cfg = k.config(&table);
        let out = k
            .run_only(
                &cfg,
                "ctr",
                &[
                    ("KRI_CONNECTORS__CTR__CLIENT_ID", id),
                    ("KRI_CONNECTORS__CTR__CLIENT_SECRET", secret),
                ],
            )
            .await;
        assert_eq!(out.code, 0, "{id}/{secret}: {out:?}");
        assert!(!out.all().contains(secret) || secret.len() < 4, "{out:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ctr_list_answer_without_total_or_incidents_fails_the_kri() {
    for fault in [Fault::Body(200, "{}".into()), Fault::NoContent, Fault::EmptyOk] {
        let k = Kri::new(Scenario {
            faults: vec![FaultRule::always("/api/v1/tric/incidents", fault.clone())],
            ..Default::default()
        })
        .await;
        let cfg = k.config(&k.ctr_table(DEMO_CLIENT_SECRET, "enabled = true\n"));
        let out = k.run_only(&cfg, "ctr", &[]).await;
        assert_eq!(out.code, 1, "{fault:?}: {out:?}");
        let v = kri(&out.json(), "ctr_open_incidents").clone();
        assert_eq!(
            (&v["status"], &v["value"]),
            (&json!("failed"), &json!(null)),
            "{fault:?}: {v}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_closed_stdout_ends_output_quietly_with_the_usual_exit_code() {
    let k = Kri::default().await;
    let cfg = k.config("");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kri"))
        .args(["--config", cfg.to_str().unwrap(), "kris"])
        .current_dir(k.dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // like `kri kris | head -0`: the reader is gone before kri writes
    let out = child.wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_store_and_its_new_folder_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let k = Kri::default().await;
    let db = k.dir.path().join("private/data/kri.db");
    let cfg = k
        .config(&tap_only("kris = [\"pp_vap_count\"]\n"))
        .to_str()
        .unwrap()
        .to_owned();
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace(&k.db().display().to_string(), &db.display().to_string());
    std::fs::write(&cfg, text).unwrap();
    assert_eq!(k.run(&["--config", &cfg, "run"], &[]).await.code, 0);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&db), 0o600);
    assert_eq!(mode(db.parent().unwrap()), 0o700);
    assert_eq!(mode(&k.dir.path().join("private")), 0o700);
}

#[tokio::test(flavor = "multi_thread")]
async fn durations_too_large_for_the_calendar_are_refused_before_any_call() {
    let k = Kri::default().await;
    for (table, key) in [
        (
            "[connectors.tap]\nschedule = \"100000000 years\"\n",
            "connectors.tap.schedule",
        ),
        (
            "[connectors.tap]\nrun_timeout = \"3 days\"\n",
            "connectors.tap.run_timeout",
        ),
        ("[connectors.efd]\ntimeout = \"0s\"\n", "connectors.efd.timeout"),
        (
            &k.ctr_table(DEMO_CLIENT_SECRET, "first_fetch = \"1000000 years\"\n"),
            "connectors.ctr.first_fetch",
        ),
    ] {
        let cfg = k.config(table);
        for args in [vec!["run"], vec!["daemon"]] {
            let mut all = vec!["--config", cfg.to_str().unwrap()];
            all.extend(args);
            let out = k.run(&all, &[]).await;
            assert_eq!(out.code, 2, "{table}: {out:?}");
            assert!(out.stderr.contains(key), "{out:?}");
            assert!(!out.stderr.contains("panicked"), "{out:?}");
        }
    }
    assert_eq!(k.sandbox.total_hits(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ctr_start_after_the_end_is_refused_whichever_flags_are_given() {
    let k = Kri::default().await;
    let cfg = k.config(&k.ctr_table(DEMO_CLIENT_SECRET, ""));
    for flags in [
        vec!["--start-time", "2999-01-01"],
        vec!["--start-time", "2024-11-26", "--end-time", "2024-11-01"],
        vec!["--start-time", "1 day", "--end-time", "2 days"],
    ] {
        let mut all = vec!["--config", cfg.to_str().unwrap(), "ctr", "incidents", "list"];
        all.extend(flags.iter());
        let out = k.run(&all, &[]).await;
        assert_eq!(out.code, 2, "{flags:?}: {out:?}");
        assert!(out.stderr.contains("is after"), "{out:?}");
    }
    assert_eq!(k.sandbox.total_hits(), 0, "refused before any call");
}

#[tokio::test(flavor = "multi_thread")]
async fn getting_more_incidents_than_the_rate_limit_allows_says_how_long_it_takes() {
    use tokio::io::AsyncBufReadExt;
    let k = Kri::default().await;
    let cfg = k.config(
        &k.ctr_table(DEMO_CLIENT_SECRET, "")
            .replace("rate_limit_per_minute = 0", "rate_limit_per_minute = 10"),
    );
    let ids: Vec<String> = (0..25)
        .map(|n| format!("00000000-0000-4000-8000-{:012}", 1000 + n))
        .collect();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kri"))
        .args([
            "--config",
            cfg.to_str().unwrap(),
            "ctr",
            "incidents",
            "get",
            &ids.join(","),
        ])
        .current_dir(k.dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let first = tokio::time::timeout(std::time::Duration::from_secs(20), lines.next_line())
        .await
        .expect("a line on stderr before the waiting starts")
        .unwrap()
        .unwrap_or_default();
    assert!(
        first.contains("25 incidents") && first.contains("10 calls per minute") && first.contains("2m"),
        "{first}"
    );
    child.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_killed_mid_way_leaves_its_lease_free() {
    let k = Kri::new(Scenario {
        // The SIEM hangs: the run is killed while it holds the tap lease.
        faults: vec![FaultRule::always("/v2/siem/all", Fault::Hang)],
        ..Default::default()
    })
    .await;
    let cfg = k.config(&tap_only("siem_timeout_seconds = 600\n"));
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kri"))
        .args(["--config", cfg.to_str().unwrap(), "run"])
        .current_dir(k.dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while k.sandbox.hits("/v2/siem/all") < 1 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    child.start_kill().unwrap(); // SIGKILL: no clean-up runs
    child.wait().await.unwrap();
    k.sandbox.set_faults(Vec::new());
    let out = run_json(&k, &cfg, &[]).await;
    assert_eq!(out.code, 0, "the dead holder's lease is free at once: {out:?}");
    assert_tap_exact(&out.json());
}

/// Regression: raw ESC, BEL and C1 bytes and newlines from an API's error reached the terminal
/// and the logs (`kri history --run`, WARN lines, CSV `error` and `message` cells). Every path
/// writes them out visibly: no control byte of the API's reaches stdout or stderr.
#[tokio::test]
async fn an_apis_control_characters_never_reach_the_terminal_or_a_csv_cell() {
    let k = Kri::default().await;
    let cfg = k.config("");
    let hostile = "boom\u{1b}[2J\u{1b}]0;owned\u{7}\u{9b}31m\r\nwarning: forged line";
    k.sandbox
        .set_faults(vec![FaultRule::always("/v2/efd", Fault::Body(500, hostile.into()))]);
    let cfg_s = cfg.to_str().expect("utf-8");
    let run = k.run(&["--config", cfg_s, "-v", "run", "--only", "efd"], &[]).await;
    assert_eq!(run.code, 1, "{run:?}");
    let history = k
        .run(&["--config", cfg_s, "--output", "json", "history"], &[])
        .await
        .json();
    let run_id = history["runs"][0]["run_id"].as_str().expect("a run").to_owned();
    let outputs = [
        run,
        k.run(&["--config", cfg_s, "history", "--run", &run_id], &[]).await,
        k.run(&["--config", cfg_s, "--output", "csv", "history"], &[]).await,
        k.run(&["--config", cfg_s, "--output", "csv", "values"], &[]).await,
    ];
    for out in &outputs {
        for (name, text) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
            assert!(
                !text.contains(['\u{1b}', '\u{7}', '\u{9b}', '\r']),
                "a control byte reached {name}: {text:?}"
            );
            assert!(
                !text.lines().any(|l| l.starts_with("warning: forged")),
                "a forged line on {name}: {text}"
            );
        }
    }
    assert!(
        outputs[2].stdout.contains("\\x1b[2J"),
        "written out: {}",
        outputs[2].stdout
    );
}
