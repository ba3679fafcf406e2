//! The [`Connector`] trait every vendor module implements, and what it is handed per run.

use std::sync::Arc;

use crate::clock::Clock;
use crate::error::KriError;
use crate::http::CallCounter;
use crate::kri::Kri;
use crate::store::StateHandle;

/// A measured value. `warning` is for a value that is real but weak (e.g. "no reports: low
/// signal"): the KRI stays `ok`, the warning is logged and shown as its message.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    pub value: f64,
    pub warning: Option<String>,
}

impl Measurement {
    pub fn value(value: f64) -> Self {
        Self { value, warning: None }
    }
    pub fn with_warning(value: f64, warning: impl Into<String>) -> Self {
        Self {
            value,
            warning: Some(warning.into()),
        }
    }
}

pub type KriResult = Result<Measurement, KriError>;

/// What a connectivity probe found, phrased for the user (e.g. "VAP count 12").
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    pub message: String,
}

/// Everything a connector gets for one run: the clock, its own slice of the store, the call
/// counter its HTTP clients must count into, and whether a terminal is watching.
#[derive(Clone)]
pub struct RunContext {
    pub clock: Arc<dyn Clock>,
    pub state: StateHandle,
    pub calls: CallCounter,
    /// A person is watching stderr on a terminal: progress bars are welcome.
    pub interactive: bool,
}

/// A vendor module. Object safe: the runner holds `Box<dyn Connector>`.
#[async_trait::async_trait]
pub trait Connector: Send + Sync {
    /// Vendor slug, e.g. `proofpoint-tap`.
    fn id(&self) -> &'static str;
    /// Module key used in config and `--only`, e.g. `tap`.
    fn module(&self) -> &'static str;
    /// The KRIs this connector offers.
    fn kris(&self) -> &'static [&'static dyn Kri];
    /// A cheap connectivity check that proves credentials and scope.
    async fn probe(&self, ctx: &RunContext) -> Result<Probe, KriError>;
    /// Measure the `selected` KRIs (a subset of [`Connector::kris`]). One result per selected
    /// slug; a KRI missing from the answer is recorded as failed by the runner.
    async fn collect(&self, ctx: &RunContext, selected: &[&'static str]) -> Vec<(&'static str, KriResult)>;
}
