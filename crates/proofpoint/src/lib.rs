//! What the Proofpoint modules on the TAP host (tap, efd, clear) share: the `[proofpoint]` table
//! (base URL and `principal:secret` credentials, which any of their own tables may override),
//! HTTP Basic auth with the hints of Proofpoint's console, and test helpers. Registered as a
//! [`Family`], so the runner knows the table without knowing Proofpoint.

use std::sync::Arc;

use kri_core::config::{ConfigError, parse_table};
use kri_core::figment::value::Dict;
use kri_core::secret::Secret;
use kri_core::{BasicAuth, BasicCredentials, ConnectorSettings, Family, HttpClient, HttpOptions};
use serde::Deserialize;

/// The family's key: the `[proofpoint]` table.
pub const FAMILY: &str = "proofpoint";

/// Where TAP, EFD and CLEAR answer unless `base_url` says otherwise.
pub const DEFAULT_BASE_URL: &str = "https://tap-api-v2.proofpoint.com";

/// What a 401 should make the user check.
pub const UNAUTHORIZED_HINT: &str = "check principal:secret (the service principal, a colon, then the service secret, \
     no extra spaces) and that the credential still exists under Settings → Connected Applications";

/// What a 403 should make the user change.
pub const FORBIDDEN_HINT: &str = "the credential is valid but may not call this endpoint; add the matching API scope \
     to the service credential (Settings → Connected Applications)";

/// `[proofpoint]`.
#[derive(Debug, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct Shared {
    base_url: Option<String>,
    credentials: Option<Secret>,
    /// A file holding `principal:secret` (container secrets, systemd credentials).
    credentials_file: Option<std::path::PathBuf>,
}

impl Shared {
    /// `credentials`, or the content of `credentials_file`.
    fn credentials(&self) -> Result<Option<Secret>, ConfigError> {
        kri_core::secret::from_value_or_file(
            self.credentials.clone(),
            self.credentials_file.as_deref(),
            &format!("{FAMILY}.credentials"),
            &format!("{FAMILY}.credentials_file"),
        )
    }
}

fn check(table: &Dict) -> Result<(), ConfigError> {
    let shared: Shared = parse_table(table, FAMILY)?;
    if let Some(c) = &shared.credentials()? {
        BasicCredentials::parse(c).map_err(|m| ConfigError::invalid(format!("{FAMILY}.credentials"), m))?;
    }
    Ok(())
}

kri_core::inventory::submit! {
    Family {
        key: FAMILY,
        description: "Proofpoint TAP host: base URL and service credentials shared by tap, efd and clear",
        sample_config: include_str!("../sample.toml"),
        check,
    }
}

/// An HTTP Basic client for a TAP-host module: its own `base_url` / `credentials` win, then
/// `[proofpoint]`, then the public TAP host. Errors name the key that is at fault.
pub fn client(
    settings: &ConnectorSettings,
    own_base_url: Option<&str>,
    own_credentials: Option<&Secret>,
    opts: HttpOptions,
) -> Result<HttpClient, ConfigError> {
    let shared: Shared = settings.parse_family()?;
    let from_file = shared.credentials()?;
    let (secret, key) = match (own_credentials, &from_file) {
        (Some(s), _) => (s, settings.key("credentials")),
        (None, Some(s)) => (s, format!("{FAMILY}.credentials")),
        (None, None) => {
            return Err(ConfigError::missing(
                format!("{FAMILY}.credentials"),
                format!(
                    "no credentials for [connectors.{}]: set credentials = \"principal:secret\" under [{FAMILY}] \
                     (better: the environment variable KRI_PROOFPOINT__CREDENTIALS, or credentials_file = a file \
                     holding it)",
                    settings.module
                ),
            ));
        }
    };
    let credentials = BasicCredentials::parse(secret).map_err(|m| ConfigError::invalid(key, m))?;
    let (base, base_key) = match (own_base_url, shared.base_url.as_deref()) {
        (Some(own), _) => (own, settings.key("base_url")),
        (None, Some(shared)) => (shared, format!("{FAMILY}.base_url")),
        (None, None) => (DEFAULT_BASE_URL, format!("{FAMILY}.base_url")),
    };
    let auth = BasicAuth::new(credentials, UNAUTHORIZED_HINT).with_forbidden_hint(FORBIDDEN_HINT);
    HttpClient::new(base, Arc::new(auth), opts)
        .map(|c| c.from_key(base_key.clone()))
        .map_err(|m| ConfigError::invalid(base_key, m))
}

/// Helpers for the TAP-host connectors' tests: their settings with a `[proofpoint]` table.
pub mod testing {
    use kri_core::report::ConnectorReport;
    use kri_core::{ConfigError, ConnectorSettings};

    /// Settings for `module` from its table, with `[proofpoint]` at `base_url` with `credentials`.
    pub fn settings(module: &'static str, table_toml: &str, base_url: &str, credentials: &str) -> ConnectorSettings {
        let shared = format!("base_url = \"{base_url}\"\ncredentials = \"{credentials}\"\n");
        kri_core::testing::settings(module, table_toml, Some((super::FAMILY, &shared)))
    }

    /// Run every KRI of `module` once (see [`kri_core::testing::run_selected`]).
    pub async fn run_module(
        module: &'static str,
        table_toml: &str,
        base_url: &str,
        credentials: &str,
    ) -> Result<ConnectorReport, ConfigError> {
        run_selected(module, table_toml, base_url, credentials, None).await
    }

    /// Run the `selected` KRIs of `module` once (`None`: all).
    pub async fn run_selected(
        module: &'static str,
        table_toml: &str,
        base_url: &str,
        credentials: &str,
        selected: Option<&[&str]>,
    ) -> Result<ConnectorReport, ConfigError> {
        kri_core::testing::run_selected(&settings(module, table_toml, base_url, credentials), selected).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_values_win_over_the_shared_table_and_errors_name_the_key() {
        let s = testing::settings("efd", "", "https://shared.example", "a:b");
        assert_eq!(
            client(&s, None, None, HttpOptions::default()).unwrap().base_url(),
            "https://shared.example"
        );
        let own = client(
            &s,
            Some("https://own.example"),
            Some(&Secret::new("c:d")),
            HttpOptions::default(),
        )
        .unwrap();
        assert_eq!(own.base_url(), "https://own.example");
        let e = client(&s, None, Some(&Secret::new("nocolon")), HttpOptions::default()).unwrap_err();
        assert_eq!(e.key, "connectors.efd.credentials");
        assert!(!e.message.contains("nocolon"), "{e}");
        let bare = kri_core::testing::settings("efd", "", None);
        let e = client(&bare, None, None, HttpOptions::default()).unwrap_err();
        assert!(e.missing && e.key == "proofpoint.credentials" && e.message.contains("KRI_PROOFPOINT__CREDENTIALS"));
    }

    #[test]
    fn the_shared_table_is_checked_on_its_own() {
        let e = check(&kri_core::testing::table("base_uri = \"x\"\n")).unwrap_err();
        assert_eq!(e.key, "proofpoint.base_uri");
        let e = check(&kri_core::testing::table("credentials = \"nocolon\"\n")).unwrap_err();
        assert_eq!(e.key, "proofpoint.credentials");
        check(&kri_core::testing::table("credentials = \"a:b\"\n")).unwrap();
    }
}
