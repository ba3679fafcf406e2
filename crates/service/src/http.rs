//! The HTTP side of `kri serve`: the pages, `/metrics`, health, and the JSON API. Every answer
//! is built fresh from the store and goes through the secret scrubber on the way out; the two
//! actions (Run now, Test) need the bearer token.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use kri_core::store::{Cursor, ValuesQuery};
use kri_core::{Clock, Secret, Store};
use serde_json::{Value, json};

use crate::pages;
use kri_agent::scheduler::{Refusal, Scheduler, schedule_json};
use kri_config::Loaded;

/// Everything a request handler reads.
pub struct App {
    /// The address served: on loopback, only loopback host names are answered (see [`host_check`]).
    pub listen: std::net::SocketAddr,
    pub loaded: Arc<Loaded>,
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub scheduler: Arc<Scheduler>,
    pub token: Option<Secret>,
    /// The build's commit, for `kri_build_info`.
    pub commit: &'static str,
}

type Shared = State<Arc<App>>;

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(dashboard))
        .route("/kri/{slug}", get(kri_page))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/v1/kris", get(kris))
        .route("/api/v1/values", get(values))
        .route("/api/v1/runs", get(runs).post(run_now))
        .route("/api/v1/schedule", get(schedule))
        .route("/api/v1/ack", post(ack))
        .route("/api/v1/test", post(test))
        .route("/api/v1/test/{id}", get(test_result))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(app.clone(), host_check))
        .with_state(app)
}

/// DNS rebinding: a web page elsewhere can point its own host name at 127.0.0.1 and read a
/// loopback dashboard. On a loopback address only loopback names (and `[serve] allowed_hosts`)
/// are answered; on another address, any name unless `allowed_hosts` lists them.
async fn host_check(State(app): Shared, request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default().to_owned(),
        None => host.rsplit_once(':').map_or(host.as_str(), |(n, _)| n).to_owned(),
    };
    let allowed = &app.loaded.serve.allowed_hosts;
    let ok = allowed.contains(&name)
        || if app.listen.ip().is_loopback() {
            matches!(name.as_str(), "localhost" | "::1")
                || name.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
        } else {
            allowed.is_empty()
        };
    if ok {
        return next.run(request).await;
    }
    error(
        StatusCode::MISDIRECTED_REQUEST,
        format!(
            "this kri answers to {} only, not to `{host}`; behind a reverse proxy that sends its own name, \
             add it to [serve] allowed_hosts",
            if app.listen.ip().is_loopback() {
                "loopback names (localhost, 127.0.0.1, [::1])".to_owned()
            } else {
                "[serve] allowed_hosts".to_owned()
            }
        ),
    )
}

/// An answer whose body went through the secret scrubber.
fn answer(status: StatusCode, content_type: &'static str, body: &str) -> Response {
    let mut r = (status, kri_core::secret::scrub(body)).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r.headers_mut()
        .insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    r
}

fn html(status: StatusCode, body: &str) -> Response {
    let mut r = answer(status, "text/html; charset=utf-8", body);
    // The pages carry their CSS and their one script inline; nothing else may load.
    r.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:; connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    r
}

fn json_answer(status: StatusCode, value: &Value) -> Response {
    let body = serde_json::to_string(value).unwrap_or_else(|e| format!("{{\"error\":\"cannot encode: {e}\"}}"));
    answer(status, "application/json", &body)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    json_answer(status, &json!({ "error": message.into() }))
}

fn store_error(e: kri_core::store::StoreError) -> Response {
    tracing::error!("{e}");
    error(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
}

async fn not_found() -> Response {
    html(
        StatusCode::NOT_FOUND,
        &kri_dashboard::message_page(
            "Not found",
            "No such page. The dashboard is at /, the KRIs at /kri/SLUG, the API under /api/v1/.",
        ),
    )
}

fn actions(app: &App) -> kri_dashboard::Actions {
    if app.token.is_some() {
        kri_dashboard::Actions::Enabled
    } else {
        kri_dashboard::Actions::Disabled(NO_TOKEN.into())
    }
}

const NO_TOKEN: &str = "Run now and Test are disabled: no token is configured. Set [serve] token in kri.toml \
                        or the KRI_SERVE__TOKEN environment variable (at least 16 random characters) and restart kri serve.";

async fn dashboard(State(app): Shared, Query(q): Query<HashMap<String, String>>) -> Response {
    if app.loaded.tenants.len() > 1 && tenant_param(&q).is_none() {
        return match pages::overview(&app.loaded, &app.store, app.clock.as_ref(), actions(&app)).await {
            Ok(o) => html(StatusCode::OK, &kri_dashboard::overview_page(&o)),
            Err(e) => store_down(e),
        };
    }
    let slots = app.scheduler.slots();
    let tenant = match page_tenant(&app, &q) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    match pages::dashboard(
        &app.loaded,
        tenant,
        &app.store,
        app.clock.clone(),
        Some(&slots),
        actions(&app),
    )
    .await
    {
        Ok(d) => html(StatusCode::OK, &kri_dashboard::dashboard(&d)),
        Err(e) => store_down(e),
    }
}

/// The tenant a page is about (`?tenant=`, else the first), or the page saying there is none.
fn page_tenant<'a>(app: &'a App, q: &HashMap<String, String>) -> Result<&'a kri_config::Tenant, Box<Response>> {
    pages::pick_tenant(&app.loaded, tenant_param(q).as_deref()).map_err(|m| {
        Box::new(html(
            StatusCode::NOT_FOUND,
            &kri_dashboard::message_page("Unknown tenant", &m),
        ))
    })
}

