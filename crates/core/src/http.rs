//! The HTTP layer every connector shares: auth, time-outs, bounded retries of transient
//! failures, redirects kept to the configured origin, every request admitted and counted by its
//! pool's [`Budget`], and typed errors that keep status, endpoint and a short, scrubbed excerpt.

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Response, StatusCode, Url};
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use crate::auth::{Auth, Outgoing};
use crate::budget::{Budget, Pool};
use crate::error::HttpError;
use crate::secret::scrub;

/// An HTTP method (the ones the connectors use).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

impl Method {
    fn as_reqwest(self) -> reqwest::Method {
        match self {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Method::Get => "GET",
            Method::Post => "POST",
        })
    }
}

/// One request, relative to the client's base URL: method, path, query, body.
#[derive(Debug, Clone)]
pub struct Request {
    method: Method,
    path: String,
    query: Vec<(String, String)>,
    body: Payload,
    /// The most bytes of an answer read whole ([`HttpClient::call_json`]).
    max_answer: usize,
    /// Extra headers (an `Idempotency-Key`).
    headers: Vec<(String, String)>,
}

/// The most an answer read whole may hold, unless its request says less: a JSON answer, not a
/// stream. Over it, the answer is an error, found while reading (memory stays bounded whatever
/// the server sends, endless bodies included).
pub const MAX_ANSWER_BYTES: usize = 8 * 1024 * 1024;

#[derive(Debug, Clone)]
enum Payload {
    None,
    Json(serde_json::Value),
    Form(Vec<(String, String)>),
    /// A body as it is, with its content type (a receiver's own batch format).
    Text(String, &'static str),
}

impl Request {
    pub fn get(path: impl Into<String>) -> Self {
        Self::new(Method::Get, path)
    }

    pub fn post(path: impl Into<String>) -> Self {
        Self::new(Method::Post, path)
    }

    pub fn new(method: Method, path: impl Into<String>) -> Self {
        Self {
            method,
            path: path.into(),
            query: Vec::new(),
            body: Payload::None,
            max_answer: MAX_ANSWER_BYTES,
            headers: Vec::new(),
        }
    }

    /// An extra header (never a credential: those are the client's [`Auth`]'s).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Read at most `bytes` of the answer (less than [`MAX_ANSWER_BYTES`] for small answers,
    /// such as a token).
    pub fn max_answer(mut self, bytes: usize) -> Self {
        self.max_answer = bytes;
        self
    }

