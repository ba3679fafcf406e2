//! Helpers for connector tests: settings from a TOML snippet, a run context on an in-memory store,
//! one run of a registered connector at a fixed time.

use std::sync::Arc;

use figment::Figment;
use figment::providers::{Format, Toml};
use figment::value::Dict;

use crate::clock::Clock;
use crate::config::ConnectorSettings;
use crate::connector::RunContext;
use crate::store::Store;

/// A TOML snippet as a table.
pub fn table(toml: &str) -> Dict {
    Figment::from(Toml::string(toml))
        .extract()
        .expect("test TOML must parse")
}

/// Settings for `module` from its table written as TOML, and its family's shared table
/// (`Some((key, toml))`) when it has one.
pub fn settings(module: &'static str, table_toml: &str, family: Option<(&'static str, &str)>) -> ConnectorSettings {
    let s = ConnectorSettings::new(module, table(table_toml));
    match family {
        Some((key, toml)) => s.with_family(key, table(toml)),
        None => s,
    }
}

/// A run context on a fresh in-memory store.
pub fn context(clock: Arc<dyn Clock>, module: &str) -> RunContext {
    let store = Store::in_memory().expect("in-memory store");
    RunContext::new(clock, &store, module, false)
}

/// Build the registered connector of `settings.module` (for tests of `probe`, `plan`, or several
/// `collect`s on one context). Panics when the connector crate is not linked into the test.
pub fn build(
    settings: &ConnectorSettings,
) -> Result<(&'static crate::Registration, Box<dyn crate::Connector>), crate::config::ConfigError> {
    let module = settings.module;
    let reg = crate::registry::find(module)
        .unwrap_or_else(|| panic!("connector `{module}` is not linked: add `use kri_connector_{module} as _;`"));
    Ok((reg, (reg.build)(settings)?))
}

/// Build the registered connector of `settings.module` and run the `selected` KRIs (`None`:
/// all) once, at [`fixed_now`]. For connector tests.
pub async fn run_selected(
    settings: &ConnectorSettings,
    selected: Option<&[&str]>,
) -> Result<crate::report::ConnectorReport, crate::config::ConfigError> {
    let (reg, connector) = build(settings)?;
    let clock = Arc::new(crate::clock::ManualClock::new(fixed_now()));
    let ctx = context(clock, settings.module);
    let selected: Vec<&'static str> = reg
        .kris
        .iter()
        .map(|k| k.slug())
        .filter(|s| selected.is_none_or(|sel| sel.contains(s)))
        .collect();
    Ok(crate::run::run_connector(
        reg,
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
