//! Server-rendered HTML pages for `kri`: the dashboard, one page per KRI, the all-tenants
//! overview, and a small message page.
//!
//! Pure functions from plain data to a complete HTML5 document (`String`): no I/O, no async, no
//! HTTP. Templates are [`maud`] (checked at compile time, every string escaped). CSS is inline,
//! charts are inline SVG, and nothing is loaded from anywhere else, so a page also works as a
//! static file (`kri report --html`, see [`Actions::Static`]).

mod chart;
mod format;
mod overview;
mod page;
mod report;

use chrono::{DateTime, Utc};

pub use overview::overview_page;
pub use page::{RANGES, dashboard, kri_page, message_page};
pub use report::{Report, ReportKri, report_page};

/// Everything the dashboard page shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Dashboard {
    /// When the data was read; shown in the header.
    pub generated_at: DateTime<Utc>,
    /// One tile per KRI, in display order.
    pub tiles: Vec<Tile>,
    /// One row per configured connector.
    pub connectors: Vec<ConnectorRow>,
    /// Recent runs, newest first, already limited (~20).
    pub runs: Vec<RunRow>,
    /// Lists of recent upstream items (e.g. newest CTR incidents); the section is left out when empty.
    pub feeds: Vec<Feed>,
    /// Where events go (`[sinks.NAME]`) and how delivery stands; the section is left out when
    /// empty, and from a static report.
    pub sinks: Vec<SinkRow>,
    /// Whether the page offers Run now / Test buttons, and whether it is live at all.
    pub actions: Actions,
    /// `None`: a single-tenant install (no tenant anywhere on the page). `Some(name)`: one tenant
    /// of many; the header names it and links to the overview, KRI links and Run now / Test carry it.
    pub tenant: Option<String>,
}

/// What the page may do besides showing data.
#[derive(Debug, Clone, PartialEq)]
pub enum Actions {
    /// Live server with a token configured: Run now / Test buttons work (the user types the token).
    Enabled,
    /// Live server without a token: buttons shown DISABLED with this explanation
    /// (e.g. "Set `[serve] token` or `KRI_SERVE__TOKEN` to enable Run now and Test").
    Disabled(String),
    /// A static file (`kri report --html`): no buttons, no forms, no script at all.
    Static,
}

/// One KRI as a tile: its facts, its latest value and its recent history.
#[derive(Debug, Clone, PartialEq)]
pub struct Tile {
    /// Stable identifier, e.g. `pp_vap_count`; also the last path segment of its page.
    pub slug: String,
    /// The connector (module) that measures it, e.g. `tap`.
    pub module: String,
    /// One line for people.
    pub meaning: String,
    /// `count`, `percent` or `hours` (anything else is shown as written).
    pub unit: String,
    /// True when a higher value is worse (thresholds are then "at or above").
    pub higher_is_worse: bool,
    /// Amber threshold.
    pub amber: f64,
    /// Red threshold.
    pub red: f64,
    /// The latest measurement; `None` when never measured.
    pub latest: Option<Latest>,
    /// Values, oldest first: the last 30 days on the dashboard, everything on the KRI page.
    /// Failed runs have no point.
    pub history: Vec<Point>,
    /// Its title for people (`[kris.SLUG] title`, else the registration's); shown first.
    pub title: String,
    /// Who owns it and what to do on amber or red (`[kris.SLUG]`).
    pub owner: Option<String>,
    pub action: Option<String>,
    /// Where it stands now.
    pub standing: Standing,
}

/// Where a KRI stands now, beyond its latest value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Standing {
    /// The value before the latest.
    pub previous: Option<f64>,
    /// When it entered its current band.
    pub band_since: Option<DateTime<Utc>>,
    /// Its newest value failed or is older than twice its schedule.
    pub stale: bool,
    /// Amber or red longer than its response time, unacknowledged.
    pub overdue: bool,
    /// The acknowledgement in force: who, why, until when.
    pub acknowledged: Option<Acknowledgement>,
}

/// An acknowledgement in force.
#[derive(Debug, Clone, PartialEq)]
pub struct Acknowledgement {
    pub by: Option<String>,
    pub note: String,
    pub until: Option<DateTime<Utc>>,
}

