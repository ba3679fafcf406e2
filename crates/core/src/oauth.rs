//! OAuth2 client credentials: a token fetched with a form body from its own URL (often another
//! host than the API), cached until about a minute before it expires, dropped on a 401 so the
//! next attempt fetches a fresh one. The client secret is only ever put in the form body, sent
//! only to the token URL's own origin (a redirect elsewhere is refused), never logged, and
//! scrubbed from anything a server echoes; every token received is scrubbed from then on too.
//! An optional `scope` and extra form fields (an `audience`, a `resource`) cover the identity
//! providers that want them.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::auth::{Auth, NoAuth, Outgoing};
use crate::budget::{Budget, Pool};
use crate::error::HttpError;
use crate::http::{HttpClient, HttpOptions, Request};
use crate::secret::{Secret, lenient_string};

/// A token is used until this long before it expires.
pub const EXPIRY_MARGIN: Duration = Duration::from_secs(60);
/// The longest a token is used before asking again, whatever `expires_in` says (a lifetime of
/// 1e30 s or `inf` from a server is bounded here, never added to a clock as it is).
pub const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// The most of a token answer read (a token is a few KB; an 800 MB answer was read whole).
const TOKEN_ANSWER_BYTES: usize = 64 * 1024;

/// OAuth2 client credentials for one `client_id` / `client_secret` pair: an [`Auth`] that sends
/// `Authorization: Bearer <token>`.
pub struct ClientCredentials {
    http: HttpClient,
    /// The pool token requests are counted in.
    pool: Pool,
    path: String,
    client_id: String,
    client_secret: Secret,
    scope: Option<String>,
    extra: Vec<(String, String)>,
    /// What a 401 should tell the user (where the key lives in the vendor's console).
    hint: String,
    cached: Mutex<Option<Cached>>,
}

struct Cached {
    token: Secret,
    fresh_until: Instant,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("token_url", &format!("{}{}", self.http.base_url(), self.path))
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("scope", &self.scope)
            .finish()
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: Option<Secret>,
    #[serde(default, deserialize_with = "lenient_opt_u64")]
    expires_in: Option<u64>,
}

fn lenient_opt_u64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let text = lenient_string(d)?;
    Ok(text.trim().parse::<f64>().ok().filter(|v| *v >= 0.0).map(|v| v as u64))
}

/// Until when a token fetched at `now` with `lifetime` is used: the lifetime less the margin,
/// at most [`MAX_LIFETIME`]; never an overflow, whatever the lifetime.
fn fresh_until(now: Instant, lifetime: Duration) -> Instant {
    now.checked_add(lifetime.min(MAX_LIFETIME).saturating_sub(EXPIRY_MARGIN))
        .unwrap_or(now)
}

impl ClientCredentials {
    /// `token_url` is the full URL of the token endpoint (e.g. `https://auth.example.com/v1/token`);
    /// token requests are counted in `pool`; `hint` is what a 401 should tell the user to check.
    /// The same token client, its network errors naming `key` as where the token URL is set.
    pub fn from_key(self, key: impl Into<String>) -> Self {
        Self {
            http: self.http.from_key(key),
            ..self
        }
    }

    pub fn new(
        token_url: &str,
        client_id: &str,
        client_secret: Secret,
        opts: HttpOptions,
        pool: Pool,
        hint: impl Into<String>,
    ) -> Result<Self, String> {
        let url = reqwest::Url::parse(token_url.trim())
            .map_err(|e| format!("`{token_url}` is not a valid URL ({e}); write it like https://host/v1/token"))?;
        let origin = url.origin().ascii_serialization();
        let mut path = url.path().to_owned();
        if let Some(q) = url.query() {
            path.push('?');
            path.push_str(q);
        }
        let http = HttpClient::new(&origin, Arc::new(NoAuth), opts)?;
        Ok(Self {
            http,
            pool,
            path,
            client_id: client_id.trim().to_owned(),
            client_secret,
            scope: None,
            extra: Vec::new(),
            hint: hint.into(),
            cached: Mutex::new(None),
        })
    }

