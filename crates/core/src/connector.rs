//! The [`Connector`] trait every vendor module implements, and what it is handed per run.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::budget::Budget;
use crate::budget::CallCounter;
use crate::clock::Clock;
use crate::error::KriError;
use crate::store::{DEFAULT_TENANT, StateHandle, Store, namespace};

/// A measured value. `warning` is for a value that is real but weak (e.g. "no reports: low
/// signal"): the KRI stays `ok`, the warning is logged and shown as its message.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    pub value: f64,
    pub warning: Option<String>,
    /// False for a value kept by convention when there was nothing to measure (a mean of no
    /// items, say): it is stored and shown, but gets no band, so it never reads as green.
    pub banded: bool,
}

impl Measurement {
    pub fn value(value: f64) -> Self {
        Self {
            value,
            warning: None,
            banded: true,
        }
    }
    pub fn with_warning(value: f64, warning: impl Into<String>) -> Self {
        Self {
            value,
            warning: Some(warning.into()),
            banded: true,
        }
    }
    /// Nothing to measure: `value` by convention, with `why`, and no band.
    pub fn not_measured(value: f64, why: impl Into<String>) -> Self {
        Self {
            value,
            warning: Some(why.into()),
            banded: false,
        }
    }
}

pub type KriResult = Result<Measurement, KriError>;

/// What a connectivity probe found, phrased for the user (e.g. "12 users at risk").
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    pub message: String,
}

/// Everything a connector gets for one run: the clock, its own slice of the store, the budget
/// its HTTP clients are metered by (see [`HttpClient::metered`](crate::HttpClient::metered)),
/// the count of requests it sent, and whether a terminal is watching.
#[derive(Clone)]
pub struct RunContext {
    /// Whose run this is: its state and call budget live under
    /// [`namespace`](crate::store::namespace)`(tenant, module)`.
    pub tenant: String,
    pub clock: Arc<dyn Clock>,
    pub state: StateHandle,
    pub calls: CallCounter,
    pub budget: Budget,
    /// A person is watching stderr on a terminal: progress bars are welcome.
    pub interactive: bool,
    /// Fires when the run must stop now (a service shutting down after its grace period): the
    /// run is then recorded as failed, and what it stored so far (windows, cursors) is kept.
    pub cancel: CancellationToken,
}

impl RunContext {
    /// A context for `module` of the default tenant on `store`. `calls` counts every request the
    /// run's budget admits.
    pub fn new(clock: Arc<dyn Clock>, store: &Store, module: &str, interactive: bool) -> Self {
        Self::for_tenant(clock, store, DEFAULT_TENANT, module, interactive)
    }

    /// A context for `module` of `tenant` on `store`: its state and call budget are the
    /// tenant's own (the default tenant's are the module's, as before tenants).
    pub fn for_tenant(clock: Arc<dyn Clock>, store: &Store, tenant: &str, module: &str, interactive: bool) -> Self {
        let ns = namespace(tenant, module);
        let budget = Budget::new(store.clone(), &ns, clock.clone());
        Self {
            tenant: tenant.to_owned(),
            calls: budget.calls().clone(),
            budget,
            clock,
            state: store.state(&ns),
            interactive,
            cancel: CancellationToken::new(),
        }
    }

    /// The same context, stopped when `cancel` fires.
    pub fn with_cancel(mut self, cancel: CancellationToken) -> Self {
        self.cancel = cancel;
        self
    }
}

/// Calls a run would make against one rate-limit pool (for `kri run --plan`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct PlannedCalls {
    pub pool: &'static str,
    /// Calls per rolling 24 h, when the pool is limited.
    pub limit: Option<u32>,
    pub calls: u32,
    /// What the calls are, e.g. windows `2026-11-23T09:00:00Z/2026-11-23T10:00:00Z`.
    pub detail: Vec<String>,
}

/// A vendor module. Object safe: the runner holds `Box<dyn Connector>`. What it is (id, module
/// key, KRIs, sample config) is its [`Registration`](crate::Registration), said once.
#[async_trait::async_trait]
pub trait Connector: Send + Sync {
    /// A cheap connectivity check that proves credentials and scope.
    async fn probe(&self, ctx: &RunContext) -> Result<Probe, KriError>;
    /// Measure the `selected` KRIs (slugs of the registration's KRIs). One result per selected
    /// slug; a KRI missing from the answer is recorded as failed by the runner.
    async fn collect(&self, ctx: &RunContext, selected: &[&'static str]) -> Vec<(&'static str, KriResult)>;
    /// The calls `collect` would make now, per pool, without making them.
    async fn plan(&self, _ctx: &RunContext, _selected: &[&'static str]) -> Result<Vec<PlannedCalls>, KriError> {
        Ok(Vec::new())
    }
    /// The newest items of the feed the connector keeps in its state (incidents, say), newest
    /// first, at most `limit`; read from the store only, never from the API. `None`: no feed.
    async fn feed(&self, _ctx: &RunContext, _limit: usize) -> Result<Option<Feed>, KriError> {
        Ok(None)
    }
}

/// A connector's feed as people see it on the dashboard.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Feed {
    /// E.g. "Newest incidents".
    pub title: String,
    pub items: Vec<FeedItem>,
}

/// One item of a [`Feed`]: its id, a one-line title, when it happened, and a few facts.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FeedItem {
    pub id: String,
    pub title: String,
    pub at: Option<chrono::DateTime<chrono::Utc>>,
    pub fields: Vec<(String, String)>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    impl crate::store::StateValue for String {
        const VERSION: u32 = 1;
    }

    /// Each tenant's run has its own state and call budget; the default tenant's are the
    /// module's, as before tenants.
    #[tokio::test]
    async fn a_tenants_context_has_its_own_state_and_budget() {
        let store = Store::in_memory().unwrap();
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(crate::testing::fixed_now()));
        let now = clock.now();
        let default = RunContext::new(clock.clone(), &store, "tap", false);
        let acme = RunContext::for_tenant(clock.clone(), &store, "acme", "tap", false);
        assert_eq!(
            (default.tenant.as_str(), acme.tenant.as_str()),
            (DEFAULT_TENANT, "acme")
        );
        acme.state.put(now, "cursor", &"a".to_owned()).await.unwrap();
        assert_eq!(default.state.get::<String>("cursor").await.unwrap(), None);
        assert_eq!(
            store
                .state("acme/tap")
                .get::<String>("cursor")
                .await
                .unwrap()
                .as_deref(),
            Some("a")
        );
        default.state.put(now, "cursor", &"d".to_owned()).await.unwrap();
        assert_eq!(
            store.state("tap").get::<String>("cursor").await.unwrap().as_deref(),
            Some("d")
        );
        let pool = crate::budget::Pool::limited("siem", 10);
        acme.budget.admit(&pool, "GET /x").await.unwrap();
        assert_eq!(acme.budget.used_24h(&pool).await.unwrap(), 1);
        assert_eq!(default.budget.used_24h(&pool).await.unwrap(), 0);
    }
}
