//! What a run reports: the shapes `kri run`, `kri history` and `kri values` print as JSON (the
//! contract machines rely on), and the store writes and reads.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::kri::{KriOutcome, serialize_value};
use crate::store::fmt_time;

/// Status of one connector in one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectorStatus {
    Ok,
    Partial,
    Failed,
}

impl ConnectorStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectorStatus::Ok => "ok",
            ConnectorStatus::Partial => "partial",
            ConnectorStatus::Failed => "failed",
        }
    }
}

/// One connector's part of a run: the `connectors[]` item of `kri run --output json`.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectorReport {
    /// Whose run this is (`default` unless kri serves several tenants).
    pub tenant: String,
    pub connector: String,
    pub module: String,
    pub status: ConnectorStatus,
    pub rows_written: u64,
    pub rows_skipped: u64,
    pub api_calls: u64,
    pub error: Option<String>,
    pub kris: Vec<KriOutcome>,
    #[serde(skip)]
    pub started_at: DateTime<Utc>,
    #[serde(skip)]
    pub finished_at: DateTime<Utc>,
}

/// A whole `kri run`: the object `kri run --output json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub run_id: String,
    #[serde(serialize_with = "ser_time")]
    pub started_at: DateTime<Utc>,
    #[serde(serialize_with = "ser_time")]
    pub finished_at: DateTime<Utc>,
    pub connectors: Vec<ConnectorReport>,
}

/// A stored run of one connector, for `kri history`.
#[derive(Debug, Clone, Serialize)]
pub struct RunRow {
    /// Whose run this was (`default` for a store without tenants).
    pub tenant: String,
    pub run_id: String,
    pub connector: String,
    pub module: String,
    pub started_at: String,
    pub finished_at: String,
    pub status: String,
    pub rows_written: u64,
    pub rows_skipped: u64,
    pub api_calls: u64,
    pub error: Option<String>,
}

/// A stored KRI value, for `kri values`.
#[derive(Debug, Clone, Serialize)]
pub struct ValueRow {
    /// Whose value this is (`default` for a store without tenants).
    pub tenant: String,
    pub slug: String,
    /// The module key of the KRI's connector (`tap`), as in every other answer.
    pub module: String,
    pub connector: String,
    pub run_id: String,
    pub measured_at: String,
    #[serde(serialize_with = "serialize_value")]
    pub value: Option<f64>,
    pub unit: String,
    pub status: String,
    pub band: Option<String>,
    pub message: Option<String>,
    /// The KRI's value before this one (the newest older row with a value), when asked for.
    #[serde(serialize_with = "serialize_value")]
    pub previous: Option<f64>,
    /// `value − previous`, when both exist.
    #[serde(serialize_with = "serialize_value")]
    pub delta: Option<f64>,
    /// The thresholds the value was banded with (`None` for values stored before they were
    /// kept). Not in the JSON contract yet.
    #[serde(skip)]
    pub amber: Option<f64>,
    #[serde(skip)]
    pub red: Option<f64>,
    /// Its title for people (`[kris.SLUG] title`, else the registration's).
    pub title: String,
    /// Who owns it (`[kris.SLUG] owner`).
    pub owner: Option<String>,
    /// `previous` and `delta` under the names events use.
    #[serde(serialize_with = "serialize_value")]
    pub previous_value: Option<f64>,
    #[serde(serialize_with = "serialize_value")]
    pub change: Option<f64>,
    /// Where the KRI stands now, on its newest value (null and false on older ones): since
    /// when it has been in its band,
    pub band_since: Option<String>,
    /// whether its newest value is older than twice its schedule or failed,
    pub stale: bool,
    /// the acknowledgement in force,
    pub acknowledged: Option<Acknowledged>,
    /// and whether it has been amber or red longer than `respond_within` unacknowledged.
    pub overdue: bool,
}

/// An acknowledgement in force, as outputs show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Acknowledged {
    pub by: Option<String>,
    pub note: String,
    pub at: String,
    pub until: Option<String>,
}

pub(crate) fn ser_time<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&fmt_time(t))
}