    /// Ask for `scope` (space-separated, as the identity provider wants it).
    pub fn with_scope(self, scope: impl Into<String>) -> Self {
        Self {
            scope: Some(scope.into()),
            ..self
        }
    }

    /// Send one more form field with the token request (e.g. `audience`).
    pub fn with_field(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.extra.push((name.into(), value.into()));
        self
    }

    /// The current token, fetching a new one when none is cached or it expires within a minute.
    /// The fetch is admitted and counted by `budget` (in this source's pool).
    pub async fn token(&self, budget: Option<&Budget>) -> Result<Secret, HttpError> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref()
            && Instant::now() < c.fresh_until
        {
            return Ok(c.token.clone());
        }
        let (token, lifetime) = self.fetch(budget).await?;
        *cached = Some(Cached {
            token: token.clone(),
            fresh_until: fresh_until(Instant::now(), lifetime),
        });
        Ok(token)
    }

    /// Forget the cached token (after a 401), so the next call fetches a fresh one.
    pub async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }

    async fn fetch(&self, budget: Option<&Budget>) -> Result<(Secret, Duration), HttpError> {
        let endpoint = format!("POST {}", self.path);
        tracing::debug!(%endpoint, client_id = %self.client_id, "fetching an OAuth token");
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.expose()),
        ];
        if let Some(scope) = &self.scope {
            form.push(("scope", scope.as_str()));
        }
        form.extend(self.extra.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let http = match budget {
            Some(b) => self.http.metered(b, self.pool),
            None => self.http.clone(),
        };
        let answer: TokenAnswer = http
            .call_json(Request::post(&self.path).form(&form).max_answer(TOKEN_ANSWER_BYTES))
            .await
            .map_err(|e| self.explain(e))?;
        let token = answer
            .access_token
            .filter(|t| !t.expose().trim().is_empty())
            .ok_or_else(|| HttpError::Decode {
                endpoint: endpoint.clone(),
                detail: "the token answer has no access_token".into(),
            })?;
        let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(300)).min(MAX_LIFETIME);
        Ok((token, lifetime))
    }

    /// Token endpoint errors get the client-credentials hint. (Excerpts are already scrubbed by
    /// the HTTP layer; scrubbing again costs nothing and keeps this path safe on its own.)
    fn explain(&self, e: HttpError) -> HttpError {
        let clean = |s: String| crate::secret::scrub(&s);
        match e {
            HttpError::Unauthorized { endpoint, .. } => HttpError::Unauthorized {
                endpoint,
                hint: self.hint.clone(),
            },
            HttpError::BadRequest { endpoint, excerpt } => HttpError::BadRequest {
                endpoint,
                excerpt: format!("{}; {}", clean(excerpt), self.hint),
            },
            HttpError::Forbidden {
                endpoint,
                hint,
                excerpt,
            } => HttpError::Forbidden {
                endpoint,
                hint,
                excerpt: clean(excerpt),
            },
            HttpError::NotFound { endpoint, excerpt } => HttpError::NotFound {
                endpoint,
                excerpt: format!("{}; check token_url", clean(excerpt)),
            },
            HttpError::Status {
                endpoint,
                status,
                excerpt,
            } => HttpError::Status {
                endpoint,
                status,
                excerpt: clean(excerpt),
            },
            HttpError::Decode { endpoint, detail } => HttpError::Decode {
                endpoint,
                detail: clean(detail),
            },
            other => other,
        }
    }
}

#[async_trait::async_trait]
impl Auth for ClientCredentials {
    async fn apply(&self, request: &mut Outgoing<'_>, budget: Option<&Budget>) -> Result<(), HttpError> {
        let token = self.token(budget).await?;
        request.set_header("authorization", &format!("Bearer {}", token.expose()))
    }

    async fn refresh(&self) -> bool {
        self.invalidate().await;
        true
    }

