//! A fake Proofpoint Cloud Threat Response (TRIC) API: OAuth2 client-credentials token endpoint,
//! bearer auth, `POST /api/v1/tric/incidents` with row-window paging capped at 200 and the
//! documented filters (unknown filter keys silently ignored, open + closed together → nothing,
//! as upstream), and `GET /api/v1/tric/incidents/{uuid}`.
//!
//! The tenant: [`BURST`] open incidents created in the SAME second (an hour before the sandbox
//! started), plus ten older incidents over the last ~2.5 days, five of them closed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Extension, Form, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, DurationRound, NaiveDateTime, Utc};
use serde_json::{Value, json};

use crate::faults::Counted;
use crate::{Shared, count_hit, counted, text};

/// The OAuth client the sandbox accepts.
pub const DEMO_CLIENT_ID: &str = "demo-ctr-client";
pub const DEMO_CLIENT_SECRET: &str = "demo-ctr-secret";
/// Open incidents created in one second.
pub const BURST: usize = 230;
/// Open incidents in all: the burst and five older ones.
pub const OPEN: usize = BURST + 5;
/// Incidents created in the 24 h before the sandbox started: the burst and four older ones.
pub const CREATED_24H: usize = BURST + 4;
/// Mean hours to close of the five closed incidents (1, 2, 3, 4, 5 h).
pub const MEAN_HOURS_TO_CLOSE: f64 = 3.0;
/// Largest page served.
pub const MAX_PAGE: usize = 200;

struct Ctr {
    shared: Arc<Shared>,
    incidents: Vec<Value>,
    /// Tokens issued, to the tenant whose client asked.
    tokens: Mutex<std::collections::HashMap<String, crate::Tenant>>,
}

/// The CTR routes, sharing the sandbox's hit counter; they use bearer auth, not Basic.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let state = Arc::new(Ctr {
        incidents: tenant(shared.now()),
        shared,
        tokens: Mutex::new(std::collections::HashMap::new()),
    });
    let api = Router::new()
        .route("/api/v1/tric/incidents", post(list))
        .route("/api/v1/tric/incidents/{id}", get(detail))
        .layer(middleware::from_fn_with_state(state.clone(), bearer));
    Router::new()
        .route("/v1/token", post(token))
        .merge(api)
        .with_state(state)
}

/// Count a request, unless the fault layer already did (`counted`).
fn count(s: &Ctr, path: &str, counted: bool) {
    if !counted {
        count_hit(&s.shared, path);
    }
}

fn ctr_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3f+00:00").to_string()
}

/// The `[connectors.ctr]` table that enables CTR against the sandbox.
pub fn demo_config(base_url: &str, scenario: &crate::Scenario) -> String {
    format!(
        "[connectors.ctr]\nenabled = true\nbase_url = \"{base_url}\"\ntoken_url = \"{base_url}/v1/token\"\n\
         client_id = \"{}\"\nclient_secret = \"{}\"\n",
        scenario.ctr_client_id, scenario.ctr_client_secret
    )
}

/// The fake tenant, relative to `now`.
fn tenant(now: DateTime<Utc>) -> Vec<Value> {
    let now = now.duration_trunc(chrono::Duration::seconds(1)).unwrap_or(now);
    let burst_at = now - chrono::Duration::hours(1);
    let dispositions = ["phish", "manual_review", "spam", "malware"];
    let mut out = Vec::new();
    for i in 0..10usize {
        let created = now - chrono::Duration::hours(2 + 6 * i as i64);
        let closed = i.is_multiple_of(2);
        let closed_at = closed.then(|| created + chrono::Duration::hours((i / 2 + 1) as i64));
        out.push(incident(
            900 + i,
            created,
            closed_at,
            dispositions[i % 4],
            i.is_multiple_of(3),
        ));
    }
    for n in 0..BURST {
        out.push(incident(
            1000 + n,
            burst_at,
            None,
            dispositions[n % 4],
            n.is_multiple_of(5),
        ));
    }
    out
}

