//! Connector registration through `inventory`: a crate adds itself with
//! `kri_core::inventory::submit! { Registration { … } }` and the runner sees it, provided the
//! runner links the crate (`use kri_connector_x as _;`). A family of connectors that share
//! settings (one vendor's base URL and credentials) submits a [`Family`] from a crate they share.

use figment::value::Dict;

use crate::config::{ConfigError, ConnectorSettings};
use crate::connector::Connector;
use crate::kri::Kri;

/// One connector's entry in the registry: the one descriptor of a connector.
pub struct Registration {
    /// Vendor slug, e.g. `acme-mail`.
    pub id: &'static str,
    /// Module key used in config (`[connectors.KEY]`) and `--only`.
    pub module: &'static str,
    pub description: &'static str,
    /// The connector's `sample.toml`: the source of truth for its options.
    pub sample_config: &'static str,
    /// Whether `[connectors.KEY] enabled` defaults to true.
    pub enabled_by_default: bool,
    /// The KRIs it offers (listed by `kri kris` even when the connector is not configured).
    pub kris: &'static [&'static dyn Kri],
    /// The key of the [`Family`] whose shared table it reads, if any.
    pub family: Option<&'static str>,
    /// Build the connector from its own config table. Called before any network call.
    pub build: fn(&ConnectorSettings) -> Result<Box<dyn Connector>, ConfigError>,
    /// Subcommands it adds to `kri` (`kri KEY …`), if any.
    pub command: Option<crate::command::CommandSpec>,
    /// The rate-limit pools its requests go through (for `/metrics`: calls and budget left).
    pub pools: &'static [crate::budget::Pool],
}

inventory::collect!(Registration);

/// Settings shared by a family of connectors (a vendor's base URL and credentials), written once
/// as a top-level table `[KEY]` and read by each member through
/// [`ConnectorSettings::parse_family`].
pub struct Family {
    /// The top-level table, e.g. `acme` for `[acme]`.
    pub key: &'static str,
    pub description: &'static str,
    /// The table with its keys documented, as in the connectors' `sample.toml`.
    pub sample_config: &'static str,
    /// Check the table on its own (unknown keys, malformed values), whether or not a member is
    /// enabled. Errors name the key as `KEY.field`.
    pub check: fn(&Dict) -> Result<(), ConfigError>,
}

inventory::collect!(Family);

/// Every linked family, ordered by key.
pub fn families() -> Vec<&'static Family> {
    let mut all: Vec<_> = inventory::iter::<Family>.into_iter().collect();
    all.sort_by_key(|f| f.key);
    all
}

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
    // Slugs are unique: no need to collect and sort the registrations (this runs per stored row).
    inventory::iter::<Registration>
        .into_iter()
        .find_map(|r| r.kris.iter().find(|k| k.slug() == slug).map(|k| (r, *k)))
}