    fn unauthorized_hint(&self) -> String {
        self.hint.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use httpmock::prelude::*;

    const TOKEN_POOL: Pool = Pool::unlimited("token");

    const HINT: &str = "check client_id and client_secret";

    fn source(server: &MockServer, secret: &str) -> ClientCredentials {
        ClientCredentials::new(
            &server.url("/v1/token"),
            "cid",
            Secret::new(secret),
            HttpOptions {
                retries: 0,
                ..Default::default()
            },
            TOKEN_POOL,
            HINT,
        )
        .unwrap()
    }

    fn budget() -> Budget {
        let clock = crate::clock::ManualClock::new(crate::testing::fixed_now());
        Budget::new(
            crate::store::Store::in_memory().unwrap(),
            "ctr",
            std::sync::Arc::new(clock),
        )
    }

    #[tokio::test]
    async fn the_token_is_fetched_with_a_form_body_and_cached() {
        let server = MockServer::start_async().await;
        let m = server
            .mock_async(|when, then| {
                when.method(POST)
                    .path("/v1/token")
                    .header("content-type", "application/x-www-form-urlencoded")
                    .form_urlencoded_tuple("grant_type", "client_credentials")
                    .form_urlencoded_tuple("client_id", "cid")
                    .form_urlencoded_tuple("client_secret", "s3cr3t&=x");
                then.status(200).json_body(
                    serde_json::json!({"access_token": "tok-1", "token_type": "bearer", "expires_in": 3600}),
                );
            })
            .await;
        let b = budget();
        let t = source(&server, "s3cr3t&=x");
        assert_eq!(t.token(Some(&b)).await.unwrap().expose(), "tok-1");
        assert_eq!(t.token(Some(&b)).await.unwrap().expose(), "tok-1");
        m.assert_calls_async(1).await;
        assert_eq!(b.calls().get(), 1);
        assert_eq!(b.used_24h(&TOKEN_POOL).await.unwrap(), 1, "counted in its pool");
        t.invalidate().await;
        t.token(Some(&b)).await.unwrap();
        m.assert_calls_async(2).await;
    }

    /// Regression: `expires_in` of 1e30, u64::MAX or "inf" panicked adding it to an Instant.
    #[tokio::test]
    async fn an_absurd_token_lifetime_is_bounded_not_a_panic() {
        for lifetime in [
            serde_json::json!(1e30),
            serde_json::json!(u64::MAX),
            serde_json::json!("inf"),
            serde_json::json!("NaN"),
            serde_json::json!(-5),
        ] {
            let server = MockServer::start_async().await;
            let m = server
                .mock_async(|when, then| {
                    when.method(POST).path("/v1/token");
                    then.status(200)
                        .json_body(serde_json::json!({"access_token": "tok", "expires_in": lifetime}));
                })
                .await;
            let t = source(&server, "secret");
            assert_eq!(t.token(None).await.unwrap().expose(), "tok", "{lifetime}");
            t.token(None).await.unwrap();
            m.assert_calls_async(1).await;
        }
        let now = Instant::now();
        assert_eq!(fresh_until(now, Duration::MAX), now + MAX_LIFETIME - EXPIRY_MARGIN);
        assert_eq!(fresh_until(now, Duration::from_secs(10)), now, "inside the margin: now");
    }

    /// Regression: an 800 MB token answer was read whole.
    #[tokio::test]
    async fn a_token_answer_over_64_kb_is_refused_while_reading() {
        let server = MockServer::start_async().await;
        let huge = format!("{{\"access_token\": \"{}\"}}", "t".repeat(100 * 1024));
        server
            .mock_async(move |when, then| {
                when.method(POST).path("/v1/token");
                then.status(200)
                    .header("content-type", "application/json")
                    .body(huge.as_str());
            })
            .await;
        let e = source(&server, "secret").token(None).await.unwrap_err();
        assert!(e.to_string().contains("larger than 64 KB"), "{e}");
    }

    #[tokio::test]
    async fn a_token_close_to_expiry_is_refreshed() {
        let server = MockServer::start_async().await;
        let m = server
            .mock_async(|when, then| {
                when.method(POST).path("/v1/token");
                then.status(200)
                    .json_body(serde_json::json!({"access_token": "tok", "expires_in": "30"}));
            })
            .await;
        let t = source(&server, "secret");
        t.token(None).await.unwrap();
        t.token(None).await.unwrap();
        // 30 s lifetime is inside the 60 s margin: never reused.
        m.assert_calls_async(2).await;
    }

    #[tokio::test]
    async fn a_refused_secret_is_a_credentials_error_without_the_secret() {
        let server = MockServer::start_async().await;
        server
            .mock_async(|when, then| {
                when.method(POST).path("/v1/token");
                then.status(401).body("bad client_secret very-secret-value");
            })
            .await;
        let e = source(&server, "very-secret-value").token(None).await.unwrap_err();
        let msg = e.to_string();
        assert_eq!(e.status(), Some(401));
        assert!(msg.contains("POST /v1/token") && msg.contains("client_secret"), "{msg}");
        assert!(!msg.contains("very-secret-value"), "{msg}");

        let server = MockServer::start_async().await;
        server
            .mock_async(|when, then| {
                when.method(POST).path("/v1/token");
                then.status(400)
                    .body("{\"error\":\"invalid_client\",\"echo\":\"very-secret-value\"}");
            })
            .await;
        let e = source(&server, "very-secret-value").token(None).await.unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("invalid_client") && !msg.contains("very-secret-value"),
            "{msg}"
        );
        assert!(!format!("{:?}", source(&server, "very-secret-value")).contains("very-secret-value"));
    }

