//! The HTTP layer every connector shares: auth, time-outs, retries of transient failures, an
//! API-call counter, and typed errors that keep status, endpoint and a short body excerpt.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;

use crate::error::HttpError;
use crate::secret::Secret;

/// HTTP Basic credentials from one `principal:secret` string.
#[derive(Clone)]
pub struct BasicCredentials {
    principal: String,
    secret: Secret,
}

impl std::fmt::Debug for BasicCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BasicCredentials([redacted])")
    }
}

impl BasicCredentials {
    /// Split on the FIRST colon (secrets may contain colons), trim both halves, refuse an
    /// empty half. The error never repeats the value.
    pub fn parse(value: &Secret) -> Result<Self, String> {
        let Some((principal, secret)) = value.expose().split_once(':') else {
            return Err(
                "the value must be `principal:secret`, with a colon between the service \
                        principal and the service secret"
                    .into(),
            );
        };
        let (principal, secret) = (principal.trim(), secret.trim());
        if principal.is_empty() {
            return Err("the service principal (before the colon) is empty; the value must be \
                        `principal:secret`"
                .into());
        }
        if secret.is_empty() {
            return Err("the service secret (after the colon) is empty; the value must be \
                        `principal:secret`"
                .into());
        }
        Ok(Self {
            principal: principal.to_owned(),
            secret: Secret::new(secret),
        })
    }

    pub fn principal(&self) -> &str {
        &self.principal
    }
}

/// How requests authenticate.
#[derive(Clone, Debug)]
pub enum Auth {
    None,
    Basic(BasicCredentials),
    /// OAuth2 bearer tokens from a [`TokenSource`](crate::oauth::TokenSource): cached, and
    /// refreshed once after a 401.
    Bearer(Arc<crate::oauth::TokenSource>),
}

impl Auth {
    /// What a 401 should tell the user to check.
    fn unauthorized_hint(&self) -> &'static str {
        match self {
            Auth::Basic(_) => {
                "check principal:secret (the service principal, a colon, then the service secret, \
                 no extra spaces) and that the credential still exists under Settings → Connected \
                 Applications"
            }
            Auth::None => "the API wants credentials; set them in the config",
            Auth::Bearer(_) => crate::oauth::CLIENT_CREDENTIALS_HINT,
        }
    }
}

/// Counts API calls (every attempt that reached the network).
#[derive(Clone, Debug, Default)]
pub struct CallCounter(Arc<AtomicU64>);

impl CallCounter {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
    fn add(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
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
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            retries: 2,
            backoff: Duration::from_millis(500),
        }
    }
}

/// A client bound to one API root and one auth strategy.
#[derive(Clone, Debug)]
pub struct HttpClient {
    client: reqwest::Client,
    base: String,
    auth: Auth,
    opts: HttpOptions,
    calls: CallCounter,
}

/// Longest body excerpt kept in an error.
const EXCERPT_CHARS: usize = 200;

