//! Fault injection: make the sandbox misbehave like a broken or hostile real server, so tests can
//! check that `kri` fails loudly (and leaks nothing) instead of counting a half answer as data.
//!
//! Rules are matched on the request path; the first matching rule with uses left decides the
//! fault. The layer is the outermost one of the whole router, so it covers TAP, EFD, CLEAR and
//! CTR alike, and sees the request exactly as the client sent it (Authorization, raw body).
//!
//! [`Recorder`] is a second tiny server standing for "another origin": a redirect target that
//! records what a client sent it and answers with data a correct client must never use.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, StreamExt};
use tokio::task::JoinHandle;

use crate::Shared;

/// How a matching request is mistreated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The real answer's status and headers (with its real Content-Length), then the connection
    /// closes before any body byte.
    CutBody,
    /// The real status and headers, the first half of the real body, then the connection closes.
    CutHalfway,
    /// The real status and headers reach the client, then the body never comes.
    StallBody,
    /// The request is accepted and never answered: no status line at all.
    Hang,
    /// This status with a short plain-text body (its reason phrase, e.g. "Service Unavailable").
    Status(u16),
    /// This status with a plain-text body echoing the whole request (method, path and query,
    /// every header including Authorization, the raw body), as a debugging proxy would.
    Echo(u16),
    /// A redirect (301/302/307/308) to `to` (another origin, e.g. a [`Recorder`]) followed by
    /// the original path and query.
    Redirect { status: u16, to: String },
    /// 200, `Content-Type: application/json`, empty body (`Content-Length: 0`).
    EmptyOk,
    /// 204 without a body.
    NoContent,
    /// This status with this body as `Content-Type: application/json`.
    Body(u16, String),
}

/// A fault for the requests whose path starts with `path_prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultRule {
    pub path_prefix: String,
    pub fault: Fault,
    /// `Some(n)`: only the first `n` matching requests; `None`: every matching request.
    pub times: Option<u32>,
}

impl FaultRule {
    /// Every request under `path_prefix`.
    pub fn always(path_prefix: impl Into<String>, fault: Fault) -> Self {
        FaultRule {
            path_prefix: path_prefix.into(),
            fault,
            times: None,
        }
    }

    /// Only the first `times` requests under `path_prefix`; later ones get the real answer.
    pub fn first(times: u32, path_prefix: impl Into<String>, fault: Fault) -> Self {
        FaultRule {
            path_prefix: path_prefix.into(),
            fault,
            times: Some(times),
        }
    }

    /// Only the first request under `path_prefix`, for "fails once, then recovers".
    pub fn once(path_prefix: impl Into<String>, fault: Fault) -> Self {
        Self::first(1, path_prefix, fault)
    }
}

/// The rules in force; `times` counts down as rules are used.
pub(crate) struct Faults(Mutex<Vec<FaultRule>>);

impl Faults {
    pub(crate) fn new(rules: Vec<FaultRule>) -> Self {
        Faults(Mutex::new(rules))
    }

    pub(crate) fn replace(&self, rules: Vec<FaultRule>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = rules;
    }

    /// The fault for a request to `path`, using up one of its rule's uses.
    fn take(&self, path: &str) -> Option<Fault> {
        let mut rules = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let rule = rules
            .iter_mut()
            .find(|r| path.starts_with(&r.path_prefix) && r.times != Some(0))?;
        if let Some(n) = rule.times.as_mut() {
            *n -= 1;
        }
        Some(rule.fault.clone())
    }
}

/// Put in a faulted request's extensions: the fault layer has counted it, so the inner counters
/// (Basic auth, CTR) must not count it again when the real handler runs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Counted;

