//! Proofpoint CLEAR: false-negative rate of user-reported phish over 7 days.
//!
//! Proofpoint publishes no public CLEAR API reference: the contract is the product brief's,
//! parsed tolerantly (extra fields ignored, nulls read as absent).

use kri_core::kri::percent;
use kri_core::secret::Secret;
use kri_core::single::{OneGet, OneGetConnector};
use kri_core::{
    ConfigError, Connector, ConnectorSettings, Direction, HttpClient, Kri, KriError, KriResult, KriSpec, Measurement,
    Pool, Registration, Unit,
};
use serde::Deserialize;

pub const ID: &str = "proofpoint-clear";
pub const MODULE: &str = "clear";
const SUMMARY_PATH: &str = "/v2/clear/reports/summary";

pub const FN_RATE: KriSpec = KriSpec {
    slug: "pp_reported_phish_fn_rate_pct",
    title: "Reported phish TAP missed",
    meaning: "% of user-reported phish TAP had called clean (7 days)",
    unit: Unit::Percent,
    direction: Direction::HigherIsWorse,
    amber: 10.0,
    red: 25.0,
    how: "GET /v2/clear/reports/summary?window=7d → falseNegatives / totalReports × 100",
    licensed_module: Some("Closed-Loop Email Analysis and Response (CLEAR)"),
};

pub static KRIS: &[&dyn Kri] = &[&FN_RATE];

/// CLEAR calls: no published daily limit; counted and guarded all the same.
pub const CLEAR_POOL: Pool = Pool::unlimited("clear");

#[derive(Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct ClearConfig {
    base_url: Option<String>,
    credentials: Option<Secret>,
}

pub struct Clear {
    http: HttpClient,
}

fn build(settings: &ConnectorSettings) -> Result<Box<dyn Connector>, ConfigError> {
    let cfg: ClearConfig = settings.parse()?;
    let http = kri_proofpoint::client(
        settings,
        cfg.base_url.as_deref(),
        cfg.credentials.as_ref(),
        settings.http_options(),
    )?;
    Ok(Box::new(OneGetConnector(Clear { http })))
}

kri_core::inventory::submit! {
    Registration {
        id: ID,
        module: MODULE,
        description: "Proofpoint CLEAR: how often user-reported phish had been called clean",
        sample_config: include_str!("../sample.toml"),
        enabled_by_default: true,
        kris: KRIS,
        family: Some(kri_proofpoint::FAMILY),
        build,
        command: None,
        pools: &[CLEAR_POOL],
    }
}

#[derive(Debug, Deserialize)]
pub struct Summary {
    #[serde(rename = "totalReports", default)]
    total_reports: Option<u64>,
    #[serde(rename = "falseNegatives", default)]
    false_negatives: Option<u64>,
}

/// (total reports, false negatives). An answer without `totalReports` is not "no reports".
fn figures(s: &Summary) -> Result<(u64, u64), KriError> {
    match (s.total_reports, s.false_negatives) {
        (Some(total), Some(fns)) => Ok((total, fns)),
        (Some(0), None) => Ok((0, 0)),
        _ => Err(KriError::Other(format!(
            "GET {SUMMARY_PATH}: the answer lacks totalReports or falseNegatives; the CLEAR API may have changed"
        ))),
    }
}

fn fn_rate(total: u64, false_negatives: u64) -> KriResult {
    if total == 0 {
        return Ok(Measurement::with_warning(
            0.0,
            "CLEAR has no user reports in the last 7 days: 0 % recorded, low signal (are users reporting with the Proofpoint button?)",
        ));
    }
    if false_negatives > total {
        return Err(KriError::Other(format!(
            "GET {SUMMARY_PATH}: falseNegatives ({false_negatives}) is larger than totalReports ({total}); not recording a rate"
        )));
    }
    Ok(Measurement::value(percent(false_negatives, total)))
}

impl OneGet for Clear {
    type Answer = Summary;

    fn kri(&self) -> &'static KriSpec {
        &FN_RATE
    }
    fn pool(&self) -> Pool {
        CLEAR_POOL
    }
    fn http(&self) -> &HttpClient {
        &self.http
    }
    fn request(&self) -> (&'static str, &'static [(&'static str, &'static str)]) {
        (SUMMARY_PATH, &[("window", "7d")])
    }
    fn measure(&self, answer: Summary) -> KriResult {
        figures(&answer).and_then(|(total, fns)| fn_rate(total, fns))
    }
    fn probe_message(&self, answer: &Summary) -> Result<String, KriError> {
        figures(answer).map(|(total, fns)| format!("{total} reports, {fns} false negatives in 7 days"))
    }
}
