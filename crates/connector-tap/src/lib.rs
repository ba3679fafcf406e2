//! Proofpoint TAP: Very Attacked People, and the SIEM and campaign KRIs built to the REAL API
//! limits: ≤ 1 h SIEM windows no older than 7 days, rolling-24 h pools, campaign ids per day.
//! Facts per hour slot and per campaign day are kept in the store, so runs are incremental.

mod campaigns;
pub mod feed;
pub mod siem;

use kri_core::secret::Secret;
use kri_core::{
    ConfigError, Connector, ConnectorSettings, Direction, HttpClient, HttpOptions, Kri, KriError, KriResult, KriSpec,
    Measurement, PlannedCalls, Pool, Probe, Registration, RunContext, Unit, async_trait,
};
use serde::Deserialize;

pub const ID: &str = "proofpoint-tap";
pub const MODULE: &str = "tap";

pub const VAP_COUNT: KriSpec = KriSpec {
    slug: "pp_vap_count",
    title: "Very Attacked People",
    meaning: "Very Attacked People, 30-day window",
    unit: Unit::Count,
    direction: Direction::HigherIsWorse,
    amber: 10.0,
    red: 25.0,
    how: "GET /v2/people/vap?window=30 → totalVapUsers",
    licensed_module: None,
};

pub const DELIVERED_24H: KriSpec = KriSpec {
    slug: "pp_malicious_delivered_24h",
    title: "Threats delivered (24 h)",
    meaning: "threat messages delivered in the last 24 h",
    unit: Unit::Count,
    direction: Direction::HigherIsWorse,
    amber: 5.0,
    red: 20.0,
    how: "GET /v2/siem/all per hour slot (24 slots incl. the current one), messagesDelivered records, deduplicated",
    licensed_module: None,
};

pub const CLICKS_7D: KriSpec = KriSpec {
    slug: "pp_malicious_clicks_post_delivery_7d",
    title: "Clicks permitted (7 days)",
    meaning: "clicks TAP permitted in 7 days",
    unit: Unit::Count,
    direction: Direction::HigherIsWorse,
    amber: 3.0,
    red: 10.0,
    how: "GET /v2/siem/all per hour slot (168 slots), clicksPermitted records, deduplicated",
    licensed_module: None,
};

pub const BEC_7D: KriSpec = KriSpec {
    slug: "pp_bec_impostor_7d",
    title: "Impostor (BEC) messages (7 days)",
    meaning: "impostor/BEC detections in 7 days, delivered + blocked",
    unit: Unit::Count,
    direction: Direction::HigherIsWorse,
    amber: 20.0,
    red: 50.0,
    how: "GET /v2/siem/all per hour slot (168 slots), messages with threatsInfoMap classification impostor (any case)",
    licensed_module: None,
};

pub const CRED_PHISH_30D: KriSpec = KriSpec {
    slug: "pp_cred_phish_campaigns_30d",
    title: "Credential-phishing campaigns (30 days)",
    meaning: "credential-phishing campaigns in 30 days",
    unit: Unit::Count,
    direction: Direction::HigherIsWorse,
    amber: 3.0,
    red: 8.0,
    how: "GET /v2/campaign/ids per UTC day (30 days) + cached GET /v2/campaign/{id}, matched on family/technique/member names",
    licensed_module: None,
};

pub static KRIS: &[&dyn Kri] = &[&VAP_COUNT, &DELIVERED_24H, &CLICKS_7D, &BEC_7D, &CRED_PHISH_30D];

/// `/v2/people/*`: 50 calls / 24 h.
pub const PEOPLE_POOL: Pool = Pool::limited("people", 50);
/// Every SIEM endpoint but `clicks/permitted`: 1800 calls / 24 h.
pub const SIEM_POOL: Pool = Pool::limited("siem", 1800);
/// `/v2/siem/clicks/permitted`: its own 1800 / 24 h (not used: `/v2/siem/all` carries the clicks).
pub const SIEM_CLICKS_PERMITTED_POOL: Pool = Pool::limited("siem-clicks-permitted", 1800);
/// `/v2/campaign/ids`: 50 calls / 24 h.
pub const CAMPAIGN_IDS_POOL: Pool = Pool::limited("campaign-ids", 50);
/// `/v2/campaign/{id}`: not throttled, still counted and guarded.
pub const CAMPAIGN_POOL: Pool = Pool::unlimited("campaign");