fn incident(
    display_id: usize,
    created: DateTime<Utc>,
    closed_at: Option<DateTime<Utc>>,
    disposition: &str,
    tap: bool,
) -> Value {
    let (source, source_data) = if tap {
        ("tap_alert", json!({"type": "TAP", "name": "Proofpoint TAP"}))
    } else {
        (
            "abuse_mailbox",
            json!({"type": "AbuseMailbox", "name": "Proofpoint CLEAR"}),
        )
    };
    let updated = closed_at.unwrap_or(created);
    json!({
        "id": format!("00000000-0000-4000-8000-{display_id:012}"),
        "displayId": display_id,
        "title": format!("user{display_id}[@]example[.]com reported a message \"Invoice {display_id}\""),
        "state": if closed_at.is_some() { "closed" } else { "open" },
        "priority": if display_id.is_multiple_of(7) { Value::Null } else { json!("high") },
        "createdAt": ctr_time(created),
        "updatedAt": ctr_time(updated),
        "closedAt": closed_at.map(ctr_time),
        "messageCount": 1 + display_id % 3,
        "assignedTeamName": "SOC_Analyst",
        "assignedUserName": null,
        "vap": display_id.is_multiple_of(11),
        "sourceTypes": [source],
        "sourcesData": [source_data],
        "dispositions": if display_id.is_multiple_of(13) { Value::Null } else { json!([disposition]) },
        "clearVerdicts": [if disposition == "phish" { "threat" } else { "manual_review" }],
        "clearConfidences": [if display_id.is_multiple_of(2) { "high" } else { "low" }],
    })
}

async fn token(
    State(s): State<Arc<Ctr>>,
    faulted: Option<Extension<Counted>>,
    Form(form): Form<BTreeMap<String, String>>,
) -> Response {
    count(&s, "/v1/token", faulted.is_some());
    let sc = &s.shared.scenario;
    let (id, secret) = (form.get("client_id"), form.get("client_secret"));
    let tenant = if id == Some(&sc.ctr_client_id) && secret == Some(&sc.ctr_client_secret) {
        Some(0)
    } else {
        // Tenant i's client id names it.
        id.and_then(|id| id.strip_prefix("tenant-")?.strip_suffix("-ctr")?.parse::<u32>().ok())
            .filter(|i| (1..=sc.tenants).contains(i))
            .filter(|i| {
                let (tid, tsecret) = crate::tenant_ctr_client(*i);
                id == Some(&tid) && secret == Some(&tsecret)
            })
    };
    let grant = form.get("grant_type").map(String::as_str) == Some("client_credentials");
    let (true, Some(tenant)) = (grant, tenant) else {
        return (StatusCode::UNAUTHORIZED, Json(json!({"error": "invalid_client"}))).into_response();
    };
    let mut tokens = s.tokens.lock().unwrap_or_else(|p| p.into_inner());
    let t = format!("ctr-token-{}", tokens.len() + 1);
    tokens.insert(t.clone(), crate::Tenant(tenant));
    Json(json!({"access_token": t, "token_type": "bearer", "expires_in": 3600})).into_response()
}

/// Count every API request, then require a bearer token this sandbox issued.
async fn bearer(State(s): State<Arc<Ctr>>, mut req: Request, next: Next) -> Response {
    count(&s, req.uri().path(), counted(&req));
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let tenant = given.and_then(|t| s.tokens.lock().unwrap_or_else(|p| p.into_inner()).get(&t).copied());
    let Some(tenant) = tenant else {
        return text(StatusCode::UNAUTHORIZED, "Unauthorized");
    };
    crate::count_tenant(&s.shared, tenant);
    req.extensions_mut().insert(tenant);
    next.run(req).await
}

