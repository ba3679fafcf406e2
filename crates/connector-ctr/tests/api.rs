//! The connector against an httpmock CTR: token endpoint, bearer cache, 401 refresh, paging
//! capped at 200, 429 back-off, nulls, the feed under a same-second burst, enrichment, KRIs.

use std::sync::Arc;
use std::time::Duration;

use httpmock::prelude::*;
use kri_connector_ctr::filters::{Filters, Sort};
use kri_connector_ctr::{Ctr, CtrConfig, stored_incidents};
use kri_core::testing::{context, fixed_now, settings};
use kri_core::{HttpError, KriError, ManualClock, RunContext};
use serde_json::{Value, json};

const SECRET: &str = "the-client-secret-42";

fn ctr(server: &MockServer, extra: &str) -> Ctr {
    let table = format!(
        "base_url = \"{}\"\ntoken_url = \"{}\"\nclient_id = \"cid\"\nclient_secret = \"{SECRET}\"\n\
         rate_limit_per_minute = 0\n{extra}",
        server.base_url(),
        server.url("/v1/token")
    );
    let mut cfg = CtrConfig::from_settings(&settings("ctr", &table, None)).unwrap();
    cfg.http.throttled_backoff = Duration::from_millis(5);
    Ctr::new(cfg).unwrap()
}

fn ctx() -> RunContext {
    context(Arc::new(ManualClock::new(fixed_now())), "ctr")
}

async fn token_mock<'a>(server: &'a MockServer, token: &str) -> httpmock::Mock<'a> {
    let token = token.to_owned();
    server
        .mock_async(move |when, then| {
            when.method(POST)
                .path("/v1/token")
                .body_includes("grant_type=client_credentials");
            then.status(200)
                .json_body(json!({"access_token": token, "token_type": "bearer", "expires_in": 3600}));
        })
        .await
}

/// An incident as the list endpoint answers, with the API's nulls.
fn incident(n: usize, created: &str) -> Value {
    json!({
        "id": format!("00000000-0000-0000-0000-{n:012}"),
        "displayId": 1000 + n,
        "title": format!("incident {n}"),
        "state": "open",
        "priority": null,
        "createdAt": created,
        "updatedAt": created,
        "closedAt": null,
        "messageCount": 1,
        "assignedTeamName": "SOC",
        "assignedUserName": null,
        "vap": false,
        "sourceTypes": ["abuse_mailbox"],
        "sourcesData": [{"type": "AbuseMailbox", "name": "Proofpoint CLEAR"}],
        "dispositions": null,
        "clearVerdicts": null,
        "clearConfidences": null
    })
}

fn incidents(range: std::ops::Range<usize>, created: &str) -> Vec<Value> {
    range.map(|n| incident(n, created)).collect()
}

#[tokio::test]
async fn the_token_is_fetched_once_and_sent_as_bearer() {
    let server = MockServer::start_async().await;
    let tok = token_mock(&server, "tok-1").await;
    let list = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/api/v1/tric/incidents")
                .header("authorization", "Bearer tok-1")
                .json_body_includes(r#"{"filters":{"other_filters":["open_incidents"]},"startRow":0,"endRow":1}"#);
            then.status(200)
                .json_body(json!({"total": 7, "startRow": 0, "endRow": 1, "incidents": [incident(1, "2026-11-23T09:00:00.000+00:00")]}));
        })
        .await;
    let c = ctr(&server, "");
    let ctx = ctx();
    use kri_core::Connector;
    assert_eq!(c.probe(&ctx).await.unwrap().message, "7 open incidents");
    assert_eq!(c.probe(&ctx).await.unwrap().message, "7 open incidents");
    tok.assert_calls_async(1).await;
    list.assert_calls_async(2).await;
    assert_eq!(ctx.calls.get(), 3, "token fetch + 2 API calls");
}

