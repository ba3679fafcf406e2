//! How requests authenticate: one trait, [`Auth`], that the HTTP layer calls for every attempt.
//! Core ships [`NoAuth`], HTTP Basic ([`BasicAuth`]) and OAuth2 client credentials
//! ([`ClientCredentials`](crate::oauth::ClientCredentials)); a connector with another scheme
//! (request signing, an API key header) implements the trait in its own crate.
//!
//! What a 401 or 403 should tell the user is part of the scheme: the connector that builds it
//! knows its vendor's console and passes the hints in.

use std::fmt;

use crate::budget::Budget;
use crate::error::HttpError;
use crate::secret::Secret;

/// The request as an auth scheme sees it: enough to add a header or to sign.
pub struct Outgoing<'a> {
    pub(crate) request: &'a mut reqwest::Request,
}

impl Outgoing<'_> {
    pub fn method(&self) -> &str {
        self.request.method().as_str()
    }

    /// The full URL, query included.
    pub fn url(&self) -> &str {
        self.request.url().as_str()
    }

    /// The body, when it is in memory (JSON and form bodies are).
    pub fn body(&self) -> Option<&[u8]> {
        self.request.body().and_then(|b| b.as_bytes())
    }

    /// Set a header, marked sensitive (never logged by the HTTP stack). The value is a secret:
    /// register it with the scrubber first if it is not a [`Secret`] already.
    pub fn set_header(&mut self, name: &'static str, value: &str) -> Result<(), HttpError> {
        let mut v = reqwest::header::HeaderValue::from_str(value).map_err(|_| HttpError::Transport {
            endpoint: format!("{} {}", self.method(), self.request.url().path()),
            detail: format!("the {name} header has characters HTTP does not allow; check the credentials"),
        })?;
        v.set_sensitive(true);
        self.request.headers_mut().insert(name, v);
        Ok(())
    }
}

/// What a 403 says when the scheme knows nothing more specific.
pub const DEFAULT_FORBIDDEN_HINT: &str =
    "the credential is valid but may not call this endpoint; add the matching API scope or role to it";

/// An authentication scheme. Object safe: clients hold `Arc<dyn Auth>`.
#[async_trait::async_trait]
pub trait Auth: Send + Sync + fmt::Debug {
    /// Add the credentials to one attempt. `budget` meters any request the scheme makes itself
    /// (a token fetch), in the scheme's own pool.
    async fn apply(&self, request: &mut Outgoing<'_>, budget: Option<&Budget>) -> Result<(), HttpError>;

    /// After a 401: forget what is cached (a token). `true` when one more attempt may succeed.
    async fn refresh(&self) -> bool {
        false
    }

    /// What a 401 should tell the user to check.
    fn unauthorized_hint(&self) -> String;

    /// What a 403 should tell the user to change.
    fn forbidden_hint(&self) -> String {
        DEFAULT_FORBIDDEN_HINT.into()
    }
}

/// No credentials (a token endpoint, a public API).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoAuth;

#[async_trait::async_trait]
impl Auth for NoAuth {
    async fn apply(&self, _: &mut Outgoing<'_>, _: Option<&Budget>) -> Result<(), HttpError> {
        Ok(())
    }
    fn unauthorized_hint(&self) -> String {
        "the API wants credentials; set them in the config".into()
    }
}

/// HTTP Basic credentials from one `principal:secret` string.
#[derive(Clone)]
pub struct BasicCredentials {
    principal: String,
    secret: Secret,
}

impl fmt::Debug for BasicCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BasicCredentials([redacted])")
    }
}

impl BasicCredentials {
    /// Split on the FIRST colon (secrets may contain colons), trim both halves, refuse an
    /// empty half. The error never repeats the value.
    pub fn parse(value: &Secret) -> Result<Self, String> {
        let Some((principal, secret)) = value.expose().split_once(':') else {
            return Err(
                "the value must be `principal:secret`, with a colon between the principal and the secret".into(),
            );
        };
        let (principal, secret) = (principal.trim(), secret.trim());
        if principal.is_empty() {
            return Err("the principal (before the colon) is empty; the value must be `principal:secret`".into());
        }
        if secret.is_empty() {
            return Err("the secret (after the colon) is empty; the value must be `principal:secret`".into());
        }
        // The Authorization header carries base64(principal:secret): an echo of it is a leak too.
        crate::secret::register(&format!("{principal}:{secret}"));
        Ok(Self {
            principal: principal.to_owned(),
            secret: Secret::new(secret),
        })
    }

    pub fn principal(&self) -> &str {
        &self.principal
    }

    /// The `Authorization` header value.
    fn header(&self) -> String {
        use base64::Engine as _;
        let pair = format!("{}:{}", self.principal, self.secret.expose());
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))
    }
}

/// HTTP Basic auth, with the hints of the vendor's console.
#[derive(Debug, Clone)]
pub struct BasicAuth {
    credentials: BasicCredentials,
    unauthorized_hint: String,
    forbidden_hint: Option<String>,
}

impl BasicAuth {
    /// `unauthorized_hint`: what to check on a 401 (where the credential lives in the console).
    pub fn new(credentials: BasicCredentials, unauthorized_hint: impl Into<String>) -> Self {
        Self {
            credentials,
            unauthorized_hint: unauthorized_hint.into(),
            forbidden_hint: None,
        }
    }

    /// What to change on a 403 (where scopes are granted in the console).
    pub fn with_forbidden_hint(self, hint: impl Into<String>) -> Self {
        Self {
            forbidden_hint: Some(hint.into()),
            ..self
        }
    }
}

#[async_trait::async_trait]
impl Auth for BasicAuth {
    async fn apply(&self, request: &mut Outgoing<'_>, _: Option<&Budget>) -> Result<(), HttpError> {
        request.set_header("authorization", &self.credentials.header())
    }
    fn unauthorized_hint(&self) -> String {
        self.unauthorized_hint.clone()
    }
    fn forbidden_hint(&self) -> String {
        match &self.forbidden_hint {
            Some(h) => h.clone(),
            None => DEFAULT_FORBIDDEN_HINT.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_split_on_the_first_colon_and_trim() {
        let c = BasicCredentials::parse(&Secret::new(" svc-1 : pa:ss:word ")).unwrap();
        assert_eq!(c.principal(), "svc-1");
        assert_eq!(c.secret.expose(), "pa:ss:word");
        assert_eq!(c.header(), "Basic c3ZjLTE6cGE6c3M6d29yZA==");
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
}
