//! TAP SIEM and campaign KRIs against the sandbox, which enforces the real limits (400 for
//! windows over an hour or starting more than 7 days back, 404 for empty campaign days, 429 past
//! a pool): exact values, an incremental second run, throttling, and the dry-run plan.

use kri_sandbox::Scenario;
use kri_sandbox::tap::expected;
use serde_json::json;

use crate::helper::{Kri, connector, kri};

const TAP_SLUGS: [&str; 5] = [
    "pp_vap_count",
    "pp_malicious_delivered_24h",
    "pp_malicious_clicks_post_delivery_7d",
    "pp_bec_impostor_7d",
    "pp_cred_phish_campaigns_30d",
];

#[tokio::test(flavor = "multi_thread")]
async fn all_five_tap_kris_are_exact_and_a_second_run_is_cheap_and_the_same() {
    let k = Kri::default().await;
    let cfg = k.config("[connectors.efd]\nenabled = false\n[connectors.clear]\nenabled = false\n");
    let args = ["--config", cfg.to_str().unwrap(), "run", "--output", "json"];

    let first = k.run(&args, &[]).await;
    assert_eq!(first.code, 0, "{first:?}");
    let first = first.json();
    let expected_values = [
        json!(12),
        json!(expected::DELIVERED_24H),
        json!(expected::CLICKS_PERMITTED_7D),
        json!(expected::BEC_IMPOSTOR_7D),
        json!(expected::CRED_PHISH_CAMPAIGNS_30D),
    ];
    for (slug, want) in TAP_SLUGS.iter().zip(&expected_values) {
        let v = kri(&first, slug);
        assert_eq!((&v["value"], &v["status"]), (want, &json!("ok")), "{slug}: {v}");
    }
    let siem_first = k.sandbox.hits("/v2/siem/all");
    assert_eq!(siem_first, 168, "168 hourly windows for 7 days");

    // Five minutes later: the current hour and the previous one (read less than 30 min after it
    // ended) are read again, today's campaigns too, and the VAP count.
    k.advance(chrono::Duration::minutes(5));
    let second = k.run(&args, &[]).await;
    assert_eq!(second.code, 0, "{second:?}");
    let second = second.json();
    let calls = connector(&second, "tap")["api_calls"].as_u64().unwrap();
    assert_eq!(calls, 4, "second run; sandbox saw {:?}", k.sandbox.all_hits());
    assert_eq!(k.sandbox.hits("/v2/siem/all"), 168 + 2);
    for slug in TAP_SLUGS {
        assert_eq!(
            kri(&first, slug)["value"],
            kri(&second, slug)["value"],
            "{slug} changed between runs"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_throttled_siem_pool_fails_only_the_siem_kris_after_the_calls_in_flight() {
    let k = Kri::new(Scenario {
        siem_pool_limit: 0,
        ..Default::default()
    })
    .await;
    let cfg = k.config("[connectors.efd]\nenabled = false\n[connectors.clear]\nenabled = false\n");
    let out = k
        .run(&["--config", cfg.to_str().unwrap(), "run", "--output", "json"], &[])
        .await;
    assert_eq!(out.code, 1, "{out:?}");
    let run = out.json();
    for slug in [
        "pp_malicious_delivered_24h",
        "pp_malicious_clicks_post_delivery_7d",
        "pp_bec_impostor_7d",
    ] {
        let v = kri(&run, slug);
        assert_eq!((&v["status"], &v["value"]), (&json!("failed"), &json!(null)), "{v}");
        let m = v["message"].as_str().unwrap();
        assert!(m.contains("throttled") && m.contains("up to 24 h"), "{m}");
    }
    assert_eq!(kri(&run, "pp_vap_count")["value"], json!(12));
    assert_eq!(
        kri(&run, "pp_cred_phish_campaigns_30d")["value"],
        json!(expected::CRED_PHISH_CAMPAIGNS_30D)
    );
    assert_eq!(connector(&run, "tap")["status"], "partial");
    // The first 429 stops the pool: only the windows already in flight (concurrency 4) went out.
    let siem = k.sandbox.hits("/v2/siem/all");
    assert!((1..=4).contains(&siem), "{siem} SIEM calls");
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_shows_the_calls_and_the_budget_without_calling() {
    let k = Kri::default().await;
    let cfg = k.config("[connectors.efd]\nenabled = false\n[connectors.clear]\nenabled = false\n");
    let plan = k
        .run(
            &["--config", cfg.to_str().unwrap(), "run", "--plan", "--output", "json"],
            &[],
        )
        .await;
    assert_eq!(plan.code, 0, "{plan:?}");
    assert_eq!(k.sandbox.total_hits(), 0, "a plan calls nothing");
    let rows = plan.json()["plan"].as_array().unwrap().clone();
    let pool = |rows: &[serde_json::Value], name: &str| rows.iter().find(|r| r["pool"] == name).unwrap().clone();
    let siem = pool(&rows, "siem");
    assert_eq!(siem["calls"], 168, "{siem}");
    assert_eq!((&siem["used_24h"], &siem["limit"]), (&json!(0), &json!(1800)));
    assert!(
        siem["detail"][0]
            .as_str()
            .unwrap()
            .starts_with("GET /v2/siem/all?interval=")
    );
    assert_eq!(pool(&rows, "campaign-ids")["calls"], 30);
    assert_eq!(pool(&rows, "people")["calls"], 1);

    assert_eq!(k.run(&["--config", cfg.to_str().unwrap(), "run"], &[]).await.code, 0);
    let after = k
        .run(
            &["--config", cfg.to_str().unwrap(), "run", "--plan", "--output", "json"],
            &[],
        )
        .await;
    let rows = after.json()["plan"].as_array().unwrap().clone();
    let siem = pool(&rows, "siem");
    // At the same instant nothing is left to read; the budget shows the 168 calls made.
    assert_eq!((&siem["calls"], &siem["used_24h"]), (&json!(0), &json!(168)), "{siem}");
    let table = k.run(&["--config", cfg.to_str().unwrap(), "run", "--plan"], &[]).await;
    assert!(table.stdout.contains("Nothing was called"), "{table:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn windows_are_read_concurrency_at_a_time_and_give_the_same_values() {
    let mut values = Vec::new();
    for concurrency in [1, 3, 16] {
        let k = Kri::new(Scenario {
            latency: std::time::Duration::from_millis(5),
            ..Default::default()
        })
        .await;
        let cfg = k.config(&format!(
            "[connectors.efd]\nenabled = false\n[connectors.clear]\nenabled = false\n\
             [connectors.tap]\nconcurrency = {concurrency}\n"
        ));
        let out = k
            .run(&["--config", cfg.to_str().unwrap(), "run", "--output", "json"], &[])
            .await;
        assert_eq!(out.code, 0, "{out:?}");
        let run = out.json();
        assert_eq!(
            connector(&run, "tap")["api_calls"],
            json!(204),
            "concurrency {concurrency}"
        );
        assert_eq!(k.sandbox.hits("/v2/siem/all"), 168);
        let in_flight = k.sandbox.max_in_flight();
        assert!(
            in_flight <= concurrency && (concurrency == 1 || in_flight > 1),
            "concurrency {concurrency}: {in_flight} requests were in flight at once"
        );
        values.push(TAP_SLUGS.map(|s| kri(&run, s)["value"].clone()));
    }
    assert!(values.windows(2).all(|w| w[0] == w[1]), "{values:?}");
}
