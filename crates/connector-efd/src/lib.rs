//! Proofpoint Email Fraud Defense: share of owned domains whose DMARC policy is enforced.
//!
//! Proofpoint publishes no public EFD API reference: the contract is the product brief's,
//! parsed tolerantly (an object with `domains`, or a bare array; `name` or `domain`).

use kri_core::config::lenient_bool;
use kri_core::kri::percent;
use kri_core::secret::Secret;
use kri_core::single::{OneGet, OneGetConnector};
use kri_core::{
    ConfigError, Connector, ConnectorSettings, Direction, HttpClient, Kri, KriError, KriResult, KriSpec, Measurement,
    Pool, Registration, Unit,
};
use serde::Deserialize;

pub const ID: &str = "proofpoint-efd";
pub const MODULE: &str = "efd";
const DOMAINS_PATH: &str = "/v2/efd/dmarc/domains";

pub const DMARC_ENFORCEMENT: KriSpec = KriSpec {
    slug: "pp_dmarc_enforcement_pct",
    title: "DMARC enforcement",
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

#[derive(Debug, Deserialize, serde::Serialize)]
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
    Ok(Box::new(OneGetConnector(Efd {
        http,
        count_quarantine_as_enforced: cfg.count_quarantine_as_enforced,
    })))
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
        pools: &[EFD_POOL],
    }
}

/// `{"domains": [...]}` or a bare array.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum DomainsAnswer {
    Wrapped {
        #[serde(default)]
        domains: Option<Vec<Domain>>,
    },
    Bare(Vec<Domain>),
}

#[derive(Debug, Deserialize)]
pub struct Domain {
    #[serde(default, alias = "domain")]
    #[allow(dead_code)]
    name: Option<String>,
    #[serde(default)]
    policy: Option<String>,
}

/// The domains of an answer. A 204 is "no domains"; an object without a `domains` array is not.
fn domains(answer: &Option<DomainsAnswer>) -> Result<&[Domain], KriError> {
    match answer {
        None => Ok(&[]),
        Some(DomainsAnswer::Bare(d)) | Some(DomainsAnswer::Wrapped { domains: Some(d) }) => Ok(d),
        Some(DomainsAnswer::Wrapped { domains: None }) => Err(KriError::Other(format!(
            "GET {DOMAINS_PATH}: the answer has no `domains` array; the EFD API may have changed"
        ))),
    }
}

impl Efd {
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

impl OneGet for Efd {
    type Answer = Option<DomainsAnswer>;

    fn kri(&self) -> &'static KriSpec {
        &DMARC_ENFORCEMENT
    }
    fn pool(&self) -> Pool {
        EFD_POOL
    }
    fn http(&self) -> &HttpClient {
        &self.http
    }
    fn request(&self) -> (&'static str, &'static [(&'static str, &'static str)]) {
        (DOMAINS_PATH, &[])
    }
    fn measure(&self, answer: Self::Answer) -> KriResult {
        domains(&answer).map(|d| self.enforcement(d))
    }
    fn probe_message(&self, answer: &Self::Answer) -> Result<String, KriError> {
        domains(answer).map(|d| format!("{} domains", d.len()))
    }
}
