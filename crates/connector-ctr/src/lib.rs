//! Proofpoint Cloud Threat Response (CTR): incident feed and incident KRIs.
//!
//! This crate registers the module and validates its whole config table; the feed, the
//! list/get commands and the KRIs are built on top of it.

use std::time::Duration;

use kri_core::config::parse_duration;
use kri_core::secret::{Secret, lenient_opt_string};
use kri_core::{
    ConfigError, Connector, ConnectorSettings, Kri, KriError, KriResult, Probe, Registration, RunContext, async_trait,
};
use serde::Deserialize;

pub const ID: &str = "proofpoint-ctr";
pub const MODULE: &str = "ctr";

pub static KRIS: &[&dyn Kri] = &[];

/// The states a fetch may filter on. Sending both returns nothing upstream.
pub const FETCH_STATES: &[&str] = &["open_incidents", "closed_incidents"];

/// `[connectors.ctr]`, less the common keys the runner owns.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default = "default_base_url")]
    base_url: String,
    #[serde(default = "default_token_url")]
    token_url: String,
    #[serde(default, deserialize_with = "lenient_opt_string")]
    client_id: Option<String>,
    client_secret: Option<Secret>,
    #[serde(default = "default_first_fetch")]
    first_fetch: String,
    #[serde(default = "default_fetch_delta")]
    fetch_delta_minutes: u32,
    #[serde(default = "default_max_fetch")]
    max_fetch: u32,
    #[serde(default = "default_fetch_states")]
    fetch_states: Vec<String>,
    #[serde(default)]
    enrich: bool,
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
        let client_id = raw.client_id.filter(|s| !s.trim().is_empty()).ok_or_else(|| {
            ConfigError::missing(
                key("client_id"),
                "set client_id (API Key Management in the CTR console)",
            )
        })?;
        let client_secret = raw
            .client_secret
            .filter(|s| !s.expose().trim().is_empty())
            .ok_or_else(|| {
                ConfigError::missing(
                    key("client_secret"),
                    "set client_secret, preferably through the environment variable KRI_CONNECTORS__CTR__CLIENT_SECRET",
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
        })
    }
}

pub struct Ctr {
    #[allow(dead_code)]
    config: CtrConfig,
}

fn build(settings: &ConnectorSettings) -> Result<Box<dyn Connector>, ConfigError> {
    Ok(Box::new(Ctr {
        config: CtrConfig::from_settings(settings)?,
    }))
}

kri_core::inventory::submit! {
    Registration {
        id: ID,
        module: MODULE,
        description: "Proofpoint Cloud Threat Response: incident feed and incident KRIs",
        sample_config: include_str!("../sample.toml"),
        enabled_by_default: false,
        kris: KRIS,
        build,
    }
}

#[async_trait]
impl Connector for Ctr {
    fn id(&self) -> &'static str {
        ID
    }
    fn module(&self) -> &'static str {
        MODULE
    }
    fn kris(&self) -> &'static [&'static dyn Kri] {
        KRIS
    }
    async fn probe(&self, _ctx: &RunContext) -> Result<Probe, KriError> {
        Err(KriError::Other(
            "the CTR connector validates its config but does not call the CTR API yet (incident feed: issue #4)".into(),
        ))
    }
    async fn collect(&self, _ctx: &RunContext, _selected: &[&'static str]) -> Vec<(&'static str, KriResult)> {
        Vec::new()
    }
}