    /// Add query parameters.
    pub fn query(mut self, pairs: &[(&str, &str)]) -> Self {
        self.query
            .extend(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        self
    }

    /// A JSON body.
    pub fn json(mut self, body: serde_json::Value) -> Self {
        self.body = Payload::Json(body);
        self
    }

    /// A form body (`application/x-www-form-urlencoded`).
    /// A body sent as it is, with `content_type`.
    pub fn text(mut self, body: String, content_type: &'static str) -> Self {
        self.body = Payload::Text(body, content_type);
        self
    }

    pub fn form(mut self, pairs: &[(&str, &str)]) -> Self {
        self.body = Payload::Form(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect());
        self
    }

    /// `METHOD /path`, as errors name it (no host, no query).
    pub fn endpoint(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// An answer whose body the caller reads as a stream (a large event export). Its outcome must be
/// passed to [`HttpClient::settle`].
pub struct Answer {
    response: reqwest::Response,
    endpoint: String,
    timeout_secs: u64,
}

impl Answer {
    /// The server said "nothing" (HTTP 204).
    pub fn is_no_content(&self) -> bool {
        self.response.status() == StatusCode::NO_CONTENT
    }

    /// The body, chunk by chunk. A chunk error is a cut or stalled answer, never its end.
    pub fn into_stream(self) -> impl futures_util::Stream<Item = Result<bytes::Bytes, HttpError>> + Send {
        use futures_util::StreamExt;
        let (endpoint, timeout_secs) = (self.endpoint, self.timeout_secs);
        self.response
            .bytes_stream()
            .map(move |chunk| chunk.map_err(|e| body_error(&endpoint, timeout_secs, e)))
    }
}

/// Time-outs and retry policy.
#[derive(Clone, Debug)]
pub struct HttpOptions {
    /// Whole-request time-out (connect + answer headers + body).
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Extra attempts after a transient failure (5xx, time-out, connection error).
    pub retries: u32,
    /// First back-off; doubles each attempt, with ±50 % jitter.
    pub backoff: Duration,
    /// No retry starts later than this after the first attempt: retries are bounded in count
    /// AND in time.
    pub retry_window: Duration,
    /// First wait after a 429 on a pool without a daily limit (a per-minute limit clears in
    /// seconds); doubles each attempt, with jitter. A pool with a daily limit stops instead.
    pub throttled_backoff: Duration,
    /// Where requests go (`proxy`) and what they trust besides the system's roots (`ca_file`).
    pub network: Network,
}

/// The framework keys `proxy` and `ca_file` of a connector (or sink).
#[derive(Clone, Debug, Default)]
pub struct Network {
    pub proxy: Proxy,
    /// Extra trusted CA certificates: a network that inspects TLS with its own CA. Added to the
    /// system's roots, never replacing them; there is no switch that trusts anything.
    pub ca: Option<CaFile>,
}

/// Through which proxy requests go.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub enum Proxy {
    /// `HTTPS_PROXY` / `HTTP_PROXY` / `ALL_PROXY` and `NO_PROXY` from the environment (either
    /// case), as curl reads them; none set: direct.
    #[default]
    Environment,
    /// `proxy = "none"`: direct, whatever the environment says.
    Direct,
    /// `proxy = "http://[user:password@]host:port"`: every request through it. Its password is
    /// known to the scrubber and never shown.
    Url(String),
}

impl Proxy {
    /// Read a `proxy` value: `none`, or an `http://` / `https://` URL with a host.
    pub fn parse(text: &str) -> Result<Proxy, String> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("none") {
            return Ok(Proxy::Direct);
        }
        let shown = crate::text::visible(&redact_userinfo(text)).into_owned();
        let url = Url::parse(text).map_err(|e| {
            format!("`{shown}` is not a proxy URL ({e}): write it like http://proxy.example:3128, or \"none\"")
        })?;
        match url.scheme() {
            "http" | "https" => {}
            other => {
                return Err(format!(
                    "`{shown}`: a {other}:// proxy is not supported; kri speaks to HTTP proxies (http:// or \
                     https://, with CONNECT for HTTPS)"
                ));
            }
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(format!("`{shown}` names no proxy host"));
        }
        if let Some(password) = url.password() {
            crate::secret::register(password);
            if let Ok(decoded) = percent_encoding::percent_decode_str(password).decode_utf8() {
                crate::secret::register(&decoded);
            }
        }
        Ok(Proxy::Url(text.to_owned()))
    }
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Proxy::Environment => f.write_str("Environment"),
            Proxy::Direct => f.write_str("Direct"),
            Proxy::Url(u) => write!(f, "Url({})", redact_userinfo(u)),
        }
    }
}

impl std::fmt::Display for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Proxy::Environment => f.write_str("from the environment"),
            Proxy::Direct => f.write_str("none"),
            Proxy::Url(u) => f.write_str(&redact_userinfo(u)),
        }
    }
}

/// `scheme://user:***@host…`: a URL's password never shows.
fn redact_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => {
            let user = rest[..at].split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{}", &rest[at + 1..])
        }
        None => url.to_owned(),
    }
}

/// The certificates of a `ca_file`, with the file they came from.
#[derive(Clone)]
pub struct CaFile {
    pub path: std::path::PathBuf,
    pub certs: Arc<Vec<rustls::pki_types::CertificateDer<'static>>>,
}

impl CaFile {
    /// Read `path` (PEM); the error names the file and what is wrong, never its content.
    pub fn read(path: &std::path::Path) -> Result<CaFile, String> {
        Ok(CaFile {
            path: path.to_owned(),
            certs: Arc::new(crate::tls::read_ca_file(path)?),
        })
    }
}

impl std::fmt::Debug for CaFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CaFile({}, {} certificates)", self.path.display(), self.certs.len())
    }
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            retries: 2,
            backoff: Duration::from_millis(500),
            retry_window: Duration::from_secs(120),
            throttled_backoff: Duration::from_secs(20),
            network: Network::default(),
        }
    }
}

/// Same-origin redirect hops followed for one request.
const MAX_REDIRECTS: u32 = 5;

