//! `kri run`: exact values, license tolerance, selection, store, exit codes, JSON shape.

use kri_sandbox::{Licence, Scenario};
use serde_json::json;

use crate::helper::{Kri, connector, kri, modules};

#[tokio::test(flavor = "multi_thread")]
async fn run_json_has_the_contract_shape_and_exact_values() {
    let k = Kri::default().await;
    let cfg = k.config("");
    let out = k
        .run(&["--config", cfg.to_str().unwrap(), "run", "--output", "json"], &[])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    let run = out.json();
    assert_eq!(kri(&run, "pp_vap_count")["value"], json!(12));
    assert_eq!(kri(&run, "pp_dmarc_enforcement_pct")["value"], json!(60));
    assert_eq!(kri(&run, "pp_reported_phish_fn_rate_pct")["value"], json!(7.5));
    // 168 SIEM hours + 30 campaign days + 5 campaign details + VAP, at the fixed test "now".
    assert_eq!(connector(&run, "tap")["api_calls"], json!(204));
    insta::assert_json_snapshot!("run_all_ok", run, {
        ".run_id" => "[run_id]", ".started_at" => "[time]", ".finished_at" => "[time]"
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn efd_403_and_clear_404_are_unlicensed_zero_and_exit_0() {
    let k = Kri::new(Scenario {
        efd: Licence::Forbidden,
        clear: Licence::NotFound,
        ..Default::default()
    })
    .await;
    let cfg = k.config("");
    let out = k
        .run(&["--config", cfg.to_str().unwrap(), "run", "--output", "json"], &[])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    let run = out.json();
    for (slug, module) in [
        ("pp_dmarc_enforcement_pct", "EFD"),
        ("pp_reported_phish_fn_rate_pct", "CLEAR"),
    ] {
        let v = kri(&run, slug);
        assert_eq!(
            (&v["value"], &v["status"], &v["band"]),
            (&json!(0), &json!("unlicensed"), &json!(null))
        );
        assert!(v["message"].as_str().unwrap().contains(module), "{v}");
    }
    assert!(
        out.stderr.contains("not available on this tenant"),
        "a warning is logged: {}",
        out.stderr
    );
    insta::assert_json_snapshot!("run_unlicensed", run, {
        ".run_id" => "[run_id]", ".started_at" => "[time]", ".finished_at" => "[time]"
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_credentials_exit_1_naming_401_and_the_credentials() {
    let k = Kri::default().await;
    let cfg = k.config_with(Some("demo-principal:wrong-secret"), "");
    let out = k
        .run(&["--config", cfg.to_str().unwrap(), "run"], &[("COLUMNS", "300")])
        .await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("credentials rejected (HTTP 401)"), "{out:?}");
    assert!(out.stdout.contains("principal:secret"), "{out:?}");
    let json = k
        .run(&["--config", cfg.to_str().unwrap(), "run", "--output", "json"], &[])
        .await;
    assert_eq!(json.code, 1);
    assert_eq!(connector(&json.json(), "tap")["status"], "failed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_scope_names_the_endpoint() {
    let k = Kri::new(Scenario {
        people_forbidden: true,
        ..Default::default()
    })
    .await;
    let cfg = k.config("");
    let out = k
        .run(&["--config", cfg.to_str().unwrap(), "run", "--output", "json"], &[])
        .await;
    assert_eq!(out.code, 1);
    let vap = kri(&out.json(), "pp_vap_count").clone();
    assert_eq!(vap["status"], "failed");
    assert!(
        vap["message"]
            .as_str()
            .unwrap()
            .contains("missing API scope (HTTP 403) on GET /v2/people/vap"),
        "{vap}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unselected_kris_are_skipped_not_written() {
    let k = Kri::default().await;
    let cfg = k.config("[connectors.tap]\nkris = []\n");
    let out = k
        .run(&["--config", cfg.to_str().unwrap(), "run", "--output", "json"], &[])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    let tap = connector(&out.json(), "tap").clone();
    assert_eq!(
        (&tap["rows_written"], &tap["rows_skipped"], &tap["api_calls"]),
        (&json!(0), &json!(5), &json!(0)),
        "all five TAP KRIs skipped, no call made"
    );
    assert_eq!(
        k.sandbox.hits("/v2/people/vap"),
        0,
        "an unselected KRI costs no API call"
    );
    let table = k.run(&["--config", cfg.to_str().unwrap(), "run"], &[]).await;
    assert!(table.stdout.contains("no KRI selected"), "{table:?}");
    let values = k
        .run(
            &[
                "--config",
                cfg.to_str().unwrap(),
                "values",
                "pp_vap_count",
                "--output",
                "json",
            ],
            &[],
        )
        .await;
    assert_eq!(values.json()["values"], json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn only_runs_the_named_modules_and_refuses_unknown_ones() {
    let k = Kri::default().await;
    let cfg = k.config("");
    let out = k
        .run(
            &[
                "--config",
                cfg.to_str().unwrap(),
                "run",
                "--only",
                "tap,efd",
                "--output",
                "json",
            ],
            &[],
        )
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(modules(&out.json()), ["efd", "tap"]);
    let bad = k
        .run(&["--config", cfg.to_str().unwrap(), "run", "--only", "tapp"], &[])
        .await;
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("unknown module `tapp`"), "{bad:?}");
    let disabled = k
        .run(&["--config", cfg.to_str().unwrap(), "run", "--only", "ctr"], &[])
        .await;
    assert_eq!(disabled.code, 2);
    assert!(disabled.stderr.contains("enabled = true"), "{disabled:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn history_and_values_show_stored_runs_and_a_failure_keeps_the_last_good_value() {
    let k = Kri::default().await;
    let good = k.config("");
    assert_eq!(k.run(&["--config", good.to_str().unwrap(), "run"], &[]).await.code, 0);
    let bad = k.config_with(Some("demo-principal:nope"), "");
    assert_eq!(k.run(&["--config", bad.to_str().unwrap(), "run"], &[]).await.code, 1);

    let history = k
        .run(&["--config", bad.to_str().unwrap(), "history", "--output", "json"], &[])
        .await;
    assert_eq!(history.code, 0, "{history:?}");
    let runs = history.json()["runs"].as_array().unwrap().clone();
    assert_eq!(runs.len(), 6, "two runs of three connectors");
    assert!(
        runs.iter()
            .filter(|r| r["status"] == "failed")
            .all(|r| r["error"].as_str().unwrap().contains("401"))
    );

    let values = k
        .run(
            &[
                "--config",
                bad.to_str().unwrap(),
                "values",
                "pp_vap_count",
                "--output",
                "json",
            ],
            &[],
        )
        .await;
    let values = values.json()["values"].as_array().unwrap().clone();
    assert_eq!(values.len(), 2);
    assert_eq!(
        (&values[0]["value"], &values[0]["status"]),
        (&json!(null), &json!("failed"))
    );
    assert_eq!((&values[1]["value"], &values[1]["status"]), (&json!(12), &json!("ok")));

    let table = k.run(&["--config", bad.to_str().unwrap(), "history"], &[]).await;
    assert!(
        table.stdout.contains("tap") && table.stdout.contains("failed"),
        "{table:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn environment_overrides_the_file() {
    let k = Kri::default().await;
    let cfg = k.config_with(Some(""), "");
    let creds = k.sandbox.credentials();
    let out = k
        .run(
            &["--config", cfg.to_str().unwrap(), "run", "--output", "json"],
            &[
                ("KRI_PROOFPOINT__CREDENTIALS", &creds),
                ("KRI_CONNECTORS__EFD__ENABLED", "false"),
            ],
        )
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(modules(&out.json()), ["clear", "tap"]);
    assert_eq!(k.sandbox.hits("/v2/efd/dmarc/domains"), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn test_reports_the_vap_count_and_unlicensed_modules() {
    let k = Kri::new(Scenario {
        efd: Licence::Forbidden,
        ..Default::default()
    })
    .await;
    let cfg = k.config("");
    // A wide terminal: the message is checked whole, not how a narrow one wraps it.
    let out = k
        .run(
            &["--config", cfg.to_str().unwrap(), "test", "tap"],
            &[("COLUMNS", "300")],
        )
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("12 Very Attacked People"), "{out:?}");
    let all = k
        .run(&["--config", cfg.to_str().unwrap(), "test", "--output", "json"], &[])
        .await;
    assert_eq!(all.code, 0, "{all:?}");
    let probes = all.json()["probes"].clone();
    let efd = probes
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["module"] == "efd")
        .unwrap()
        .clone();
    assert_eq!(efd["status"], "unlicensed");
    let bad = k.config_with(Some("demo-principal:nope"), "");
    let out = k.run(&["--config", bad.to_str().unwrap(), "test", "tap"], &[]).await;
    assert_eq!(out.code, 1);
    assert!(out.stdout.contains("HTTP 401"), "{out:?}");
}

/// Small words that were wrong: a run's values show their previous value in `kri history
/// --run` as in `kri values`; one call is "1 API call"; a plan within the CTR rate limit says
/// it fits in a minute, not "at least 0 min".
#[tokio::test(flavor = "multi_thread")]
async fn a_runs_values_show_their_previous_value_and_counts_read_right() {
    let k = Kri::default().await;
    let cfg = k.config("[connectors.tap]\nenabled = false\n[connectors.clear]\nenabled = false\n");
    let cfg = cfg.to_str().unwrap();
    for _ in 0..2 {
        assert_eq!(k.run(&["--config", cfg, "run"], &[]).await.code, 0);
        k.advance(chrono::Duration::hours(1));
    }
    let history = k
        .run(&["--config", cfg, "history", "--output", "json"], &[])
        .await
        .json();
    let newest = history["runs"][0]["run_id"].as_str().unwrap().to_owned();
    let one = k
        .run(&["--config", cfg, "history", "--run", &newest, "--output", "json"], &[])
        .await
        .json();
    let value = &one["values"][0];
    assert_eq!(value["previous"], value["value"], "{one}");
    assert!(!value["previous"].is_null(), "{one}");
    let table = k.run(&["--config", cfg, "history", "--run", &newest], &[]).await;
    let calls = one["runs"][0]["api_calls"].as_u64().unwrap();
    let words = if calls == 1 {
        "1 API call\n".to_owned()
    } else {
        format!("{calls} API calls\n")
    };
    assert!(table.stdout.contains(&words), "{table:?}");
    let previous = format!("{}", value["previous"]);
    let row = table
        .stdout
        .lines()
        .find(|l| l.contains(value["slug"].as_str().unwrap()))
        .unwrap();
    assert_eq!(row.matches(previous.as_str()).count(), 2, "value and previous: {row}");

    let ctr = format!(
        "[connectors.ctr]\nenabled = true\nbase_url = \"{0}\"\ntoken_url = \"{0}/v1/token\"\nclient_id = \"{1}\"\n\
         client_secret = \"{2}\"\n",
        k.sandbox.base_url(),
        kri_sandbox::ctr::DEMO_CLIENT_ID,
        kri_sandbox::ctr::DEMO_CLIENT_SECRET
    );
    let cfg = k.config(&ctr);
    let plan = k
        .run(
            &[
                "--config",
                cfg.to_str().unwrap(),
                "run",
                "--plan",
                "--only",
                "ctr",
                "--output",
                "json",
            ],
            &[],
        )
        .await;
    assert!(
        plan.stdout.contains("fit in one minute, no waiting") && !plan.stdout.contains("at least 0 min"),
        "{plan:?}"
    );
}
