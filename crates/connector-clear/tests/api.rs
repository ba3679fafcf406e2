//! CLEAR against a fake API: exact rate, zero reports, nulls, 404 = unlicensed.

use httpmock::prelude::*;
use kri_connector_clear as _;
use kri_core::kri::KriStatus;
use kri_core::report::{ConnectorReport, ConnectorStatus};
use kri_proofpoint::testing::run_module;
use serde_json::{Value, json};

async fn run_with(status: u16, answer: Value) -> ConnectorReport {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/v2/clear/reports/summary")
                .query_param("window", "7d");
            then.status(status).json_body(answer);
        })
        .await;
    run_module("clear", "", &server.base_url(), "svc:secret").await.unwrap()
}

#[tokio::test]
async fn fn_rate_is_exact() {
    let r = run_with(
        200,
        json!({"totalReports": 40, "falseNegatives": 3, "truePositives": 20}),
    )
    .await;
    let k = &r.kris[0];
    assert_eq!((k.value, k.status), (Some(7.5), KriStatus::Ok));
    assert_eq!(k.band.map(|b| b.as_str()), Some("green"));
}

#[tokio::test]
async fn zero_reports_is_zero_with_a_low_signal_warning() {
    for answer in [
        json!({"totalReports": 0, "falseNegatives": 0}),
        json!({"totalReports": 0}),
    ] {
        let r = run_with(200, answer).await;
        let k = &r.kris[0];
        assert_eq!((k.value, k.status), (Some(0.0), KriStatus::Ok));
        assert!(k.message.as_deref().unwrap().contains("low signal"));
    }
}

#[tokio::test]
async fn an_answer_without_the_figures_fails_instead_of_reading_as_zero() {
    for answer in [
        json!({"totalReports": null, "falseNegatives": null}),
        json!({}),
        json!({"totalReports": 40}),
    ] {
        let r = run_with(200, answer.clone()).await;
        let k = &r.kris[0];
        assert_eq!((k.value, k.status), (None, KriStatus::Failed), "{answer}");
        assert!(k.message.as_deref().unwrap().contains("totalReports"), "{k:?}");
    }
}

#[tokio::test]
async fn more_false_negatives_than_reports_fails_instead_of_lying() {
    let r = run_with(200, json!({"totalReports": 2, "falseNegatives": 5})).await;
    assert_eq!(r.kris[0].status, KriStatus::Failed);
    assert_eq!(r.status, ConnectorStatus::Failed);
}

#[tokio::test]
async fn not_found_is_unlicensed_zero_naming_clear() {
    let r = run_with(404, json!("Not Found")).await;
    let k = &r.kris[0];
    assert_eq!((k.value, k.status), (Some(0.0), KriStatus::Unlicensed));
    assert!(k.message.as_deref().unwrap().contains("CLEAR"));
    assert_eq!(r.status, ConnectorStatus::Ok);
}