/// A client bound to one API origin and one auth strategy. [`HttpClient::metered`] binds it to
/// a run's [`Budget`] and a pool: every request it sends is then admitted and counted there.
#[derive(Clone, Debug)]
pub struct HttpClient {
    client: reqwest::Client,
    base: String,
    /// `scheme://host:port` of `base`: the only origin credentials are ever sent to.
    origin: String,
    auth: Arc<dyn Auth>,
    opts: HttpOptions,
    meter: Option<(Budget, Pool)>,
    /// The config key the address came from (`proofpoint.base_url`), for network errors.
    origin_key: Option<String>,
}

/// One reqwest client per set of time-outs and network settings, shared by every `HttpClient`
/// of the process. Building one loads the TLS roots (milliseconds each: a thousand tenants'
/// connectors would take seconds to load), and a shared one keeps its connections to an API
/// host alive across tenants. Credentials are per request, never per client, so sharing is
/// safe.
fn shared_client(opts: &HttpOptions) -> Result<reqwest::Client, String> {
    type Key = (Duration, Duration, Proxy, Option<std::path::PathBuf>);
    static CLIENTS: std::sync::OnceLock<std::sync::Mutex<std::collections::HashMap<Key, reqwest::Client>>> =
        std::sync::OnceLock::new();
    let network = &opts.network;
    let key: Key = (
        opts.timeout,
        opts.connect_timeout,
        network.proxy.clone(),
        network.ca.as_ref().map(|c| c.path.clone()),
    );
    let mut clients = CLIENTS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(c) = clients.get(&key) {
        return Ok(c.clone());
    }
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("kri/", env!("CARGO_PKG_VERSION")))
        .timeout(opts.timeout)
        .connect_timeout(opts.connect_timeout)
        // Redirects are followed by `send`, same origin only: a 307 to another host would
        // otherwise carry the form body (a client secret) there.
        .redirect(reqwest::redirect::Policy::none());
    builder = match &network.proxy {
        Proxy::Environment => builder,
        Proxy::Direct => builder.no_proxy(),
        Proxy::Url(url) => builder.proxy(
            reqwest::Proxy::all(url.as_str())
                .map_err(|e| format!("proxy {}: {}", network.proxy, scrub(&e.to_string())))?,
        ),
    };
    if let Some(ca) = &network.ca {
        let certs = ca
            .certs
            .iter()
            .map(|der| reqwest::Certificate::from_der(der))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("ca_file `{}`: {e}", ca.path.display()))?;
        builder = builder.tls_certs_merge(certs);
    }
    let client = builder
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {}", scrub(&error_chain(&e))))?;
    clients.insert(key, client.clone());
    Ok(client)
}

/// Longest body excerpt kept in an error.
const EXCERPT_CHARS: usize = 200;
/// Most of an error body read to find the excerpt (a hostile server may send gigabytes).
const ERROR_BODY_BYTES: usize = 64 * 1024;

