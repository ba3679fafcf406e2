//! A fake Proofpoint API that behaves like the real one (auth, plain-text errors, licensing),
//! served on 127.0.0.1. `kri demo` runs against it; so do the end-to-end tests of the binary.
//! Tests can also make it misbehave (cut bodies, hangs, redirects, echoes): see [`faults`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

pub mod ctr;
pub mod faults;
pub mod tap;

pub use faults::{Fault, FaultRule, RecordedRequest, Recorder};

/// The credentials the sandbox accepts unless told otherwise.
pub const DEMO_PRINCIPAL: &str = "demo-principal";
pub const DEMO_SECRET: &str = "demo-secret";

/// How a separately licensed module answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Licence {
    /// Licensed: real answers.
    Licensed,
    /// 403, as for a credential without that module.
    Forbidden,
    /// 404, as for a tenant where the module does not exist.
    NotFound,
}

/// What the fake tenant looks like.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub principal: String,
    pub secret: String,
    pub efd: Licence,
    pub clear: Licence,
    /// 403 on the People API, as for a credential without that scope.
    pub people_forbidden: bool,
    /// Calls per rolling 24 h on the shared SIEM pool before it answers 429 (real: 1800).
    pub siem_pool_limit: u32,
    /// Faults to inject from the start (see [`faults`]); [`Sandbox::set_faults`] replaces them.
    pub faults: Vec<FaultRule>,
    /// The OAuth client CTR's token endpoint accepts.
    pub ctr_client_id: String,
    pub ctr_client_secret: String,
}

impl Default for Scenario {
    fn default() -> Self {
        Self {
            principal: DEMO_PRINCIPAL.into(),
            secret: DEMO_SECRET.into(),
            efd: Licence::Licensed,
            clear: Licence::Licensed,
            people_forbidden: false,
            siem_pool_limit: 1800,
            faults: Vec::new(),
            ctr_client_id: ctr::DEMO_CLIENT_ID.into(),
            ctr_client_secret: ctr::DEMO_CLIENT_SECRET.into(),
        }
    }
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

struct Shared {
    scenario: Scenario,
    hits: Mutex<BTreeMap<String, u64>>,
    tap: tap::TapData,
    /// Call times per rate-limit pool, for the rolling-24 h limits.
    pools: Mutex<BTreeMap<&'static str, Vec<chrono::DateTime<chrono::Utc>>>>,
    /// The fault rules in force, with their remaining uses.
    faults: faults::Faults,
}

/// A running sandbox. Dropping it stops the server.
pub struct Sandbox {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Sandbox {
    /// Serve `scenario` on 127.0.0.1 at a free port.
    pub async fn start(scenario: Scenario) -> std::io::Result<Sandbox> {
        Self::start_on(scenario, 0).await
    }

    /// Serve on a given port (0 = any free port).
    pub async fn start_on(scenario: Scenario, port: u16) -> std::io::Result<Sandbox> {
        let shared = Arc::new(Shared {
            faults: faults::Faults::new(scenario.faults.clone()),
            scenario,
            hits: Mutex::new(BTreeMap::new()),
            tap: tap::TapData::new(chrono::Utc::now()),
            pools: Mutex::new(BTreeMap::new()),
        });
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let app = router(shared.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!("sandbox stopped: {e}");
            }
        });
        Ok(Sandbox { addr, shared, task })
    }

    /// `http://127.0.0.1:PORT`, the value for `base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The credentials it accepts, as `principal:secret`.
    pub fn credentials(&self) -> String {
        format!("{}:{}", self.shared.scenario.principal, self.shared.scenario.secret)
    }

    /// A `kri.toml` body that points every connector the sandbox serves at it, with the
    /// credentials it accepts (`kri demo` runs with it). Each vendor part writes its own tables.
    pub fn demo_config(&self) -> String {
        let base = self.base_url();
        format!(
            "{}\n{}",
            tap::demo_config(&base, &self.credentials()),
            ctr::demo_config(&base, &self.shared.scenario)
        )
    }