#[tokio::test]
async fn a_401_fetches_a_fresh_token_once() {
    let server = MockServer::start_async().await;
    let stale_token = token_mock(&server, "stale").await;
    let accepted = server
        .mock_async(|when, then| {
            when.path("/api/v1/tric/incidents")
                .header("authorization", "Bearer stale");
            then.status(200).json_body(json!({"total": 0, "incidents": []}));
        })
        .await;
    let c = ctr(&server, "");
    let ctx = ctx();
    let client = c.client(&ctx.budget);
    client
        .page(&Filters::default(), fixed_now(), 0, 1, Sort::Desc)
        .await
        .unwrap();
    // The cached token is revoked upstream; the token endpoint now hands out a fresh one.
    accepted.delete_async().await;
    stale_token.delete_async().await;
    let revoked = server
        .mock_async(|when, then| {
            when.path("/api/v1/tric/incidents")
                .header("authorization", "Bearer stale");
            then.status(401).body("token revoked");
        })
        .await;
    let fresh_token = token_mock(&server, "fresh").await;
    let ok = server
        .mock_async(|when, then| {
            when.path("/api/v1/tric/incidents")
                .header("authorization", "Bearer fresh");
            then.status(200).json_body(json!({"total": 3, "incidents": []}));
        })
        .await;
    let page = client
        .page(&Filters::default(), fixed_now(), 0, 1, Sort::Desc)
        .await
        .unwrap();
    assert_eq!(page.total, Some(3));
    revoked.assert_calls_async(1).await;
    fresh_token.assert_calls_async(1).await;
    ok.assert_calls_async(1).await;
}

#[tokio::test]
async fn a_refreshed_token_that_is_still_refused_is_a_clear_credentials_error() {
    let server = MockServer::start_async().await;
    let tok = token_mock(&server, "tok").await;
    let api = server
        .mock_async(|when, then| {
            when.path("/api/v1/tric/incidents");
            then.status(401).body("Unauthorized");
        })
        .await;
    let c = ctr(&server, "");
    let ctx = ctx();
    let e = c.list(&ctx, &Filters::default(), 10).await.unwrap_err();
    assert!(matches!(e, HttpError::Unauthorized { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("HTTP 401") && msg.contains("POST /api/v1/tric/incidents") && msg.contains("client_id"),
        "{msg}"
    );
    assert!(!msg.contains(SECRET));
    tok.assert_calls_async(2).await;
    api.assert_calls_async(2).await;
}

#[tokio::test]
async fn a_refused_client_secret_is_reported_on_the_token_endpoint_without_the_secret() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.path("/v1/token");
            then.status(401).body(format!("invalid client {SECRET}"));
        })
        .await;
    let api = server
        .mock_async(|when, then| {
            when.path("/api/v1/tric/incidents");
            then.status(200).json_body(json!({"total": 0, "incidents": []}));
        })
        .await;
    let e = ctr(&server, "").list(&ctx(), &Filters::default(), 1).await.unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("POST /v1/token") && msg.contains("client_secret"), "{msg}");
    assert!(!msg.contains(SECRET), "{msg}");
    api.assert_calls_async(0).await;
}