/// The outermost layer: pass the request through, or count it once and apply its fault.
pub(crate) async fn inject(State(s): State<Arc<Shared>>, mut req: Request, next: Next) -> Response {
    let Some(fault) = s.faults.take(req.uri().path()) else {
        return next.run(req).await;
    };
    crate::count_hit(&s, req.uri().path());
    req.extensions_mut().insert(Counted);
    match fault {
        Fault::CutBody | Fault::CutHalfway | Fault::StallBody => {
            let real = next.run(req).await;
            spoil_body(real, &fault).await
        }
        Fault::Hang => std::future::pending().await,
        Fault::Status(code) => {
            let status = status(code);
            let reason = status.canonical_reason().unwrap_or("Error");
            (status, [(header::CONTENT_TYPE, "text/plain")], reason).into_response()
        }
        Fault::Echo(code) => {
            let echo = echo(req).await;
            (status(code), [(header::CONTENT_TYPE, "text/plain")], echo).into_response()
        }
        Fault::Redirect { status: code, to } => redirect(code, &to, &req),
        Fault::EmptyOk => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CONTENT_LENGTH, "0"),
            ],
            Body::empty(),
        )
            .into_response(),
        Fault::NoContent => StatusCode::NO_CONTENT.into_response(),
        Fault::Body(code, body) => (status(code), [(header::CONTENT_TYPE, "application/json")], body).into_response(),
    }
}

/// A status from a test's number; an impossible one (below 100, above 999) becomes a 500.
fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// Keep the real status and headers (stating the real Content-Length, which hyper then holds
/// the body to), but replace the body with one that is cut or never comes.
async fn spoil_body(real: Response, fault: &Fault) -> Response {
    let (mut parts, body) = real.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    let body = match fault {
        Fault::CutHalfway => {
            let half = bytes.slice(..bytes.len() / 2);
            Body::from_stream(stream::iter([Ok(half)]).chain(stream::once(flush_then_fail())))
        }
        Fault::StallBody => Body::from_stream(stream::pending::<io::Result<Bytes>>()),
        _ => Body::from_stream(stream::once(flush_then_fail())),
    };
    Response::from_parts(parts, body)
}

/// A body error, after one turn of the executor. hyper buffers the head (and any chunk) and
/// flushes it only when the body is pending; an error on the first poll would close the
/// connection with the head still unsent, and the client would never see the real status.
/// On the error hyper aborts the connection, short of the Content-Length it announced.
async fn flush_then_fail() -> io::Result<Bytes> {
    tokio::task::yield_now().await;
    Err(io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "sandbox fault: body cut",
    ))
}

/// The whole request as text: request line, every header verbatim, a blank line, the raw body.
async fn echo(req: Request) -> String {
    let (parts, body) = req.into_parts();
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut out = format!("{} {} {:?}\n", parts.method, target, parts.version);
    for (name, value) in &parts.headers {
        out.push_str(&format!("{name}: {}\n", String::from_utf8_lossy(value.as_bytes())));
    }
    out.push('\n');
    match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => out.push_str(&String::from_utf8_lossy(&b)),
        Err(e) => out.push_str(&format!("<body unreadable: {e}>")),
    }
    out
}

/// `Location` = `to` (without a trailing slash) + the original path and query.
fn redirect(code: u16, to: &str, req: &Request) -> Response {
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let location = format!("{}{target}", to.trim_end_matches('/'));
    match HeaderValue::from_str(&location) {
        Ok(location) => (status(code), [(header::LOCATION, location)]).into_response(),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "sandbox fault: invalid redirect target",
        )
            .into_response(),
    }
}

/// One request as a [`Recorder`] received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    /// Path and query, e.g. `/v2/siem/all?sinceSeconds=3600`.
    pub path: String,
    /// Every header, names lower-case, values as sent.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl RecordedRequest {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A token a hostile origin hands out; a correct client never asks it for one.
pub const EVIL_TOKEN: &str = "evil-token-from-another-origin";

/// "Another origin" on 127.0.0.1: records every request, answers any POST with an OAuth token
/// and any GET with a SIEM answer holding one delivered message, which a correct client (one
/// that does not follow redirects off its base URL) must never count. Dropping it stops it.
pub struct Recorder {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<RecordedRequest>>>,
    task: JoinHandle<()>,
}

