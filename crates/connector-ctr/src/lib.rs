//! Proofpoint Cloud Threat Response (CTR): incident feed and incident KRIs.
//!
//! OAuth2 client credentials ([`kri_core::oauth`]), the list/search and details endpoints
//! ([`client`]), the incremental feed ([`fetch`]), the filters ([`filters`]), the three time
//! formats ([`time`]) and the KRIs below.

pub mod cli;
pub mod client;
pub mod fetch;
pub mod filters;
pub mod time;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use kri_core::config::{lenient_bool, parse_duration};
use kri_core::oauth::ClientCredentials;
use kri_core::secret::{Secret, lenient_opt_string};
use kri_core::store::StateHandle;
use kri_core::{
    Budget, ConfigError, Connector, ConnectorSettings, Direction, HttpClient, HttpError, HttpOptions, Kri, KriError,
    KriResult, KriSpec, Measurement, PlannedCalls, Pool, Probe, Registration, RunContext, Unit, async_trait,
};
use serde::Deserialize;
use serde_json::Value;

use crate::client::{CtrClient, View};
use crate::fetch::{Cycle, FeedSettings};
use crate::filters::{Filters, Sort};

pub const ID: &str = "proofpoint-ctr";
pub const MODULE: &str = "ctr";

pub const OPEN_INCIDENTS: KriSpec = KriSpec {
    slug: "ctr_open_incidents",
    title: "Open CTR incidents",
    meaning: "CTR incidents open now",
    unit: Unit::Count,
    direction: Direction::HigherIsWorse,
    amber: 20.0,
    red: 50.0,
    how: "POST /api/v1/tric/incidents, other_filters [open_incidents], one row → `total`",
    licensed_module: None,
};

pub const CREATED_24H: KriSpec = KriSpec {
    slug: "ctr_incidents_created_24h",
    title: "CTR incidents created (24 h)",
    meaning: "CTR incidents created in the last 24 h",
    unit: Unit::Count,
    direction: Direction::HigherIsWorse,
    amber: 10.0,
    red: 25.0,
    how: "POST /api/v1/tric/incidents, time_range_filter last 24 h, one row → `total`",
    licensed_module: None,
};

pub const MTTC_30D: KriSpec = KriSpec {
    slug: "ctr_mean_time_to_close_hours_30d",
    title: "Mean time to close (30 days)",
    meaning: "mean hours from creation to closing, incidents closed in the last 30 days",
    unit: Unit::Hours,
    direction: Direction::HigherIsWorse,
    amber: 24.0,
    red: 72.0,
    how: "POST /api/v1/tric/incidents, closed_incidents created in 90 days (≤ 1000), closedAt in 30 days, \
          mean(closedAt − createdAt); none → 0 with a warning",
    licensed_module: None,
};

pub static KRIS: &[&dyn Kri] = &[&OPEN_INCIDENTS, &CREATED_24H, &MTTC_30D];

/// Token requests.
pub const TOKEN_POOL: Pool = Pool::unlimited("ctr-token");
/// Every CTR API call: no published daily limit; `rate_limit_per_minute` spaces them, and a 429
/// is waited out (twice at most) before the call fails.
pub const CTR_POOL: Pool = Pool::unlimited("ctr");

/// What a 401 should make the user check.
pub const CLIENT_CREDENTIALS_HINT: &str = "check client_id and client_secret (the API key from API Key Management in \
     the console, no extra spaces) and that the key is still active";

/// Closed incidents read for the mean time to close (5 pages).
const MTTC_MAX_ROWS: u32 = 1000;

/// The states a fetch may filter on. Sending both returns nothing upstream.
pub const FETCH_STATES: &[&str] = &["open_incidents", "closed_incidents"];

/// `[connectors.ctr]`, less the common keys the runner owns.
#[derive(Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default = "default_base_url")]
    base_url: String,
    #[serde(default = "default_token_url")]
    token_url: String,
    #[serde(default, deserialize_with = "lenient_opt_string")]
    client_id: Option<String>,
    client_secret: Option<Secret>,
    /// A file holding the client secret (container secrets, systemd credentials).
    client_secret_file: Option<std::path::PathBuf>,
    #[serde(default = "default_first_fetch")]
    first_fetch: String,
    #[serde(default = "default_fetch_delta")]
    fetch_delta_minutes: u32,
    #[serde(default = "default_max_fetch")]
    max_fetch: u32,
    #[serde(default = "default_fetch_states")]
    fetch_states: Vec<String>,
    #[serde(default, deserialize_with = "lenient_bool")]
    enrich: bool,
    #[serde(default = "default_enrich_concurrency")]
    enrich_concurrency: u32,
    #[serde(default = "default_rate_limit")]
    rate_limit_per_minute: u32,
}