impl HttpClient {
    pub fn new(base_url: &str, auth: Auth, opts: HttpOptions) -> Result<Self, String> {
        let base = base_url.trim().trim_end_matches('/').to_owned();
        let parsed = reqwest::Url::parse(&base)
            .map_err(|e| format!("`{base}` is not a valid URL ({e}); write it like https://host"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!(
                "`{base}` must start with https:// (or http:// for a local test server)"
            ));
        }
        let client = reqwest::Client::builder()
            .user_agent(concat!("kri/", env!("CARGO_PKG_VERSION")))
            .timeout(opts.timeout)
            .connect_timeout(opts.connect_timeout)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self {
            client,
            base,
            auth,
            opts,
            calls: CallCounter::default(),
        })
    }

    /// The same client, counting its calls into `calls` (one counter per connector run).
    pub fn counting(&self, calls: &CallCounter) -> Self {
        Self {
            calls: calls.clone(),
            ..self.clone()
        }
    }

    pub fn calls(&self) -> &CallCounter {
        &self.calls
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// GET `path` and decode the JSON answer. A 204 or an empty body decodes as `{}`.
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str, query: &[(&str, &str)]) -> Result<T, HttpError> {
        let endpoint = format!("GET {path}");
        let resp = self.send(Method::GET, path, |r| r.query(query)).await?;
        decode_json(&endpoint, resp).await
    }

    /// Send a request (built by `build` on top of method, URL and auth), retrying transient
    /// failures, and turn every non-2xx status into a typed [`HttpError`].
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response, HttpError> {
        let endpoint = format!("{method} {path}");
        let url = format!("{}{}", self.base, path);
        let mut attempt = 0;
        let mut refreshed = false;
        loop {
            let mut req = self.client.request(method.clone(), &url);
            if let Auth::Basic(c) = &self.auth {
                req = req.basic_auth(&c.principal, Some(c.secret.expose()));
            }
            if let Auth::Bearer(tokens) = &self.auth {
                req = req.bearer_auth(tokens.token(&self.calls).await?.expose());
            }
            self.calls.add();
            let result = match build(req).send().await {
                Ok(resp) => self.check(&endpoint, resp).await,
                Err(e) => Err(self.transport_error(&endpoint, e)),
            };
            match result {
                Err(HttpError::Unauthorized { .. }) if !refreshed && matches!(self.auth, Auth::Bearer(_)) => {
                    // The token may have been revoked or expired early: one fresh token, once.
                    if let Auth::Bearer(tokens) = &self.auth {
                        tokens.invalidate().await;
                    }
                    refreshed = true;
                    tracing::debug!(%endpoint, "401 with a cached token, fetching a fresh one");
                }
                Err(e) if e.is_transient() && attempt < self.opts.retries => {
                    let wait = backoff(self.opts.backoff, attempt);
                    tracing::warn!(%endpoint, error = %e, retry_in_ms = wait.as_millis() as u64, "transient failure, retrying");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn check(&self, endpoint: &str, resp: Response) -> Result<Response, HttpError> {
        let status = resp.status();
        tracing::debug!(%endpoint, status = status.as_u16(), "answer");
        if status.is_success() {
            return Ok(resp);
        }
        let endpoint = endpoint.to_owned();
        if status == StatusCode::UNAUTHORIZED {
            return Err(HttpError::Unauthorized {
                endpoint,
                hint: self.auth.unauthorized_hint(),
            });
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(HttpError::Throttled { endpoint });
        }
        let excerpt = excerpt(resp).await;
        Err(match status.as_u16() {
            400 => HttpError::BadRequest { endpoint, excerpt },
            403 => HttpError::Forbidden { endpoint, excerpt },
            404 => HttpError::NotFound { endpoint, excerpt },
            s => HttpError::Status {
                endpoint,
                status: s,
                excerpt,
            },
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
        HttpError::Transport {
            endpoint,
            detail: error_chain(&e.without_url()),
        }
    }
}

/// Decode a JSON body; a 204 or an empty body decodes as `{}`.
pub async fn decode_json<T: DeserializeOwned>(endpoint: &str, resp: Response) -> Result<T, HttpError> {
    let no_content = resp.status() == StatusCode::NO_CONTENT;
    let bytes = resp.bytes().await.map_err(|e| HttpError::Transport {
        endpoint: endpoint.to_owned(),
        detail: format!("reading the answer: {}", error_chain(&e.without_url())),
    })?;
    let body: &[u8] = if no_content || bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        &bytes
    };
    serde_json::from_slice(body).map_err(|e| HttpError::Decode {
        endpoint: endpoint.to_owned(),
        detail: format!(
            "{e} (the API may have changed; first bytes: {})",
            clip(&String::from_utf8_lossy(&bytes))
        ),
    })
}

async fn excerpt(resp: Response) -> String {
    match resp.text().await {
        Ok(t) => clip(t.trim()),
        Err(_) => String::new(),
    }
}

fn clip(text: &str) -> String {
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
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

/// `base × 2^attempt`, scaled by a random factor in [0.5, 1.5).
fn backoff(base: Duration, attempt: u32) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let random = std::collections::hash_map::RandomState::new().build_hasher().finish();
    let factor = 0.5 + (random % 1000) as f64 / 1000.0;
    base.saturating_mul(1 << attempt.min(10)).mul_f64(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_split_on_the_first_colon_and_trim() {
        let c = BasicCredentials::parse(&Secret::new(" svc-1 : pa:ss:word ")).unwrap();
        assert_eq!(c.principal(), "svc-1");
        assert_eq!(c.secret.expose(), "pa:ss:word");
    }

    #[test]
    fn credentials_without_colon_or_with_an_empty_half_are_refused_without_echo() {
        for bad in ["no-colon-here", ":s3cr3t", "principal-x:", "  :  "] {
            let err = BasicCredentials::parse(&Secret::new(bad)).unwrap_err();
            assert!(err.contains("principal:secret"), "{err}");
            for half in bad.split(':').map(str::trim).filter(|h| !h.is_empty()) {
                assert!(!err.contains(half), "error echoes `{half}`: {err}");
            }
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
}