/// The page said when the store does not answer.
fn store_down(e: kri_core::store::StoreError) -> Response {
    tracing::error!("{e}");
    html(
        StatusCode::SERVICE_UNAVAILABLE,
        &kri_dashboard::message_page("The store did not answer", &e.to_string()),
    )
}

async fn kri_page(State(app): Shared, Path(slug): Path<String>, Query(q): Query<HashMap<String, String>>) -> Response {
    let tenant = match page_tenant(&app, &q) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    let range = q.get("range").map(String::as_str);
    match pages::kri(
        &app.loaded,
        tenant,
        &app.store,
        app.clock.as_ref(),
        &slug,
        range,
        actions(&app),
    )
    .await
    {
        Ok(Some(p)) => html(StatusCode::OK, &kri_dashboard::kri_page(&p)),
        Ok(None) => html(
            StatusCode::NOT_FOUND,
            &kri_dashboard::message_page(
                "Unknown KRI",
                &format!("`{slug}` is not a selected KRI of an enabled connector here; the dashboard lists them."),
            ),
        ),
        Err(e) => html(
            StatusCode::SERVICE_UNAVAILABLE,
            &kri_dashboard::message_page("The store did not answer", &e.to_string()),
        ),
    }
}

async fn metrics(State(app): Shared, headers: axum::http::HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = crate::metrics::Format::negotiate(accept);
    let text = crate::metrics::render(
        &app.loaded,
        &app.store,
        app.clock.as_ref(),
        &app.scheduler.slots(),
        format,
        app.commit,
    )
    .await;
    answer(StatusCode::OK, format.content_type(), &text)
}

async fn healthz() -> Response {
    answer(StatusCode::OK, "text/plain; charset=utf-8", "ok\n")
}

async fn readyz(State(app): Shared) -> Response {
    if let Err(e) = app.store.schema_version().await {
        return answer(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain; charset=utf-8",
            &format!("not ready: the store does not answer: {e}\n"),
        );
    }
    if app.scheduler.stop.is_cancelled() {
        return answer(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain; charset=utf-8",
            "not ready: stopping\n",
        );
    }
    match app.scheduler.ready() {
        Ok(()) => answer(StatusCode::OK, "text/plain; charset=utf-8", "ready\n"),
        Err(why) => answer(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain; charset=utf-8",
            &format!("not ready: {why}\n"),
        ),
    }
}

async fn kris(State(app): Shared, Query(q): Query<HashMap<String, String>>) -> Response {
    let t = match pages::pick_tenant(&app.loaded, tenant_param(&q).as_deref()) {
        Ok(t) => t,
        Err(m) => return error(StatusCode::NOT_FOUND, m),
    };
    match kri_agent::practice::perpetual_bands(&app.store, t, app.clock.now()).await {
        Ok(perpetual) => json_answer(StatusCode::OK, &kri_agent::kris_json(t, &perpetual)),
        Err(e) => store_error(e),
    }
}

fn limit(q: &HashMap<String, String>, default: u32) -> Result<u32, String> {
    match q.get("limit") {
        None => Ok(default),
        Some(t) => t
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=10_000).contains(n))
            .ok_or_else(|| format!("limit `{t}` must be a number from 1 to 10000")),
    }
}

