//! Proofpoint TAP: Very Attacked People (and, next, the SIEM and campaign KRIs).

use kri_core::secret::Secret;
use kri_core::{ConfigError, Direction, KriError, Unit, async_trait};
use kri_core::{
    Connector, ConnectorSettings, HttpClient, HttpOptions, Kri, KriResult, KriSpec, Measurement, Probe, Registration,
    RunContext,
};
use serde::Deserialize;

pub const ID: &str = "proofpoint-tap";
pub const MODULE: &str = "tap";

pub const VAP_COUNT: KriSpec = KriSpec {
    slug: "pp_vap_count",
    meaning: "Very Attacked People, 30-day window",
    unit: Unit::Count,
    direction: Direction::HigherIsWorse,
    amber: 10.0,
    red: 25.0,
    how: "GET /v2/people/vap?window=30 → totalVapUsers",
    licensed_module: None,
};

pub static KRIS: &[&dyn Kri] = &[&VAP_COUNT];

const VAP_PATH: &str = "/v2/people/vap";

/// `[connectors.tap]`, less the common keys the runner owns.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TapConfig {
    /// Overrides `[proofpoint] base_url`.
    base_url: Option<String>,
    /// Overrides `[proofpoint] credentials` (`principal:secret`).
    credentials: Option<Secret>,
}

pub struct Tap {
    http: HttpClient,
}

fn build(settings: &ConnectorSettings) -> Result<Box<dyn Connector>, ConfigError> {
    let cfg: TapConfig = settings.parse()?;
    let http = settings.proofpoint_client(
        cfg.base_url.as_deref(),
        cfg.credentials.as_ref(),
        HttpOptions::default(),
    )?;
    Ok(Box::new(Tap { http }))
}

kri_core::inventory::submit! {
    Registration {
        id: ID,
        module: MODULE,
        description: "Proofpoint TAP: Very Attacked People, delivered threats, clicks, BEC, campaigns",
        sample_config: include_str!("../sample.toml"),
        enabled_by_default: true,
        kris: KRIS,
        build,
    }
}

#[derive(Debug, Deserialize)]
struct VapAnswer {
    #[serde(rename = "totalVapUsers")]
    total_vap_users: Option<u64>,
}

impl Tap {
    async fn vap_count(&self, http: &HttpClient) -> Result<u64, KriError> {
        let answer: VapAnswer = http.get_json(VAP_PATH, &[("window", "30")]).await?;
        answer.total_vap_users.ok_or_else(|| {
            KriError::Other(format!(
                "GET {VAP_PATH}: the answer has no totalVapUsers; the People API may have changed"
            ))
        })
    }
}

#[async_trait]
impl Connector for Tap {
    fn id(&self) -> &'static str {
        ID
    }
    fn module(&self) -> &'static str {
        MODULE
    }
    fn kris(&self) -> &'static [&'static dyn Kri] {
        KRIS
    }

    async fn probe(&self, ctx: &RunContext) -> Result<Probe, KriError> {
        let n = self.vap_count(&self.http.counting(&ctx.calls)).await?;
        Ok(Probe {
            message: format!(
                "TAP answered GET {VAP_PATH}?window=30 at {}: {n} Very Attacked People in 30 days; check this is the tenant you expect",
                self.http.base_url()
            ),
        })
    }

    async fn collect(&self, ctx: &RunContext, selected: &[&'static str]) -> Vec<(&'static str, KriResult)> {
        let http = self.http.counting(&ctx.calls);
        let mut out = Vec::new();
        if selected.contains(&VAP_COUNT.slug) {
            out.push((
                VAP_COUNT.slug,
                self.vap_count(&http).await.map(|n| Measurement::value(n as f64)),
            ));
        }
        out
    }
}