fn default_enrich_concurrency() -> u32 {
    4
}
fn default_rate_limit() -> u32 {
    10
}

fn default_base_url() -> String {
    "https://threatprotection-api.proofpoint.com".into()
}
fn default_token_url() -> String {
    "https://auth.proofpoint.com/v1/token".into()
}
fn default_first_fetch() -> String {
    "3 days".into()
}
fn default_fetch_delta() -> u32 {
    1
}
fn default_max_fetch() -> u32 {
    50
}
fn default_fetch_states() -> Vec<String> {
    vec!["open_incidents".into()]
}

/// The validated CTR settings.
#[derive(Debug, Clone)]
pub struct CtrConfig {
    pub base_url: String,
    pub token_url: String,
    pub client_id: String,
    pub client_secret: Secret,
    pub first_fetch: Duration,
    pub fetch_delta: Duration,
    pub max_fetch: u32,
    pub fetch_state: String,
    pub enrich: bool,
    /// Enrichment GETs in flight at once, 1..=16.
    pub enrich_concurrency: u32,
    /// Client-side limit on CTR API calls (0: none).
    pub rate_limit_per_minute: u32,
    /// Time-outs and retries (the framework's `timeout` / `connect_timeout`).
    pub http: HttpOptions,
}

impl CtrConfig {
    pub fn from_settings(settings: &ConnectorSettings) -> Result<Self, ConfigError> {
        let raw: RawConfig = settings.parse()?;
        let key = |k: &str| settings.key(k);
        for (k, url) in [("base_url", &raw.base_url), ("token_url", &raw.token_url)] {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(ConfigError::invalid(
                    key(k),
                    format!("`{url}` must be a URL starting with https://"),
                ));
            }
        }
        let first_fetch = parse_duration(&raw.first_fetch).map_err(|m| ConfigError::invalid(key("first_fetch"), m))?;
        if !(1..=200).contains(&raw.max_fetch) {
            return Err(ConfigError::invalid(
                key("max_fetch"),
                format!(
                    "{} is out of range: CTR pages hold at most 200 incidents, so max_fetch must be 1..=200",
                    raw.max_fetch
                ),
            ));
        }
        let fetch_state = match raw.fetch_states.as_slice() {
            [one] if FETCH_STATES.contains(&one.as_str()) => one.clone(),
            [one] => {
                return Err(ConfigError::invalid(
                    key("fetch_states"),
                    format!("unknown state `{one}`; use [\"open_incidents\"] or [\"closed_incidents\"]"),
                ));
            }
            [] => {
                return Err(ConfigError::invalid(
                    key("fetch_states"),
                    "give one state: [\"open_incidents\"] or [\"closed_incidents\"]",
                ));
            }
            _ => {
                return Err(ConfigError::invalid(
                    key("fetch_states"),
                    "choose ONE of open_incidents or closed_incidents: the CTR API returns nothing when both are sent",
                ));
            }
        };
        if !(1..=16).contains(&raw.enrich_concurrency) {
            return Err(ConfigError::invalid(
                key("enrich_concurrency"),
                format!("{} is out of range: use 1..=16 (default 4)", raw.enrich_concurrency),
            ));
        }
        let client_id = raw.client_id.filter(|s| !s.trim().is_empty()).ok_or_else(|| {
            ConfigError::missing(
                key("client_id"),
                "set client_id (API Key Management in the CTR console)",
            )
        })?;
        let client_secret = kri_core::secret::from_value_or_file(
            raw.client_secret,
            raw.client_secret_file.as_deref(),
            &key("client_secret"),
            &key("client_secret_file"),
        )?
        .filter(|s| !s.expose().trim().is_empty())
        .ok_or_else(|| {
            ConfigError::missing(
                key("client_secret"),
                "set client_secret, preferably through the environment variable KRI_CONNECTORS__CTR__CLIENT_SECRET \
                     or client_secret_file = a file holding it",
            )
        })?;
        Ok(Self {
            base_url: raw.base_url,
            token_url: raw.token_url,
            client_id,
            client_secret,
            first_fetch,
            fetch_delta: Duration::from_secs(u64::from(raw.fetch_delta_minutes) * 60),
            max_fetch: raw.max_fetch,
            fetch_state,
            enrich: raw.enrich,
            enrich_concurrency: raw.enrich_concurrency,
            rate_limit_per_minute: raw.rate_limit_per_minute,
            http: settings.http_options(),
        })
    }
}