fn strings(filters: &Value, key: &str) -> Vec<String> {
    filters
        .get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

fn filter_time(v: Option<&Value>) -> Option<DateTime<Utc>> {
    v.and_then(Value::as_str)
        .and_then(|t| NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S").ok())
        .map(|n| n.and_utc())
}

fn created(i: &Value) -> DateTime<Utc> {
    i["createdAt"]
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

fn has(i: &Value, key: &str, wanted: &[String], map: impl Fn(&str) -> String) -> bool {
    wanted.is_empty()
        || i[key]
            .as_array()
            .is_some_and(|a| a.iter().any(|v| v.as_str().is_some_and(|v| wanted.contains(&map(v)))))
}

/// Unknown filter keys are ignored, as upstream. Time filters are whole seconds, inclusive.
fn matches(i: &Value, f: &Value) -> bool {
    if let Some(range) = f.get("time_range_filter") {
        let c = created(i)
            .duration_trunc(chrono::Duration::seconds(1))
            .unwrap_or_default();
        if filter_time(range.get("start")).is_some_and(|s| c < s)
            || filter_time(range.get("end")).is_some_and(|e| c > e)
        {
            return false;
        }
    }
    let ids = strings(f, "incident_id_filters");
    if !ids.is_empty() && !ids.contains(&i["displayId"].to_string()) {
        return false;
    }
    let other = strings(f, "other_filters");
    let state = i["state"].as_str().unwrap_or("");
    if other.iter().any(|o| o == "open_incidents") && state != "open"
        || other.iter().any(|o| o == "closed_incidents") && state != "closed"
        || other.iter().any(|o| o == "vap") && i["vap"] != json!(true)
    {
        return false;
    }
    let priorities = strings(f, "priority_filters");
    if !priorities.is_empty()
        && !i["priority"]
            .as_str()
            .is_some_and(|p| priorities.iter().any(|x| x == p))
    {
        return false;
    }
    has(i, "sourceTypes", &strings(f, "source_filters"), |v| {
        v.trim_end_matches("_alert").to_owned()
    }) && has(i, "dispositions", &strings(f, "disposition_filters"), str::to_owned)
        && has(i, "clearVerdicts", &strings(f, "verdict_filters"), |v| {
            format!("verdict_{v}")
        })
        && has(i, "clearConfidences", &strings(f, "confidence_filters"), |v| {
            format!("confidence_{v}")
        })
}

async fn list(State(s): State<Arc<Ctr>>, body: Option<Json<Value>>) -> Response {
    let Some(Json(body)) = body else {
        return text(StatusCode::BAD_REQUEST, "a JSON body is required");
    };
    let filters = body.get("filters").cloned().unwrap_or(json!({}));
    let start = body["startRow"].as_u64().unwrap_or(0) as usize;
    let end = body["endRow"].as_u64().unwrap_or(start as u64 + 50) as usize;
    if end < start {
        return text(StatusCode::BAD_REQUEST, "endRow must not be below startRow");
    }
    let desc = body["sortParams"][0]["sort"].as_str() == Some("desc");
    let mut hits: Vec<&Value> = s.incidents.iter().filter(|i| matches(i, &filters)).collect();
    // Ties keep a stable order (by displayId), like a database index would.
    hits.sort_by_key(|i| (created(i), i["displayId"].as_u64()));
    if desc {
        hits.sort_by_key(|i| std::cmp::Reverse(created(i)));
    }
    let total = hits.len();
    let end = end.min(start + MAX_PAGE);
    let page: Vec<&Value> = hits.into_iter().skip(start).take(end - start).collect();
    Json(json!({"total": total, "startRow": start, "endRow": end, "incidents": page})).into_response()
}

async fn detail(State(s): State<Arc<Ctr>>, Path(id): Path<String>) -> Response {
    let Some(i) = s.incidents.iter().find(|i| i["id"] == id) else {
        return text(StatusCode::NOT_FOUND, "Not Found");
    };
    let mut summary = i.clone();
    if let Some(m) = summary.as_object_mut() {
        let assignee = m.remove("assignedUserName").unwrap_or(Value::Null);
        m.insert("assignedApplicationUserName".into(), assignee);
        m.insert("openedAt".into(), i["createdAt"].clone());
        m.insert(
            "description".into(),
            json!("Reported by a user through the abuse mailbox"),
        );
        m.insert("falsePositiveCount".into(), json!(0));
        m.insert(
            "messageSourceData".into(),
            json!({"hasTapAlert": i["sourceTypes"][0] == "tap_alert", "hasAbuseAlert": i["sourceTypes"][0] == "abuse_mailbox",
                   "hasSmartSearchImport": false, "hasMessageCsvUpload": false, "hasWorkbenchEvent": false,
                   "hasImdAlert": false, "hasMailBombAlert": false}),
        );
    }
    // Activity times have no offset: 6 fraction digits for occurred_at, 3 for created_at.
    let t = created(i);
    Json(json!({
        "summary": summary,
        "comments": [],
        "activities": [{
            "id": format!("{}-a1", i["id"].as_str().unwrap_or("")),
            "cause_type": "system",
            "created_at": t.format("%Y-%m-%dT%H:%M:%S%.3f").to_string(),
            "occurred_at": t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string(),
            "activity_type": "incident_creation",
            "activity_details": {"source_name": "Proofpoint CLEAR", "initial_priority": null, "initial_team_name": "SOC_Analyst"},
            "causing_user_name": null,
            "causing_workflow_name": null
        }]
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Sandbox, Scenario};

    async fn token(sb: &Sandbox) -> String {
        let r = reqwest::Client::new()
            .post(format!("{}/v1/token", sb.base_url()))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", DEMO_CLIENT_ID),
                ("client_secret", DEMO_CLIENT_SECRET),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn list(sb: &Sandbox, token: &str, body: Value) -> (u16, Value) {
        let r = reqwest::Client::new()
            .post(format!("{}/api/v1/tric/incidents", sb.base_url()))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    #[tokio::test]
    async fn tenants_get_tokens_for_their_own_client_only() {
        let sb = Sandbox::start(Scenario {
            tenants: 2,
            ..Scenario::default()
        })
        .await
        .unwrap();
        let token = |id: &str, secret: &str| {
            let (url, form) = (
                format!("{}/v1/token", sb.base_url()),
                [
                    ("grant_type", "client_credentials".to_owned()),
                    ("client_id", id.to_owned()),
                    ("client_secret", secret.to_owned()),
                ],
            );
            async move { reqwest::Client::new().post(url).form(&form).send().await.unwrap() }
        };
        let (id, secret) = crate::tenant_ctr_client(2);
        let r = token(&id, &secret).await;
        assert_eq!(r.status(), 200);
        let t = r.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let (id1, _) = crate::tenant_ctr_client(1);
        assert_eq!(
            token(&id1, &secret).await.status(),
            401,
            "tenant 2's secret is not tenant 1's"
        );
        let (id3, secret3) = crate::tenant_ctr_client(3);
        assert_eq!(token(&id3, &secret3).await.status(), 401, "beyond the tenant count");
        let r = reqwest::Client::new()
            .post(format!("{}/api/v1/tric/incidents", sb.base_url()))
            .bearer_auth(&t)
            .json(&json!({"filters": {"rows": 1}}))
            .send()
            .await
            .unwrap();
        assert_ne!(r.status(), 401);
        assert_eq!(sb.tenant_hits(2), 1, "the API call counted for tenant 2");
    }

    #[tokio::test]
    async fn token_paging_cap_filters_and_unknown_keys() {
        let sb = Sandbox::start(Scenario::default()).await.unwrap();
        assert_eq!(list(&sb, "nope", json!({})).await.0, 401);
        let t = token(&sb).await;
        let (s, v) = list(&sb, &t, json!({"filters": {}, "startRow": 0, "endRow": 1000})).await;
        assert_eq!(
            (s, v["incidents"].as_array().unwrap().len(), v["total"].clone()),
            (200, 200, json!(240))
        );
        let open = json!({"filters": {"other_filters": ["open_incidents"]}, "startRow": 200, "endRow": 400});
        assert_eq!(
            list(&sb, &t, open).await.1["incidents"].as_array().unwrap().len(),
            OPEN - 200
        );
        let both = json!({"filters": {"other_filters": ["open_incidents", "closed_incidents"]}, "endRow": 10});
        assert_eq!(list(&sb, &t, both).await.1["total"], 0);
        let phish = list(
            &sb,
            &t,
            json!({"filters": {"disposition_filters": ["phish"]}, "endRow": 1}),
        )
        .await
        .1;
        let ignored = list(&sb, &t, json!({"filters": {"disposition": ["phish"]}, "endRow": 1}))
            .await
            .1;
        assert!(phish["total"].as_u64().unwrap() < 240);
        assert_eq!(ignored["total"], 240, "unknown keys filter nothing");
        let by_id = list(
            &sb,
            &t,
            json!({"filters": {"incident_id_filters": ["900", "1001"]}, "endRow": 10}),
        )
        .await
        .1;
        assert_eq!(by_id["total"], 2);
        assert_eq!(sb.hits("/v1/token"), 1);
    }

    #[tokio::test]
    async fn details_have_summary_comments_and_activities() {
        let sb = Sandbox::start(Scenario::default()).await.unwrap();
        let t = token(&sb).await;
        let r = reqwest::Client::new()
            .get(format!(
                "{}/api/v1/tric/incidents/00000000-0000-4000-8000-000000000900",
                sb.base_url()
            ))
            .bearer_auth(&t)
            .send()
            .await
            .unwrap();
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["summary"]["displayId"], 900);
        assert!(v["summary"].get("assignedApplicationUserName").is_some());
        assert_eq!(v["activities"][0]["occurred_at"].as_str().unwrap().len(), 26);
    }
}