impl Tile {
    /// Where it goes on the page, worst first: red, amber, failed or stale, green, never
    /// measured; overdue first within a band.
    pub fn rank(&self) -> (u8, bool) {
        let band = self.latest.as_ref().and_then(|l| l.band.as_deref());
        let failed = self.latest.as_ref().is_some_and(|l| l.status == "failed");
        let unmeasured = self.latest.as_ref().is_none_or(|l| l.status == "unlicensed");
        let place = match band {
            _ if unmeasured => 4,
            Some("red") if !failed => 0,
            Some("amber") if !failed => 1,
            _ if failed || self.standing.stale => 2,
            Some("green") => 3,
            _ => 2,
        };
        (place, !self.standing.overdue)
    }
}

/// The latest measurement of a KRI.
#[derive(Debug, Clone, PartialEq)]
pub struct Latest {
    /// `None` when `status` is `failed`.
    pub value: Option<f64>,
    /// `ok`, `unlicensed` or `failed`.
    pub status: String,
    /// `green`, `amber`, `red`, or `None`.
    pub band: Option<String>,
    /// Why a value is missing or odd; shown next to the status.
    pub message: Option<String>,
    /// When it was measured.
    pub measured_at: DateTime<Utc>,
}

/// One value in a KRI's history.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// When it was measured.
    pub at: DateTime<Utc>,
    /// The value (non-finite values are skipped when drawing).
    pub value: f64,
}

/// One connector in the connectors table.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectorRow {
    /// Module key, e.g. `tap`; also the `module=` of the Run now / Test requests.
    pub module: String,
    /// What it reads, for people.
    pub description: String,
    /// Schedule as configured, e.g. `hourly`, `daily`.
    pub schedule: String,
    /// A run of it is going on now.
    pub running: bool,
    /// Its last finished run, if any.
    pub last_run: Option<LastRun>,
    /// Next scheduled run; `None`: not scheduled (e.g. static report).
    pub next_run: Option<DateTime<Utc>>,
}

/// One sink: where kri's events go, and how delivery stands.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkRow {
    pub name: String,
    /// `webhook`, `splunk_hec`, …
    pub kind: String,
    pub delivered: i64,
    pub waiting: i64,
    pub dead: i64,
    /// When the oldest waiting event happened.
    pub oldest_waiting: Option<String>,
    /// Why events wait or died, one line (secrets already scrubbed).
    pub last_error: Option<String>,
}

/// The last finished run of a connector.
#[derive(Debug, Clone, PartialEq)]
pub struct LastRun {
    /// When it finished (or started; shown as given).
    pub at: DateTime<Utc>,
    /// `ok`, `partial` or `failed`.
    pub status: String,
    /// The error, one line.
    pub error: Option<String>,
}

/// One row in the recent runs table. Times are strings as stored; RFC 3339 ones are shown in a readable UTC form.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    /// Run id, shown in full.
    pub run_id: String,
    /// Module key.
    pub module: String,
    /// Start time (RFC 3339 preferred).
    pub started_at: String,
    /// End time (RFC 3339 preferred; empty while running).
    pub finished_at: String,
    /// `ok`, `partial`, `failed`, `running`, ...
    pub status: String,
    /// KRI values and other rows written to the store.
    pub rows_written: u64,
    /// Upstream API calls made.
    pub api_calls: u64,
    /// The error, one line.
    pub error: Option<String>,
}

/// A short list of recent upstream items, e.g. the newest CTR incidents.
#[derive(Debug, Clone, PartialEq)]
pub struct Feed {
    /// Module key of the connector that read it.
    pub module: String,
    /// Heading, e.g. "Newest CTR incidents".
    pub title: String,
    /// Items, in display order.
    pub items: Vec<FeedItem>,
}

/// One item in a [`Feed`].
#[derive(Debug, Clone, PartialEq)]
pub struct FeedItem {
    /// Upstream id, shown in `<code>`.
    pub id: String,
    /// Title for people.
    pub title: String,
    /// When it happened, if known.
    pub at: Option<DateTime<Utc>>,
    /// Name/value pairs, e.g. `("state", "open")`, `("score", "87")`.
    pub fields: Vec<(String, String)>,
}

