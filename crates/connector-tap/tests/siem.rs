//! SIEM and campaign KRIs against a fake TAP that enforces the real limits, at a fixed time
//! (2026-11-23T10:00:00Z, injected).

use httpmock::prelude::*;
use kri_connector_tap as _;
use kri_core::kri::KriStatus;
use kri_proofpoint::testing::run_selected;
use serde_json::json;

const CREDS: &str = "svc:secret";

/// The answer for the slot 09:00–10:00: a three-recipient message, a duplicate record, a record
/// without id, an impostor (delivered, `threatId` spelling) and a blocked impostor (mixed case).
fn busy_hour() -> serde_json::Value {
    json!({
        "queryEndTime": "2026-11-23T10:00:00Z",
        "messagesDelivered": [
            {"GUID": "g1", "id": "a", "recipient": ["x@example.com"], "threatsInfoMap": [{"classification": "phish", "threatID": "t1"}]},
            {"GUID": "g1", "id": "b", "recipient": ["y@example.com"], "threatsInfoMap": [{"classification": "phish", "threatID": "t1"}]},
            {"GUID": "g1", "id": "c", "recipient": ["z@example.com"], "threatsInfoMap": [{"classification": "phish", "threatID": "t1"}]},
            {"GUID": "g1", "id": "c", "recipient": ["z@example.com"], "threatsInfoMap": [{"classification": "phish", "threatID": "t1"}]},
            {"GUID": "g2", "id": null, "recipient": null, "threatsInfoMap": null},
            {"GUID": "g3", "id": "d", "recipient": ["ceo@example.com"], "threatsInfoMap": [{"classification": "IMPOSTOR", "threatId": "t2"}]}
        ],
        "messagesBlocked": [{"GUID": "g4", "id": "e", "threatsInfoMap": [{"classification": "Impostor"}]}],
        "clicksPermitted": [{"url": "http://bad.example", "clickTime": "2026-11-23T09:10:00.000Z", "recipient": "x@example.com"}],
        "clicksBlocked": [{"id": "f"}]
    })
}

#[tokio::test]
async fn delivered_24h_reads_24_hourly_windows_and_dedupes_records() {
    let server = MockServer::start_async().await;
    let busy = server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/v2/siem/all")
                .query_param("format", "json")
                // The newest window ends a minute before now (never "still current").
                .query_param("interval", "2026-11-23T09:00:00Z/2026-11-23T09:59:00Z");
            then.status(200).json_body(busy_hour());
        })
        .await;
    // Any other valid window of the last 24 h is empty (204, as the API may answer).
    let others = server
        .mock_async(|when, then| {
            when.method(GET).path("/v2/siem/all").query_param_exists("interval");
            then.status(204);
        })
        .await;
    let r = run_selected(
        "tap",
        "",
        &server.base_url(),
        CREDS,
        Some(&["pp_malicious_delivered_24h"]),
    )
    .await
    .unwrap();
    let k = &r.kris[0];
    assert_eq!(
        (k.slug, k.value, k.status),
        ("pp_malicious_delivered_24h", Some(5.0), KriStatus::Ok),
        "{k:?}"
    );
    assert_eq!(busy.calls_async().await, 1);
    // At 10:00:00 the current slot is empty (under 30 s): 23 full hours + nothing more.
    assert_eq!(others.calls_async().await, 22);
    assert_eq!(r.api_calls, 23);
}

/// A fake SIEM API answering `windows` (interval, status, body), every other window empty.
async fn siem_server(windows: &[(&str, u16, String)]) -> MockServer {
    let server = MockServer::start_async().await;
    for (interval, status, body) in windows {
        server
            .mock_async(|when, then| {
                when.method(GET).path("/v2/siem/all").query_param("interval", *interval);
                then.status(*status).body(body);
            })
            .await;
    }
    server
        .mock_async(|when, then| {
            when.method(GET).path("/v2/siem/all").query_param_exists("interval");
            then.status(204);
        })
        .await;
    server
}

async fn delivered_24h(server: &MockServer) -> kri_core::KriOutcome {
    let r = run_selected(
        "tap",
        "",
        &server.base_url(),
        CREDS,
        Some(&["pp_malicious_delivered_24h"]),
    )
    .await
    .unwrap();
    r.kris[0].clone()
}

/// One integration reports the API answering 400 "The requested interval is still current"
/// to windows that end at now: that window is asked again, ending a few minutes earlier.
#[tokio::test]
async fn a_window_the_api_calls_still_current_is_asked_again_ending_earlier() {
    const CURRENT: &str = "The requested interval is still current";
    let server = siem_server(&[
        ("2026-11-23T09:00:00Z/2026-11-23T09:59:00Z", 400, CURRENT.into()),
        (
            "2026-11-23T09:00:00Z/2026-11-23T09:54:00Z",
            200,
            busy_hour().to_string(),
        ),
    ])
    .await;
    let k = delivered_24h(&server).await;
    assert_eq!((k.value, k.status), (Some(5.0), KriStatus::Ok), "{k:?}");
}

