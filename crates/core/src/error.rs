//! Typed errors. Every message says what failed, where, and what to do; none carries a secret.

/// A failed call to an upstream API. `endpoint` is `METHOD /path` (no host, no query secrets).
#[derive(Debug, Clone, thiserror::Error)]
pub enum HttpError {
    #[error("credentials rejected (HTTP 401) on {endpoint}: {hint}")]
    Unauthorized { endpoint: String, hint: &'static str },
    #[error(
        "missing API scope (HTTP 403) on {endpoint}: the credential is valid but may not call this \
         endpoint; add the matching API scope to the service credential{}",
        excerpt_suffix(.excerpt)
    )]
    Forbidden { endpoint: String, excerpt: String },
    #[error("not found (HTTP 404) on {endpoint}{}", excerpt_suffix(.excerpt))]
    NotFound { endpoint: String, excerpt: String },
    #[error("request refused (HTTP 400) on {endpoint}{}", excerpt_suffix(.excerpt))]
    BadRequest { endpoint: String, excerpt: String },
    #[error("throttled (HTTP 429) on {endpoint}: the API's rate limit is used up; wait before calling it again")]
    Throttled { endpoint: String },
    #[error("upstream error (HTTP {status}) on {endpoint}{}", excerpt_suffix(.excerpt))]
    Status {
        endpoint: String,
        status: u16,
        excerpt: String,
    },
    #[error("timed out on {endpoint} after {seconds} s: the API did not answer in time")]
    Timeout { endpoint: String, seconds: u64 },
    #[error("could not reach {endpoint}: {detail}")]
    Transport { endpoint: String, detail: String },
    #[error("unexpected answer from {endpoint}: {detail}")]
    Decode { endpoint: String, detail: String },
}

fn excerpt_suffix(excerpt: &str) -> String {
    if excerpt.is_empty() {
        String::new()
    } else {
        format!(" (server said: {excerpt})")
    }
}

impl HttpError {
    /// The HTTP status, when the server answered with one.
    pub fn status(&self) -> Option<u16> {
        match self {
            HttpError::Unauthorized { .. } => Some(401),
            HttpError::Forbidden { .. } => Some(403),
            HttpError::NotFound { .. } => Some(404),
            HttpError::BadRequest { .. } => Some(400),
            HttpError::Throttled { .. } => Some(429),
            HttpError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn endpoint(&self) -> &str {
        match self {
            HttpError::Unauthorized { endpoint, .. }
            | HttpError::Forbidden { endpoint, .. }
            | HttpError::NotFound { endpoint, .. }
            | HttpError::BadRequest { endpoint, .. }
            | HttpError::Throttled { endpoint }
            | HttpError::Status { endpoint, .. }
            | HttpError::Timeout { endpoint, .. }
            | HttpError::Transport { endpoint, .. }
            | HttpError::Decode { endpoint, .. } => endpoint,
        }
    }

    /// Worth another try a little later (server errors and time-outs; never 4xx).
    pub fn is_transient(&self) -> bool {
        match self {
            HttpError::Timeout { .. } | HttpError::Transport { .. } => true,
            HttpError::Status { status, .. } => matches!(status, 500 | 502 | 503 | 504),
            _ => false,
        }
    }
}

/// Why one KRI could not be measured.
#[derive(Debug, Clone, thiserror::Error)]
pub enum KriError {
    #[error(transparent)]
    Http(#[from] HttpError),
    /// The store failed under the connector (cursor, cached facts).
    #[error("store error: {0}")]
    Store(String),
    /// A budget or throttle decided not to call (e.g. a pool throttled earlier in the run).
    #[error("{0}")]
    Skipped(String),
    /// Anything else the connector wants to say, already phrased for the user.
    #[error("{0}")]
    Other(String),
}

impl KriError {
    pub fn status(&self) -> Option<u16> {
        match self {
            KriError::Http(e) => e.status(),
            _ => None,
        }
    }
}
