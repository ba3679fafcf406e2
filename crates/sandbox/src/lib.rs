//! A fake Proofpoint API that behaves like the real one (auth, plain-text errors, licensing),
//! served on 127.0.0.1. `kri demo` runs against it; so do the end-to-end tests of the binary.
//! Tests can also make it misbehave (cut bodies, hangs, redirects, echoes): see [`faults`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use tokio::task::JoinHandle;

pub mod busy;
pub mod ctr;
pub mod faults;
pub mod receiver;
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
    /// A SIEM `interval` ending less than this before the sandbox's now is refused with 400 "The
    /// requested interval is still current", as one integration reports the real API doing for
    /// windows that end at now.
    pub still_current: std::time::Duration,
    /// The sandbox's "now": the data is placed relative to it and the API's limits are checked
    /// against it. `None`: the wall clock (the demo). Tests fix it, and give kri the same instant.
    pub now: Option<chrono::DateTime<chrono::Utc>>,
    /// Added before every answer, like the round trip to the real API (benchmarks, concurrency).
    pub latency: std::time::Duration,
    /// A busy SIEM hour (see [`busy`]) answered instead of the tenant's events for its slot.
    pub busy_hour: Option<std::sync::Arc<busy::BusyHour>>,
    /// Faults to inject from the start (see [`faults`]); [`Sandbox::set_faults`] replaces them.
    pub faults: Vec<FaultRule>,
    /// The OAuth client CTR's token endpoint accepts.
    pub ctr_client_id: String,
    pub ctr_client_secret: String,
    /// More tenants served beside the one above (an MSSP's view): tenant `i` in `1..=tenants`
    /// has its own credentials ([`tenant_credentials`], [`tenant_ctr_client`]), its own
    /// rolling-24 h pools and its own VAP count ([`tenant_vap_users`]).
    pub tenants: u32,
}

/// Tenant `i`'s TAP credentials (`principal`, `secret`); tenant 0 is the scenario's own.
pub fn tenant_credentials(i: u32) -> (String, String) {
    (format!("tenant-{i:04}"), format!("secret-{i:04}"))
}

/// Tenant `i`'s CTR OAuth client (`client_id`, `client_secret`).
pub fn tenant_ctr_client(i: u32) -> (String, String) {
    (format!("tenant-{i:04}-ctr"), format!("ctr-secret-{i:04}"))
}

/// Tenant `i`'s `totalVapUsers`: its own number, so each tenant's value can be checked exactly.
pub fn tenant_vap_users(i: u32) -> u64 {
    tap::data::VAP_USERS + u64::from(i)
}

/// Which tenant a request was authenticated as (0: the scenario's own credentials).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Tenant(pub u32);

impl Default for Scenario {
    fn default() -> Self {
        Self {
            principal: DEMO_PRINCIPAL.into(),
            secret: DEMO_SECRET.into(),
            efd: Licence::Licensed,
            clear: Licence::Licensed,
            people_forbidden: false,
            siem_pool_limit: 1800,
            still_current: std::time::Duration::from_secs(30),
            now: None,
            latency: std::time::Duration::ZERO,
            busy_hour: None,
            faults: Vec::new(),
            ctr_client_id: ctr::DEMO_CLIENT_ID.into(),
            ctr_client_secret: ctr::DEMO_CLIENT_SECRET.into(),
            tenants: 0,
        }
    }
}

pub use tap::data;

/// When the calls on one pool were made.
type CallTimes = Vec<chrono::DateTime<chrono::Utc>>;

