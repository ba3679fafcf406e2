//! The TAP host's part of the sandbox: People, SIEM, Campaign, EFD and CLEAR behind HTTP Basic
//! auth. The SIEM and Campaign APIs have the real limits: one selector, windows of 30 s..1 h that
//! start at most 7 days back (400 with the real plain-text messages otherwise), rolling-24 h
//! pools answering 429, campaign ids per ≤ 1 day with 404 for an empty interval, and records in
//! the real shapes (multi-recipient GUIDs, mixed-case classifications, `threatID`/`threatId`,
//! nulls, click records without `id`).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Extension, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::{Licence, Shared, Tenant, count_hit, count_tenant, counted, pool_allows, tenant_credentials, text};

/// The TAP host's routes (TAP, EFD, CLEAR), behind HTTP Basic auth.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v2/people/vap", get(vap))
        .route("/v2/siem/all", get(siem_all))
        .route("/v2/campaign/ids", get(campaign_ids))
        .route("/v2/campaign/{id}", get(campaign))
        .route("/v2/efd/dmarc/domains", get(efd_domains))
        .route("/v2/clear/reports/summary", get(clear_summary))
        .fallback(|| async { text(StatusCode::NOT_FOUND, "Not Found") })
        .layer(middleware::from_fn_with_state(shared.clone(), basic_auth))
        .with_state(shared)
}

/// The tenant's data: what the demo shows and what the end-to-end tests expect.
pub mod data {
    /// `totalVapUsers`.
    pub const VAP_USERS: u64 = 12;
    /// EFD domains and policies: 3 of 5 at reject (60 %), 4 of 5 counting quarantine (80 %).
    pub const DOMAINS: &[(&str, &str)] = &[
        ("example.com", "reject"),
        ("example.org", "REJECT"),
        ("example.net", "quarantine"),
        ("example-mail.com", "none"),
        ("example.io", "Reject"),
    ];
    /// CLEAR: 40 reports, 3 false negatives (7.5 %).
    pub const CLEAR_REPORTS: u64 = 40;
    pub const CLEAR_FALSE_NEGATIVES: u64 = 3;
}