impl Recorder {
    /// Serve on 127.0.0.1 at a free port.
    pub async fn start() -> io::Result<Recorder> {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let app = Router::new().fallback(record).with_state(requests.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!("recorder stopped: {e}");
            }
        });
        Ok(Recorder { addr, requests, task })
    }

    /// `http://127.0.0.1:PORT`, e.g. the `to` of a [`Fault::Redirect`].
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.requests.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// How many requests it received.
    pub fn count(&self) -> usize {
        self.requests.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record(State(log): State<Arc<Mutex<Vec<RecordedRequest>>>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) => format!("<body unreadable: {e}>"),
    };
    let method = parts.method.clone();
    log.lock().unwrap_or_else(|p| p.into_inner()).push(RecordedRequest {
        method: parts.method.to_string(),
        path: parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned(),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| (n.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect(),
        body,
    });
    if method == Method::POST {
        axum::Json(serde_json::json!({
            "access_token": EVIL_TOKEN, "token_type": "bearer", "expires_in": 3600
        }))
        .into_response()
    } else if method == Method::GET {
        axum::Json(serde_json::json!({
            "queryEndTime": "2026-01-01T00:00:00Z",
            "messagesDelivered": [{"id": "evil", "GUID": "evil"}],
            "messagesBlocked": [], "clicksPermitted": [], "clicksBlocked": []
        }))
        .into_response()
    } else {
        (StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed").into_response()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::tap::base64;
    use crate::{DEMO_PRINCIPAL, DEMO_SECRET, Sandbox, Scenario};

    const SIEM: &str = "/v2/siem/all?sinceSeconds=3600";

    async fn sandbox(faults: Vec<FaultRule>) -> Sandbox {
        Sandbox::start(Scenario {
            faults,
            ..Default::default()
        })
        .await
        .unwrap()
    }

    /// A client that does not follow redirects, so tests see them.
    fn client() -> reqwest::Client {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    }

    fn get(sb: &Sandbox, path_and_query: &str) -> reqwest::RequestBuilder {
        client()
            .get(format!("{}{path_and_query}", sb.base_url()))
            .basic_auth(DEMO_PRINCIPAL, Some(DEMO_SECRET))
    }

    /// Send and read the whole answer, whatever becomes of it.
    async fn drain(request: reqwest::RequestBuilder) {
        if let Ok(r) = request.send().await {
            let _ = r.bytes().await;
        }
    }

    // Multi-threaded, as in the end-to-end tests: the head must still get out first.
    #[tokio::test(flavor = "multi_thread")]
    async fn cut_body_sends_the_real_head_then_closes_before_any_byte() {
        let sb = sandbox(vec![]).await;
        let real_len = get(&sb, SIEM).send().await.unwrap().bytes().await.unwrap().len();
        sb.set_faults(vec![FaultRule::always("/v2/siem/all", Fault::CutBody)]);
        let r = get(&sb, SIEM).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.content_length(), Some(real_len as u64));
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
        assert!(r.bytes().await.is_err());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn cut_halfway_sends_half_the_body_then_closes() {
        let sb = sandbox(vec![]).await;
        let real = get(&sb, SIEM).send().await.unwrap().bytes().await.unwrap();
        sb.set_faults(vec![FaultRule::always("/v2/siem/all", Fault::CutHalfway)]);
        let mut r = get(&sb, SIEM).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let announced = r.content_length().unwrap();
        let mut got = Vec::new();
        let err = loop {
            match r.chunk().await {
                Ok(Some(c)) => got.extend_from_slice(&c),
                Ok(None) => panic!("the body ended normally after {} bytes", got.len()),
                Err(e) => break e,
            }
        };
        assert!(err.is_body() || err.is_decode(), "{err:?}");
        assert_eq!(announced, real.len() as u64);
        assert_eq!(got, real[..real.len() / 2]);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn stall_body_sends_the_head_then_never_the_body() {
        let sb = sandbox(vec![FaultRule::always("/v2/", Fault::StallBody)]).await;
        let r = tokio::time::timeout(Duration::from_secs(2), get(&sb, "/v2/efd/dmarc/domains").send())
            .await
            .expect("the head arrives promptly")
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.content_length().is_some_and(|n| n > 0));
        assert!(
            tokio::time::timeout(Duration::from_millis(500), r.bytes())
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn hang_never_answers() {
        let sb = sandbox(vec![FaultRule::always("/", Fault::Hang)]).await;
        let sent = tokio::time::timeout(Duration::from_millis(500), get(&sb, SIEM).send()).await;
        assert!(sent.is_err(), "{sent:?}");
        assert_eq!(sb.hits("/v2/siem/all"), 1);
    }

    #[tokio::test]
    async fn status_body_empty_ok_and_no_content_answer_as_told() {
        let sb = sandbox(vec![
            FaultRule::always("/v2/siem", Fault::Status(503)),
            FaultRule::always("/v2/people", Fault::EmptyOk),
            FaultRule::always("/v2/efd", Fault::NoContent),
            FaultRule::always("/v2/clear", Fault::Body(200, "{\"totalReports\": \"many\"}".into())),
        ])
        .await;
        let r = get(&sb, SIEM).send().await.unwrap();
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "text/plain");
        assert_eq!(r.text().await.unwrap(), "Service Unavailable");

        let r = get(&sb, "/v2/people/vap?window=30").send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(r.headers()[header::CONTENT_LENGTH], "0");
        assert!(r.bytes().await.unwrap().is_empty());

        let r = get(&sb, "/v2/efd/dmarc/domains").send().await.unwrap();
        assert_eq!(r.status(), 204);
        assert!(r.bytes().await.unwrap().is_empty());

        let r = get(&sb, "/v2/clear/reports/summary").send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(r.text().await.unwrap(), "{\"totalReports\": \"many\"}");
    }

    #[tokio::test]
    async fn echo_shows_the_authorization_header_and_the_form_body() {
        let sb = sandbox(vec![FaultRule::always("/", Fault::Echo(400))]).await;
        let r = get(&sb, SIEM).send().await.unwrap();
        assert_eq!(r.status(), 400);
        let text = r.text().await.unwrap();
        assert!(text.starts_with(&format!("GET {SIEM} HTTP/1.1\n")), "{text}");
        let basic = format!("authorization: Basic {}\n", base64(&sb.credentials()));
        assert!(text.contains(&basic), "{text}");

        let r = client()
            .post(format!("{}/v1/token", sb.base_url()))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", crate::ctr::DEMO_CLIENT_ID),
                ("client_secret", crate::ctr::DEMO_CLIENT_SECRET),
            ])
            .send()
            .await
            .unwrap();
        let text = r.text().await.unwrap();
        assert!(text.starts_with("POST /v1/token HTTP/1.1\n"), "{text}");
        assert!(
            text.contains("content-type: application/x-www-form-urlencoded\n"),
            "{text}"
        );
        assert!(
            text.ends_with("\n\ngrant_type=client_credentials&client_id=demo-ctr-client&client_secret=demo-ctr-secret"),
            "{text}"
        );
        assert_eq!(sb.hits("/v1/token"), 1);
    }

    #[tokio::test]
    async fn redirect_points_at_the_other_origin_with_path_and_query() {
        let sb = sandbox(vec![
            FaultRule::always(
                "/v1/token",
                Fault::Redirect {
                    status: 307,
                    to: "http://127.0.0.1:9".into(),
                },
            ),
            FaultRule::always(
                "/v2/",
                Fault::Redirect {
                    status: 302,
                    to: "http://127.0.0.1:9/".into(),
                },
            ),
        ])
        .await;
        let r = get(&sb, SIEM).send().await.unwrap();
        assert_eq!(r.status(), 302);
        assert_eq!(r.headers()[header::LOCATION], format!("http://127.0.0.1:9{SIEM}"));
        let r = client()
            .post(format!("{}/v1/token?x=1", sb.base_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 307);
        assert_eq!(r.headers()[header::LOCATION], "http://127.0.0.1:9/v1/token?x=1");
    }

    #[tokio::test]
    async fn times_limits_a_rule_to_the_first_n_and_the_first_match_wins() {
        let sb = sandbox(vec![
            FaultRule::first(2, "/v2/siem/all", Fault::Status(502)),
            FaultRule::first(1, "/v2/siem", Fault::Status(504)),
            FaultRule::always("/v2/people", Fault::Status(500)),
        ])
        .await;
        let mut statuses = Vec::new();
        for _ in 0..5 {
            statuses.push(get(&sb, SIEM).send().await.unwrap().status().as_u16());
        }
        assert_eq!(statuses, [502, 502, 504, 200, 200]);
        assert_eq!(sb.hits("/v2/siem/all"), 5);
    }

    #[tokio::test]
    async fn set_faults_replaces_the_rules_at_run_time() {
        let sb = sandbox(vec![FaultRule::always("/v2/", Fault::Status(503))]).await;
        assert_eq!(get(&sb, SIEM).send().await.unwrap().status(), 503);
        sb.set_faults(vec![FaultRule::once("/v2/people", Fault::Status(429))]);
        assert_eq!(get(&sb, SIEM).send().await.unwrap().status(), 200);
        let vap = "/v2/people/vap?window=30";
        assert_eq!(get(&sb, vap).send().await.unwrap().status(), 429);
        assert_eq!(get(&sb, vap).send().await.unwrap().status(), 200);
        sb.set_faults(vec![]);
        assert_eq!(get(&sb, SIEM).send().await.unwrap().status(), 200);
        assert_eq!(sb.all_hits().get("/v2/siem/all"), Some(&3));
        assert_eq!(sb.total_hits(), 5);
    }

    #[tokio::test]
    async fn every_request_is_counted_once_faulted_or_not() {
        let sb = sandbox(vec![
            FaultRule::first(1, "/v2/siem/all", Fault::CutBody),
            FaultRule::first(1, "/v2/siem/all", Fault::CutHalfway),
            FaultRule::first(1, "/v2/siem/all", Fault::Status(503)),
            FaultRule::first(1, "/v2/siem/all", Fault::CutBody),
            FaultRule::first(1, "/v1/token", Fault::CutBody),
            FaultRule::first(1, "/api/v1/tric/incidents", Fault::CutHalfway),
            FaultRule::first(1, "/api/v1/tric/incidents", Fault::NoContent),
            FaultRule::first(1, "/nowhere", Fault::CutBody),
        ])
        .await;
        for _ in 0..3 {
            drain(get(&sb, SIEM)).await;
        }
        // Wrong credentials: still counted once, faulted (the real 401 head, then cut) or not.
        for _ in 0..2 {
            let wrong = client()
                .get(format!("{}{SIEM}", sb.base_url()))
                .basic_auth(DEMO_PRINCIPAL, Some("nope"));
            drain(wrong).await;
        }
        drain(get(&sb, SIEM)).await;
        let token = || {
            client().post(format!("{}/v1/token", sb.base_url())).form(&[
                ("grant_type", "client_credentials"),
                ("client_id", crate::ctr::DEMO_CLIENT_ID),
                ("client_secret", crate::ctr::DEMO_CLIENT_SECRET),
            ])
        };
        assert!(token().send().await.unwrap().bytes().await.is_err());
        let t: serde_json::Value = token().send().await.unwrap().json().await.unwrap();
        let t = t["access_token"].as_str().unwrap().to_owned();
        for _ in 0..3 {
            let list = client()
                .post(format!("{}/api/v1/tric/incidents", sb.base_url()))
                .bearer_auth(&t)
                .json(&serde_json::json!({"endRow": 1}));
            drain(list).await;
        }
        for _ in 0..2 {
            drain(get(&sb, "/nowhere")).await;
        }
        let expected = [
            ("/api/v1/tric/incidents", 3),
            ("/nowhere", 2),
            ("/v1/token", 2),
            ("/v2/siem/all", 6),
        ];
        assert_eq!(sb.all_hits(), expected.map(|(p, n)| (p.to_owned(), n)).into());
        assert_eq!(sb.total_hits(), 13);
    }

    #[tokio::test]
    async fn a_redirect_to_the_recorder_is_recorded_and_answered() {
        let other = Recorder::start().await.unwrap();
        let sb = sandbox(vec![FaultRule::always(
            "/",
            Fault::Redirect {
                status: 307,
                to: other.base_url(),
            },
        )])
        .await;
        // A (careless) client that follows redirects: it is answered by the other origin.
        let follows = reqwest::Client::new();
        let r = follows
            .get(format!("{}{SIEM}", sb.base_url()))
            .header(header::AUTHORIZATION, "Basic c2VjcmV0")
            .send()
            .await
            .unwrap();
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["messagesDelivered"][0]["GUID"], "evil");
        let r = follows
            .post(format!("{}/v1/token", sb.base_url()))
            .form(&[("client_secret", "s3cret")])
            .send()
            .await
            .unwrap();
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["access_token"], EVIL_TOKEN);

        assert_eq!(other.count(), 2);
        let got = other.requests();
        assert_eq!((got[0].method.as_str(), got[0].path.as_str()), ("GET", SIEM));
        assert_eq!(got[1].method, "POST");
        assert_eq!(got[1].path, "/v1/token");
        assert_eq!(got[1].body, "client_secret=s3cret");
        assert_eq!(got[1].header("Content-Type"), Some("application/x-www-form-urlencoded"));
        assert_eq!(sb.total_hits(), 2);
    }
}