    /// What the demo tells people the sandbox is.
    pub fn description(&self) -> String {
        format!(
            "a sandbox Proofpoint API (TAP, EFD, CLEAR, CTR) with fake data on {}",
            self.base_url()
        )
    }

    /// How many requests reached `path` (any answer).
    pub fn hits(&self, path: &str) -> u64 {
        self.shared
            .hits
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// Requests in all, on every path.
    pub fn total_hits(&self) -> u64 {
        self.shared
            .hits
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .sum()
    }

    /// Requests per path.
    pub fn all_hits(&self) -> BTreeMap<String, u64> {
        self.shared.hits.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replace the fault rules (and their remaining uses), e.g. so that a second run against the
    /// same sandbox and data "recovers". An empty list serves everything normally.
    pub fn set_faults(&self, rules: Vec<FaultRule>) {
        self.shared.faults.replace(rules);
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v2/people/vap", get(vap))
        .route("/v2/siem/all", get(siem_all))
        .route("/v2/campaign/ids", get(campaign_ids))
        .route("/v2/campaign/{id}", get(campaign))
        .route("/v2/efd/dmarc/domains", get(efd_domains))
        .route("/v2/clear/reports/summary", get(clear_summary))
        .fallback(|| async { text(StatusCode::NOT_FOUND, "Not Found") })
        .layer(middleware::from_fn_with_state(shared.clone(), basic_auth))
        .with_state(shared.clone())
        // CTR uses OAuth bearer tokens, so its routes are merged after the Basic-auth layer.
        .merge(ctr::router(shared.clone()))
        // Outermost, so faults cover every route and see the request as the client sent it.
        .layer(middleware::from_fn_with_state(shared, faults::inject))
}

/// Count one request to `path` in the per-path hit counter.
fn count_hit(s: &Shared, path: &str) {
    *s.hits
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(path.to_owned())
        .or_default() += 1;
}

/// Whether the fault layer has counted this request already (it was faulted).
fn counted(req: &Request) -> bool {
    req.extensions().get::<faults::Counted>().is_some()
}

/// Record a call on `pool`; `false` when it is over `limit` calls in the rolling 24 h (429).
fn pool_allows(s: &Shared, pool: &'static str, limit: u32) -> bool {
    let now = chrono::Utc::now();
    let mut pools = s.pools.lock().unwrap_or_else(|p| p.into_inner());
    let calls = pools.entry(pool).or_default();
    calls.retain(|t| *t > now - chrono::Duration::hours(24));
    calls.push(now);
    calls.len() <= limit as usize
}

async fn siem_all(State(s): State<Arc<Shared>>, Query(q): Query<Vec<(String, String)>>) -> Response {
    if !pool_allows(&s, "siem", s.scenario.siem_pool_limit) {
        return text(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests");
    }
    s.tap.siem_all(chrono::Utc::now(), &q)
}

async fn campaign_ids(State(s): State<Arc<Shared>>, Query(q): Query<Vec<(String, String)>>) -> Response {
    if !pool_allows(&s, "campaign-ids", 50) {
        return text(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests");
    }
    s.tap.campaign_ids(&q)
}

async fn campaign(State(s): State<Arc<Shared>>, axum::extract::Path(id): axum::extract::Path<String>) -> Response {
    s.tap.campaign(&id)
}

/// Errors are plain text, as on the real API.
fn text(status: StatusCode, body: &'static str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain")], body).into_response()
}

/// Count every request (unless the fault layer did), then check HTTP Basic credentials like TAP
/// does: 401 when wrong.
async fn basic_auth(State(s): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    if !counted(&req) {
        count_hit(&s, req.uri().path());
    }
    let expected = format!(
        "Basic {}",
        base64(&format!("{}:{}", s.scenario.principal, s.scenario.secret))
    );
    let given = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    if given != Some(expected.as_str()) {
        return text(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    next.run(req).await
}

async fn vap(State(s): State<Arc<Shared>>, Query(q): Query<BTreeMap<String, String>>) -> Response {
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
        "totalVapUsers": data::VAP_USERS,
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
fn base64(s: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

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