impl HttpClient {
    pub fn new(base_url: &str, auth: Arc<dyn Auth>, opts: HttpOptions) -> Result<Self, String> {
        let base = base_url.trim().trim_end_matches('/').to_owned();
        let parsed =
            Url::parse(&base).map_err(|e| format!("`{base}` is not a valid URL ({e}); write it like https://host"))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(format!(
                "`{base}` must start with https:// (or http:// for a local test server)"
            ));
        }
        let client = shared_client(&opts)?;
        Ok(Self {
            client,
            base,
            origin: parsed.origin().ascii_serialization(),
            auth,
            opts,
            meter: None,
            origin_key: None,
        })
    }

    /// The same client, its network errors naming `key` as where its address is set.
    pub fn from_key(self, key: impl Into<String>) -> Self {
        Self {
            origin_key: Some(key.into()),
            ..self
        }
    }

    /// The same client, admitting and counting every request it sends in `pool` of `budget`
    /// (one budget per connector run).
    pub fn metered(&self, budget: &Budget, pool: Pool) -> Self {
        Self {
            meter: Some((budget.clone(), pool)),
            ..self.clone()
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// GET `path` and decode the JSON answer (a 204 reads as JSON `null`; an empty 200 is an error).
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str, query: &[(&str, &str)]) -> Result<T, HttpError> {
        self.call_json(Request::get(path).query(query)).await
    }

    /// Send `request` and decode its JSON answer, like [`HttpClient::get_json`].
    pub async fn call_json<T: DeserializeOwned>(&self, request: Request) -> Result<T, HttpError> {
        let endpoint = request.endpoint();
        let result = match self.send_raw(&request).await {
            Ok(resp) => self.decode_json(&endpoint, resp, request.max_answer).await,
            Err(e) => Err(e),
        };
        self.settle(result)
    }

    /// Send `request` and hand back the answer to read as a stream. The caller reads the body
    /// and MUST pass the outcome of reading it to [`HttpClient::settle`] (errors of the request
    /// itself are settled here).
    pub async fn stream(&self, request: Request) -> Result<Answer, HttpError> {
        match self.send_raw(&request).await {
            Ok(response) => Ok(Answer {
                response,
                endpoint: request.endpoint(),
                timeout_secs: self.opts.timeout.as_secs(),
            }),
            Err(e) => self.settle(Err(e)),
        }
    }

    /// Tell the pool's circuit breaker how a call ended (see [`Budget::settle`]).
    pub fn settle<T>(&self, result: Result<T, HttpError>) -> Result<T, HttpError> {
        match &self.meter {
            Some((budget, pool)) => budget.settle(pool, result),
            None => result,
        }
    }

    /// One logical call: attempts (retries of transient failures, bounded in count and time;
    /// waits after a 429 on a pool without a daily limit), same-origin redirect hops and one
    /// refresh of the credentials after a 401, each attempt admitted by the pool.
    async fn send_raw(&self, request: &Request) -> Result<Response, HttpError> {
        let endpoint = request.endpoint();
        let first_url = format!("{}{}", self.base, request.path);
        let started = Instant::now();
        let mut redirected: Option<Url> = None;
        let (mut attempt, mut hops, mut refreshed) = (0, 0, false);
        loop {
            if let Some((budget, pool)) = &self.meter {
                budget.admit(pool, &endpoint).await?;
            }
            let result = match self.build(request, &first_url, redirected.as_ref()).await {
                Ok(req) => match self.client.execute(req).await {
                    Ok(resp) => self.check(&endpoint, resp).await,
                    Err(e) => Err(self.transport_error(&endpoint, e)),
                },
                Err(e) => Err(e),
            };
            match result {
                Ok(Attempt::Redirect(to)) => {
                    hops += 1;
                    if hops > MAX_REDIRECTS {
                        return Err(HttpError::Transport {
                            endpoint,
                            detail: format!("more than {MAX_REDIRECTS} redirects"),
                        });
                    }
                    tracing::debug!(%endpoint, to = %to.path(), "following a same-origin redirect");
                    redirected = Some(to);
                }
                Ok(Attempt::Final(resp)) => return Ok(resp),
                Err(HttpError::Unauthorized { .. }) if !refreshed && self.auth.refresh().await => {
                    // Cached credentials (a token) may have been revoked or expired early: once.
                    refreshed = true;
                    tracing::debug!(%endpoint, "401 with cached credentials, refreshing them once");
                }
                Err(e) if attempt < self.opts.retries && self.worth_retrying(&e) => {
                    let wait = match e {
                        HttpError::Throttled { .. } => backoff(self.opts.throttled_backoff, attempt),
                        _ => backoff(self.opts.backoff, attempt),
                    };
                    let stopped = self.meter.as_ref().is_some_and(|(b, p)| b.is_stopped(p));
                    if stopped || started.elapsed() + wait > self.opts.retry_window {
                        return Err(e);
                    }
                    // One line per request at the default level; every further attempt under -v.
                    if attempt == 0 {
                        tracing::warn!("{endpoint} failed, retrying: {e}");
                    } else {
                        tracing::debug!(%endpoint, error = %e, retry_in_ms = wait.as_millis() as u64, "retrying");
                    }
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Transient failures are worth another try; so is a 429 on a pool that limits per minute
    /// (not on a pool with a daily limit: that stays throttled for hours).
    fn worth_retrying(&self, e: &HttpError) -> bool {
        match e {
            HttpError::Throttled { .. } => self.meter.as_ref().is_some_and(|(_, p)| p.limit.is_none()),
            other => other.is_transient(),
        }
    }

    /// One attempt's request: method, URL (or the redirect's), query, body, then credentials.
    async fn build(
        &self,
        request: &Request,
        url: &str,
        redirected: Option<&Url>,
    ) -> Result<reqwest::Request, HttpError> {
        let mut builder = self.client.request(request.method.as_reqwest(), url);
        if !request.query.is_empty() {
            builder = builder.query(&request.query);
        }
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        builder = match &request.body {
            Payload::None => builder,
            Payload::Json(v) => builder.json(v),
            Payload::Form(f) => builder.form(f),
            Payload::Text(body, content_type) => builder
                .header(reqwest::header::CONTENT_TYPE, *content_type)
                .body(body.clone()),
        };
        let mut req = builder
            .build()
            .map_err(|e| self.transport_error(&request.endpoint(), e))?;
        if let Some(to) = redirected {
            *req.url_mut() = to.clone();
        }
        let budget = self.meter.as_ref().map(|(b, _)| b);
        self.auth.apply(&mut Outgoing { request: &mut req }, budget).await?;
        Ok(req)
    }

    async fn check(&self, endpoint: &str, resp: Response) -> Result<Attempt, HttpError> {
        let status = resp.status();
        tracing::debug!(%endpoint, status = status.as_u16(), "answer");
        if status.is_success() {
            return Ok(Attempt::Final(resp));
        }
        let endpoint = endpoint.to_owned();
        if matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308) {
            return self.redirect(endpoint, status.as_u16(), &resp).map(Attempt::Redirect);
        }
        if status == StatusCode::UNAUTHORIZED {
            return Err(HttpError::Unauthorized {
                endpoint,
                hint: self.auth.unauthorized_hint(),
            });
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(HttpError::Throttled {
                endpoint,
                detail: crate::error::THROTTLED.into(),
            });
        }
        let excerpt = excerpt(resp).await;
        Err(match status.as_u16() {
            400 => HttpError::BadRequest { endpoint, excerpt },
            403 => HttpError::Forbidden {
                endpoint,
                hint: self.auth.forbidden_hint(),
                excerpt,
            },
            404 => HttpError::NotFound { endpoint, excerpt },
            s => HttpError::Status {
                endpoint,
                status: s,
                excerpt,
            },
        })
    }

    /// Where a redirect points, when it stays on the configured origin; refused otherwise.
    fn redirect(&self, endpoint: String, status: u16, resp: &Response) -> Result<Url, HttpError> {
        let location = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|l| resp.url().join(l).ok());
        match location {
            Some(to) if to.origin().ascii_serialization() == self.origin => Ok(to),
            Some(to) => Err(HttpError::Redirect {
                endpoint,
                status,
                from: self.origin.clone(),
                to: scrub(&to.origin().ascii_serialization()),
            }),
            None => Err(HttpError::Redirect {
                endpoint,
                status,
                from: self.origin.clone(),
                to: "an address kri cannot read (no valid Location header)".into(),
            }),
        }
    }

    /// Decode a JSON answer. A 204 is the server saying "nothing": it decodes as JSON `null`, so
    /// only types that accept null (an `Option`, a `Value`) read it as empty. A 200 whose body
    /// is empty, cut off or stalled is an error, never an empty answer.
    async fn decode_json<T: DeserializeOwned>(
        &self,
        endpoint: &str,
        mut resp: Response,
        cap: usize,
    ) -> Result<T, HttpError> {
        let status = resp.status();
        let too_big = || HttpError::Decode {
            endpoint: endpoint.to_owned(),
            detail: format!(
                "the answer is larger than {}, the most kri reads of an answer of this kind; nothing was counted from it",
                size(cap)
            ),
        };
        if resp.content_length().is_some_and(|n| n > cap as u64) {
            return Err(too_big());
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| body_error(endpoint, self.opts.timeout.as_secs(), e))?
        {
            if bytes.len() + chunk.len() > cap {
                return Err(too_big());
            }
            bytes.extend_from_slice(&chunk);
        }
        if status == StatusCode::NO_CONTENT {
            return serde_json::from_slice(b"null").map_err(|_| HttpError::Decode {
                endpoint: endpoint.to_owned(),
                detail: "the API answered 204 No Content where an answer was expected".into(),
            });
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(HttpError::Decode {
                endpoint: endpoint.to_owned(),
                detail: format!(
                    "the answer was empty (HTTP {} without a body); nothing was counted from it",
                    status.as_u16()
                ),
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| HttpError::Decode {
            endpoint: endpoint.to_owned(),
            detail: format!(
                "{e} (the API may have changed; first bytes: {})",
                clip(&scrub(&String::from_utf8_lossy(
                    &bytes[..bytes.len().min(ERROR_BODY_BYTES)]
                )))
            ),
        })
    }

    fn transport_error(&self, endpoint: &str, e: reqwest::Error) -> HttpError {
        let endpoint = endpoint.to_owned();
        if e.is_timeout() {
            return HttpError::Timeout {
                endpoint,
                seconds: self.opts.timeout.as_secs(),
            };
        }
        let chain = scrub(&error_chain(&e.without_url()));
        let host = Url::parse(&self.origin)
            .ok()
            .and_then(|u| {
                let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
                u.host_str().map(|h| format!("{h}{port}"))
            })
            .unwrap_or_default();
        let set_in = match &self.origin_key {
            Some(key) => format!(" (the address is {key})"),
            None => String::new(),
        };
        let lower = chain.to_ascii_lowercase();
        if lower.contains("dns error") || lower.contains("failed to lookup address") {
            return HttpError::Unreachable {
                endpoint,
                detail: format!(
                    "the host name `{host}`{set_in} does not resolve ({chain}): check the address for a typo, then \
                     this machine's DNS; behind a proxy, set proxy (or HTTPS_PROXY)"
                ),
            };
        }
        if lower.contains("invalid peer certificate") || lower.contains("certificate") && lower.contains("tls") {
            return HttpError::Unreachable {
                endpoint,
                detail: format!(
                    "`{host}`{set_in} presented a certificate this machine does not trust ({chain}): if your network \
                     inspects TLS with its own CA, name that CA's PEM file with ca_file in the connector's table"
                ),
            };
        }
        HttpError::Transport {
            endpoint,
            detail: format!("`{host}`{set_in}: {chain}"),
        }
    }
}

/// What one attempt produced.
enum Attempt {
    Final(Response),
    Redirect(Url),
}

/// A failure while the body of an answer was arriving: a stall until the time-out, or a
/// connection closed before the answer was complete.
fn body_error(endpoint: &str, timeout_secs: u64, e: reqwest::Error) -> HttpError {
    if e.is_timeout() {
        return HttpError::Timeout {
            endpoint: endpoint.to_owned(),
            seconds: timeout_secs,
        };
    }
    HttpError::Cut {
        endpoint: endpoint.to_owned(),
        detail: scrub(&error_chain(&e.without_url())),
    }
}

/// `n` bytes for people: `16 MB`, `64 KB`, `100 bytes`.
fn size(n: usize) -> String {
    match n {
        n if n >= 1024 * 1024 && n % (1024 * 1024) == 0 => format!("{} MB", n / (1024 * 1024)),
        n if n >= 1024 && n % 1024 == 0 => format!("{} KB", n / 1024),
        n => format!("{n} bytes"),
    }
}

/// The start of an error body: at most [`ERROR_BODY_BYTES`] read, secrets scrubbed from the
/// whole of it, THEN clipped (a clipped secret could no longer be recognised).
async fn excerpt(mut resp: Response) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < ERROR_BODY_BYTES {
        match resp.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    bytes.truncate(ERROR_BODY_BYTES);
    clip(&scrub(String::from_utf8_lossy(&bytes).trim()))
}

/// One line, at most [`EXCERPT_CHARS`] characters. Scrub BEFORE clipping.
fn clip(text: &str) -> String {
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let one_line = scrub(&one_line);
    if one_line.chars().count() <= EXCERPT_CHARS {
        one_line
    } else {
        let cut: String = one_line.chars().take(EXCERPT_CHARS).collect();
        format!("{cut}…")
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// `base × 2^attempt`, scaled by a random factor in [0.5, 1.5) (the jitter that keeps many
/// clients from retrying in step); an HTTP retry's wait and a sink's.
pub fn backoff(base: Duration, attempt: u32) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let random = std::collections::hash_map::RandomState::new().build_hasher().finish();
    let factor = 0.5 + (random % 1000) as f64 / 1000.0;
    base.saturating_mul(1 << attempt.min(10)).mul_f64(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proxy_is_none_or_an_http_url_and_its_password_never_shows() {
        assert_eq!(Proxy::parse(" NONE ").unwrap(), Proxy::Direct);
        let p = Proxy::parse("http://kri:pr0xy-pw-4431@proxy.example:3128").unwrap();
        assert_eq!(
            format!("{p} | {p:?}"),
            "http://kri:***@proxy.example:3128 | Url(http://kri:***@proxy.example:3128)"
        );
        assert!(
            !scrub("proxy said pr0xy-pw-4431").contains("pr0xy-pw-4431"),
            "the scrubber knows it"
        );
        for (bad, says) in [
            ("socks5://kri:pr0xy-pw-4431@h:1080", "socks5:// proxy is not supported"),
            ("proxy.example:3128", "not supported"),
            ("not a url", "is not a proxy URL"),
            ("http://", "is not a proxy URL"),
        ] {
            let e = Proxy::parse(bad).unwrap_err();
            assert!(e.contains(says) && !e.contains("pr0xy-pw-4431"), "{bad}: {e}");
        }
    }

    #[test]
    fn backoff_doubles_with_jitter() {
        let b = Duration::from_millis(100);
        for attempt in 0..4 {
            let w = backoff(b, attempt);
            let nominal = 100.0 * f64::from(1u32 << attempt);
            assert!(w.as_millis() as f64 >= nominal * 0.5 && (w.as_millis() as f64) < nominal * 1.5);
        }
    }

    #[test]
    fn long_excerpts_are_clipped_to_one_line() {
        let long = "x ".repeat(500);
        let c = clip(&long);
        assert!(c.ends_with('…'));
        assert!(c.chars().count() <= EXCERPT_CHARS + 1);
        assert_eq!(clip("a\n  b"), "a b");
    }

    use crate::auth::{BasicAuth, BasicCredentials, NoAuth};
    use crate::budget::{Budget, Pool};
    use crate::secret::Secret;
    use httpmock::prelude::*;

    const POOL: Pool = Pool::unlimited("test");

    fn budget() -> Budget {
        let clock = crate::clock::ManualClock::new(crate::testing::fixed_now());
        Budget::new(crate::store::Store::in_memory().unwrap(), "t", Arc::new(clock))
    }

    fn fast() -> HttpOptions {
        HttpOptions {
            backoff: Duration::from_millis(1),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn an_empty_200_is_an_error_and_a_204_is_the_server_saying_nothing() {
        let server = MockServer::start_async().await;
        server
            .mock_async(|when, then| {
                when.path("/empty");
                then.status(200).header("content-type", "application/json");
            })
            .await;
        server
            .mock_async(|when, then| {
                when.path("/none");
                then.status(204);
            })
            .await;
        let http = HttpClient::new(&server.base_url(), Arc::new(NoAuth), fast()).unwrap();
        let e = http.get_json::<serde_json::Value>("/empty", &[]).await.unwrap_err();
        assert!(e.to_string().contains("the answer was empty"), "{e}");
        let v: Option<serde_json::Value> = http.get_json("/none", &[]).await.unwrap();
        assert_eq!(v, None);
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Needs {
            total: u64,
        }
        let e = http.get_json::<Needs>("/none", &[]).await.unwrap_err();
        assert!(
            e.to_string().contains("204 No Content where an answer was expected"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn every_attempt_is_admitted_and_counted_and_a_failing_pool_stops() {
        let server = MockServer::start_async().await;
        let m = server
            .mock_async(|when, then| {
                when.path("/x");
                then.status(503).body("Service Unavailable");
            })
            .await;
        let b = budget();
        let http = HttpClient::new(&server.base_url(), Arc::new(NoAuth), fast())
            .unwrap()
            .metered(&b, POOL);
        for _ in 0..5 {
            assert!(http.get_json::<serde_json::Value>("/x", &[]).await.is_err());
        }
        // 3 logical calls × (1 + 2 retries), then the pool is stopped: no more requests.
        m.assert_calls_async(9).await;
        assert_eq!(b.calls().get(), 9);
        assert_eq!(b.used_24h(&POOL).await.unwrap(), 9);
        let e = http.get_json::<serde_json::Value>("/x", &[]).await.unwrap_err();
        assert!(e.to_string().contains("3 failures in a row (HTTP 503"), "{e}");
    }

    #[tokio::test]
    async fn retries_stop_at_the_retry_window() {
        let server = MockServer::start_async().await;
        let m = server
            .mock_async(|when, then| {
                when.path("/x");
                then.status(502);
            })
            .await;
        let opts = HttpOptions {
            backoff: Duration::from_millis(200),
            retry_window: Duration::from_millis(50),
            ..Default::default()
        };
        let http = HttpClient::new(&server.base_url(), Arc::new(NoAuth), opts).unwrap();
        assert!(http.get_json::<serde_json::Value>("/x", &[]).await.is_err());
        m.assert_calls_async(1).await;
    }

    #[tokio::test]
    async fn a_data_redirect_to_another_origin_is_refused_naming_both_origins() {
        let other = MockServer::start_async().await;
        let evil = other
            .mock_async(|when, then| {
                when.any_request();
                then.status(200).json_body(serde_json::json!({"n": 1}));
            })
            .await;
        let server = MockServer::start_async().await;
        let to = other.url("/data");
        server
            .mock_async(move |when, then| {
                when.path("/data");
                then.status(302).header("location", to.as_str());
            })
            .await;
        let creds = BasicCredentials::parse(&Secret::new("svc:redirect-secret")).unwrap();
        let http = HttpClient::new(&server.base_url(), Arc::new(BasicAuth::new(creds, "hint")), fast()).unwrap();
        let e = http.get_json::<serde_json::Value>("/data", &[]).await.unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains(&server.base_url()) && msg.contains(&other.base_url()),
            "{msg}"
        );
        evil.assert_calls_async(0).await;
    }

    #[tokio::test]
    async fn an_echoed_credential_is_scrubbed_before_the_excerpt_is_clipped() {
        let server = MockServer::start_async().await;
        // The header starts inside the 200 kept characters and ends after them: clipping first
        // would keep half of it.
        let creds = BasicCredentials::parse(&Secret::new("svc-echo:echoed-secret-value-1234")).unwrap();
        let header = {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.encode("svc-echo:echoed-secret-value-1234")
        };
        let body = format!("{} Authorization: Basic {header}", "x".repeat(160));
        server
            .mock_async(move |when, then| {
                when.path("/e");
                then.status(400).body(body.as_str());
            })
            .await;
        let http = HttpClient::new(&server.base_url(), Arc::new(BasicAuth::new(creds, "hint")), fast()).unwrap();
        let msg = http
            .get_json::<serde_json::Value>("/e", &[])
            .await
            .unwrap_err()
            .to_string();
        assert!(!msg.contains(&header[..12]), "{msg}");
        assert!(msg.contains("Basic [redacted]"), "{msg}");
    }

    /// A raw server: answers 200 with a Content-Length, then closes after `body` bytes.
    async fn cutting_server(body: &'static str, length: usize) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let mut buf = [0u8; 4096];
                let _ = sock.read(&mut buf).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {length}\r\n\r\n{body}"
                );
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.shutdown().await;
            }
        });
        format!("http://{addr}")
    }

    /// A raw server: answers 200 with a chunked JSON body that never ends.
    async fn endless_server() -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = sock.read(&mut buf).await;
                    let head =
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
                    if sock.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                    let chunk = format!("{:x}\r\n[{}\r\n", 64 * 1024 + 1, "1,".repeat(32 * 1024));
                    // Bounded (a test stops by itself): far more than any cap.
                    for _ in 0..4096 {
                        if sock.write_all(chunk.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        format!("http://{addr}")
    }

    /// Regression: a 500 MB VAP answer was read whole, an endless body grew to 2.4 GB.
    #[tokio::test]
    async fn an_answer_over_its_cap_is_an_error_found_while_reading() {
        let server = MockServer::start_async().await;
        let big = format!("[{}1]", "1,".repeat(1024));
        server
            .mock_async(move |when, then| {
                when.path("/big");
                then.status(200)
                    .header("content-type", "application/json")
                    .body(big.as_str());
            })
            .await;
        let http = HttpClient::new(&server.base_url(), Arc::new(NoAuth), fast()).unwrap();
        let e = http
            .call_json::<serde_json::Value>(Request::get("/big").max_answer(1024))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("larger than 1 KB"), "{e}");
        let ok: serde_json::Value = http.call_json(Request::get("/big").max_answer(4096)).await.unwrap();
        assert_eq!(ok.as_array().map(Vec::len), Some(1025));

        let endless = HttpClient::new(&endless_server().await, Arc::new(NoAuth), fast()).unwrap();
        let e = endless.get_json::<serde_json::Value>("/vap", &[]).await.unwrap_err();
        assert!(e.to_string().contains("larger than 8 MB"), "{e}");
        assert_eq!(size(MAX_ANSWER_BYTES), "8 MB");
        assert_eq!(size(100), "100 bytes");
    }

    #[tokio::test]
    async fn a_body_cut_after_the_headers_is_a_failure_never_an_empty_answer() {
        for (body, length) in [("", 100), ("{\"messagesDelivered\": [", 100)] {
            let base = cutting_server(body, length).await;
            let http = HttpClient::new(&base, Arc::new(NoAuth), fast()).unwrap();
            let e = http.get_json::<Option<serde_json::Value>>("/x", &[]).await.unwrap_err();
            assert!(e.to_string().contains("cut off"), "{e}");
        }
    }
}