    #[tokio::test]
    async fn a_redirect_to_another_origin_is_refused_and_the_secret_never_leaves() {
        let elsewhere = MockServer::start_async().await;
        let evil = elsewhere
            .mock_async(|when, then| {
                when.any_request();
                then.status(200)
                    .json_body(serde_json::json!({"access_token": "evil", "expires_in": 3600}));
            })
            .await;
        let server = MockServer::start_async().await;
        let target = elsewhere.url("/v1/token");
        server
            .mock_async(move |when, then| {
                when.method(POST).path("/v1/token");
                then.status(307).header("location", target.as_str());
            })
            .await;
        let e = source(&server, "redirected-secret").token(None).await.unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, HttpError::Redirect { status: 307, .. }), "{e:?}");
        assert!(
            msg.contains(&server.base_url()) && msg.contains(&elsewhere.base_url()),
            "{msg}"
        );
        evil.assert_calls_async(0).await;
    }

    #[tokio::test]
    async fn a_same_origin_redirect_is_followed_and_each_hop_is_counted() {
        let server = MockServer::start_async().await;
        let moved = server
            .mock_async(|when, then| {
                when.method(POST).path("/v1/token");
                then.status(308).header("location", "/v2/token");
            })
            .await;
        let real = server
            .mock_async(|when, then| {
                when.method(POST)
                    .path("/v2/token")
                    .form_urlencoded_tuple("client_secret", "hop-secret");
                then.status(200)
                    .json_body(serde_json::json!({"access_token": "t", "expires_in": 3600}));
            })
            .await;
        let b = budget();
        source(&server, "hop-secret").token(Some(&b)).await.unwrap();
        moved.assert_calls_async(1).await;
        real.assert_calls_async(1).await;
        assert_eq!(b.calls().get(), 2, "the hop is a request on the wire");
    }

    #[tokio::test]
    async fn a_scope_and_extra_fields_go_in_the_token_form() {
        let server = MockServer::start_async().await;
        let m = server
            .mock_async(|when, then| {
                when.method(POST)
                    .path("/v1/token")
                    .form_urlencoded_tuple("scope", "api://kri/.default")
                    .form_urlencoded_tuple("audience", "https://api.example.com");
                then.status(200)
                    .json_body(serde_json::json!({"access_token": "t", "expires_in": 3600}));
            })
            .await;
        source(&server, "scoped-secret")
            .with_scope("api://kri/.default")
            .with_field("audience", "https://api.example.com")
            .token(None)
            .await
            .unwrap();
        m.assert_calls_async(1).await;
    }
}