/// The CTR connector: a bearer-token HTTP client and the feed settings.
pub struct Ctr {
    config: CtrConfig,
    http: HttpClient,
    /// `CTR_POOL` with the configured per-minute limit.
    pool: Pool,
}

impl Ctr {
    /// Build from validated settings. No network call: the token is fetched on first use.
    pub fn new(config: CtrConfig) -> Result<Self, ConfigError> {
        let tokens = ClientCredentials::new(
            &config.token_url,
            &config.client_id,
            config.client_secret.clone(),
            config.http.clone(),
            TOKEN_POOL,
            CLIENT_CREDENTIALS_HINT,
        )
        .map_err(|m| ConfigError::invalid(format!("connectors.{MODULE}.token_url"), m))?
        .from_key(format!("connectors.{MODULE}.token_url"));
        let http = HttpClient::new(&config.base_url, Arc::new(tokens), config.http.clone())
            .map_err(|m| ConfigError::invalid(format!("connectors.{MODULE}.base_url"), m))?
            .from_key(format!("connectors.{MODULE}.base_url"));
        Ok(Self {
            pool: CTR_POOL.per_minute(config.rate_limit_per_minute),
            config,
            http,
        })
    }

    pub fn config(&self) -> &CtrConfig {
        &self.config
    }

    /// A client metered by `budget` (token requests go to their own pool).
    pub fn client(&self, budget: &Budget) -> CtrClient {
        CtrClient {
            http: self.http.metered(budget, self.pool),
        }
    }

    pub fn feed_settings(&self) -> FeedSettings {
        FeedSettings {
            first_fetch: self.config.first_fetch,
            fetch_delta: self.config.fetch_delta,
            max_fetch: self.config.max_fetch,
            fetch_state: self.config.fetch_state.clone(),
            enrich: self.config.enrich,
            enrich_concurrency: self.config.enrich_concurrency as usize,
        }
    }

    /// One cycle of the incident feed (`kri ctr fetch`, and the start of every CTR run).
    pub async fn fetch(&self, ctx: &RunContext) -> Result<Cycle, KriError> {
        fetch::cycle(
            &self.client(&ctx.budget),
            &ctx.state,
            &ctx.tenant,
            &self.feed_settings(),
            ctx.clock.now(),
        )
        .await
    }

    /// `kri ctr incidents list`: validated filters, up to `limit` incidents, newest first.
    pub async fn list(
        &self,
        ctx: &RunContext,
        filters: &Filters,
        limit: u32,
    ) -> Result<(Vec<Value>, Option<u64>), HttpError> {
        self.client(&ctx.budget)
            .list(filters, ctx.clock.now(), limit, Sort::Desc)
            .await
    }

    /// `kri ctr incidents get`: details per UUID, each stored into (merged with) its row; one
    /// failure does not hide the others. Ids must have passed [`client::is_uuid`]. `done` is
    /// told after each incident (for progress).
    pub async fn get_many(
        &self,
        ctx: &RunContext,
        ids: &[String],
        done: &(dyn Fn(usize) + Send + Sync),
    ) -> Vec<(String, Result<Value, KriError>)> {
        let client = self.client(&ctx.budget);
        let mut out = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            let r = match client.get(id).await {
                Ok(details) => {
                    let row = client::merge_details(&serde_json::json!({"id": id}), &details);
                    fetch::store_incidents(&ctx.state, &ctx.tenant, ctx.clock.now(), std::slice::from_ref(&row))
                        .await
                        .map(|mut v| v.pop().unwrap_or(row))
                }
                Err(e) => Err(e.into()),
            };
            out.push((id.clone(), r));
            done(i + 1);
        }
        out
    }

    /// How long the client-side rate limit makes `calls` calls take at least (none when unlimited).
    pub fn rate_limited_duration(&self, calls: usize) -> Option<Duration> {
        let per_minute = self.config.rate_limit_per_minute as usize;
        (per_minute > 0 && calls > per_minute).then(|| Duration::from_secs(60 * ((calls - 1) / per_minute) as u64))
    }

    async fn total(&self, client: &CtrClient, filters: &Filters, now: DateTime<Utc>) -> KriResult {
        let page = client.page(filters, now, 0, 1, Sort::Desc).await?;
        match page.total {
            Some(t) => Ok(Measurement::value(t as f64)),
            None => {
                // No `total` in the answer: count by paging (bounded).
                let (all, _) = client.list(filters, now, 10 * filters::MAX_PAGE, Sort::Desc).await?;
                Ok(Measurement::with_warning(
                    all.len() as f64,
                    "the CTR answer had no `total`; counted by paging (at most 2000)",
                ))
            }
        }
    }

    async fn mean_time_to_close(&self, client: &CtrClient, now: DateTime<Utc>) -> KriResult {
        let filters = Filters {
            start: Some(now - chrono::Duration::days(90)),
            end: Some(now),
            states: vec!["closed_incidents".into()],
            ..Default::default()
        };
        let (closed, total) = client.list(&filters, now, MTTC_MAX_ROWS, Sort::Desc).await?;
        Ok(mean_time_to_close(&closed, total, now))
    }
}

