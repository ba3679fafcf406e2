//! Helpers for connector tests: settings from a TOML snippet, a run context on an in-memory store.

use std::sync::Arc;

use figment::Figment;
use figment::providers::{Format, Toml};
use figment::value::Dict;

use crate::clock::Clock;
use crate::config::{ConnectorSettings, ProofpointDefaults};
use crate::connector::RunContext;
use crate::secret::Secret;
use crate::store::Store;

/// Settings for `module` from its table written as TOML, with `[proofpoint]` pointing at
/// `base_url` with `credentials`.
pub fn settings(module: &'static str, table_toml: &str, base_url: &str, credentials: &str) -> ConnectorSettings {
    let table: Dict = Figment::from(Toml::string(table_toml))
        .extract()
        .expect("test TOML must parse");
    let proofpoint = ProofpointDefaults {
        base_url: base_url.to_owned(),
        credentials: Some(Secret::new(credentials)),
        credentials_key: "proofpoint.credentials".into(),
    };
    ConnectorSettings::new(module, table, proofpoint)
}

/// A run context on a fresh in-memory store.
pub fn context(clock: Arc<dyn Clock>, module: &str) -> RunContext {
    let store = Store::in_memory().expect("in-memory store");
    RunContext::new(clock, &store, module, false)
}

/// Build the registered connector `module` from `table_toml` and run every KRI it offers once,
/// against `base_url` with `credentials`, at a fixed time. For connector tests.
pub async fn run_module(
    module: &'static str,
    table_toml: &str,
    base_url: &str,
    credentials: &str,
) -> Result<crate::store::ConnectorReport, crate::config::ConfigError> {
    run_selected(module, table_toml, base_url, credentials, None).await
}

/// Like [`run_module`] for the `selected` slugs only (`None`: all).
pub async fn run_selected(
    module: &'static str,
    table_toml: &str,
    base_url: &str,
    credentials: &str,
    selected: Option<&[&str]>,
) -> Result<crate::store::ConnectorReport, crate::config::ConfigError> {
    let reg = crate::registry::find(module)
        .unwrap_or_else(|| panic!("connector `{module}` is not linked: add `use kri_connector_{module} as _;`"));
    let connector = (reg.build)(&settings(module, table_toml, base_url, credentials))?;
    let clock = Arc::new(crate::clock::ManualClock::new(fixed_now()));
    let ctx = context(clock, module);
    let selected: Vec<&'static str> = reg
        .kris
        .iter()
        .map(|k| k.slug())
        .filter(|s| selected.is_none_or(|sel| sel.contains(s)))
        .collect();
    Ok(crate::run::run_connector(
        connector.as_ref(),
        &ctx,
        &selected,
        &Default::default(),
        std::time::Duration::from_secs(15 * 60),
    )
    .await)
}

/// The instant connector tests run at: 2026-11-23T10:00:00Z.
pub fn fixed_now() -> chrono::DateTime<chrono::Utc> {
    use chrono::TimeZone;
    chrono::Utc
        .with_ymd_and_hms(2026, 11, 23, 10, 0, 0)
        .single()
        .expect("valid date")
}
