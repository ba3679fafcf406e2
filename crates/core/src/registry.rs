//! Connector registration through `inventory`: a crate adds itself with
//! `kri_core::inventory::submit! { Registration { … } }` and the runner sees it, provided the
//! runner links the crate (`use kri_connector_x as _;`).

use crate::config::{ConfigError, ConnectorSettings};
use crate::connector::Connector;
use crate::kri::Kri;

/// One connector's entry in the registry.
pub struct Registration {
    /// Vendor slug, e.g. `proofpoint-tap`.
    pub id: &'static str,
    /// Module key used in config (`[connectors.tap]`) and `--only`.
    pub module: &'static str,
    pub description: &'static str,
    /// The connector's `sample.toml`: the source of truth for its options.
    pub sample_config: &'static str,
    /// Whether `[connectors.KEY] enabled` defaults to true.
    pub enabled_by_default: bool,
    /// The KRIs it offers (listed by `kri kris` even when the connector is not configured).
    pub kris: &'static [&'static dyn Kri],
    /// Build the connector from its own config table. Called before any network call.
    pub build: fn(&ConnectorSettings) -> Result<Box<dyn Connector>, ConfigError>,
}

inventory::collect!(Registration);

/// Every linked registration, ordered by module key.
pub fn registrations() -> Vec<&'static Registration> {
    let mut all: Vec<_> = inventory::iter::<Registration>.into_iter().collect();
    all.sort_by_key(|r| r.module);
    all
}

/// The registration for a module key.
pub fn find(module: &str) -> Option<&'static Registration> {
    inventory::iter::<Registration>.into_iter().find(|r| r.module == module)
}

/// Find a KRI by slug across every registration.
pub fn find_kri(slug: &str) -> Option<(&'static Registration, &'static dyn Kri)> {
    registrations()
        .into_iter()
        .find_map(|r| r.kris.iter().find(|k| k.slug() == slug).map(|k| (r, *k)))
}