async fn values(State(app): Shared, Query(q): Query<HashMap<String, String>>) -> Response {
    let slug = q.get("slug").filter(|s| !s.is_empty()).cloned();
    if let Some(s) = &slug
        && kri_core::registry::find_kri(s).is_none()
    {
        return error(
            StatusCode::NOT_FOUND,
            format!("unknown KRI `{s}`: GET /api/v1/kris lists the KRIs"),
        );
    }
    let limit = match limit(&q, 50) {
        Ok(l) => l,
        Err(m) => return error(StatusCode::BAD_REQUEST, m),
    };
    let store = match scoped(&app, &q) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let cursor = match q.get("cursor").filter(|c| !c.is_empty()).map(|c| Cursor::parse(c)) {
        None => None,
        Some(Ok(c)) => Some(c),
        Some(Err(m)) => return error(StatusCode::BAD_REQUEST, m),
    };
    let query = ValuesQuery {
        slug,
        since: None,
        limit,
        cursor,
    };
    let standing = match kri_agent::practice::Standing::read(&store, app.clock.now()).await {
        Ok(s) => s,
        Err(e) => return store_error(e),
    };
    match store.values_page(&query).await {
        Ok(mut page) => {
            standing.annotate(&mut page.values, &app.loaded.tenants);
            json_answer(
                StatusCode::OK,
                &json!({ "values": page.values, "next_cursor": page.next_cursor.map(|c| c.to_string()) }),
            )
        }
        Err(e) => store_error(e),
    }
}

async fn runs(State(app): Shared, Query(q): Query<HashMap<String, String>>) -> Response {
    let module = q.get("module").filter(|s| !s.is_empty()).cloned();
    let limit = match limit(&q, 20) {
        Ok(l) => l,
        Err(m) => return error(StatusCode::BAD_REQUEST, m),
    };
    let store = match scoped(&app, &q) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    // `?run=ID`: one run in full, its connectors' rows and the values it wrote (`kri history --run`).
    if let Some(id) = q.get("run").map(|r| r.trim()).filter(|r| !r.is_empty()) {
        if id.len() != 36 || !kri_core::ids::is_uuid(id) {
            return error(StatusCode::BAD_REQUEST, "run: give a run id in full (a UUID)");
        }
        return match (store.run_rows(id).await, store.run_values(id).await) {
            (Ok(rows), _) if rows.is_empty() => error(
                StatusCode::NOT_FOUND,
                format!("no run `{id}` here: GET /api/v1/runs lists the runs"),
            ),
            (Ok(rows), Ok(values)) => json_answer(StatusCode::OK, &json!({ "runs": rows, "values": values })),
            (Err(e), _) | (_, Err(e)) => store_error(e),
        };
    }
    match store.history(limit, module).await {
        Ok(rows) => json_answer(StatusCode::OK, &json!({ "runs": rows })),
        Err(e) => store_error(e),
    }
}

async fn schedule(State(app): Shared) -> Response {
    json_answer(StatusCode::OK, &schedule_json(&app.scheduler.slots()))
}

/// Constant-time comparison: the time taken says nothing about how much of a guess was right.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `None` when the request carries the configured token; else the refusal.
fn refuse(app: &App, headers: &HeaderMap) -> Option<Response> {
    let Some(token) = &app.token else {
        return Some(error(StatusCode::FORBIDDEN, NO_TOKEN));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim);
    match given {
        Some(g) if same(g.as_bytes(), token.expose().as_bytes()) => None,
        Some(_) => Some(unauthorized("the token is not the one configured in [serve] token")),
        None => Some(unauthorized(
            "this action needs the header `Authorization: Bearer <token>` with the token of [serve] token",
        )),
    }
}

fn unauthorized(message: &str) -> Response {
    let mut r = error(StatusCode::UNAUTHORIZED, message);
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"kri\""),
    );
    r
}

/// `?tenant=NAME`, when given.
fn tenant_param(q: &HashMap<String, String>) -> Option<String> {
    q.get("tenant").map(|t| t.trim().to_owned()).filter(|t| !t.is_empty())
}

/// The store seen through `?tenant=` (all tenants without it); an unknown tenant is a 404.
fn scoped(app: &App, q: &HashMap<String, String>) -> Result<Store, Box<Response>> {
    match tenant_param(q) {
        None => Ok(app.store.clone()),
        Some(t) if app.loaded.tenants.iter().any(|x| x.name == t) => Ok(app.store.scoped(Some(&t))),
        Some(t) => Err(Box::new(error(
            StatusCode::NOT_FOUND,
            format!("no tenant `{t}` here: GET /api/v1/schedule lists the tenants and their connectors"),
        ))),
    }
}

fn module_param(q: &HashMap<String, String>) -> Option<String> {
    q.get("module")
        .map(|m| m.trim().to_ascii_lowercase())
        .filter(|m| !m.is_empty())
}

fn no_module() -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "say which connector: ?module=KEY (GET /api/v1/schedule lists them)",
    )
}

fn refusal(r: Refusal) -> Response {
    match r {
        Refusal::Module(m) => error(StatusCode::NOT_FOUND, m),
        Refusal::Stopping => error(StatusCode::SERVICE_UNAVAILABLE, "kri is stopping: no new runs"),
    }
}