struct Shared {
    scenario: Scenario,
    /// The fixed "now", when the scenario gave one; tests move it.
    now: Mutex<Option<chrono::DateTime<chrono::Utc>>>,
    /// Requests being answered now, and the most at once.
    in_flight: std::sync::atomic::AtomicUsize,
    max_in_flight: std::sync::atomic::AtomicUsize,
    /// Requests in flight per (tenant, path), and the most seen at once: two runs of one
    /// tenant's connector at the same time show as more than one run's own concurrency.
    in_flight_by: Mutex<BTreeMap<(Tenant, String), (usize, usize)>>,
    hits: Mutex<BTreeMap<String, u64>>,
    tap: tap::TapData,
    /// Call times per tenant and rate-limit pool, for the rolling-24 h limits.
    pools: Mutex<BTreeMap<(Tenant, &'static str), CallTimes>>,
    /// Requests per tenant (any answer).
    tenant_hits: Mutex<BTreeMap<Tenant, u64>>,
    /// The `Authorization: Basic …` header of every tenant's TAP credentials, to its tenant.
    basic: std::collections::HashMap<String, Tenant>,
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
        let fixed = scenario.now;
        let now = fixed.unwrap_or_else(chrono::Utc::now);
        let (scenario_principal, scenario_secret, tenants) =
            (scenario.principal.clone(), scenario.secret.clone(), scenario.tenants);
        let shared = Arc::new(Shared {
            faults: faults::Faults::new(scenario.faults.clone()),
            scenario,
            hits: Mutex::new(BTreeMap::new()),
            tap: tap::TapData::new(now),
            now: Mutex::new(fixed),
            in_flight: Default::default(),
            max_in_flight: Default::default(),
            in_flight_by: Mutex::new(BTreeMap::new()),
            pools: Mutex::new(BTreeMap::new()),
            tenant_hits: Mutex::new(BTreeMap::new()),
            basic: tap::basic_headers(&scenario_principal, &scenario_secret, tenants),
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

    /// The most requests that were being answered at the same time.
    /// The most requests tenant `i` had in flight at once on `path` (TAP-host endpoints, by
    /// their Basic credentials; `/v2/siem/all`, say).
    pub fn max_in_flight_of(&self, i: u32, path: &str) -> usize {
        self.shared
            .in_flight_by
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(Tenant(i), path.to_owned()))
            .map_or(0, |(_, max)| *max)
    }

    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Move the sandbox's fixed "now" (the data stays where it was placed): for a test's later
    /// run. No effect on a sandbox that follows the wall clock.
    pub fn set_now(&self, now: chrono::DateTime<chrono::Utc>) {
        let mut fixed = self.shared.now.lock().unwrap_or_else(|p| p.into_inner());
        if fixed.is_some() {
            *fixed = Some(now);
        }
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

    /// Requests tenant `i` made (authenticated as it, any answer).
    pub fn tenant_hits(&self, i: u32) -> u64 {
        self.shared
            .tenant_hits
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&Tenant(i))
            .copied()
            .unwrap_or(0)
    }

    /// Calls tenant `i` made on `pool` in the rolling 24 h before the sandbox's now (over the
    /// limit included: a pool over its limit shows here).
    pub fn pool_calls(&self, i: u32, pool: &str) -> usize {
        let now = self.shared.now();
        self.shared
            .pools
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|((t, p), _)| *t == Tenant(i) && *p == pool)
            .map(|(_, calls)| calls.iter().filter(|c| **c > now - chrono::Duration::hours(24)).count())
            .sum()
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

/// The whole fake API: each vendor part brings its routes (and its own auth), the fault layer
/// wraps them all.
fn router(shared: Arc<Shared>) -> Router {
    tap::router(shared.clone())
        // CTR uses OAuth bearer tokens: its routes carry their own auth layer.
        .merge(ctr::router(shared.clone()))
        // Outside the routes, so faults cover every route and see the request as sent.
        .layer(middleware::from_fn_with_state(shared.clone(), faults::inject))
        // Outermost: the round trip and the requests in flight, faulted or not.
        .layer(middleware::from_fn_with_state(shared, round_trip))
}

/// Count the request as in flight, wait the scenario's latency, answer.
async fn round_trip(
    axum::extract::State(s): axum::extract::State<Arc<Shared>>,
    req: Request,
    next: middleware::Next,
) -> Response {
    use std::sync::atomic::Ordering;
    let now = s.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    s.max_in_flight.fetch_max(now, Ordering::SeqCst);
    struct Done<'a>(&'a std::sync::atomic::AtomicUsize);
    impl Drop for Done<'_> {
        fn drop(&mut self) {
            self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
    let _done = Done(&s.in_flight);
    let tenant = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| s.basic.get(h).copied());
    let key = tenant.map(|t| (t, req.uri().path().to_owned()));
    if let Some(k) = &key {
        let mut by = s.in_flight_by.lock().unwrap_or_else(|p| p.into_inner());
        let (now, max) = by.entry(k.clone()).or_default();
        *now += 1;
        *max = (*max).max(*now);
    }
    struct Leave<'a>(&'a Shared, Option<(Tenant, String)>);
    impl Drop for Leave<'_> {
        fn drop(&mut self) {
            if let Some(k) = &self.1
                && let Some((now, _)) = self.0.in_flight_by.lock().unwrap_or_else(|p| p.into_inner()).get_mut(k)
            {
                *now = now.saturating_sub(1);
            }
        }
    }
    let _leave = Leave(&s, key);
    if !s.scenario.latency.is_zero() {
        tokio::time::sleep(s.scenario.latency).await;
    }
    next.run(req).await
}

/// Count one request of `tenant`.
fn count_tenant(s: &Shared, tenant: Tenant) {
    *s.tenant_hits
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(tenant)
        .or_default() += 1;
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

impl Shared {
    /// The sandbox's fixed "now" (see [`Sandbox::set_now`]), or the wall clock.
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.now
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .unwrap_or_else(chrono::Utc::now)
    }
}

/// Record a call of `tenant` on `pool`; `false` when it is over `limit` calls in the rolling
/// 24 h (429). Every tenant has its own pools, as every Proofpoint credential does.
fn pool_allows(s: &Shared, tenant: Tenant, pool: &'static str, limit: u32) -> bool {
    let now = s.now();
    let mut pools = s.pools.lock().unwrap_or_else(|p| p.into_inner());
    let calls = pools.entry((tenant, pool)).or_default();
    calls.retain(|t| *t > now - chrono::Duration::hours(24));
    calls.push(now);
    calls.len() <= limit as usize
}

/// Errors are plain text, as on the real API.
fn text(status: StatusCode, body: &'static str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain")], body).into_response()
}