/// Still current even then: the hour waits for the next run, like a window too short to ask
/// for; it fails neither the KRI nor any other hour.
#[tokio::test]
async fn a_window_still_current_twice_waits_for_the_next_run() {
    const CURRENT: &str = "The requested interval is still current";
    let server = siem_server(&[
        ("2026-11-23T09:00:00Z/2026-11-23T09:59:00Z", 400, CURRENT.into()),
        ("2026-11-23T09:00:00Z/2026-11-23T09:54:00Z", 400, CURRENT.into()),
    ])
    .await;
    let k = delivered_24h(&server).await;
    assert_eq!((k.value, k.status), (Some(0.0), KriStatus::Ok), "{k:?}");
    // Any other 400 is a failure, as before.
    let server = siem_server(&[(
        "2026-11-23T09:00:00Z/2026-11-23T09:59:00Z",
        400,
        "The requested interval is too long".into(),
    )])
    .await;
    let k = delivered_24h(&server).await;
    assert_eq!(k.status, KriStatus::Failed, "{k:?}");
    assert!(k.message.as_deref().unwrap().contains("too long"), "{k:?}");
}

/// A record of an unexpected shape is skipped and counted in the KRI's message; the hour and
/// the KRI still count every other record.
#[tokio::test]
async fn an_unreadable_record_is_counted_in_the_message_not_failing_the_hour() {
    let mut hour = busy_hour();
    hour["messagesDelivered"]
        .as_array_mut()
        .unwrap()
        .push(json!({"GUID": "g9", "id": {"unexpected": "object"}}));
    hour["clicksPermitted"]
        .as_array_mut()
        .unwrap()
        .push(json!("not a record"));
    let server = siem_server(&[("2026-11-23T09:00:00Z/2026-11-23T09:59:00Z", 200, hour.to_string())]).await;
    let k = delivered_24h(&server).await;
    assert_eq!((k.value, k.status), (Some(5.0), KriStatus::Ok), "{k:?}");
    assert_eq!(
        k.message.as_deref(),
        Some(
            "2 records of 10 could not be read and were skipped (an unexpected shape from the API; the log names \
             the first)"
        ),
        "{k:?}"
    );
}

#[tokio::test]
async fn a_429_on_siem_fails_the_siem_kris_after_one_call_and_vap_still_comes_in() {
    let server = MockServer::start_async().await;
    let siem = server
        .mock_async(|when, then| {
            when.path("/v2/siem/all");
            then.status(429).body("Too Many Requests");
        })
        .await;
    server
        .mock_async(|when, then| {
            when.path("/v2/people/vap");
            then.status(200).json_body(json!({"totalVapUsers": 4}));
        })
        .await;
    let r = run_selected(
        "tap",
        "",
        &server.base_url(),
        CREDS,
        Some(&[
            "pp_vap_count",
            "pp_malicious_delivered_24h",
            "pp_malicious_clicks_post_delivery_7d",
            "pp_bec_impostor_7d",
        ]),
    )
    .await
    .unwrap();
    assert_eq!(siem.calls_async().await, 1, "no retry storm after a 429");
    let by = |slug: &str| r.kris.iter().find(|k| k.slug == slug).unwrap().clone();
    assert_eq!(by("pp_vap_count").value, Some(4.0));
    for slug in [
        "pp_malicious_delivered_24h",
        "pp_malicious_clicks_post_delivery_7d",
        "pp_bec_impostor_7d",
    ] {
        let k = by(slug);
        assert_eq!((k.status, k.value), (KriStatus::Failed, None));
        assert!(
            k.message.as_deref().unwrap().contains("throttled") && k.message.as_deref().unwrap().contains("24 h"),
            "{k:?}"
        );
    }
    assert_eq!(r.status, kri_core::report::ConnectorStatus::Partial);
}

#[tokio::test]
async fn a_truncated_siem_answer_fails_instead_of_undercounting() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.path("/v2/siem/all");
            then.status(200).body(r#"{"messagesDelivered":[{"id":"a"},"#);
        })
        .await;
    let r = run_selected(
        "tap",
        "",
        &server.base_url(),
        CREDS,
        Some(&["pp_malicious_delivered_24h"]),
    )
    .await
    .unwrap();
    assert_eq!(r.kris[0].status, KriStatus::Failed);
    assert!(
        r.kris[0]
            .message
            .as_deref()
            .unwrap()
            .contains("unexpected answer from GET /v2/siem/all"),
        "{:?}",
        r.kris[0]
    );
}