/// One KRI's page: its tile facts, the full history chart with the amber/red lines, and a table of values.
#[derive(Debug, Clone, PartialEq)]
pub struct KriPage {
    /// When the data was read; shown in the header.
    pub generated_at: DateTime<Utc>,
    /// The KRI; its history may cover more than 30 days here (all values given).
    pub tile: Tile,
    /// Newest first, for the table under the chart.
    pub values: Vec<ValueRow>,
    /// How it is measured against the vendor's API (the registration's words).
    pub how: String,
    /// The appetite statement its thresholds trace to (`[kris.SLUG] appetite`).
    pub appetite: Option<String>,
    /// The range the chart shows (`7d`, `30d`, `90d`, `1y`); `None`: all the store keeps.
    pub range: Option<String>,
    /// Its stays in amber or red, newest first.
    pub breaches: Vec<Breach>,
    /// The band it never left over the chart's range, and for how many days (30 or more).
    pub perpetual: Option<(String, i64)>,
    /// Whether the page offers the acknowledgement form ([`Actions::Enabled`], and the KRI is
    /// amber or red) or says why not ([`Actions::Disabled`]).
    pub actions: Actions,
    /// `None`: a single-tenant install. `Some(name)`: the header names the tenant and the links
    /// back carry it.
    pub tenant: Option<String>,
}

/// One row of a KRI's values table.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueRow {
    /// When it was measured (RFC 3339 preferred).
    pub measured_at: String,
    /// The value; `None` when failed.
    pub value: Option<f64>,
    /// `ok`, `unlicensed` or `failed`.
    pub status: String,
    /// `green`, `amber`, `red`, or `None`.
    pub band: Option<String>,
    /// Why a value is missing or odd.
    pub message: Option<String>,
    /// The run that measured it.
    pub run_id: String,
    /// `value − previous`, when both exist.
    pub change: Option<f64>,
}

/// One stay of a KRI in amber or red.
#[derive(Debug, Clone, PartialEq)]
pub struct Breach {
    pub band: String,
    /// Its first value in the band.
    pub entered: DateTime<Utc>,
    /// Its first value out of it; `None`: still there.
    pub left: Option<DateTime<Utc>>,
    /// Who acknowledged it and why, if anyone did.
    pub acknowledged: Option<Acknowledgement>,
}

/// The all-tenants overview: one row per tenant with its KRIs counted by band.
#[derive(Debug, Clone, PartialEq)]
pub struct Overview {
    /// When the data was read; shown in the header.
    pub generated_at: DateTime<Utc>,
    /// One entry per tenant, in any order (the page sorts them worst first).
    pub tenants: Vec<TenantBands>,
    /// Only decides whether the page is live (tenant links, a reload each minute) or a static
    /// file ([`Actions::Static`]: no links to tenant pages, no reload). The overview has no buttons.
    pub actions: Actions,
    /// The matrix's columns: (slug, title) of every KRI any tenant selects.
    pub kris: Vec<(String, String)>,
}

/// One tenant on the overview: how many of its KRIs are in each band now.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantBands {
    /// Tenant name (`[a-z0-9_-]`); the `?tenant=` of its dashboard.
    pub name: String,
    /// KRIs whose latest value is red.
    pub red: u32,
    /// KRIs whose latest value is amber.
    pub amber: u32,
    /// KRIs whose latest value is green.
    pub green: u32,
    /// KRIs without a value (never measured, unlicensed, failed).
    pub no_value: u32,
    /// Connectors whose last run failed.
    pub failed_connectors: u32,
    /// The tenant's latest run (finished or started, shown as given); `None`: never ran.
    pub last_run: Option<DateTime<Utc>>,
    /// The band of each of [`Overview::kris`] for this tenant, in the same order: `None` when it
    /// has no value, or the tenant does not select it.
    pub cells: Vec<Option<String>>,
}

#[cfg(test)]
mod tests;