#[tokio::test]
async fn list_pages_200_at_a_time_until_the_limit_or_a_short_page() {
    let server = MockServer::start_async().await;
    token_mock(&server, "t").await;
    let t = "2026-11-23T09:00:00.000+00:00";
    let mut pages = Vec::new();
    for (start, end, n) in [(0, 200, 200), (200, 400, 200), (400, 450, 50), (400, 600, 30)] {
        let body =
            json!({"total": null, "startRow": start, "endRow": end, "incidents": incidents(start..start + n, t)});
        pages.push(
            server
                .mock_async(move |when, then| {
                    when.path("/api/v1/tric/incidents")
                        .json_body_includes(format!(r#"{{"startRow":{start},"endRow":{end}}}"#));
                    then.status(200).json_body(body);
                })
                .await,
        );
    }
    let too_big = server
        .mock_async(|when, then| {
            when.path("/api/v1/tric/incidents").is_true(|req| {
                let b: Value = serde_json::from_slice(req.body_ref()).unwrap_or_default();
                b["endRow"].as_u64().unwrap_or(0) > b["startRow"].as_u64().unwrap_or(0) + 200
            });
            then.status(400).body("page too large");
        })
        .await;
    let c = ctr(&server, "");
    let (got, _) = c.list(&ctx(), &Filters::default(), 450).await.unwrap();
    assert_eq!(got.len(), 450);
    // A bigger limit: the 30-row page is short, so paging stops there.
    let (got, _) = c.list(&ctx(), &Filters::default(), 10_000).await.unwrap();
    assert_eq!(got.len(), 430);
    let calls: Vec<usize> = pages.iter().map(|p| p.calls()).collect();
    assert_eq!(calls, [2, 2, 1, 1]);
    too_big.assert_calls_async(0).await; // pages are capped at 200
}

#[tokio::test]
async fn a_429_backs_off_then_gives_up_with_a_throttled_error() {
    let server = MockServer::start_async().await;
    token_mock(&server, "t").await;
    let api = server
        .mock_async(|when, then| {
            when.path("/api/v1/tric/incidents");
            then.status(429).body("Too Many Requests");
        })
        .await;
    let e = ctr(&server, "").list(&ctx(), &Filters::default(), 5).await.unwrap_err();
    assert!(matches!(e, HttpError::Throttled { .. }), "{e:?}");
    api.assert_calls_async(3).await; // 1 + 2 retries, no more
}

/// 230 incidents created in the SAME second, max_fetch 50: five cycles deliver each exactly
/// once, the sixth delivers nothing, and the store holds 230 rows.
#[tokio::test]
async fn the_feed_neither_stalls_nor_skips_when_230_incidents_share_one_second() {
    let server = MockServer::start_async().await;
    token_mock(&server, "t").await;
    let t = "2026-11-23T08:00:00.000+00:00";
    let all = incidents(0..230, t);
    let (p0, p1) = (all[..200].to_vec(), all[200..].to_vec());
    server
        .mock_async(move |when, then| {
            when.path("/api/v1/tric/incidents")
                .json_body_includes(r#"{"startRow":0,"endRow":200,"sortParams":[{"sort":"asc","colId":"createdAt"}]}"#)
                .json_body_includes(r#"{"filters":{"other_filters":["open_incidents"]}}"#);
            then.status(200).json_body(json!({"total": 230, "incidents": p0}));
        })
        .await;
    server
        .mock_async(move |when, then| {
            when.path("/api/v1/tric/incidents")
                .json_body_includes(r#"{"startRow":200,"endRow":400}"#);
            then.status(200).json_body(json!({"total": 230, "incidents": p1}));
        })
        .await;
    let c = ctr(&server, "max_fetch = 50\n");
    let ctx = ctx();
    let mut delivered: Vec<String> = Vec::new();
    let mut sizes = Vec::new();
    for _ in 0..6 {
        let cycle = c.fetch(&ctx).await.unwrap();
        sizes.push(cycle.incidents.len());
        delivered.extend(cycle.incidents.iter().map(|i| i["id"].as_str().unwrap().to_owned()));
    }
    assert_eq!(sizes, [50, 50, 50, 50, 30, 0]);
    let mut unique = delivered.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((delivered.len(), unique.len()), (230, 230));
    assert_eq!(stored_incidents(&ctx.state).await.unwrap().len(), 230);
}

#[tokio::test]
async fn the_first_window_is_first_fetch_plus_delta_and_the_cursor_is_the_newest_created_at() {
    let server = MockServer::start_async().await;
    token_mock(&server, "t").await;
    // now = 2026-11-23 10:00:00; first_fetch 3 days; delta 1 minute.
    let first = server
        .mock_async(|when, then| {
            when.path("/api/v1/tric/incidents").json_body_includes(
                r#"{"filters":{"time_range_filter":{"start":"2026-11-20 09:59:00","end":"2026-11-23 10:00:00"}}}"#,
            );
            then.status(200).json_body(json!({"total": 2, "incidents": [
                incident(1, "2026-11-21T10:00:00.000+00:00"), incident(2, "2026-11-22T11:30:00.250+00:00")]}));
        })
        .await;
    let c = ctr(&server, "");
    let ctx = ctx();
    let cycle = c.fetch(&ctx).await.unwrap();
    first.assert_calls_async(1).await;
    assert_eq!(cycle.incidents.len(), 2);
    assert_eq!(
        cycle.cursor.created_at.unwrap().to_rfc3339(),
        "2026-11-22T11:30:00.250+00:00"
    );
    // Next window starts at the cursor minus the delta, floored to the second.
    let next = server
        .mock_async(|when, then| {
            when.path("/api/v1/tric/incidents")
                .json_body_includes(r#"{"filters":{"time_range_filter":{"start":"2026-11-22 11:29:00"}}}"#);
            then.status(200)
                .json_body(json!({"total": 1, "incidents": [incident(2, "2026-11-22T11:30:00.250+00:00")]}));
        })
        .await;
    assert!(c.fetch(&ctx).await.unwrap().incidents.is_empty());
    next.assert_calls_async(1).await;
}

#[tokio::test]
async fn enrichment_merges_details_and_a_failure_keeps_the_list_data() {
    let server = MockServer::start_async().await;
    token_mock(&server, "t").await;
    let t = "2026-11-23T08:00:00.000+00:00";
    let list = incidents(0..3, t);
    server
        .mock_async(move |when, then| {
            when.path("/api/v1/tric/incidents").method(POST);
            then.status(200).json_body(json!({"total": 3, "incidents": list}));
        })
        .await;
    for n in [0usize, 2] {
        server
            .mock_async(move |when, then| {
                when.method(GET).path(format!("/api/v1/tric/incidents/00000000-0000-0000-0000-{n:012}"));
                then.status(200).json_body(json!({
                    "summary": {"id": format!("00000000-0000-0000-0000-{n:012}"), "openedAt": "2026-11-23T08:00:00.000+00:00",
                                "assignedApplicationUserName": null,
                                "messageSourceData": {"hasTapAlert": false, "hasAbuseAlert": true}},
                    "comments": null,
                    "activities": [{"id": "a1", "cause_type": "system", "activity_type": "incident_creation",
                                    "created_at": "2026-11-23T08:00:00.000", "occurred_at": "2026-11-23T08:00:00.000000"}]
                }));
            })
            .await;
    }
    server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/api/v1/tric/incidents/00000000-0000-0000-0000-000000000001");
            then.status(404).body("Not Found");
        })
        .await;
    let c = ctr(&server, "enrich = true\nenrich_concurrency = 2\n");
    let ctx = ctx();
    let cycle = c.fetch(&ctx).await.unwrap();
    assert_eq!(cycle.incidents.len(), 3, "no incident is lost");
    assert_eq!(
        cycle.incidents[0]["activities"][0]["activity_type"],
        "incident_creation"
    );
    // As the API sent it: its null comment list stays null.
    assert_eq!(cycle.incidents[0]["comments"], Value::Null);
    assert!(cycle.incidents[0].get("comments").is_some());
    assert_eq!(cycle.incidents[0]["title"], "incident 0", "list fields are kept");
    assert!(cycle.incidents[1].get("activities").is_none());
    assert_eq!(cycle.warnings.len(), 1, "{:?}", cycle.warnings);
    assert!(cycle.warnings[0].contains("000000000001") && cycle.warnings[0].contains("404"));
    // The stored rows are the enriched ones, one per id.
    let stored = stored_incidents(&ctx.state).await.unwrap();
    assert_eq!(stored.len(), 3);
    assert!(stored.iter().filter(|s| s.get("activities").is_some()).count() == 2);
}

#[tokio::test]
async fn get_stores_into_the_same_row_and_one_failed_id_does_not_hide_the_others() {
    let server = MockServer::start_async().await;
    token_mock(&server, "t").await;
    let t = "2026-11-23T08:00:00.000+00:00";
    let list = incidents(0..1, t);
    server
        .mock_async(move |when, then| {
            when.path("/api/v1/tric/incidents").method(POST);
            then.status(200).json_body(json!({"total": 1, "incidents": list}));
        })
        .await;
    let id0 = "00000000-0000-0000-0000-000000000000";
    server
        .mock_async(move |when, then| {
            when.method(GET).path(format!("/api/v1/tric/incidents/{id0}"));
            then.status(200)
                .json_body(json!({"summary": {"id": id0, "state": "closed"}, "comments": [], "activities": []}));
        })
        .await;
    let c = ctr(&server, "");
    let ctx = ctx();
    c.fetch(&ctx).await.unwrap();
    let missing = "00000000-0000-0000-0000-00000000beef".to_owned();
    let got = c.get_many(&ctx, &[id0.to_owned(), missing.clone()], &|_| {}).await;
    assert!(got[0].1.is_ok());
    assert!(
        matches!(&got[1].1, Err(KriError::Http(HttpError::NotFound { .. }))),
        "{:?}",
        got[1]
    );
    let stored = stored_incidents(&ctx.state).await.unwrap();
    assert_eq!(stored.len(), 1, "get enriched the fetched row, no duplicate");
    assert_eq!(
        (stored[0]["state"].clone(), stored[0]["title"].clone()),
        (json!("closed"), json!("incident 0"))
    );
}

#[tokio::test]
async fn kris_open_created_24h_and_mean_time_to_close() {
    let server = MockServer::start_async().await;
    token_mock(&server, "t").await;
    server
        .mock_async(|when, then| {
            when.path("/api/v1/tric/incidents")
                .json_body_includes(r#"{"filters":{"other_filters":["open_incidents"]},"startRow":0,"endRow":1}"#);
            then.status(200).json_body(json!({"total": 42, "incidents": []}));
        })
        .await;
    // The feed cycle (open, ascending) finds nothing.
    server
        .mock_async(|when, then| {
            when.path("/api/v1/tric/incidents")
                .json_body_includes(r#"{"sortParams":[{"sort":"asc","colId":"createdAt"}]}"#);
            then.status(200).json_body(json!({"total": 0, "incidents": []}));
        })
        .await;
    server
        .mock_async(|when, then| {
            when.path("/api/v1/tric/incidents")
                .json_body_includes(r#"{"filters":{"time_range_filter":{"start":"2026-11-22 10:00:00","end":"2026-11-23 10:00:00"}},"endRow":1}"#);
            then.status(200).json_body(json!({"total": 9, "incidents": []}));
        })
        .await;
    let mut a = incident(1, "2026-11-20T10:00:00.000+00:00");
    a["closedAt"] = json!("2026-11-20T20:00:00.000+00:00"); // 10 h
    let mut b = incident(2, "2026-11-21T10:00:00.000+00:00");
    b["closedAt"] = json!("2026-11-22T15:00:00.000+00:00"); // 29 h
    let mut old = incident(3, "2026-09-01T10:00:00.000+00:00");
    old["closedAt"] = json!("2026-09-02T10:00:00.000+00:00"); // closed > 30 days ago: not counted
    server
        .mock_async(move |when, then| {
            when.path("/api/v1/tric/incidents")
                .json_body_includes(r#"{"filters":{"other_filters":["closed_incidents"]}}"#);
            then.status(200)
                .json_body(json!({"total": 3, "incidents": [a, b, old]}));
        })
        .await;
    let c = ctr(&server, "");
    let ctx = ctx();
    let selected: Vec<&'static str> = kri_connector_ctr::KRIS.iter().map(|k| k.slug()).collect();
    let reg = kri_core::registry::find("ctr").expect("linked");
    let report =
        kri_core::run::run_connector(reg, &c, &ctx, &selected, &Default::default(), Duration::from_secs(900)).await;
    let values: Vec<(&str, Option<f64>, Option<String>)> = report
        .kris
        .iter()
        .map(|k| (k.slug, k.value, k.message.clone()))
        .collect();
    assert_eq!(
        values,
        vec![
            ("ctr_open_incidents", Some(42.0), None),
            ("ctr_incidents_created_24h", Some(9.0), None),
            ("ctr_mean_time_to_close_hours_30d", Some(19.5), None),
        ]
    );
}

#[test]
fn no_closed_incident_is_zero_with_a_warning() {
    let m = kri_connector_ctr::mean_time_to_close(&[], Some(0), fixed_now());
    assert_eq!(m.value, 0.0);
    assert!(m.warning.unwrap().contains("no CTR incident closed"));
}

/// Regression: the API's order among incidents of the same second is not guaranteed. A cycle
/// that sees the burst in another order must still deliver each incident exactly once.
#[tokio::test]
async fn the_feed_is_exact_when_ties_come_back_in_another_order() {
    let server = MockServer::start_async().await;
    token_mock(&server, "t").await;
    let t = "2026-11-23T08:00:00.000+00:00";
    let forward = incidents(0..120, t);
    let mut backward = forward.clone();
    backward.reverse();
    let c = ctr(&server, "max_fetch = 50\n");
    let ctx = ctx();
    let mut delivered: Vec<String> = Vec::new();
    for order in [&forward, &backward, &forward, &backward] {
        let body = json!({"total": 120, "incidents": order});
        let m = server
            .mock_async(move |when, then| {
                when.path("/api/v1/tric/incidents");
                then.status(200).json_body(body);
            })
            .await;
        let cycle = c.fetch(&ctx).await.unwrap();
        delivered.extend(cycle.incidents.iter().map(|i| i["id"].as_str().unwrap().to_owned()));
        m.delete_async().await;
    }
    let mut unique = delivered.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((delivered.len(), unique.len()), (120, 120));
}

#[tokio::test]
async fn a_failure_on_a_later_page_keeps_what_was_read_and_the_next_cycle_resumes() {
    let server = MockServer::start_async().await;
    token_mock(&server, "t").await;
    let t = "2026-11-23T08:00:00.000+00:00";
    let first = incidents(0..200, t);
    server
        .mock_async(move |when, then| {
            when.path("/api/v1/tric/incidents")
                .json_body_includes(r#"{"startRow":0}"#);
            then.status(200).json_body(json!({"total": 210, "incidents": first}));
        })
        .await;
    let broken = server
        .mock_async(|when, then| {
            when.path("/api/v1/tric/incidents")
                .json_body_includes(r#"{"startRow":200}"#);
            then.status(400).body("boom");
        })
        .await;
    let c = ctr(&server, "max_fetch = 200\n");
    let ctx = ctx();
    let cycle = c.fetch(&ctx).await.unwrap();
    assert_eq!(cycle.incidents.len(), 200);
    assert!(
        cycle.more && cycle.warnings.iter().any(|w| w.contains("stopped early")),
        "{:?}",
        cycle.warnings
    );
    broken.delete_async().await;
    let rest = incidents(200..210, t);
    server
        .mock_async(move |when, then| {
            when.path("/api/v1/tric/incidents")
                .json_body_includes(r#"{"startRow":200}"#);
            then.status(200).json_body(json!({"total": 210, "incidents": rest}));
        })
        .await;
    assert_eq!(c.fetch(&ctx).await.unwrap().incidents.len(), 10);
    assert_eq!(stored_incidents(&ctx.state).await.unwrap().len(), 210);
}

#[tokio::test]
async fn a_throttled_enrichment_stops_calling_and_keeps_every_incident() {
    let server = MockServer::start_async().await;
    token_mock(&server, "t").await;
    let list = incidents(0..6, "2026-11-23T08:00:00.000+00:00");
    server
        .mock_async(move |when, then| {
            when.path("/api/v1/tric/incidents").method(POST);
            then.status(200).json_body(json!({"total": 6, "incidents": list}));
        })
        .await;
    let details = server
        .mock_async(|when, then| {
            when.method(GET).path_includes("/api/v1/tric/incidents/");
            then.status(429).body("Too Many Requests");
        })
        .await;
    let c = ctr(&server, "enrich = true\nenrich_concurrency = 1\n");
    let ctx = ctx();
    let cycle = c.fetch(&ctx).await.unwrap();
    assert_eq!(cycle.incidents.len(), 6, "no incident is lost");
    // The first GET is tried 3 times (2 back-offs); the other five are not called at all.
    details.assert_calls_async(3).await;
    assert!(
        cycle
            .warnings
            .iter()
            .any(|w| w.contains("5 incidents kept without details")),
        "{:?}",
        cycle.warnings
    );
}

#[tokio::test]
async fn the_plan_counts_feed_enrichment_and_kri_calls_without_calling() {
    let server = MockServer::start_async().await;
    let c = ctr(&server, "enrich = true\nmax_fetch = 10\n");
    let ctx = ctx();
    let selected: Vec<&'static str> = kri_connector_ctr::KRIS.iter().map(|k| k.slug()).collect();
    use kri_core::Connector;
    let plan = c.plan(&ctx, &selected).await.unwrap();
    let calls: Vec<(&str, u32)> = plan.iter().map(|p| (p.pool, p.calls)).collect();
    assert_eq!(calls, [("ctr-token", 1), ("ctr", 1 + 10 + 3)]);
    assert!(plan[1].detail[0].contains("first fetch"), "{:?}", plan[1].detail);
    assert_eq!(ctx.calls.get(), 0);
}

/// Regression: one incident dated 9999-12-31 moved the cursor there and no later incident was
/// ever delivered; one at the earliest date chrono reads panicked the feed (`createdAt − delta`).
/// Both are outside the window asked for: skipped with a warning naming them, the cursor stays
/// on the newest possible time, and the next window starts there.
#[tokio::test]
async fn an_incident_from_the_future_or_the_dawn_of_time_is_skipped_and_the_cursor_stays() {
    let server = MockServer::start_async().await;
    token_mock(&server, "t").await;
    let future = incident(99999, "9999-12-31T23:59:59.000+00:00");
    let dawn = incident(3, "-262143-01-01T00:00:00+00:00");
    let first = server
        .mock_async(move |when, then| {
            when.path("/api/v1/tric/incidents").json_body_includes(
                r#"{"filters":{"time_range_filter":{"start":"2026-11-20 09:59:00","end":"2026-11-23 10:00:00"}}}"#,
            );
            then.status(200).json_body(json!({"total": 3, "incidents": [
                incident(1, "2026-11-22T11:30:00.000+00:00"), future, dawn]}));
        })
        .await;
    let c = ctr(&server, "");
    let ctx = ctx();
    let cycle = c.fetch(&ctx).await.unwrap();
    first.assert_calls_async(1).await;
    let ids: Vec<&str> = cycle.incidents.iter().filter_map(|i| i["id"].as_str()).collect();
    assert_eq!(ids, ["00000000-0000-0000-0000-000000000001"]);
    let skipped: Vec<&String> = cycle
        .warnings
        .iter()
        .filter(|w| w.contains("outside the window"))
        .collect();
    assert_eq!(skipped.len(), 2, "{:?}", cycle.warnings);
    assert!(
        skipped[0].contains("000000099999") && skipped[0].contains("9999-12-31"),
        "{skipped:?}"
    );
    assert_eq!(
        cycle.cursor.created_at.map(|t| t.to_rfc3339()),
        Some("2026-11-22T11:30:00+00:00".into())
    );
    // The next window starts at the cursor, not in year 9999.
    let next = server
        .mock_async(|when, then| {
            when.path("/api/v1/tric/incidents").json_body_includes(
                r#"{"filters":{"time_range_filter":{"start":"2026-11-22 11:29:00","end":"2026-11-23 10:00:00"}}}"#,
            );
            then.status(200).json_body(json!({"total": 0, "incidents": []}));
        })
        .await;
    c.fetch(&ctx).await.unwrap();
    next.assert_calls_async(1).await;
}

/// A cursor already moved into the future (by a kri from before the check) starts from now
/// again, with a warning, instead of hiding every incident to come.
#[tokio::test]
async fn a_cursor_left_in_the_future_starts_from_now() {
    let server = MockServer::start_async().await;
    token_mock(&server, "t").await;
    let ctx = ctx();
    let poisoned = kri_connector_ctr::fetch::Cursor {
        created_at: chrono::DateTime::parse_from_rfc3339("9999-12-31T00:00:00Z")
            .ok()
            .map(|t| t.to_utc()),
        ..Default::default()
    };
    ctx.state
        .put(
            fixed_now(),
            &kri_connector_ctr::fetch::cursor_key("open_incidents"),
            &poisoned,
        )
        .await
        .unwrap();
    let window = server
        .mock_async(|when, then| {
            when.path("/api/v1/tric/incidents").json_body_includes(
                r#"{"filters":{"time_range_filter":{"start":"2026-11-23 09:59:00","end":"2026-11-23 10:00:00"}}}"#,
            );
            then.status(200).json_body(json!({"total": 1, "incidents": [
                incident(7, "2026-11-23T09:59:30.000+00:00")]}));
        })
        .await;
    let cycle = ctr(&server, "").fetch(&ctx).await.unwrap();
    window.assert_calls_async(1).await;
    assert_eq!(cycle.incidents.len(), 1);
    assert!(
        cycle.warnings.iter().any(|w| w.contains("cursor was in the future")),
        "{:?}",
        cycle.warnings
    );
}

/// Regression: an incident id with `../` and enrich on sent the bearer token to another path of
/// the origin. An id that is not a UUID is skipped with a warning; nothing is asked for it.
#[tokio::test]
async fn an_incident_id_that_is_not_a_uuid_is_skipped_and_never_asked_for() {
    let server = MockServer::start_async().await;
    token_mock(&server, "t").await;
    let mut odd = incident(2, "2026-11-22T11:30:00.000+00:00");
    odd["id"] = json!("../../v2/people/vap");
    server
        .mock_async(move |when, then| {
            when.method(POST).path("/api/v1/tric/incidents");
            then.status(200).json_body(json!({"total": 2, "incidents": [
                incident(1, "2026-11-22T11:00:00.000+00:00"), odd]}));
        })
        .await;
    let details = server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/api/v1/tric/incidents/00000000-0000-0000-0000-000000000001");
            then.status(200)
                .json_body(json!({"summary": {"id": "00000000-0000-0000-0000-000000000001"}}));
        })
        .await;
    let elsewhere = server
        .mock_async(|when, then| {
            when.method(GET).path_includes("people");
            then.status(200).json_body(json!({}));
        })
        .await;
    let cycle = ctr(&server, "enrich = true\n").fetch(&ctx()).await.unwrap();
    assert_eq!(cycle.incidents.len(), 1);
    assert!(
        cycle
            .warnings
            .iter()
            .any(|w| w.contains("\"../../v2/people/vap\" is not a UUID")),
        "{:?}",
        cycle.warnings
    );
    details.assert_calls_async(1).await;
    elsewhere.assert_calls_async(0).await;
}

/// The feed tells the framework which incidents are new and which changed what a SOC tracks
/// (state, dispositions, close): one `incident.created` per new incident, one
/// `incident.updated` per change, none when nothing that matters moved.
#[tokio::test]
async fn stored_incidents_make_created_and_updated_events_once() {
    let store = kri_core::Store::in_memory().unwrap();
    let ctx = RunContext::for_tenant(Arc::new(ManualClock::new(fixed_now())), &store, "acme", "ctr", false);
    let now = fixed_now();
    let mut inc = incident(1, "2026-11-23T09:00:00Z");
    inc["priority"] = json!("high");
    let store_one = |v: Value| {
        let ctx = &ctx;
        async move {
            kri_connector_ctr::fetch::store_incidents(&ctx.state, &ctx.tenant, now, &[v])
                .await
                .unwrap()
        }
    };
    store_one(inc.clone()).await;
    store_one(json!({"id": inc["id"], "messageCount": 7})).await;
    store_one(json!({"id": inc["id"], "state": "closed", "closedAt": "2026-11-23T10:00:00Z"})).await;
    let events: Vec<Value> = store.outbox(0, 10).await.unwrap().into_iter().map(|(_, e)| e).collect();
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["incident.created", "incident.updated"], "{events:#?}");
    assert_eq!(
        (events[0]["tenant"].as_str(), events[0]["severity"].as_str()),
        (Some("acme"), Some("critical"))
    );
    assert_eq!(events[0]["incident"]["id"], inc["id"]);
    assert_eq!(events[1]["incident"]["state"], "closed");
    assert_eq!(events[1]["incident"]["message_count"], 7, "the merged row");
    assert!(
        events.iter().all(|e| e["incident"].get("titlePII").is_none()),
        "never the title with personal data"
    );
}
