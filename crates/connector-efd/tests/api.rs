//! EFD against a fake API: mixed-case policies, both answer shapes, 403/404 = unlicensed.

use httpmock::prelude::*;
use kri_connector_efd as _;
use kri_core::kri::KriStatus;
use kri_core::report::ConnectorStatus;
use kri_proofpoint::testing::run_module;
use serde_json::{Value, json};

const CREDS: &str = "svc:secret";

async fn run_with(answer: Value, table: &str) -> kri_core::report::ConnectorReport {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/v2/efd/dmarc/domains")
                .header_exists("authorization");
            then.status(200).json_body(answer);
        })
        .await;
    run_module("efd", table, &server.base_url(), CREDS).await.unwrap()
}

fn domains() -> Value {
    json!({"domains": [
        {"name": "example.com", "policy": "reject"},
        {"name": "example.org", "policy": "REJECT"},
        {"name": "example.net", "policy": "Quarantine"},
        {"name": "example.io", "policy": "none"},
        {"name": "example.dev", "policy": null},
        {"domain": "example.co", "policy": " reject ", "extra": 1}
    ]})
}

#[tokio::test]
async fn reject_share_is_exact_and_case_insensitive() {
    let r = run_with(domains(), "").await;
    let k = &r.kris[0];
    assert_eq!((k.value, k.status), (Some(50.0), KriStatus::Ok), "{k:?}");
    assert_eq!(
        k.band.map(|b| b.as_str()),
        Some("red"),
        "50 % is at the red threshold (lower is worse)"
    );
}

#[tokio::test]
async fn quarantine_counts_when_the_option_says_so() {
    let r = run_with(domains(), "count_quarantine_as_enforced = true").await;
    assert_eq!(r.kris[0].value, Some(66.67));
}

#[tokio::test]
async fn a_bare_array_is_accepted() {
    let r = run_with(json!([{"domain": "a.com", "policy": "reject"}, {"domain": "b.com", "policy": "none"}, {"domain": "c.com", "policy": "none"}]), "").await;
    assert_eq!(r.kris[0].value, Some(33.33));
}

#[tokio::test]
async fn zero_domains_is_zero_with_a_warning() {
    for answer in [json!({"domains": []}), json!([])] {
        let r = run_with(answer, "").await;
        let k = &r.kris[0];
        assert_eq!((k.value, k.status), (Some(0.0), KriStatus::Ok));
        assert!(k.message.as_deref().unwrap().contains("no domains"), "{k:?}");
    }
}

#[tokio::test]
async fn an_answer_without_the_domains_array_fails_instead_of_reading_as_zero() {
    for answer in [json!({"domains": null}), json!({}), json!({"error": "busy"})] {
        let r = run_with(answer.clone(), "").await;
        let k = &r.kris[0];
        assert_eq!((k.value, k.status), (None, KriStatus::Failed), "{answer}");
        assert!(k.message.as_deref().unwrap().contains("no `domains` array"), "{k:?}");
    }
}

#[tokio::test]
async fn forbidden_and_not_found_are_unlicensed_zero_and_the_connector_is_ok() {
    for status in [403, 404] {
        let server = MockServer::start_async().await;
        server
            .mock_async(|when, then| {
                when.path("/v2/efd/dmarc/domains");
                then.status(status).body("Forbidden");
            })
            .await;
        let r = run_module("efd", "", &server.base_url(), CREDS).await.unwrap();
        let k = &r.kris[0];
        assert_eq!((k.value, k.status, k.band), (Some(0.0), KriStatus::Unlicensed, None));
        assert!(k.message.as_deref().unwrap().contains("Email Fraud Defense (EFD)"));
        assert_eq!(r.status, ConnectorStatus::Ok);
        assert_eq!(r.error, None);
    }
}

#[tokio::test]
async fn a_bad_option_type_is_refused_naming_the_key() {
    let e = run_module(
        "efd",
        "count_quarantine_as_enforced = \"yes\"",
        "http://127.0.0.1:9",
        CREDS,
    )
    .await
    .unwrap_err();
    assert_eq!(e.key, "connectors.efd.count_quarantine_as_enforced");
}
