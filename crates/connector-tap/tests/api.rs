//! TAP against a fake API that answers like the real one (plain-text errors, 401/403, nulls).

use httpmock::prelude::*;
use kri_connector_tap as _;
use kri_core::kri::KriStatus;
use kri_core::report::ConnectorStatus;
use kri_proofpoint::testing::run_selected;

async fn run_module(
    module: &'static str,
    table: &str,
    base: &str,
    creds: &str,
) -> Result<kri_core::report::ConnectorReport, kri_core::ConfigError> {
    run_selected(module, table, base, creds, Some(&["pp_vap_count"])).await
}
use serde_json::json;

const CREDS: &str = "svc-principal:s3cr:et";
/// base64("svc-principal:s3cr:et"): the secret keeps its own colon (split on the FIRST one).
const BASIC: &str = "Basic c3ZjLXByaW5jaXBhbDpzM2NyOmV0";

#[tokio::test]
async fn vap_count_reads_total_vap_users_with_basic_auth() {
    let server = MockServer::start_async().await;
    let vap = server
        .mock_async(|when, then| {
            when.method(GET).path("/v2/people/vap").query_param("window", "30").header("authorization", BASIC);
            then.status(200).json_body(json!({
                "users": [{"identity": {"guid": "g", "emails": ["a@example.com"], "name": null, "vip": false},
                           "threatStatistics": {"attackIndex": 1500, "families": [{"name": "credential phishing", "score": 900}]}}],
                "totalVapUsers": 12, "interval": "P30D", "averageAttackIndex": 700, "vapAttackIndexThreshold": 1200
            }));
        })
        .await;
    let report = run_module("tap", "", &server.base_url(), CREDS).await.unwrap();
    vap.assert_async().await;
    assert_eq!(report.status, ConnectorStatus::Ok, "{report:?}");
    let k = &report.kris[0];
    assert_eq!((k.slug, k.value, k.status), ("pp_vap_count", Some(12.0), KriStatus::Ok));
    assert_eq!(report.api_calls, 1);
    assert_eq!(report.rows_written, 1);
}

#[tokio::test]
async fn wrong_credentials_fail_naming_401_and_the_credentials() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.path("/v2/people/vap");
            then.status(401).body("Unauthorized");
        })
        .await;
    let report = run_module("tap", "", &server.base_url(), CREDS).await.unwrap();
    assert_eq!(report.status, ConnectorStatus::Failed);
    let msg = report.kris[0].message.clone().unwrap();
    assert!(
        msg.contains("credentials rejected (HTTP 401)") && msg.contains("principal:secret"),
        "{msg}"
    );
    assert!(!msg.contains("s3cr"), "secret leaked: {msg}");
    assert_eq!(report.kris[0].value, None);
    assert_eq!(report.api_calls, 1, "a 401 is not retried");
}

#[tokio::test]
async fn forbidden_is_a_missing_scope_naming_the_endpoint_not_unlicensed() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.path("/v2/people/vap");
            then.status(403).body("Forbidden");
        })
        .await;
    let report = run_module("tap", "", &server.base_url(), CREDS).await.unwrap();
    let k = &report.kris[0];
    assert_eq!(k.status, KriStatus::Failed);
    let msg = k.message.as_deref().unwrap();
    assert!(
        msg.contains("missing API scope (HTTP 403) on GET /v2/people/vap"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_null_total_is_a_clear_failure_not_a_zero() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.path("/v2/people/vap");
            then.status(200)
                .json_body(json!({"totalVapUsers": null, "users": null}));
        })
        .await;
    let report = run_module("tap", "", &server.base_url(), CREDS).await.unwrap();
    assert_eq!(report.kris[0].status, KriStatus::Failed);
    assert!(report.kris[0].message.as_deref().unwrap().contains("totalVapUsers"));
}

#[tokio::test]
async fn server_errors_are_retried_then_reported_with_the_status() {
    let server = MockServer::start_async().await;
    let m = server
        .mock_async(|when, then| {
            when.path("/v2/people/vap");
            then.status(503).body("Service Unavailable");
        })
        .await;
    let report = run_module("tap", "", &server.base_url(), CREDS).await.unwrap();
    assert_eq!(m.calls_async().await, 3, "one call and two retries");
    let msg = report.kris[0].message.as_deref().unwrap();
    assert!(msg.contains("HTTP 503") && msg.contains("Service Unavailable"), "{msg}");
}

#[tokio::test]
async fn unknown_keys_in_the_table_are_refused() {
    let e = match run_module("tap", "window = 30", "http://127.0.0.1:9", CREDS).await {
        Err(e) => e,
        Ok(r) => panic!("accepted: {r:?}"),
    };
    assert_eq!(e.key, "connectors.tap.window");
}
