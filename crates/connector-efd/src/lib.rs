//! Proofpoint Email Fraud Defense: share of owned domains whose DMARC policy is enforced.
//!
//! Proofpoint publishes no public EFD API reference: the contract is the product brief's,
//! parsed tolerantly (an object with `domains`, or a bare array; `name` or `domain`).

use kri_core::config::lenient_bool;
use kri_core::kri::percent;
use kri_core::secret::Secret;
use kri_core::{
    ConfigError, Connector, ConnectorSettings, Direction, HttpClient, Kri, KriError, KriResult, KriSpec, Measurement,
    PlannedCalls, Pool, Probe, Registration, RunContext, Unit, async_trait,
};
use serde::Deserialize;

pub const ID: &str = "proofpoint-efd";
pub const MODULE: &str = "efd";
const DOMAINS_PATH: &str = "/v2/efd/dmarc/domains";

pub const DMARC_ENFORCEMENT: KriSpec = KriSpec {
    slug: "pp_dmarc_enforcement_pct",
    meaning: "% of owned domains at DMARC p=reject",
    unit: Unit::Percent,
    direction: Direction::LowerIsWorse,
    amber: 80.0,
    red: 50.0,
    how: "GET /v2/efd/dmarc/domains → domains with policy reject / all domains × 100",
    licensed_module: Some("Email Fraud Defense (EFD)"),
};

pub static KRIS: &[&dyn Kri] = &[&DMARC_ENFORCEMENT];

/// EFD calls: no published daily limit; counted and guarded all the same.
pub const EFD_POOL: Pool = Pool::unlimited("efd");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EfdConfig {
    base_url: Option<String>,
    credentials: Option<Secret>,
    /// Count `p=quarantine` as enforced too (default: only `reject`).
    #[serde(default, deserialize_with = "lenient_bool")]
    count_quarantine_as_enforced: bool,
}

pub struct Efd {
    http: HttpClient,
    count_quarantine_as_enforced: bool,
}

fn build(settings: &ConnectorSettings) -> Result<Box<dyn Connector>, ConfigError> {
    let cfg: EfdConfig = settings.parse()?;
    let http = kri_proofpoint::client(
        settings,
        cfg.base_url.as_deref(),
        cfg.credentials.as_ref(),
        settings.http_options(),
    )?;
    Ok(Box::new(Efd {
        http,
        count_quarantine_as_enforced: cfg.count_quarantine_as_enforced,
    }))
}

kri_core::inventory::submit! {
    Registration {
        id: ID,
        module: MODULE,
        description: "Proofpoint Email Fraud Defense: DMARC enforcement across owned domains",
        sample_config: include_str!("../sample.toml"),
        enabled_by_default: true,
        kris: KRIS,
        family: Some(kri_proofpoint::FAMILY),
        build,
        command: None,
    }
}

/// `{"domains": [...]}` or a bare array.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum DomainsAnswer {
    Wrapped {
        #[serde(default)]
        domains: Option<Vec<Domain>>,
    },
    Bare(Vec<Domain>),
}

#[derive(Debug, Deserialize)]
struct Domain {
    #[serde(default, alias = "domain")]
    #[allow(dead_code)]
    name: Option<String>,
    #[serde(default)]
    policy: Option<String>,
}

impl Efd {
    /// The domains. A 204 is "no domains"; an object without a `domains` array is not.
    async fn domains(&self, ctx: &RunContext) -> Result<Vec<Domain>, KriError> {
        let http = self.http.metered(&ctx.budget, EFD_POOL);
        match http.get_json::<Option<DomainsAnswer>>(DOMAINS_PATH, &[]).await? {
            None => Ok(Vec::new()),
            Some(DomainsAnswer::Bare(d)) | Some(DomainsAnswer::Wrapped { domains: Some(d) }) => Ok(d),
            Some(DomainsAnswer::Wrapped { domains: None }) => Err(KriError::Other(format!(
                "GET {DOMAINS_PATH}: the answer has no `domains` array; the EFD API may have changed"
            ))),
        }
    }

    fn enforcement(&self, domains: &[Domain]) -> Measurement {
        if domains.is_empty() {
            return Measurement::with_warning(
                0.0,
                format!(
                    "EFD returned no domains on GET {DOMAINS_PATH}: 0 % recorded, but there is nothing to measure yet"
                ),
            );
        }
        let enforced = domains
            .iter()
            .filter(|d| {
                let p = d.policy.as_deref().unwrap_or("").trim();
                p.eq_ignore_ascii_case("reject")
                    || (self.count_quarantine_as_enforced && p.eq_ignore_ascii_case("quarantine"))
            })
            .count();
        Measurement::value(percent(enforced as u64, domains.len() as u64))
    }
}

#[async_trait]
impl Connector for Efd {
    async fn probe(&self, ctx: &RunContext) -> Result<Probe, KriError> {
        let domains = self.domains(ctx).await?;
        Ok(Probe {
            message: format!("EFD answered GET {DOMAINS_PATH}: {} domains", domains.len()),
        })
    }

    async fn collect(&self, ctx: &RunContext, selected: &[&'static str]) -> Vec<(&'static str, KriResult)> {
        if !selected.contains(&DMARC_ENFORCEMENT.slug) {
            return Vec::new();
        }
        let result = self.domains(ctx).await.map(|d| self.enforcement(&d));
        vec![(DMARC_ENFORCEMENT.slug, result)]
    }

    async fn plan(&self, _ctx: &RunContext, selected: &[&'static str]) -> Result<Vec<PlannedCalls>, KriError> {
        Ok(selected
            .contains(&DMARC_ENFORCEMENT.slug)
            .then(|| PlannedCalls {
                pool: EFD_POOL.name,
                limit: EFD_POOL.limit,
                calls: 1,
                detail: vec![format!("GET {DOMAINS_PATH}")],
            })
            .into_iter()
            .collect())
    }
}