#[tokio::test]
async fn campaigns_per_day_404_is_zero_and_the_matcher_is_configurable() {
    let server = MockServer::start_async().await;
    let day = server
        .mock_async(|when, then| {
            when.path("/v2/campaign/ids")
                .query_param("interval", "2026-11-22T00:00:00Z/2026-11-23T00:00:00Z");
            then.status(200).json_body(json!({"campaigns": [
                {"id": "k1", "lastUpdatedAt": "2026-11-22T10:00:00.000Z"},
                {"id": "k2", "lastUpdatedAt": "2026-11-22T11:00:00.000Z"},
                {"id": "k3", "lastUpdatedAt": "2026-11-22T12:00:00.000Z"}]}));
        })
        .await;
    let empty = server
        .mock_async(|when, then| {
            when.path("/v2/campaign/ids");
            then.status(404).body("Not Found");
        })
        .await;
    server
        .mock_async(|when, then| {
            when.path("/v2/campaign/k1");
            then.status(200).json_body(json!({"id": "k1", "families": [{"id": "f", "name": "Credential Phishing"}], "techniques": null, "campaignMembers": []}));
        })
        .await;
    server
        .mock_async(|when, then| {
            when.path("/v2/campaign/k2");
            then.status(200).json_body(
                json!({"id": "k2", "families": [], "campaignMembers": [{"id": "m", "type": "PHISH", "subType": null}]}),
            );
        })
        .await;
    server
        .mock_async(|when, then| {
            when.path("/v2/campaign/k3");
            then.status(200).json_body(
                json!({"id": "k3", "families": [{"name": "Banking Trojan"}], "techniques": [{"name": "Phishing Kit"}]}),
            );
        })
        .await;
    let sel: &[&str] = &["pp_cred_phish_campaigns_30d"];
    let r = run_selected("tap", "", &server.base_url(), CREDS, Some(sel))
        .await
        .unwrap();
    assert_eq!(r.kris[0].value, Some(2.0), "{:?}", r.kris[0]);
    // 30 UTC days up to 10:00 today, one call each.
    assert_eq!(day.calls_async().await + empty.calls_async().await, 30);
    let r = run_selected(
        "tap",
        "cred_phish_contains = [\"trojan\"]\ncred_phish_equals = []",
        &server.base_url(),
        CREDS,
        Some(sel),
    )
    .await
    .unwrap();
    assert_eq!(r.kris[0].value, Some(1.0));
}

#[tokio::test]
async fn an_empty_matcher_pattern_is_refused() {
    let e = run_selected("tap", "cred_phish_contains = [\"\"]", "http://127.0.0.1:9", CREDS, None)
        .await
        .unwrap_err();
    assert_eq!(e.key, "connectors.tap.cred_phish_contains");
}

/// Regression: a campaign id `..\people\vap` sent a request to /v2/people/vap (counted in the
/// wrong pool). An id is one path segment whatever it holds; one no path can hold is skipped;
/// the other campaigns still count.
#[tokio::test]
async fn a_campaign_id_never_leaves_its_path_segment() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.path("/v2/campaign/ids")
                .query_param("interval", "2026-11-22T00:00:00Z/2026-11-23T00:00:00Z");
            then.status(200).json_body(json!({"campaigns": [
                {"id": "..\\people\\vap", "lastUpdatedAt": "2026-11-22T10:00:00.000Z"},
                {"id": "../../people/vap", "lastUpdatedAt": "2026-11-22T10:00:00.000Z"},
                {"id": "..", "lastUpdatedAt": "2026-11-22T10:00:00.000Z"},
                {"id": "k1", "lastUpdatedAt": "2026-11-22T11:00:00.000Z"}]}));
        })
        .await;
    server
        .mock_async(|when, then| {
            when.path("/v2/campaign/ids");
            then.status(404).body("Not Found");
        })
        .await;
    let elsewhere = server
        .mock_async(|when, then| {
            when.path("/v2/people/vap");
            then.status(200).json_body(json!({"totalVapUsers": 1}));
        })
        .await;
    let encoded = server
        .mock_async(|when, then| {
            when.path_includes("/v2/campaign/").path_includes("people");
            then.status(404).body("Not Found");
        })
        .await;
    server
        .mock_async(|when, then| {
            when.path("/v2/campaign/k1");
            then.status(200)
                .json_body(json!({"id": "k1", "families": [{"name": "Credential Phishing"}], "campaignMembers": []}));
        })
        .await;
    let sel: &[&str] = &["pp_cred_phish_campaigns_30d"];
    let r = run_selected("tap", "", &server.base_url(), CREDS, Some(sel))
        .await
        .unwrap();
    assert_eq!(r.kris[0].value, Some(1.0), "{:?}", r.kris[0]);
    elsewhere.assert_calls_async(0).await;
    encoded.assert_calls_async(2).await;
}