const VAP_PATH: &str = "/v2/people/vap";

/// `[connectors.tap]`, less the common keys the runner owns.
#[derive(Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct TapConfig {
    /// Overrides `[proofpoint] base_url`.
    base_url: Option<String>,
    /// Overrides `[proofpoint] credentials` (`principal:secret`).
    credentials: Option<Secret>,
    /// Re-read SIEM hours and campaign days until this long after they ended (late indexing).
    #[serde(default = "default_lookback")]
    lookback_minutes: u32,
    /// Keep the oldest SIEM window this far inside the server's 7-day limit.
    #[serde(default = "default_safety")]
    safety_margin_minutes: u32,
    /// A campaign is credential phishing when a family, technique or member type/subType name
    /// contains one of these (any case)…
    #[serde(default = "default_contains")]
    cred_phish_contains: Vec<String>,
    /// …or equals one of these (any case).
    #[serde(default = "default_equals")]
    cred_phish_equals: Vec<String>,
    /// Time-out for one SIEM window (a busy hour can be hundreds of MB); other requests use the
    /// connector's `timeout`.
    #[serde(default = "default_siem_timeout")]
    siem_timeout_seconds: u64,
}

fn default_lookback() -> u32 {
    30
}
fn default_safety() -> u32 {
    15
}
fn default_contains() -> Vec<String> {
    vec!["credential".into()]
}
fn default_equals() -> Vec<String> {
    vec!["phish".into()]
}
fn default_siem_timeout() -> u64 {
    600
}

pub struct Tap {
    http: HttpClient,
    /// Requests in flight at once (the framework's `concurrency`).
    concurrency: usize,
    siem_http: HttpClient,
    lookback: chrono::Duration,
    safety: chrono::Duration,
    matcher: campaigns::Matcher,
}

fn build(settings: &ConnectorSettings) -> Result<Box<dyn Connector>, ConfigError> {
    let cfg: TapConfig = settings.parse()?;
    if cfg.lookback_minutes > 24 * 60 {
        return Err(ConfigError::invalid(
            settings.key("lookback_minutes"),
            "must be at most 1440 (one day)",
        ));
    }
    if cfg.safety_margin_minutes > 24 * 60 {
        return Err(ConfigError::invalid(
            settings.key("safety_margin_minutes"),
            "must be at most 1440 (one day)",
        ));
    }
    if cfg
        .cred_phish_contains
        .iter()
        .chain(&cfg.cred_phish_equals)
        .any(|p| p.trim().is_empty())
    {
        return Err(ConfigError::invalid(
            settings.key("cred_phish_contains"),
            "patterns must not be empty (an empty pattern would match every campaign)",
        ));
    }
    if !(1..=3600).contains(&cfg.siem_timeout_seconds) {
        return Err(ConfigError::invalid(
            settings.key("siem_timeout_seconds"),
            format!(
                "{} is out of range: use 1..=3600 (default 600)",
                cfg.siem_timeout_seconds
            ),
        ));
    }
    let http = kri_proofpoint::client(
        settings,
        cfg.base_url.as_deref(),
        cfg.credentials.as_ref(),
        settings.http_options(),
    )?;
    let siem_opts = HttpOptions {
        timeout: std::time::Duration::from_secs(cfg.siem_timeout_seconds),
        ..settings.http_options()
    };
    let siem_http = kri_proofpoint::client(settings, cfg.base_url.as_deref(), cfg.credentials.as_ref(), siem_opts)?;
    Ok(Box::new(Tap {
        http,
        concurrency: settings.concurrency(),
        siem_http,
        lookback: chrono::Duration::minutes(i64::from(cfg.lookback_minutes)),
        safety: chrono::Duration::minutes(i64::from(cfg.safety_margin_minutes)),
        matcher: campaigns::Matcher {
            contains: cfg.cred_phish_contains,
            equals: cfg.cred_phish_equals,
        },
    }))
}