async fn siem_all(
    State(s): State<Arc<Shared>>,
    Extension(tenant): Extension<Tenant>,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    if !pool_allows(&s, tenant, "siem", s.scenario.siem_pool_limit) {
        return text(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests");
    }
    // Only an explicit interval: `sinceSeconds` ends at now by definition.
    let settled = s.now() - Duration::from_std(s.scenario.still_current).unwrap_or_default();
    if q.iter().any(|(k, _)| k == "interval")
        && let Ok((_, end)) = siem_window(s.now(), &q)
        && end > settled
    {
        return plain(StatusCode::BAD_REQUEST, "The requested interval is still current");
    }
    if let Some(busy) = &s.scenario.busy_hour
        && let Ok((start, end)) = siem_window(s.now(), &q)
        && busy.answers(start, end)
    {
        return busy.response();
    }
    s.tap.siem_all(s.now(), &q)
}

async fn campaign_ids(
    State(s): State<Arc<Shared>>,
    Extension(tenant): Extension<Tenant>,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    if !pool_allows(&s, tenant, "campaign-ids", 50) {
        return text(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests");
    }
    s.tap.campaign_ids(&q)
}

async fn campaign(State(s): State<Arc<Shared>>, axum::extract::Path(id): axum::extract::Path<String>) -> Response {
    s.tap.campaign(&id)
}

/// The `Authorization` header of each tenant's credentials (tenant 0: the scenario's own).
pub(crate) fn basic_headers(principal: &str, secret: &str, tenants: u32) -> std::collections::HashMap<String, Tenant> {
    let header = |p: &str, x: &str| format!("Basic {}", base64(&format!("{p}:{x}")));
    let mut all = std::collections::HashMap::new();
    all.insert(header(principal, secret), Tenant(0));
    for i in 1..=tenants {
        let (p, x) = tenant_credentials(i);
        all.insert(header(&p, &x), Tenant(i));
    }
    all
}

/// Count every request (unless the fault layer did), then check HTTP Basic credentials like TAP
/// does: 401 when wrong.
async fn basic_auth(State(s): State<Arc<Shared>>, mut req: Request, next: Next) -> Response {
    if !counted(&req) {
        count_hit(&s, req.uri().path());
    }
    let given = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let tenant = given.and_then(|g| s.basic.get(g)).copied();
    let Some(tenant) = tenant else {
        return text(StatusCode::UNAUTHORIZED, "Unauthorized");
    };
    count_tenant(&s, tenant);
    req.extensions_mut().insert(tenant);
    next.run(req).await
}

async fn vap(
    State(s): State<Arc<Shared>>,
    Extension(tenant): Extension<Tenant>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    if s.scenario.people_forbidden {
        return text(StatusCode::FORBIDDEN, "Forbidden");
    }
    let window = q.get("window").map(String::as_str).unwrap_or("30");
    if !["14", "30", "90"].contains(&window) {
        return text(StatusCode::BAD_REQUEST, "window must be one of 14, 30, 90");
    }
    let users: Vec<Value> = (0..3)
        .map(|i| {
            json!({
                "identity": {"guid": format!("guid-{i}"), "emails": [format!("user{i}@example.com")],
                             "name": null, "department": null, "title": null, "vip": i == 0},
                "threatStatistics": {"attackIndex": 1500 - i * 100,
                                     "families": [{"name": "credential phishing", "score": 900}]}
            })
        })
        .collect();
    axum::Json(json!({
        "users": users,
        "totalVapUsers": crate::tenant_vap_users(tenant.0),
        "interval": format!("P{window}D"),
        "averageAttackIndex": 820,
        "vapAttackIndexThreshold": 1200
    }))
    .into_response()
}

fn licence(l: Licence) -> Option<Response> {
    match l {
        Licence::Licensed => None,
        Licence::Forbidden => Some(text(StatusCode::FORBIDDEN, "Forbidden")),
        Licence::NotFound => Some(text(StatusCode::NOT_FOUND, "Not Found")),
    }
}

async fn efd_domains(State(s): State<Arc<Shared>>) -> Response {
    if let Some(r) = licence(s.scenario.efd) {
        return r;
    }
    let domains: Vec<Value> = data::DOMAINS
        .iter()
        .map(|(n, p)| json!({"name": n, "policy": p}))
        .collect();
    axum::Json(json!({ "domains": domains })).into_response()
}

async fn clear_summary(State(s): State<Arc<Shared>>) -> Response {
    if let Some(r) = licence(s.scenario.clear) {
        return r;
    }
    axum::Json(json!({
        "totalReports": data::CLEAR_REPORTS,
        "falseNegatives": data::CLEAR_FALSE_NEGATIVES,
        "window": "7d"
    }))
    .into_response()
}

/// Standard base64 (RFC 4648) of `s`, to compare with the Authorization header.
pub(crate) fn base64(s: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The figures a correct connector computes from this data (whenever it runs within a day or
/// so of the sandbox's start).
pub mod expected {
    pub const DELIVERED_24H: u64 = 7;
    pub const CLICKS_PERMITTED_7D: u64 = 3;
    pub const BEC_IMPOSTOR_7D: u64 = 5;
    pub const CRED_PHISH_CAMPAIGNS_30D: u64 = 3;
}

/// The `[proofpoint]` table that points tap, efd and clear at the sandbox.
pub fn demo_config(base_url: &str, credentials: &str) -> String {
    format!("[proofpoint]\nbase_url = \"{base_url}\"\ncredentials = \"{credentials}\"\n")
}

/// Events placed relative to the sandbox's start `t0`.
pub struct TapData {
    delivered: Vec<(DateTime<Utc>, Value)>,
    blocked: Vec<(DateTime<Utc>, Value)>,
    clicks_permitted: Vec<(DateTime<Utc>, Value)>,
    clicks_blocked: Vec<(DateTime<Utc>, Value)>,
    /// Campaign id → times it is listed (a campaign updated on two days is listed on both).
    campaign_days: Vec<(&'static str, DateTime<Utc>)>,
    campaigns: BTreeMap<&'static str, Value>,
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn message(t: DateTime<Utc>, id: Option<&str>, guid: &str, recipient: Value, threats: Value) -> Value {
    json!({
        "GUID": guid, "id": id, "QID": null, "messageID": format!("<{guid}@example.net>"),
        "messageTime": ts(t), "sender": "attacker@example.net", "recipient": recipient,
        "senderIP": "192.0.2.10", "subject": "Invoice", "fromAddress": ["attacker@example.net"],
        "headerFrom": null, "spamScore": 0, "phishScore": 90, "malwareScore": 0, "impostorScore": 0.0,
        "quarantineFolder": null, "quarantineRule": null, "modulesRun": null, "policyRoutes": null,
        "messageParts": null, "completelyRewritten": "true", "threatsInfoMap": threats
    })
}

fn threat(classification: &str, id_key: &str, t: DateTime<Utc>) -> Value {
    let mut v = json!({"threatStatus": "active", "classification": classification, "threatType": "url",
                       "threat": "http://bad.example/x", "threatTime": ts(t), "threatUrl": null, "campaignID": null});
    v[id_key] = json!(format!("threat-{classification}"));
    v
}

fn click(t: DateTime<Utc>, id: Option<&str>, guid: Option<&str>) -> Value {
    json!({"id": id, "GUID": guid, "campaignId": null, "classification": "PHISH", "clickIP": "192.0.2.50",
           "clickTime": ts(t), "messageID": null, "recipient": "user@example.com", "sender": "attacker@example.net",
           "senderIP": "192.0.2.10", "threatID": "threat-click", "threatTime": ts(t), "threatURL": null,
           "threatStatus": "active", "url": "http://bad.example/click", "userAgent": "Mozilla/5.0"})
}

impl TapData {
    pub fn new(t0: DateTime<Utc>) -> Self {
        let h = Duration::hours;
        let d = Duration::days;
        let phish = |t| json!([threat("phish", "threatID", t)]);
        let mut delivered = Vec::new();
        // A message to three recipients: three records, one GUID.
        for (i, r) in ["a@example.com", "b@example.com", "c@example.com"].iter().enumerate() {
            let t = t0 - h(2);
            delivered.push((t, message(t, Some(&format!("d1-{i}")), "g1", json!([r]), phish(t))));
        }
        let t = t0 - h(5);
        delivered.push((
            t,
            message(
                t,
                Some("d2"),
                "g2",
                json!(["ceo@example.com"]),
                json!([threat("IMPOSTOR", "threatId", t)]),
            ),
        ));
        let t = t0 - h(10);
        delivered.push((t, message(t, None, "g3", json!(["x@example.com"]), phish(t))));
        // The same record twice in one answer: counted once.
        let t = t0 - h(3);
        delivered.push((t, message(t, Some("d5"), "g5", json!(["y@example.com"]), phish(t))));
        delivered.push((t, message(t, Some("d5"), "g5", json!(["y@example.com"]), phish(t))));
        let t = t0 - h(12);
        delivered.push((t, message(t, Some("d6"), "g6", Value::Null, Value::Null)));
        let t = t0 - h(30);
        delivered.push((
            t,
            message(
                t,
                Some("d4"),
                "g4",
                json!(["cfo@example.com"]),
                json!([threat("Impostor", "threatID", t)]),
            ),
        ));

        let mut blocked = Vec::new();
        let t = t0 - h(4);
        blocked.push((
            t,
            message(
                t,
                Some("b1"),
                "gb1",
                json!(["ap@example.com"]),
                json!([threat("impostor", "threatId", t)]),
            ),
        ));
        let t = t0 - h(50);
        blocked.push((
            t,
            message(
                t,
                Some("b2"),
                "gb2",
                json!(["z@example.com"]),
                json!([threat("malware", "threatID", t)]),
            ),
        ));
        for (i, r) in ["hr@example.com", "it@example.com"].iter().enumerate() {
            let t = t0 - d(6);
            blocked.push((
                t,
                message(
                    t,
                    Some(&format!("b3-{i}")),
                    "gb3",
                    json!([r]),
                    json!([threat("ImPoStOr", "threatID", t)]),
                ),
            ));
        }

        let clicks_permitted = vec![
            (t0 - h(1), click(t0 - h(1), Some("c1"), Some("gc1"))),
            (t0 - d(3), click(t0 - d(3), None, None)),
            (t0 - d(6), click(t0 - d(6), Some("c3"), Some("gc3"))),
            (t0 - d(8), click(t0 - d(8), Some("c4"), Some("gc4"))),
        ];
        let clicks_blocked = vec![(t0 - h(2), click(t0 - h(2), Some("cb1"), Some("gcb1")))];

        let named = |names: &[&str]| -> Value {
            names
                .iter()
                .enumerate()
                .map(|(i, n)| json!({"id": format!("n{i}"), "name": n}))
                .collect()
        };
        let campaign = |id: &str, families: &[&str], techniques: &[&str], members: Value| {
            json!({"id": id, "name": format!("Campaign {id}"), "description": "", "startDate": ts(t0 - d(40)),
                   "notable": false, "actors": [], "families": named(families), "malware": [],
                   "techniques": named(techniques), "brands": [], "campaignMembers": members})
        };
        let mut campaigns = BTreeMap::new();
        campaigns.insert(
            "cmp-cred-1",
            campaign("cmp-cred-1", &["Credential Phishing"], &[], json!([])),
        );
        campaigns.insert(
            "cmp-malware",
            campaign("cmp-malware", &["Downloader"], &["Office VBA Macro"], json!([])),
        );
        campaigns.insert(
            "cmp-phish-member",
            campaign(
                "cmp-phish-member",
                &[],
                &[],
                json!([{"id": "m1", "threat": "x", "type": "phish", "subType": null, "threatTime": ts(t0)}]),
            ),
        );
        campaigns.insert("cmp-old", campaign("cmp-old", &["Credential Phishing"], &[], json!([])));
        campaigns.insert(
            "cmp-cred-theft",
            campaign("cmp-cred-theft", &[], &[], json!([{"id": "m2", "threat": "y", "type": "url", "subType": "CREDENTIAL_THEFT", "threatTime": ts(t0)}])),
        );
        campaigns.insert(
            "cmp-phishing-kit",
            campaign("cmp-phishing-kit", &[], &["Phishing Kit"], Value::Null),
        );
        let campaign_days = vec![
            ("cmp-cred-1", t0 - d(1)),
            ("cmp-cred-1", t0 - d(2)),
            ("cmp-malware", t0 - d(3)),
            ("cmp-phish-member", t0 - d(10)),
            ("cmp-old", t0 - d(40)),
            ("cmp-cred-theft", t0 - h(2)),
            ("cmp-phishing-kit", t0 - d(5)),
        ];
        TapData {
            delivered,
            blocked,
            clicks_permitted,
            clicks_blocked,
            campaign_days,
            campaigns,
        }
    }

    /// `/v2/siem/all`: validate the time selector like the real API, then answer the window.
    pub fn siem_all(&self, now: DateTime<Utc>, query: &[(String, String)]) -> Response {
        let (start, end) = match siem_window(now, query) {
            Ok(w) => w,
            Err(msg) => return plain(StatusCode::BAD_REQUEST, msg),
        };
        let pick = |events: &[(DateTime<Utc>, Value)]| -> Vec<Value> {
            events
                .iter()
                .filter(|(t, _)| *t >= start && *t < end)
                .map(|(_, v)| v.clone())
                .collect()
        };
        axum::Json(json!({
            "queryEndTime": end.to_rfc3339_opts(SecondsFormat::Secs, true),
            "messagesDelivered": pick(&self.delivered),
            "messagesBlocked": pick(&self.blocked),
            "clicksPermitted": pick(&self.clicks_permitted),
            "clicksBlocked": pick(&self.clicks_blocked),
        }))
        .into_response()
    }

    /// `/v2/campaign/ids?interval=…`: ≤ 1 day, 404 when the interval holds no campaign.
    pub fn campaign_ids(&self, query: &[(String, String)]) -> Response {
        let get = |k: &str| query.iter().find(|(q, _)| q == k).map(|(_, v)| v.as_str());
        let Some((start, end)) = get("interval").and_then(parse_interval) else {
            return plain(
                StatusCode::BAD_REQUEST,
                "The interval parameter is required (ISO-8601 START/END)",
            );
        };
        if end - start > Duration::days(1) {
            return plain(StatusCode::BAD_REQUEST, "The requested interval is too long");
        }
        if end - start < Duration::seconds(30) {
            return plain(StatusCode::BAD_REQUEST, "The requested interval is too short");
        }
        let size: usize = get("size").and_then(|s| s.parse().ok()).unwrap_or(100).clamp(1, 1000);
        let page: usize = get("page").and_then(|s| s.parse().ok()).unwrap_or(1).max(1);
        let mut hits: Vec<(&str, DateTime<Utc>)> = self
            .campaign_days
            .iter()
            .filter(|(_, t)| *t >= start && *t < end)
            .copied()
            .collect();
        hits.sort();
        if hits.is_empty() {
            return plain(StatusCode::NOT_FOUND, "Not Found");
        }
        let page: Vec<Value> = hits
            .iter()
            .skip((page - 1) * size)
            .take(size)
            .map(|(id, t)| json!({"id": id, "lastUpdatedAt": ts(*t)}))
            .collect();
        axum::Json(json!({ "campaigns": page })).into_response()
    }

    /// `/v2/campaign/{id}`.
    pub fn campaign(&self, id: &str) -> Response {
        match self.campaigns.get(id) {
            Some(v) => axum::Json(v.clone()).into_response(),
            None => plain(StatusCode::NOT_FOUND, "Not Found"),
        }
    }
}

fn plain(status: StatusCode, body: &'static str) -> Response {
    (status, [(axum::http::header::CONTENT_TYPE, "text/plain")], body).into_response()
}

fn parse_interval(text: &str) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let (a, b) = text.split_once('/')?;
    let a = DateTime::parse_from_rfc3339(a).ok()?.to_utc();
    let b = DateTime::parse_from_rfc3339(b).ok()?.to_utc();
    Some((a, b))
}

fn siem_window(now: DateTime<Utc>, query: &[(String, String)]) -> Result<(DateTime<Utc>, DateTime<Utc>), &'static str> {
    let selectors: Vec<&(String, String)> = query
        .iter()
        .filter(|(k, _)| ["interval", "sinceSeconds", "sinceTime"].contains(&k.as_str()))
        .collect();
    let [(key, value)] = selectors.as_slice() else {
        return Err("Exactly one of interval, sinceSeconds or sinceTime must be given");
    };
    let (start, end) = match key.as_str() {
        "interval" => parse_interval(value).ok_or("The interval must be START/END in ISO-8601")?,
        "sinceSeconds" => {
            let s: i64 = value.parse().map_err(|_| "sinceSeconds must be a number")?;
            (now - Duration::seconds(s), now)
        }
        _ => (
            DateTime::parse_from_rfc3339(value)
                .map_err(|_| "sinceTime must be ISO-8601")?
                .to_utc(),
            now,
        ),
    };
    if end - start > Duration::hours(1) {
        return Err("The requested interval is too long");
    }
    if end - start < Duration::seconds(30) {
        return Err("The requested interval is too short");
    }
    if start < now - Duration::days(7) {
        return Err("The requested start time is too far into the past.");
    }
    Ok((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn siem_windows_follow_the_real_limits() {
        let now = DateTime::parse_from_rfc3339("2026-11-23T10:00:00Z").unwrap().to_utc();
        assert!(siem_window(now, &q(&[("interval", "2026-11-23T09:00:00Z/2026-11-23T10:00:00Z")])).is_ok());
        assert_eq!(
            siem_window(now, &q(&[("interval", "2026-11-23T08:59:59Z/2026-11-23T10:00:00Z")])),
            Err("The requested interval is too long")
        );
        assert_eq!(
            siem_window(now, &q(&[("sinceSeconds", "86400")])),
            Err("The requested interval is too long")
        );
        assert_eq!(
            siem_window(now, &q(&[("sinceSeconds", "10")])),
            Err("The requested interval is too short")
        );
        assert_eq!(
            siem_window(now, &q(&[("interval", "2026-11-16T09:59:00Z/2026-11-16T10:30:00Z")])),
            Err("The requested start time is too far into the past.")
        );
        assert!(siem_window(now, &q(&[("sinceSeconds", "600"), ("interval", "x")])).is_err());
    }

    use crate::{DEMO_PRINCIPAL, DEMO_SECRET, Sandbox, Scenario};

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain), encoded);
        }
    }

    #[tokio::test]
    async fn wrong_credentials_get_a_plain_text_401_and_are_counted() {
        let sb = Sandbox::start(Scenario::default()).await.unwrap();
        let client = reqwest::Client::new();
        let url = format!("{}/v2/people/vap?window=30", sb.base_url());
        let r = client
            .get(&url)
            .basic_auth("demo-principal", Some("nope"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        assert_eq!(r.text().await.unwrap(), "Unauthorized");
        let r = client
            .get(&url)
            .basic_auth(DEMO_PRINCIPAL, Some(DEMO_SECRET))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["totalVapUsers"], 12);
        assert_eq!(sb.hits("/v2/people/vap"), 2);
    }

    #[tokio::test]
    async fn each_tenant_has_its_credentials_its_data_and_its_own_pools() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-23T10:20:00Z")
            .unwrap()
            .to_utc();
        let sb = Sandbox::start(Scenario {
            tenants: 3,
            now: Some(now),
            ..Scenario::default()
        })
        .await
        .unwrap();
        let client = reqwest::Client::new();
        let vap = |who: (String, String)| {
            let (client, url) = (client.clone(), format!("{}/v2/people/vap?window=30", sb.base_url()));
            async move { client.get(url).basic_auth(who.0, Some(who.1)).send().await.unwrap() }
        };
        for i in 1..=3 {
            let r = vap(crate::tenant_credentials(i)).await;
            assert_eq!(r.status(), 200, "tenant {i}");
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["totalVapUsers"], crate::tenant_vap_users(i), "tenant {i}");
            assert_eq!(sb.tenant_hits(i), 1);
        }
        let own = vap((DEMO_PRINCIPAL.into(), DEMO_SECRET.into()))
            .await
            .json::<Value>()
            .await
            .unwrap();
        assert_eq!(own["totalVapUsers"], 12, "tenant 0 is the scenario's own, unchanged");
        // Another tenant's secret, or a tenant beyond the count, is refused.
        assert_eq!(vap(("tenant-0001".into(), "secret-0002".into())).await.status(), 401);
        assert_eq!(vap(crate::tenant_credentials(4)).await.status(), 401);

        // Tenant 1 uses up its campaign-ids pool; tenant 2's is untouched.
        let ids = |i: u32| {
            let (client, url) = (
                client.clone(),
                format!(
                    "{}/v2/campaign/ids?interval=2026-11-22T10:00:00Z/2026-11-23T10:00:00Z",
                    sb.base_url()
                ),
            );
            let (p, x) = crate::tenant_credentials(i);
            async move { client.get(url).basic_auth(p, Some(x)).send().await.unwrap().status() }
        };
        for _ in 0..50 {
            assert_ne!(ids(1).await, 429);
        }
        assert_eq!(ids(1).await, 429, "tenant 1 over its 50 a day");
        assert_ne!(ids(2).await, 429, "tenant 2 has its own pool");
        assert_eq!(sb.pool_calls(1, "campaign-ids"), 51);
        assert_eq!(sb.pool_calls(2, "campaign-ids"), 1);
    }

    #[tokio::test]
    async fn unlicensed_modules_answer_403_or_404() {
        let sb = Sandbox::start(Scenario {
            efd: Licence::Forbidden,
            clear: Licence::NotFound,
            ..Default::default()
        })
        .await
        .unwrap();
        let client = reqwest::Client::new();
        let get = |p: &str| {
            client
                .get(format!("{}{p}", sb.base_url()))
                .basic_auth(DEMO_PRINCIPAL, Some(DEMO_SECRET))
                .send()
        };
        assert_eq!(get("/v2/efd/dmarc/domains").await.unwrap().status(), 403);
        assert_eq!(get("/v2/clear/reports/summary?window=7d").await.unwrap().status(), 404);
    }
}