/// Mean hours from `createdAt` to `closedAt` over incidents closed in the 30 days before `now`
/// (two decimals). None closed → 0 with a warning and no band.
pub fn mean_time_to_close(closed: &[Value], total: Option<u64>, now: DateTime<Utc>) -> Measurement {
    let from = now - chrono::Duration::days(30);
    let hours: Vec<f64> = closed
        .iter()
        .filter_map(|i| {
            let v = View(i);
            let (c, x) = (v.created_at()?, v.time("closedAt")?);
            (x >= from && x <= now && x >= c).then(|| (x - c).num_seconds() as f64 / 3600.0)
        })
        .collect();
    if hours.is_empty() {
        return Measurement::not_measured(
            0.0,
            "no CTR incident closed in the last 30 days: 0 by convention, not a measurement (no band)",
        );
    }
    let mean = (hours.iter().sum::<f64>() / hours.len() as f64 * 100.0).round() / 100.0;
    match total {
        Some(t) if t > closed.len() as u64 => Measurement::with_warning(
            mean,
            format!("mean of the newest {} closed incidents of {t}", closed.len()),
        ),
        _ => Measurement::value(mean),
    }
}

fn build(settings: &ConnectorSettings) -> Result<Box<dyn Connector>, ConfigError> {
    Ok(Box::new(Ctr::new(CtrConfig::from_settings(settings)?)?))
}
kri_core::inventory::submit! {
    Registration {
        id: ID,
        module: MODULE,
        description: "Proofpoint Cloud Threat Response: incident feed and incident KRIs",
        sample_config: include_str!("../sample.toml"),
        enabled_by_default: false,
        kris: KRIS,
        family: None,
        build,
        command: Some(cli::COMMAND),
        pools: &[TOKEN_POOL, CTR_POOL],
    }
}

#[async_trait]
impl Connector for Ctr {
    async fn probe(&self, ctx: &RunContext) -> Result<Probe, KriError> {
        let filters = Filters {
            states: vec!["open_incidents".into()],
            ..Default::default()
        };
        let page = self
            .client(&ctx.budget)
            .page(&filters, ctx.clock.now(), 0, 1, Sort::Desc)
            .await?;
        Ok(Probe {
            message: match page.total {
                Some(t) => format!("{t} open incidents"),
                None => "incident list reachable".into(),
            },
        })
    }

    /// The newest incidents the feed stored, newest first (the store only, no API call).
    async fn feed(&self, ctx: &RunContext, limit: usize) -> Result<Option<kri_core::Feed>, KriError> {
        let mut rows: Vec<Value> = ctx
            .state
            .scan::<fetch::StoredIncident>(&fetch::incident_key(""))
            .await?
            .into_iter()
            .map(|(_, s)| s.0)
            .collect();
        rows.sort_by_key(|inc| std::cmp::Reverse(client::View(inc).created_at()));
        let items = rows
            .iter()
            .take(limit)
            .filter_map(|inc| {
                let v = client::View(inc);
                let id = v.id()?.to_owned();
                let mut fields = Vec::new();
                for key in ["state", "priority", "score", "assignedTeamName"] {
                    match inc.get(key) {
                        Some(Value::String(t)) if !t.is_empty() => fields.push((key.to_owned(), t.clone())),
                        Some(Value::Number(n)) => fields.push((key.to_owned(), n.to_string())),
                        _ => {}
                    }
                }
                let title = v
                    .str("title")
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
                    .or_else(|| inc.get("displayId").map(|d| format!("incident {d}")))
                    .unwrap_or_else(|| format!("incident {id}"));
                Some(kri_core::FeedItem {
                    id,
                    title,
                    at: v.created_at(),
                    fields,
                })
            })
            .collect();
        Ok(Some(kri_core::Feed {
            title: "Newest CTR incidents".into(),
            items,
        }))
    }