kri_core::inventory::submit! {
    Registration {
        id: ID,
        module: MODULE,
        description: "Proofpoint TAP: Very Attacked People, delivered threats, clicks, BEC, campaigns",
        sample_config: include_str!("../sample.toml"),
        enabled_by_default: true,
        kris: KRIS,
        family: Some(kri_proofpoint::FAMILY),
        build,
        command: None,
        pools: &[PEOPLE_POOL, SIEM_POOL, SIEM_CLICKS_PERMITTED_POOL, CAMPAIGN_IDS_POOL, CAMPAIGN_POOL],
    }
}

#[derive(Debug, Deserialize)]
struct VapAnswer {
    #[serde(rename = "totalVapUsers")]
    total_vap_users: Option<u64>,
}

impl Tap {
    async fn vap_count(&self, ctx: &RunContext) -> Result<u64, KriError> {
        let http = self.http.metered(&ctx.budget, PEOPLE_POOL);
        let answer: VapAnswer = http.get_json(VAP_PATH, &[("window", "30")]).await?;
        answer.total_vap_users.ok_or_else(|| {
            KriError::Other(format!(
                "GET {VAP_PATH}: the answer has no totalVapUsers; the People API may have changed"
            ))
        })
    }

    fn siem_slots(selected: &[&'static str]) -> u32 {
        if selected.contains(&CLICKS_7D.slug) || selected.contains(&BEC_7D.slug) {
            168
        } else if selected.contains(&DELIVERED_24H.slug) {
            24
        } else {
            0
        }
    }
}

#[async_trait]
impl Connector for Tap {
    async fn probe(&self, ctx: &RunContext) -> Result<Probe, KriError> {
        let n = self.vap_count(ctx).await?;
        Ok(Probe {
            message: format!(
                "TAP answered GET {VAP_PATH}?window=30 at {}: {n} Very Attacked People in 30 days; check this is the tenant you expect",
                self.http.base_url()
            ),
        })
    }

    async fn collect(&self, ctx: &RunContext, selected: &[&'static str]) -> Vec<(&'static str, KriResult)> {
        let mut out = Vec::new();
        if selected.contains(&VAP_COUNT.slug) {
            out.push((
                VAP_COUNT.slug,
                self.vap_count(ctx).await.map(|n| Measurement::value(n as f64)),
            ));
        }
        let slots = Self::siem_slots(selected);
        if slots > 0 {
            let feed = feed::Siem {
                http: self.siem_http.metered(&ctx.budget, SIEM_POOL),
                concurrency: self.concurrency,
                lookback: self.lookback,
                safety: self.safety,
            };
            let sums = feed.refresh(ctx, slots).await;
            for (kri, pick) in [
                (&DELIVERED_24H, feed::Pick::Delivered24h),
                (&CLICKS_7D, feed::Pick::Clicks7d),
                (&BEC_7D, feed::Pick::Impostor7d),
            ] {
                if selected.contains(&kri.slug) {
                    out.push((kri.slug, sums.value(pick)));
                }
            }
        }
        if selected.contains(&CRED_PHISH_30D.slug) {
            let c = campaigns::Campaigns {
                http: self.http.clone(),
                concurrency: self.concurrency,
                lookback: self.lookback,
                matcher: &self.matcher,
            };
            out.push((CRED_PHISH_30D.slug, c.count(ctx).await));
        }
        out
    }

    async fn plan(&self, ctx: &RunContext, selected: &[&'static str]) -> Result<Vec<PlannedCalls>, KriError> {
        let mut plan = Vec::new();
        if selected.contains(&VAP_COUNT.slug) {
            plan.push(PlannedCalls {
                pool: PEOPLE_POOL.name,
                limit: PEOPLE_POOL.limit,
                calls: 1,
                detail: vec![format!("GET {VAP_PATH}?window=30")],
            });
        }
        let slots = Self::siem_slots(selected);
        if slots > 0 {
            let feed = feed::Siem {
                http: self.siem_http.clone(),
                concurrency: self.concurrency,
                lookback: self.lookback,
                safety: self.safety,
            };
            plan.push(feed.plan(ctx, slots).await?);
        }
        if selected.contains(&CRED_PHISH_30D.slug) {
            let c = campaigns::Campaigns {
                http: self.http.clone(),
                concurrency: self.concurrency,
                lookback: self.lookback,
                matcher: &self.matcher,
            };
            plan.extend(c.plan(ctx).await?);
        }
        Ok(plan)
    }
}
