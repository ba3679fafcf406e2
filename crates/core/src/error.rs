//! Typed errors. Every message says what failed, where, and what to do; none carries a secret.

/// A failed call to an upstream API. `endpoint` is `METHOD /path` (no host, no query secrets).
#[derive(Debug, Clone, thiserror::Error)]
pub enum HttpError {
    #[error("credentials rejected (HTTP 401) on {endpoint}: {hint}")]
    Unauthorized { endpoint: String, hint: String },
    #[error("missing API scope (HTTP 403) on {endpoint}: {hint}{}", excerpt_suffix(.excerpt))]
    Forbidden {
        endpoint: String,
        hint: String,
        excerpt: String,
    },
    #[error("not found (HTTP 404) on {endpoint}{}", excerpt_suffix(.excerpt))]
    NotFound { endpoint: String, excerpt: String },
    #[error("request refused (HTTP 400) on {endpoint}{}", excerpt_suffix(.excerpt))]
    BadRequest { endpoint: String, excerpt: String },
    #[error("throttled (HTTP 429) on {endpoint}: {detail}")]
    Throttled { endpoint: String, detail: String },
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
    /// The API cannot be reached and trying again in a moment will not change that: its host
    /// name does not resolve, or its certificate is refused. Never retried.
    #[error("could not reach {endpoint}: {detail}")]
    Unreachable { endpoint: String, detail: String },
    /// The answer began but its body stopped short (the connection closed): nothing of it counts.
    #[error("the answer of {endpoint} was cut off before it was complete, so nothing of it was counted: {detail}")]
    Cut { endpoint: String, detail: String },
    #[error("unexpected answer from {endpoint}: {detail}")]
    Decode { endpoint: String, detail: String },
    /// A redirect to another origin: never followed, because the request carries credentials.
    #[error(
        "refused a redirect (HTTP {status}) on {endpoint} from {from} to {to}: kri sends credentials only to the \
         configured origin; if the API really moved, set the new address as the base URL"
    )]
    Redirect {
        endpoint: String,
        status: u16,
        from: String,
        to: String,
    },
    /// The request was not sent: its pool is stopped for this run or its budget is used up.
    #[error("not called: {endpoint}: {reason}")]
    NotCalled { endpoint: String, reason: String },
}

/// The message of a 429 when nothing more specific is known.
pub const THROTTLED: &str = "the API's rate limit is used up; wait before calling it again";

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
            | HttpError::Throttled { endpoint, .. }
            | HttpError::Status { endpoint, .. }
            | HttpError::Timeout { endpoint, .. }
            | HttpError::Transport { endpoint, .. }
            | HttpError::Unreachable { endpoint, .. }
            | HttpError::Cut { endpoint, .. }
            | HttpError::Decode { endpoint, .. }
            | HttpError::Redirect { endpoint, .. }
            | HttpError::NotCalled { endpoint, .. } => endpoint,
        }
    }

    /// What kind of failure this is, for "the same failure several times in a row" (a pool's
    /// circuit breaker). `None` for answers that are not failures of the API: a 404 (a real
    /// "nothing here" on several endpoints) and a request that was never sent.
    pub fn kind(&self) -> Option<String> {
        match self {
            HttpError::NotFound { .. } | HttpError::NotCalled { .. } => None,
            HttpError::Timeout { .. } => Some("time-out".into()),
            HttpError::Transport { .. } => Some("connection failure".into()),
            HttpError::Unreachable { .. } => Some("unreachable".into()),
            HttpError::Cut { .. } => Some("answer cut off".into()),
            HttpError::Decode { .. } => Some("unreadable answer".into()),
            HttpError::Redirect { .. } => Some("redirect to another origin".into()),
            other => other.status().map(|s| format!("HTTP {s}")),
        }
    }

    /// Worth another try a little later (server errors, time-outs, dropped connections; never
    /// 4xx, never a refused redirect).
    pub fn is_transient(&self) -> bool {
        match self {
            HttpError::Timeout { .. } | HttpError::Transport { .. } | HttpError::Cut { .. } => true,
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
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// A budget or throttle decided not to call (e.g. a pool throttled earlier in the run).
    #[error("{0}")]
    Skipped(String),
    /// Anything else the connector wants to say, already phrased for the user.
    #[error("{0}")]
    Other(String),
}

impl KriError {
    /// A request that was not sent because its pool had stopped: a consequence of another
    /// failure, which is the one worth telling.
    pub fn is_not_called(&self) -> bool {
        matches!(self, KriError::Http(HttpError::NotCalled { .. }))
    }

    /// Of several errors, the one that says what went wrong: the first that is not a mere
    /// "not called".
    pub fn telling<'a>(errors: impl IntoIterator<Item = &'a KriError>) -> Option<&'a KriError> {
        let mut first = None;
        for e in errors {
            if !e.is_not_called() {
                return Some(e);
            }
            first.get_or_insert(e);
        }
        first
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            KriError::Http(e) => e.status(),
            _ => None,
        }
    }
}