    /// What a run costs: the token, one feed cycle (at least one page, plus one GET per new
    /// incident when enriching) and the KRI calls. CTR has no published 24 h pool: the limit
    /// that matters is the per-minute one, so the estimate says how long it takes under it.
    async fn plan(&self, ctx: &RunContext, selected: &[&'static str]) -> Result<Vec<PlannedCalls>, KriError> {
        let s = self.feed_settings();
        let cursor: Option<fetch::Cursor> = ctx.state.get(&fetch::cursor_key(&s.fetch_state)).await?;
        let since = match cursor.and_then(|c| c.created_at) {
            Some(t) => format!(
                "since {} (cursor) − {} min",
                time::filter_time(&t),
                s.fetch_delta.as_secs() / 60
            ),
            None => format!("first fetch: the last {}", self.config.first_fetch.as_secs() / 3600) + " h",
        };
        let mut detail = vec![format!(
            "feed: {} incidents, {since}: ≥ 1 list page (one more per 200 rows in the window)",
            s.fetch_state
        )];
        let mut calls = 1u32;
        if s.enrich {
            calls += s.max_fetch;
            detail.push(format!("enrichment: up to {} GETs (one per new incident)", s.max_fetch));
        }
        for kri in KRIS.iter().filter(|k| selected.contains(&k.slug())) {
            let what = if kri.slug() == MTTC_30D.slug {
                "1–5 list pages"
            } else {
                "1 list call"
            };
            calls += 1;
            detail.push(format!("{}: {what}", kri.slug()));
        }
        if self.config.rate_limit_per_minute > 0 {
            let limit = self.config.rate_limit_per_minute;
            let waits = calls.div_ceil(limit).saturating_sub(1);
            detail.push(if waits == 0 {
                format!("client-side limit {limit} calls/min: the {calls} calls fit in one minute, no waiting")
            } else {
                format!("client-side limit {limit} calls/min: at least {waits} min of waiting for the {calls} calls")
            });
        }
        Ok(vec![
            PlannedCalls {
                pool: TOKEN_POOL.name,
                limit: TOKEN_POOL.limit,
                calls: 1,
                detail: vec!["OAuth token (cached for the run)".into()],
            },
            PlannedCalls {
                pool: CTR_POOL.name,
                limit: CTR_POOL.limit,
                calls,
                detail,
            },
        ])
    }

    /// One feed cycle first (incidents into the store), then the selected KRIs. A feed failure
    /// is a warning on the KRIs: they are measured independently.
    async fn collect(&self, ctx: &RunContext, selected: &[&'static str]) -> Vec<(&'static str, KriResult)> {
        let mut feed_note = None;
        match self.fetch(ctx).await {
            Ok(c) => {
                for w in &c.warnings {
                    tracing::warn!("CTR feed: {w}");
                }
                tracing::info!(new = c.incidents.len(), "CTR feed");
            }
            Err(e) => {
                tracing::warn!("CTR feed failed: {e}");
                feed_note = Some(format!("incident feed failed: {e}"));
            }
        }
        let client = self.client(&ctx.budget);
        let now = ctx.clock.now();
        let mut out = Vec::new();
        for slug in selected {
            let r = if *slug == OPEN_INCIDENTS.slug {
                let f = Filters {
                    states: vec!["open_incidents".into()],
                    ..Default::default()
                };
                self.total(&client, &f, now).await
            } else if *slug == CREATED_24H.slug {
                let f = Filters {
                    start: Some(now - chrono::Duration::hours(24)),
                    end: Some(now),
                    ..Default::default()
                };
                self.total(&client, &f, now).await
            } else if *slug == MTTC_30D.slug {
                self.mean_time_to_close(&client, now).await
            } else {
                continue;
            };
            let r = match (r, feed_note.take()) {
                (Ok(m), Some(note)) => Ok(Measurement {
                    warning: Some(match m.warning {
                        Some(w) => format!("{w}; {note}"),
                        None => note,
                    }),
                    ..m
                }),
                (r, note) => {
                    feed_note = note;
                    r
                }
            };
            out.push((*slug, r));
        }
        out
    }
}

/// Read the stored incidents (for tests and tools): `incident/{uuid}` rows.
pub async fn stored_incidents(state: &StateHandle) -> Result<Vec<Value>, KriError> {
    Ok(state
        .scan::<fetch::StoredIncident>("incident/")
        .await?
        .into_iter()
        .map(|(_, v)| v.0)
        .collect())
}