/// What Run now and Test act on: the token checked, then `?module=` and `?tenant=`.
fn action(
    app: &App,
    headers: &HeaderMap,
    q: &HashMap<String, String>,
) -> Result<(String, Option<String>), Box<Response>> {
    if let Some(r) = refuse(app, headers) {
        return Err(Box::new(r));
    }
    let module = module_param(q).ok_or_else(|| Box::new(no_module()))?;
    Ok((module, tenant_param(q)))
}

async fn run_now(State(app): Shared, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    let (module, tenant) = match action(&app, &headers, &q) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    match app.scheduler.request_run(tenant.as_deref(), &module) {
        Ok((run_id, started)) => json_answer(
            StatusCode::ACCEPTED,
            &json!({
                "run_id": run_id, "tenant": tenant, "module": module,
                "status": if started { "started" } else { "already_running" },
                "message": if started { format!("run {run_id} of {module} started; GET /api/v1/runs shows it when done") }
                           else { format!("a run of {module} is already in progress: {run_id}") },
            }),
        ),
        Err(r) => refusal(r),
    }
}

/// Largest body `POST /api/v1/ack` reads: a note of 500 characters and its fields.
const MAX_ACK_BODY: usize = 8 * 1024;

/// `POST /api/v1/ack` (token): `{"slug", "tenant"?, "note", "by"?, "until"? ("7d")}` acknowledges
/// the KRI's amber or red band; `{"slug", "tenant"?, "clear": true}` ends the one in force.
async fn ack(State(app): Shared, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    if let Some(r) = refuse(&app, &headers) {
        return r;
    }
    if body.len() > MAX_ACK_BODY {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is over {MAX_ACK_BODY} bytes: a note is one line of at most 500 characters"),
        );
    }
    let Ok(Value::Object(b)) = serde_json::from_slice::<Value>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            r#"the body must be a JSON object: {"slug": "…", "note": "…", "until": "7d", "by": "…", "tenant": "…"}"#,
        );
    };
    let text = |k: &str| {
        b.get(k)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let Some(slug) = text("slug") else {
        return error(
            StatusCode::BAD_REQUEST,
            "say which KRI: \"slug\" (GET /api/v1/kris lists them)",
        );
    };
    if app.loaded.tenants.len() > 1 && text("tenant").is_none() {
        return error(
            StatusCode::BAD_REQUEST,
            "say whose KRI this is: \"tenant\" (GET /api/v1/schedule lists the tenants)",
        );
    }
    let tenant = match pages::pick_tenant(&app.loaded, text("tenant")) {
        Ok(t) => t,
        Err(m) => return error(StatusCode::NOT_FOUND, m),
    };
    let now = app.clock.now();
    if b.get("clear").and_then(Value::as_bool) == Some(true) {
        return match app.store.clear_ack(&tenant.name, slug, now).await {
            Ok(n) => json_answer(
                StatusCode::OK,
                &json!({"tenant": tenant.name, "slug": slug, "cleared": n > 0}),
            ),
            Err(e) => store_error(e),
        };
    }
    let until = match text("until")
        .map(|u| kri_core::config::parse_duration_within(u, std::time::Duration::from_secs(366 * 86_400)))
    {
        None => None,
        Some(Ok(d)) => Some(d),
        Some(Err(m)) => return error(StatusCode::BAD_REQUEST, format!("until: {m}")),
    };
    let req = kri_agent::practice::AckRequest {
        tenant: &tenant.name,
        slug,
        note: text("note").unwrap_or_default(),
        by: text("by"),
        until,
        names: ["note", "by", "until"],
    };
    match kri_agent::practice::acknowledge(&app.store, req, now).await {
        Ok(a) => json_answer(StatusCode::CREATED, &serde_json::to_value(&a).unwrap_or_default()),
        Err(kri_agent::practice::AckRefused::Store(e)) => store_error(e),
        Err(e @ kri_agent::practice::AckRefused::Input { .. }) => error(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e) => error(StatusCode::CONFLICT, e.to_string()),
    }
}

async fn test(State(app): Shared, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    let (module, tenant) = match action(&app, &headers, &q) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    match app.scheduler.request_test(tenant.as_deref(), &module) {
        Ok((test_id, started)) => json_answer(
            StatusCode::ACCEPTED,
            &json!({
                "test_id": test_id, "run_id": test_id, "tenant": tenant, "module": module,
                "status": if started { "started" } else { "already_running" },
                "message": format!("GET /api/v1/test/{test_id} shows the result"),
            }),
        ),
        Err(r) => refusal(r),
    }
}

async fn test_result(State(app): Shared, Path(id): Path<String>) -> Response {
    match app.scheduler.test(&id) {
        Some(t) => json_answer(StatusCode::OK, &serde_json::to_value(t).unwrap_or_default()),
        None => error(
            StatusCode::NOT_FOUND,
            format!("no test `{id}` (the newest 50 are kept)"),
        ),
    }
}
