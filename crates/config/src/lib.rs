//! kri's configuration: `kri.toml` + `KRI_…` environment overrides + `tenants.d`, loaded and
//! validated ALL at once before any network call, into typed settings (the connectors built
//! through the registry) with the origin of every value. Unknown keys, bad values and malformed
//! credentials are a [`LoadError`] (the CLI's exit 2) whose message names each key, where it was
//! set, and the fix. Nothing here does anything but read files and the environment.

mod sources;
pub mod tenants;

pub use sources::{LoadError, Sources};

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::value::{Dict, Value};
use figment::{Profile, Provider};
use kri_core::config::{
    ConfigError, ConnectorSettings, describe, did_you_mean, lenient_opt_f64, parse_duration_within, parse_table,
};
use kri_core::registry::{self, Registration};
use kri_core::secret::lenient_string;
use kri_core::{CaFile, Connector, HttpOptions, Network, Practice, Proxy, Thresholds};
use serde::Deserialize;

/// The config file's top level: the framework's tables, and the tables of the registered
/// families (shared settings of a vendor's connectors), checked against the registry.
#[derive(Debug, Deserialize)]
struct Top {
    #[serde(default)]
    store: Option<Value>,
    #[serde(default)]
    connectors: Option<Value>,
    #[serde(default)]
    thresholds: Option<Value>,
    #[serde(default)]
    kris: Option<Value>,
    #[serde(default)]
    serve: Option<Value>,
    #[serde(default)]
    sinks: Option<Value>,
    #[serde(default)]
    tenants: Option<Value>,
    #[serde(flatten)]
    families: BTreeMap<String, Value>,
}

/// The framework's own top-level tables.
const FRAMEWORK_TABLES: &[&str] = &["store", "connectors", "thresholds", "kris", "serve", "tenants", "sinks"];

/// The framework's tables a tenant file may have (besides the families').
const TENANT_TABLES: &[&str] = &["connectors", "thresholds", "kris"];

/// `[tenants]`: many tenants, one file each.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantsSection {
    /// The folder of tenant files, relative to the config file's folder.
    #[serde(default)]
    dir: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreSection {
    #[serde(default = "default_store_path")]
    path: PathBuf,
    /// `postgres://USER:PASSWORD@HOST:PORT/DB`: a shared PostgreSQL store instead of the file.
    #[serde(default, deserialize_with = "kri_core::secret::lenient_opt_string")]
    url: Option<String>,
    /// A file holding the URL (its password is a secret).
    #[serde(default)]
    url_file: Option<PathBuf>,
    /// Days of runs and values to keep (the newest value of each KRI is always kept).
    #[serde(default, deserialize_with = "kri_core::secret::lenient_opt_string")]
    keep_days: Option<String>,
}

impl Default for StoreSection {
    fn default() -> Self {
        Self {
            path: default_store_path(),
            url: None,
            url_file: None,
            keep_days: None,
        }
    }
}

/// The default of `[store] keep_days`: a little more than a year, so a year-on-year view works.
pub const DEFAULT_KEEP_DAYS: u32 = 400;

fn default_store_path() -> PathBuf {
    PathBuf::from("kri.db")
}

/// `[serve]`: the service (`kri serve`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServeSection {
    #[serde(default, deserialize_with = "kri_core::secret::lenient_opt_string")]
    listen: Option<String>,
    #[serde(default, deserialize_with = "kri_core::secret::lenient_opt_string")]
    token: Option<String>,
    /// A file holding the token (container secrets, systemd credentials).
    #[serde(default)]
    token_file: Option<PathBuf>,
    #[serde(default, deserialize_with = "kri_core::secret::lenient_opt_string")]
    grace: Option<String>,
    #[serde(default, deserialize_with = "kri_core::secret::lenient_opt_string")]
    public_read_only: Option<String>,
    /// Host names the pages answer to besides the listen address (a reverse proxy's name).
    #[serde(default)]
    allowed_hosts: Vec<String>,
    /// Connector runs in flight at once, over all tenants.
    #[serde(default, deserialize_with = "kri_core::secret::lenient_opt_string")]
    runs_at_once: Option<String>,
}

/// The default of `[serve] listen`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9741";
/// The default of `[serve] grace`.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(30);
/// The default of `[serve] runs_at_once`: runs a service has in flight at once, over all
/// tenants (a PostgreSQL store's pool holds 24 connections by default: keep it above this).
pub const DEFAULT_RUNS_AT_ONCE: usize = 16;
/// The most `[serve] runs_at_once` accepts.
pub const MAX_RUNS_AT_ONCE: usize = 256;
/// The shortest token `[serve] token` accepts.
pub const MIN_TOKEN_CHARS: usize = 16;

/// The validated `[serve]` table.
pub struct ServeSettings {
    pub listen: std::net::SocketAddr,
    /// Bearer token for Run now and Test; `None`: both disabled.
    pub token: Option<kri_core::Secret>,
    pub grace: Duration,
    pub public_read_only: bool,
    /// Extra `Host` names accepted (lower case, no port).
    pub allowed_hosts: Vec<String>,
    /// Connector runs in flight at once, over all tenants.
    pub runs_at_once: usize,
}

/// `IP:PORT`, `[IPv6]:PORT` or `localhost:PORT`.
pub fn parse_listen(text: &str) -> Result<std::net::SocketAddr, String> {
    let t = text.trim();
    let t = match t.strip_prefix("localhost:") {
        Some(port) => format!("127.0.0.1:{port}"),
        None => t.to_owned(),
    };
    t.parse().map_err(|_| {
        format!("`{text}` is not an address to listen on: write IP:PORT, e.g. \"127.0.0.1:9741\" or \"0.0.0.0:9741\"")
    })
}

impl ServeSection {
    fn settle(self) -> Result<ServeSettings, ConfigError> {
        let listen_text = self.listen.unwrap_or_else(|| DEFAULT_LISTEN.into());
        let listen = parse_listen(&listen_text).map_err(|m| ConfigError::invalid("serve.listen", m))?;
        let given = self.token.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty());
        // Checked before the token is known to the scrubber: a too-short token ("short") must
        // not be scrubbed out of the message that says so.
        let token = kri_core::secret::from_value_or_file_checked(
            given,
            self.token_file.as_deref(),
            "serve.token",
            "serve.token_file",
            |t| {
                if t.chars().count() < MIN_TOKEN_CHARS {
                    return Err(format!(
                        "the token is too short: use at least {MIN_TOKEN_CHARS} random characters, e.g. the output of \
                         `openssl rand -hex 24`"
                    ));
                }
                Ok(())
            },
        )?;
        let grace = match self.grace {
            Some(t) => parse_bounded(&t, 0, 3600).map_err(|m| ConfigError::invalid("serve.grace", m))?,
            None => DEFAULT_GRACE,
        };
        let public_read_only = match self.public_read_only.as_deref().map(|t| t.trim().to_ascii_lowercase()) {
            None => false,
            Some(t) if t == "true" => true,
            Some(t) if t == "false" => false,
            Some(t) => {
                return Err(ConfigError::invalid(
                    "serve.public_read_only",
                    format!("`{t}` is not true or false"),
                ));
            }
        };
        let allowed_hosts = self
            .allowed_hosts
            .iter()
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect();
        let runs_at_once = match self.runs_at_once.as_deref().map(str::trim) {
            None => DEFAULT_RUNS_AT_ONCE,
            Some(t) => match t.parse::<usize>() {
                Ok(n) if (1..=MAX_RUNS_AT_ONCE).contains(&n) => n,
                _ => {
                    return Err(ConfigError::invalid(
                        "serve.runs_at_once",
                        format!(
                            "`{t}` is not a number of runs from 1 to {MAX_RUNS_AT_ONCE} (default {DEFAULT_RUNS_AT_ONCE}); \
                             with a PostgreSQL store keep its pool_max_size above it"
                        ),
                    ));
                }
            },
        };
        Ok(ServeSettings {
            runs_at_once,
            allowed_hosts,
            listen,
            token,
            grace,
            public_read_only,
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(Default)]
struct ThresholdSection {
    #[serde(default, deserialize_with = "lenient_opt_f64")]
    amber: Option<f64>,
    #[serde(default, deserialize_with = "lenient_opt_f64")]
    red: Option<f64>,
}

/// `[kris.SLUG]`: the thresholds (as `[thresholds.SLUG]`) and the practice around them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct KriSection {
    #[serde(default, deserialize_with = "lenient_opt_f64")]
    amber: Option<f64>,
    #[serde(default, deserialize_with = "lenient_opt_f64")]
    red: Option<f64>,
    title: Option<String>,
    owner: Option<String>,
    action: Option<String>,
    respond_within: Option<RespondWithinSection>,
    appetite: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RespondWithinSection {
    amber: Option<String>,
    red: Option<String>,
}

impl KriSection {
    /// Checked: one line of printable text within bounds, durations people write.
    fn practice(self, key: &str) -> Result<Practice, ConfigError> {
        let text = |field: &str, v: Option<String>, max: usize| -> Result<Option<String>, ConfigError> {
            let Some(v) = v else { return Ok(None) };
            match kri_core::text::one_line(&v, max) {
                Ok(t) => Ok(Some(t).filter(|t| !t.is_empty())),
                Err(m) => Err(ConfigError::invalid(format!("{key}.{field}"), m)),
            }
        };
        let within = |band: &str, v: Option<String>| -> Result<Option<std::time::Duration>, ConfigError> {
            v.map(|v| {
                parse_duration_within(&v, kri_core::config::MAX_DURATION)
                    .map_err(|m| ConfigError::invalid(format!("{key}.respond_within.{band}"), m))
            })
            .transpose()
        };
        let rw = self.respond_within.unwrap_or_default();
        Ok(Practice {
            title: text("title", self.title, 80)?,
            owner: text("owner", self.owner, 120)?,
            action: text("action", self.action, 500)?,
            respond_within: kri_core::RespondWithin {
                amber: within("amber", rw.amber)?,
                red: within("red", rw.red)?,
            },
            appetite: text("appetite", self.appetite, 500)?,
        })
    }
}

/// Whether missing credentials are an error (they are for `run`, `test`, `daemon`; `kris`,
/// `history` and `values` never call the API).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Credentials,
    NoCredentials,
}

/// One registered module with its resolved settings.
pub struct Module {
    pub reg: &'static Registration,
    pub enabled: bool,
    /// Where `enabled` was set (`None`: the connector's default).
    pub enabled_from: Option<String>,
    pub schedule: Duration,
    pub schedule_text: String,
    /// `at`: where in each period the scheduled runs fall (offset from midnight UTC).
    pub at: Option<Duration>,
    pub selected: Vec<&'static str>,
    /// The whole run of this connector: past it, the run is recorded as failed (what was read
    /// so far is kept) and the other connectors go on.
    pub run_timeout: Duration,
    /// Its settings (own table less the framework's keys, family table, HTTP options), for
    /// its subcommands, whether or not it is enabled.
    pub settings: ConnectorSettings,
    /// Whether the config has a `[connectors.KEY]` table.
    pub configured: bool,
    /// Built when enabled and configured.
    pub connector: Option<Box<dyn Connector>>,
}

/// The name of the one tenant of a config without `[tenants]`.
pub const DEFAULT_TENANT: &str = "default";

/// One tenant: its connectors and thresholds.
pub struct Tenant {
    /// The file's stem, or `default`.
    pub name: String,
    /// The tenant's file (`None` for the `default` tenant of a config without `[tenants]`).
    pub file: Option<PathBuf>,
    pub modules: Vec<Module>,
    pub thresholds: HashMap<String, Thresholds>,
    /// `[kris.SLUG]`: owners, actions, response times (only the KRIs that set any).
    pub practice: HashMap<String, Practice>,
}

/// The validated configuration.
pub struct Loaded {
    pub store_path: PathBuf,
    /// `[store] url`: a PostgreSQL store (then `store_path` is unused).
    /// Its password is registered with the scrubber; the URL is shown by [`redact_url`].
    pub store_url: Option<String>,
    /// Runs and values older than this many days are pruned after each run.
    pub keep_days: u32,
    /// `[sinks.NAME]`: where events go.
    pub sinks: Vec<kri_core::sink::SinkConfig>,
    pub serve: ServeSettings,
    /// At least one; exactly one, `default`, without `[tenants]`.
    pub tenants: Vec<Tenant>,
    /// Whether the config has `[tenants]` (output then names tenants).
    pub multi_tenant: bool,
    /// Whether anything configured kri: a config file, or a `KRI_…` setting. Without either, a
    /// read command has nothing to read and says so.
    pub configured: bool,
    /// The config file read, when one was found.
    pub config_file: Option<PathBuf>,
}

/// The passwords a database URL carries: after `user:` and in a `password=` option, as
/// written and percent-decoded.
fn url_passwords(url: &str) -> Vec<String> {
    let mut out = Vec::new();
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    if let Some((user_info, _)) = authority.rsplit_once('@')
        && let Some((_, password)) = user_info.split_once(':')
    {
        out.push(password.to_owned());
    }
    if let Some((_, query)) = url.split_once('?') {
        out.extend(
            query
                .split('&')
                .filter_map(|kv| kv.strip_prefix("password="))
                .map(str::to_owned),
        );
    }
    let decoded: Vec<String> = out
        .iter()
        .map(|p| percent_encoding::percent_decode_str(p).decode_utf8_lossy().into_owned())
        .collect();
    out.extend(decoded);
    out
}

/// A database URL with its password replaced by `***`, to show where the store is.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "[redacted]".into();
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    match authority.rsplit_once('@') {
        Some((user_info, host)) => {
            let user = user_info.split_once(':').map_or(user_info, |(u, _)| u);
            let pass = if user_info.contains(':') { ":***" } else { "" };
            // The query may carry a password too (`?password=`): never shown.
            let path = tail.split('?').next().unwrap_or_default();
            format!("{scheme}://{user}{pass}@{host}{path}")
        }
        None => format!("{scheme}://{authority}{}", tail.split('?').next().unwrap_or_default()),
    }
}

impl Loaded {
    /// Where the store is, for people: the file, or the PostgreSQL URL without its password.
    /// `kri.db (config conf/kri.toml)`: where a read command looked, for "nothing here yet".
    pub fn store_and_config(&self) -> String {
        match &self.config_file {
            Some(f) => format!("{} (config {})", self.store_description(), f.display()),
            None => format!("{} (settings from the environment)", self.store_description()),
        }
    }

    pub fn store_description(&self) -> String {
        match &self.store_url {
            Some(url) => redact_url(url),
            None => self.store_path.display().to_string(),
        }
    }

    /// Keep only tenant `name` (`--tenant`); `None` keeps all.
    pub fn select_tenant(&mut self, name: Option<&str>) -> Result<(), LoadError> {
        let Some(name) = name.map(str::trim) else { return Ok(()) };
        if !self.tenants.iter().any(|t| t.name == name) {
            let names: Vec<&str> = self.tenants.iter().map(|t| t.name.as_str()).collect();
            let listed = if names.len() > 12 {
                format!("{}, … ({} in all)", names[..12].join(", "), names.len())
            } else {
                names.join(", ")
            };
            return Err(LoadError::new(format!(
                "--tenant `{name}`: no such tenant{}; the tenants are: {listed}",
                did_you_mean(name, &names)
            )));
        }
        self.tenants.retain(|t| t.name == name);
        Ok(())
    }

    /// The tenant filter for reading the store: `None` (all) unless one tenant was selected
    /// from several.
    pub fn tenant_filter(&self) -> Option<String> {
        match self.tenants.as_slice() {
            [one] if self.multi_tenant => Some(one.name.clone()),
            _ => None,
        }
    }
}

impl Tenant {
    pub fn thresholds_for(&self, kri: &dyn kri_core::Kri) -> Thresholds {
        self.thresholds
            .get(kri.slug())
            .copied()
            .unwrap_or_else(|| kri.default_thresholds())
    }

    /// `[kris.SLUG]` of this tenant (empty when none is set).
    pub fn practice_for(&self, slug: &str) -> Practice {
        self.practice.get(slug).cloned().unwrap_or_default()
    }

    /// The KRI's title: `[kris.SLUG] title`, else its registration's.
    pub fn title_for(&self, kri: &dyn kri_core::Kri) -> String {
        self.practice
            .get(kri.slug())
            .and_then(|p| p.title.clone())
            .unwrap_or_else(|| kri.title().to_owned())
    }
}

/// `[sinks.NAME]`: the framework's keys (`type`, `events`, `min_band`, `tenants`, `kris`,
/// `max_age`, `timeout`), then the sink type's own, built by its plugin.
fn sink(name: &str, mut table: Dict) -> Result<kri_core::sink::SinkConfig, ConfigError> {
    use kri_core::sink::{DEFAULT_EVENTS, EVENT_TYPES, EventFilter, SinkConfig, SinkSettings, sink_types};
    let key = |k: &str| format!("sinks.{name}.{k}");
    let types = sink_types();
    let names: Vec<&str> = types.iter().map(|t| t.kind).collect();
    let kind = take(&mut table, "type", key("type"), Value::deserialize::<String>)?.ok_or_else(|| {
        ConfigError::invalid(
            key("type"),
            format!("missing: say which kind of sink, one of: {}", names.join(", ")),
        )
    })?;
    let reg = types.iter().find(|t| t.kind == kind.trim()).ok_or_else(|| {
        ConfigError::invalid(
            key("type"),
            format!(
                "unknown sink type `{kind}`{}; the types are: {}",
                did_you_mean(&kind, &names),
                names.join(", ")
            ),
        )
    })?;
    let events = match take(&mut table, "events", key("events"), Value::deserialize::<Vec<String>>)? {
        None => reg
            .default_events
            .unwrap_or(DEFAULT_EVENTS)
            .iter()
            .map(|s| s.to_string())
            .collect(),
        Some(list) => {
            for e in &list {
                if !EVENT_TYPES.contains(&e.as_str()) {
                    return Err(ConfigError::invalid(
                        key("events"),
                        format!(
                            "unknown event `{e}`{}; the events are: {}",
                            did_you_mean(e, EVENT_TYPES),
                            EVENT_TYPES.join(", ")
                        ),
                    ));
                }
            }
            list
        }
    };
    let min_band = match take(&mut table, "min_band", key("min_band"), Value::deserialize::<String>)?.as_deref() {
        None | Some("amber") => kri_core::Band::Amber,
        Some("red") => kri_core::Band::Red,
        Some("green") => kri_core::Band::Green,
        Some(other) => {
            return Err(ConfigError::invalid(
                key("min_band"),
                format!("`{other}` is not green, amber or red"),
            ));
        }
    };
    let tenants = take(&mut table, "tenants", key("tenants"), Value::deserialize::<Vec<String>>)?;
    let kris = take(&mut table, "kris", key("kris"), Value::deserialize::<Vec<String>>)?;
    if let Some(bad) = kris.iter().flatten().find(|k| registry::find_kri(k).is_none()) {
        return Err(ConfigError::invalid(
            key("kris"),
            format!("unknown KRI `{bad}`: `kri kris` lists the KRIs"),
        ));
    }
    let mut duration = |field: &str, default: Duration, min: u64, max: u64| -> Result<Duration, ConfigError> {
        Ok(take(&mut table, field, key(field), Value::deserialize::<Text>)?
            .map(|Text(t)| parse_bounded(&t, min, max).map_err(|m| ConfigError::invalid(key(field), m)))
            .transpose()?
            .unwrap_or(default))
    };
    let max_age = duration("max_age", Duration::from_secs(24 * 3600), 60, 30 * 86_400)?;
    let timeout = duration("timeout", Duration::from_secs(10), 1, 300)?;
    let repeat_every = take(
        &mut table,
        "repeat_every",
        key("repeat_every"),
        Value::deserialize::<Text>,
    )?
    .map(|Text(t)| parse_bounded(&t, 60, 365 * 86_400).map_err(|m| ConfigError::invalid(key("repeat_every"), m)))
    .transpose()?;
    let hold = match take(&mut table, "for", key("for"), Value::deserialize::<i64>)? {
        None => 1,
        Some(n @ 1..=1000) => n as u32,
        Some(n) => {
            return Err(ConfigError::invalid(
                key("for"),
                format!("{n} runs: say how many runs in a row a band must hold before it is sent, 1 to 1000"),
            ));
        }
    };
    let settings = SinkSettings::new(name, table, timeout);
    Ok(SinkConfig {
        name: name.to_owned(),
        kind: reg.kind,
        filter: EventFilter {
            events,
            min_band,
            tenants,
            kris,
        },
        max_age,
        timeout,
        hold,
        repeat_every,
        sink: (reg.build)(&settings)?,
    })
}

/// Keys whose values are secrets: never shown, only whether they are set.
pub const SECRET_KEYS: &[&str] = &[
    "credentials",
    "client_secret",
    "token",
    "secret",
    "password",
    "api_key",
    "url",
];

impl Loaded {
    /// Every value in force, sorted by key, with where it came from: the defaults kri applied
    /// (`default`), then what was set (file or variable) as written. Values are JSON-written,
    /// secrets as a placeholder.
    pub fn settings(&self, sources: &Sources) -> Result<Vec<(String, String, String)>, LoadError> {
        let data = sources
            .figment
            .data()
            .map_err(|e| LoadError::new(format!("config error: {e}")))?;
        let mut set = Vec::new();
        if let Some(dict) = data.get(&Profile::Default) {
            flatten("", dict, &mut set);
        }
        let mut all: BTreeMap<String, (String, String)> = in_force(self)
            .into_iter()
            .map(|(k, v)| {
                let from = sources.exact_origin(&k).unwrap_or_else(|| "default".into());
                (k, (v, from))
            })
            .collect();
        for (k, v) in set {
            let from = sources.exact_origin(&k).unwrap_or_else(|| sources.origin(&k));
            all.insert(k, (v, from));
        }
        Ok(all.into_iter().map(|(k, (v, from))| (k, v, from)).collect())
    }
}

/// Every key set (file or environment), flattened, with its value (secrets redacted).
fn flatten(prefix: &str, dict: &Dict, out: &mut Vec<(String, String)>) {
    for (k, v) in dict {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Value::Dict(_, inner) => flatten(&key, inner, out),
            _ if SECRET_KEYS.contains(&k.as_str()) => out.push((key, kri_core::secret::SECRET_SHOWN.into())),
            other => out.push((key, serde_json::to_string(other).unwrap_or_else(|_| "?".into()))),
        }
    }
}

/// The values in force that kri reads, defaults included (JSON-written, secrets as a
/// placeholder): the store, the service, and for the first tenant's connectors the framework's
/// keys and every key the connector read.
fn in_force(loaded: &Loaded) -> Vec<(String, String)> {
    let text = |v: &str| serde_json::to_string(v).unwrap_or_default();
    let secs = |d: std::time::Duration| text(&humantime::format_duration(d).to_string());
    let mut out = Vec::new();
    match &loaded.store_url {
        Some(_) => out.push(("store.url".into(), text(&loaded.store_description()))),
        None => out.push(("store.path".into(), text(&loaded.store_path.display().to_string()))),
    }
    out.push(("store.keep_days".into(), loaded.keep_days.to_string()));
    let serve = &loaded.serve;
    out.push(("serve.listen".into(), text(&serve.listen.to_string())));
    out.push(("serve.grace".into(), secs(serve.grace)));
    out.push(("serve.runs_at_once".into(), serve.runs_at_once.to_string()));
    out.push(("serve.public_read_only".into(), serve.public_read_only.to_string()));
    let Some(tenant) = loaded.tenants.first() else {
        return out;
    };
    for m in &tenant.modules {
        let key = |k: &str| format!("connectors.{}.{k}", m.reg.module);
        out.push((key("enabled"), m.enabled.to_string()));
        if m.connector.is_none() {
            continue;
        }
        let http = m.settings.http_options();
        out.push((key("schedule"), text(&m.schedule_text)));
        out.push((key("kris"), serde_json::to_string(&m.selected).unwrap_or_default()));
        out.push((key("timeout"), secs(http.timeout)));
        out.push((key("connect_timeout"), secs(http.connect_timeout)));
        out.push((key("run_timeout"), secs(m.run_timeout)));
        out.push((key("concurrency"), m.settings.concurrency().to_string()));
        out.push((key("proxy"), text(&http.network.proxy.to_string())));
        if let Some(ca) = &http.network.ca {
            out.push((key("ca_file"), text(&ca.path.display().to_string())));
        }
        out.extend(m.settings.effective());
    }
    out
}

/// Load and validate everything; build the enabled connectors of every tenant.
pub fn load(sources: &Sources, need: Need) -> Result<Loaded, LoadError> {
    let top = extract(sources)?;
    let nothing_set = !sources.file_found && top.store.is_none() && top.connectors.is_none() && top.families.is_empty();
    let mut errors: Vec<String> = Vec::new();
    let mut keep = |r: Result<(), ConfigError>| {
        if let Err(e) = r {
            errors.extend(e.all().iter().map(|e| sources.describe_error(e)));
        }
    };
    let store: StoreSection = match table_of("store", top.store).and_then(|t| parse_table(&t, "store")) {
        Ok(s) => s,
        Err(e) => {
            keep(Err(e));
            StoreSection::default()
        }
    };
    // Not a `Secret` as a whole: a URL without a password (trust or peer authentication) is no
    // secret, and scrubbing it would hide where the store is in every message. Its password is.
    let given = store.url.as_deref().map(str::trim).filter(|u| !u.is_empty());
    let store_url = match (given, store.url_file.as_deref()) {
        (Some(_), Some(_)) => {
            keep(Err(ConfigError::invalid(
                "store.url_file",
                "set either store.url or store.url_file, not both",
            )));
            None
        }
        (Some(u), None) => Some(u.to_owned()),
        (None, Some(path)) => match std::fs::read_to_string(path) {
            Ok(text) if !text.trim().is_empty() => Some(text.trim().to_owned()),
            Ok(_) => {
                keep(Err(ConfigError::invalid(
                    "store.url_file",
                    format!("`{}` is empty: it should hold the store URL", path.display()),
                )));
                None
            }
            Err(e) => {
                keep(Err(ConfigError::invalid(
                    "store.url_file",
                    format!("cannot read `{}`: {e}", path.display()),
                )));
                None
            }
        },
        (None, None) => None,
    };
    for password in store_url.as_deref().map(url_passwords).unwrap_or_default() {
        kri_core::secret::register(&password);
    }
    let store_url = match store_url {
        Some(url) if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) => {
            keep(Err(ConfigError::invalid(
                "store.url",
                "a store URL starts with postgres:// (postgres://USER:PASSWORD@HOST:5432/DATABASE); for a file, set [store] path instead",
            )));
            None
        }
        // An empty path counts as unset: `KRI_STORE__PATH=` clears a path a container sets.
        Some(_)
            if sources
                .figment
                .find_value("store.path")
                .is_ok_and(|v| v.as_str().is_none_or(|p| !p.trim().is_empty())) =>
        {
            keep(Err(ConfigError::invalid(
                "store.path",
                "set [store] path (an SQLite file) or [store] url (PostgreSQL), not both",
            )));
            None
        }
        url => url,
    };
    let keep_days = match store.keep_days.as_deref().map(str::trim) {
        None => DEFAULT_KEEP_DAYS,
        Some(t) => match t.parse::<u32>() {
            Ok(n) if (1..=36_500).contains(&n) => n,
            _ => {
                keep(Err(ConfigError::invalid(
                    "store.keep_days",
                    format!("`{t}` is not a number of days from 1 to 36500 (default {DEFAULT_KEEP_DAYS})"),
                )));
                DEFAULT_KEEP_DAYS
            }
        },
    };
    let serve = match table_of("serve", top.serve)
        .and_then(|t| parse_table::<ServeSection>(&t, "serve"))
        .and_then(ServeSection::settle)
    {
        Ok(s) => s,
        Err(e) => {
            keep(Err(e));
            ServeSection::default().settle().map_err(|e| sources.error(e))?
        }
    };
    let mut sinks = Vec::new();
    match table_of("sinks", top.sinks) {
        Ok(all) => {
            for (name, value) in all {
                match table_of(&format!("sinks.{name}"), Some(value)).and_then(|t| sink(&name, t)) {
                    Ok(s) => sinks.push(s),
                    Err(e) => keep(Err(e)),
                }
            }
        }
        Err(e) => keep(Err(e)),
    }
    let tenants_section =
        match table_of("tenants", top.tenants).and_then(|t| parse_table::<TenantsSection>(&t, "tenants")) {
            Ok(t) => t,
            Err(e) => {
                keep(Err(e));
                TenantsSection::default()
            }
        };

    let vars = tenants::tenant_vars();
    let mut tenants = Vec::new();
    match tenants_section.dir {
        None => {
            for (env, list) in &vars {
                for (_, _, var) in list {
                    errors.push(format!(
                        "environment variable {var}: tenant variables need tenants, and this config has no [tenants] \
                         dir (tenant `{}`)",
                        env.to_ascii_lowercase()
                    ));
                }
            }
            let sections = TenantTables {
                connectors: top.connectors,
                thresholds: top.thresholds,
                kris: top.kris,
                families: top.families,
            };
            let mut one = load_tenant(sources, DEFAULT_TENANT, sections, need);
            if nothing_set && one.errors.is_empty() && errors.is_empty() && !one.missing.is_empty() {
                let file = sources.file.as_deref().unwrap_or(Path::new("kri.toml"));
                return Err(LoadError::new(format!(
                    "no config: there is no `{}` here and no KRI_… setting in the environment. Run `kri init` to write a \
                     commented kri.toml to fill in, pass --config FILE, or try kri without an account: `kri demo`",
                    file.display()
                )));
            }
            if let (Some(first), false, Some(f)) = (one.missing.first_mut(), sources.file_found, &sources.file) {
                first.message.push_str(&format!(
                    "; no config file `{}` was found: `kri init` writes one, or pass --config FILE",
                    f.display()
                ));
            }
            errors.extend(one.errors.iter().chain(&one.missing).map(|e| sources.describe_error(e)));
            tenants.push(one.tenant);
        }
        Some(dir) => {
            // Relative to the config file when set there (see `resolve_paths`).
            let (files, list_errors) = tenants::list(&dir, "tenants.dir");
            errors.extend(list_errors);
            {
                {
                    errors.extend(tenants::stray_vars(&vars, &files));
                    let mut allowed: Vec<&str> = TENANT_TABLES.to_vec();
                    allowed.extend(registry::families().iter().map(|f| f.key));
                    for file in &files {
                        let tenant_sources = match tenants::sources(sources, file, &vars, &allowed) {
                            Ok(s) => s,
                            Err(m) => {
                                errors.push(format!("tenant `{}`: {m}", file.name));
                                continue;
                            }
                        };
                        let sections = match extract(&tenant_sources) {
                            Ok(top) => TenantTables {
                                connectors: top.connectors,
                                thresholds: top.thresholds,
                                kris: top.kris,
                                families: top.families,
                            },
                            Err(f) => {
                                errors.push(format!("tenant `{}`: {}", file.name, f.message));
                                continue;
                            }
                        };
                        let mut one = load_tenant(&tenant_sources, &file.name, sections, need);
                        for e in &mut one.missing {
                            e.message.push_str(&format!(
                                "; set it in {} or as {}{}",
                                file.path.display(),
                                tenant_sources.env_prefix,
                                e.key.replace('.', "__").to_ascii_uppercase()
                            ));
                        }
                        for e in one.errors.iter().chain(&one.missing) {
                            let line = tenant_sources.describe_error(e);
                            // A default from kri.toml is said once, not once per tenant.
                            let own = e.missing || {
                                let from = tenant_sources.origin(&e.key);
                                from == file.path.display().to_string() || from.contains(&tenant_sources.env_prefix)
                            };
                            let line = if own {
                                format!("tenant `{}`: {line}", file.name)
                            } else {
                                line
                            };
                            if !errors.contains(&line) {
                                errors.push(line);
                            }
                        }
                        tenants.push(one.tenant);
                    }
                }
            }
        }
    }
    let multi_tenant = tenants_section_set(sources);
    match errors.len() {
        0 => Ok(Loaded {
            store_path: if store.path.as_os_str().is_empty() {
                default_store_path()
            } else {
                store.path
            },
            store_url,
            keep_days,
            sinks,
            serve,
            tenants,
            multi_tenant,
            configured: !nothing_set,
            config_file: sources.file.clone().filter(|_| sources.file_found),
        }),
        1 => Err(LoadError::new(format!("config error: {}", errors.remove(0)))),
        n => {
            const SHOWN: usize = 100;
            let mut lines: Vec<String> = errors.iter().take(SHOWN).map(|e| format!("  - {e}")).collect();
            if n > SHOWN {
                lines.push(format!("  … and {} more", n - SHOWN));
            }
            Err(LoadError::new(format!("{n} config errors:\n{}", lines.join("\n"))))
        }
    }
}

fn tenants_section_set(sources: &Sources) -> bool {
    sources.figment.find_value("tenants.dir").is_ok()
}

/// The top level of `sources`, or the error naming what is wrong.
fn extract(sources: &Sources) -> Result<Top, LoadError> {
    let mut top: Top = sources.figment.extract().map_err(|e| {
        let key = e.path.join(".");
        let key = if key.is_empty() { "(top level)".to_owned() } else { key };
        sources.error(ConfigError::invalid(key, describe(&e)))
    })?;
    for (key, table) in [
        ("store", &mut top.store),
        ("connectors", &mut top.connectors),
        ("serve", &mut top.serve),
        ("tenants", &mut top.tenants),
    ] {
        if let Some(v) = table {
            resolve_paths(sources, key, v);
        }
    }
    for (key, v) in top.families.iter_mut() {
        resolve_paths(sources, key, v);
    }
    Ok(top)
}

/// Whether `key` names a file or folder: `path`, `dir`, `ca_file`, `…_file`.
fn is_path_key(key: &str) -> bool {
    key == "path" || key == "dir" || key.ends_with("_file")
}

/// Relative paths are relative to the file that sets them, everywhere: a path key set in a
/// config or tenant file is joined to that file's folder (one set by an environment variable,
/// or a default, stays relative to the working folder).
fn resolve_paths(sources: &Sources, key: &str, value: &mut Value) {
    match value {
        Value::Dict(_, dict) => {
            for (k, v) in dict.iter_mut() {
                resolve_paths(sources, &format!("{key}.{k}"), v);
            }
        }
        Value::String(tag, text) if is_path_key(key.rsplit('.').next().unwrap_or(key)) => {
            let path = Path::new(text.as_str());
            if path.is_relative()
                && !text.is_empty()
                && let Some(md) = sources.figment.find_metadata(key)
                && let Some(file) = md.source.as_ref().and_then(|s| s.file_path())
            {
                let joined = file.parent().unwrap_or(Path::new("")).join(path);
                *value = Value::String(*tag, joined.display().to_string());
            }
        }
        _ => {}
    }
}

fn table_of(key: &str, v: Option<Value>) -> Result<Dict, ConfigError> {
    match v {
        None => Ok(Dict::new()),
        Some(v) => v
            .into_dict()
            .ok_or_else(|| ConfigError::invalid(key, format!("must be a table: [{key}] with its keys under it"))),
    }
}

/// The tables a tenant has: its connectors, thresholds and vendor families.
struct TenantTables {
    connectors: Option<Value>,
    thresholds: Option<Value>,
    kris: Option<Value>,
    families: BTreeMap<String, Value>,
}

/// A tenant as loaded: what is wrong, and credentials it lacks (said once per key).
struct TenantLoad {
    tenant: Tenant,
    errors: Vec<ConfigError>,
    missing: Vec<ConfigError>,
}

/// Validate one tenant's tables and build its enabled connectors.
fn load_tenant(sources: &Sources, name: &str, top: TenantTables, need: Need) -> TenantLoad {
    let errors = std::cell::RefCell::new(Errors::default());
    let keep = |r: Result<(), ConfigError>| {
        if let Err(e) = r {
            errors.borrow_mut().add(e, None);
        }
    };
    // [FAMILY] tables: only registered ones, each checked on its own.
    let families = registry::families();
    let mut shared: BTreeMap<&'static str, Dict> = BTreeMap::new();
    let mut shared_network: BTreeMap<&'static str, NetworkKeys> = BTreeMap::new();
    for (key, value) in top.families {
        let Some(family) = families.iter().find(|f| f.key == key) else {
            let accepted: Vec<&str> = FRAMEWORK_TABLES
                .iter()
                .copied()
                .chain(families.iter().map(|f| f.key))
                .collect();
            keep(Err(ConfigError::invalid(key.clone(), unknown_key(&key, &accepted))));
            continue;
        };
        match table_of(&key, Some(value)) {
            Ok(mut table) => {
                // `proxy` and `ca_file` are the framework's: the default of the family's connectors.
                match NetworkKeys::take(&mut table, &key) {
                    Ok(net) => {
                        shared_network.insert(family.key, net);
                    }
                    Err(e) => keep(Err(e)),
                }
                keep((family.check)(&table));
                shared.insert(family.key, table);
            }
            Err(e) => keep(Err(e)),
        }
    }

    // [connectors.*]: only registered names.
    let mut tables: BTreeMap<String, Dict> = BTreeMap::new();
    let known: Vec<&str> = registry::registrations().iter().map(|r| r.module).collect();
    match table_of("connectors", top.connectors) {
        Ok(all) => {
            for (name, value) in all {
                let key = format!("connectors.{name}");
                if !known.contains(&name.as_str()) {
                    keep(Err(ConfigError::invalid(
                        key,
                        format!(
                            "unknown connector `{name}`{}; the connectors are: {}",
                            did_you_mean(&name, &known),
                            known.join(", ")
                        ),
                    )));
                    continue;
                }
                match table_of(&key, Some(value)) {
                    Ok(t) => {
                        tables.insert(name, t);
                    }
                    Err(e) => keep(Err(e)),
                }
            }
        }
        Err(e) => keep(Err(e)),
    }

    // [thresholds.*] and [kris.*]: the same thresholds in either; the practice in [kris.*].
    let all: Vec<&str> = registry::registrations()
        .iter()
        .flat_map(|r| r.kris.iter().map(|k| k.slug()))
        .collect();
    let known_kri = |table: &str, slug: &str| -> Option<&'static dyn kri_core::Kri> {
        let found = registry::find_kri(slug).map(|(_, k)| k);
        if found.is_none() {
            keep(Err(ConfigError::invalid(
                format!("{table}.{slug}"),
                format!(
                    "unknown KRI `{slug}`{}; `kri kris` lists the KRIs",
                    did_you_mean(slug, &all)
                ),
            )));
        }
        found
    };
    let mut sections: BTreeMap<String, (&'static dyn kri_core::Kri, ThresholdSection, Option<KriSection>)> =
        BTreeMap::new();
    for (slug, value) in table_of("thresholds", top.thresholds).unwrap_or_else(|e| {
        keep(Err(e));
        Dict::new()
    }) {
        let key = format!("thresholds.{slug}");
        let Some(kri) = known_kri("thresholds", &slug) else {
            continue;
        };
        match table_of(&key, Some(value)).and_then(|t| parse_table::<ThresholdSection>(&t, &key)) {
            Ok(t) => {
                sections.insert(slug, (kri, t, None));
            }
            Err(e) => keep(Err(e)),
        }
    }
    for (slug, value) in table_of("kris", top.kris).unwrap_or_else(|e| {
        keep(Err(e));
        Dict::new()
    }) {
        let key = format!("kris.{slug}");
        let Some(kri) = known_kri("kris", &slug) else {
            continue;
        };
        let k = match table_of(&key, Some(value)).and_then(|t| parse_table::<KriSection>(&t, &key)) {
            Ok(k) => k,
            Err(e) => {
                keep(Err(e));
                continue;
            }
        };
        let entry = sections
            .entry(slug.clone())
            .or_insert_with(|| (kri, ThresholdSection::default(), None));
        for (band, ours, theirs) in [("amber", k.amber, entry.1.amber), ("red", k.red, entry.1.red)] {
            if ours.is_some() && theirs.is_some() {
                keep(Err(ConfigError::invalid(
                    format!("{key}.{band}"),
                    format!(
                        "set here and in [thresholds.{slug}] {band}: keep one (thresholds.{slug}.{band} or {key}.{band})"
                    ),
                )));
            }
        }
        entry.1.amber = entry.1.amber.or(k.amber);
        entry.1.red = entry.1.red.or(k.red);
        entry.2 = Some(k);
    }
    let mut thresholds = HashMap::new();
    let mut practice = HashMap::new();
    for (slug, (kri, t, k)) in sections {
        let d = kri.default_thresholds();
        let resolved = Thresholds {
            amber: t.amber.unwrap_or(d.amber),
            red: t.red.unwrap_or(d.red),
        };
        match resolved.check(kri.direction()) {
            Ok(()) => {
                thresholds.insert(slug.clone(), resolved);
            }
            Err(m) => {
                let table = if k.as_ref().is_some_and(|k| k.amber.is_some() || k.red.is_some()) {
                    "kris"
                } else {
                    "thresholds"
                };
                keep(Err(ConfigError::invalid(format!("{table}.{slug}"), m)));
            }
        }
        if let Some(k) = k {
            match k.practice(&format!("kris.{slug}")) {
                Ok(p) => {
                    practice.insert(slug, p);
                }
                Err(e) => keep(Err(e)),
            }
        }
    }

    let mut modules = Vec::new();
    let mut missing_credentials = Vec::new();
    for reg in registry::registrations() {
        let present = tables.contains_key(reg.module);
        let table = tables.remove(reg.module).unwrap_or_default();
        let family = reg
            .family
            .map(|key| (key, shared.get(key).cloned().unwrap_or_default()));
        let inherited = reg
            .family
            .and_then(|key| shared_network.get(key).cloned())
            .unwrap_or_default();
        let common = match Common::take(reg, table, family, &inherited) {
            Ok(c) => c,
            Err(e) => {
                keep(Err(e));
                continue;
            }
        };
        let enabled = common.enabled;
        let mut connector = None;
        if enabled || present {
            match (reg.build)(&common.settings) {
                Ok(c) if enabled => connector = Some(c),
                Ok(_) => {}
                Err(e) if e.missing && (!enabled || need == Need::NoCredentials) => {}
                Err(e) if e.missing => match missing_credentials
                    .iter_mut()
                    .find(|m: &&mut ConfigError| m.key == e.key)
                {
                    // One shared setting missing for several connectors: said once.
                    Some(first) => first
                        .message
                        .push_str(&format!(" (the `{}` connector needs it too)", reg.module)),
                    None => missing_credentials.push(e),
                },
                // A shared setting (`[proofpoint] base_url`) wrong for several connectors: said once.
                Err(e) => errors.borrow_mut().add(e, Some(reg.module)),
            }
        }
        let enabled_key = format!("connectors.{}.enabled", reg.module);
        modules.push(Module {
            reg,
            enabled,
            enabled_from: sources.exact_origin(&enabled_key),
            schedule: common.schedule,
            schedule_text: common.schedule_text,
            at: common.at,
            selected: common.selected,
            run_timeout: common.run_timeout,
            settings: common.settings,
            configured: present,
            connector,
        });
    }

    TenantLoad {
        tenant: Tenant {
            name: name.to_owned(),
            file: sources.tenant.as_ref().and(sources.file.clone()),
            modules,
            thresholds,
            practice,
        },
        errors: errors.into_inner().finish(),
        missing: missing_credentials,
    }
}

/// A tenant's config errors, each said once: every error of a table (not only the first), and
/// an error several connectors share (a family's key) once, naming them.
#[derive(Default)]
struct Errors {
    list: Vec<(ConfigError, Vec<&'static str>)>,
}

impl Errors {
    fn add(&mut self, e: ConfigError, module: Option<&'static str>) {
        for e in e.all() {
            match self
                .list
                .iter_mut()
                .find(|(x, _)| x.key == e.key && x.message == e.message)
            {
                Some((_, modules)) => modules.extend(module),
                None => self.list.push((e, module.into_iter().collect())),
            }
        }
    }

    fn finish(self) -> Vec<ConfigError> {
        self.list
            .into_iter()
            .map(|(mut e, mut modules)| {
                modules.dedup();
                if modules.len() > 1 {
                    let names: Vec<String> = modules.iter().map(|m| format!("`{m}`")).collect();
                    let (last, rest) = names.split_last().expect("two or more");
                    e.message
                        .push_str(&format!(" (for the {} and {last} connectors)", rest.join(", ")));
                }
                e
            })
            .collect()
    }
}

/// `unknown key `x`; did you mean `y`? the keys accepted here are: …`.
fn unknown_key(key: &str, accepted: &[&str]) -> String {
    format!(
        "unknown key `{key}`{}; the keys accepted here are: {}",
        did_you_mean(key, accepted),
        accepted.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
    )
}

/// The keys every connector table has, owned by the framework (taken out of the table before
/// the connector sees it), and the connector's settings built from the rest.
pub struct Common {
    pub enabled: bool,
    pub schedule: Duration,
    pub schedule_text: String,
    pub at: Option<Duration>,
    pub selected: Vec<&'static str>,
    pub run_timeout: Duration,
    pub settings: ConnectorSettings,
}

/// Requests a connector may have in flight at once (`concurrency`): default and ceiling.
pub const DEFAULT_CONCURRENCY: usize = 4;
pub const MAX_CONCURRENCY: usize = 16;

/// Default of `run_timeout`: the whole run of one connector.
pub const DEFAULT_RUN_TIMEOUT: Duration = Duration::from_secs(15 * 60);

impl Common {
    /// `inherited`: `proxy` / `ca_file` of the connector's family table, used where the
    /// connector's own table sets none.
    pub fn take(
        reg: &'static Registration,
        mut table: Dict,
        family: Option<(&'static str, Dict)>,
        inherited: &NetworkKeys,
    ) -> Result<Self, ConfigError> {
        let key = |k: &str| format!("connectors.{}.{k}", reg.module);
        let enabled = take(&mut table, "enabled", key("enabled"), Value::deserialize::<Text>)?
            .map(|Text(t)| match t.trim().to_ascii_lowercase().as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(ConfigError::invalid(
                    key("enabled"),
                    format!("`{t}` is not true or false"),
                )),
            })
            .transpose()?
            .unwrap_or(reg.enabled_by_default);
        let schedule_text = take(&mut table, "schedule", key("schedule"), Value::deserialize::<String>)?
            .unwrap_or_else(|| "daily".into());
        let schedule = parse_schedule(&schedule_text).map_err(|m| ConfigError::invalid(key("schedule"), m))?;
        let at = take(&mut table, "at", key("at"), Value::deserialize::<Text>)?
            .map(|Text(t)| parse_at(&t).map_err(|m| ConfigError::invalid(key("at"), m)))
            .transpose()?;
        let selected = match take(&mut table, "kris", key("kris"), Value::deserialize::<Vec<String>>)? {
            None => reg.kris.iter().map(|k| k.slug()).collect(),
            Some(list) => select(reg, &list).map_err(|m| ConfigError::invalid(key("kris"), m))?,
        };
        let defaults = HttpOptions::default();
        let mut duration = |field: &str, min: u64, max: u64| -> Result<Option<Duration>, ConfigError> {
            take(&mut table, field, key(field), Value::deserialize::<Text>)?
                .map(|Text(t)| parse_bounded(&t, min, max).map_err(|m| ConfigError::invalid(key(field), m)))
                .transpose()
        };
        let timeout = duration("timeout", 1, 3600)?.unwrap_or(defaults.timeout);
        let connect_timeout = duration("connect_timeout", 1, 300)?.unwrap_or(defaults.connect_timeout);
        let run_timeout = duration("run_timeout", 1, 86_400)?.unwrap_or(DEFAULT_RUN_TIMEOUT);
        let own = NetworkKeys::take(&mut table, &format!("connectors.{}", reg.module))?;
        let http = HttpOptions {
            timeout,
            connect_timeout,
            network: Network {
                proxy: own.proxy.or_else(|| inherited.proxy.clone()).unwrap_or_default(),
                ca: own.ca.or_else(|| inherited.ca.clone()),
            },
            ..defaults
        };
        let concurrency = take(
            &mut table,
            "concurrency",
            key("concurrency"),
            Value::deserialize::<Text>,
        )?
        .map(|Text(t)| match t.trim().parse::<usize>() {
            Ok(n) if (1..=MAX_CONCURRENCY).contains(&n) => Ok(n),
            _ => Err(ConfigError::invalid(
                key("concurrency"),
                format!(
                    "`{t}` is out of range: requests in flight, 1 to {MAX_CONCURRENCY} (default {DEFAULT_CONCURRENCY})"
                ),
            )),
        })
        .transpose()?
        .unwrap_or(DEFAULT_CONCURRENCY);
        let mut settings = ConnectorSettings::new(reg.module, table)
            .with_http(http)
            .with_concurrency(concurrency);
        if let Some((key, shared)) = family {
            settings = settings.with_family(key, shared);
        }
        Ok(Self {
            enabled,
            schedule,
            schedule_text,
            at,
            selected,
            run_timeout,
            settings,
        })
    }
}

/// The network keys of one table (a connector's, or its family's): `proxy` and `ca_file`.
#[derive(Debug, Default, Clone)]
pub struct NetworkKeys {
    pub proxy: Option<Proxy>,
    pub ca: Option<CaFile>,
}

impl NetworkKeys {
    /// Take `proxy` and `ca_file` out of `table` (written under `[prefix]`), checked: the proxy
    /// URL's shape, the CA file read (a relative path was made relative to the file that set
    /// it when the config was read).
    pub fn take(table: &mut Dict, prefix: &str) -> Result<NetworkKeys, ConfigError> {
        let key = |k: &str| format!("{prefix}.{k}");
        let proxy = take(table, "proxy", key("proxy"), Value::deserialize::<String>)?
            .map(|text| Proxy::parse(&text).map_err(|m| ConfigError::invalid(key("proxy"), m)))
            .transpose()?;
        let ca = take(table, "ca_file", key("ca_file"), Value::deserialize::<PathBuf>)?
            .map(|path| {
                CaFile::read(&path).map_err(|m| {
                    ConfigError::invalid(
                        key("ca_file"),
                        format!("{m} (ca_file names a PEM file of CA certificates to trust besides the system's)"),
                    )
                })
            })
            .transpose()?;
        Ok(NetworkKeys { proxy, ca })
    }
}

/// A duration setting: `90s`, `15m`, or a number of seconds, between `min` and `max` seconds.
fn parse_bounded(text: &str, min: u64, max: u64) -> Result<Duration, String> {
    let d = match text.trim().parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => parse_duration_within(text, Duration::from_secs(max))?,
    };
    if d < Duration::from_secs(min) || d > Duration::from_secs(max) {
        return Err(format!(
            "`{text}` is out of range: use {} to {}",
            humantime::format_duration(Duration::from_secs(min)),
            humantime::format_duration(Duration::from_secs(max))
        ));
    }
    Ok(d)
}

/// A setting written as text, a number or a boolean, kept as text.
struct Text(String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        lenient_string(d).map(Text)
    }
}

/// Take `field` out of a connector table and read it with `de`.
fn take<T>(
    table: &mut Dict,
    field: &str,
    key: String,
    de: fn(&Value) -> Result<T, figment::Error>,
) -> Result<Option<T>, ConfigError> {
    let Some(value) = table.remove(field) else {
        return Ok(None);
    };
    match de(&value) {
        Ok(v) => Ok(Some(v)),
        Err(e) => Err(ConfigError::invalid(key, describe(&e))),
    }
}

/// The longest schedule: once a year.
const MAX_SCHEDULE: Duration = Duration::from_secs(366 * 86_400);

/// `daily`, `hourly`, or a duration from one minute to a year.
pub fn parse_schedule(text: &str) -> Result<Duration, String> {
    let d = match text.trim().to_ascii_lowercase().as_str() {
        "daily" => Duration::from_secs(86_400),
        "hourly" => Duration::from_secs(3_600),
        other => parse_duration_within(other, MAX_SCHEDULE).map_err(|e| {
            if other.chars().next().is_some_and(|c| c.is_ascii_digit()) {
                format!("{e}; or use \"daily\" / \"hourly\"")
            } else {
                format!(
                    "`{text}` is not a schedule: use \"daily\", \"hourly\" or a duration such as \"30m\", \"6h\" or \"7d\""
                )
            }
        })?,
    };
    if d < Duration::from_secs(60) {
        return Err(format!(
            "`{text}` is too often: the schedule must be at least 1m (\"daily\", \"hourly\", \"30m\")"
        ));
    }
    Ok(d)
}

/// `at`: `"HH:MM"` (UTC) for daily schedules, `":MM"` for hourly ones; the offset of the runs
/// from midnight UTC.
pub fn parse_at(text: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "`{text}` is not a time of day: write \"HH:MM\" in UTC (e.g. \"02:30\" for a daily schedule) or \":MM\" (e.g. \":05\" for an hourly one)"
        )
    };
    let t = text.trim();
    let (h, m) = t.split_once(':').ok_or_else(bad)?;
    let h: u64 = if h.is_empty() { 0 } else { h.parse().map_err(|_| bad())? };
    let m: u64 = m.parse().map_err(|_| bad())?;
    if h > 23 || m > 59 {
        return Err(bad());
    }
    Ok(Duration::from_secs(h * 3600 + m * 60))
}

fn select(reg: &Registration, list: &[String]) -> Result<Vec<&'static str>, String> {
    let mut out = Vec::new();
    for slug in list {
        match reg.kris.iter().find(|k| k.slug() == slug) {
            Some(k) if !out.contains(&k.slug()) => out.push(k.slug()),
            Some(_) => {}
            None => {
                let offered: Vec<&str> = reg.kris.iter().map(|k| k.slug()).collect();
                let hint = if offered.is_empty() {
                    "it offers none yet".to_owned()
                } else {
                    format!("it offers: {}", offered.join(", "))
                };
                return Err(format!(
                    "`{slug}` is not a KRI of the `{}` connector; {hint}",
                    reg.module
                ));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::lossless;
    // The connectors the registry is checked against, linked as the binary links them.
    use kri_connector_clear as _;
    use kri_connector_ctr as _;
    use kri_connector_efd as _;
    use kri_connector_tap as _;

    fn load_toml(text: &str) -> Result<Loaded, LoadError> {
        load(&Sources::from_toml(text), Need::Credentials)
    }

    fn message(r: Result<Loaded, LoadError>) -> String {
        match r {
            Ok(_) => panic!("config accepted"),
            Err(f) => f.message,
        }
    }

    const OK: &str = "[proofpoint]\ncredentials = \"svc:pa:ss\"\n";

    #[test]
    fn a_minimal_config_enables_tap_efd_clear_and_not_ctr() {
        let l = load_toml(OK).unwrap();
        let enabled: Vec<&str> = l.tenants[0]
            .modules
            .iter()
            .filter(|m| m.enabled)
            .map(|m| m.reg.module)
            .collect();
        assert_eq!(enabled, ["clear", "efd", "tap"]);
        assert!(
            l.tenants[0]
                .modules
                .iter()
                .filter(|m| m.enabled)
                .all(|m| m.connector.is_some())
        );
        assert_eq!(l.store_path, PathBuf::from("kri.db"));
    }

    #[test]
    fn credentials_without_colon_name_the_key_and_the_fix_but_not_the_value() {
        let m = message(load_toml("[proofpoint]\ncredentials = \"justonestring\"\n"));
        assert!(
            m.contains("proofpoint.credentials") && m.contains("principal:secret") && m.contains("colon"),
            "{m}"
        );
        assert!(!m.contains("justonestring"), "{m}");
    }

    #[test]
    fn unknown_keys_are_refused_at_every_level() {
        assert!(message(load_toml(&format!("{OK}[stor]\npath = \"x\"\n"))).contains("stor"));
        assert!(message(load_toml(&format!("{OK}[connectors.tap]\nwindow = 3\n"))).contains("connectors.tap.window"));
        let m = message(load_toml(&format!("{OK}[connectors.tapp]\nenabled = true\n")));
        assert!(
            m.contains("connectors.tapp") && m.contains("clear, ctr, efd, tap"),
            "{m}"
        );
        assert!(message(load_toml(&format!("{OK}[thresholds.pp_nope]\namber = 1\n"))).contains("thresholds.pp_nope"));
    }

    #[test]
    fn a_store_url_is_shown_without_its_password() {
        assert_eq!(
            redact_url("postgres://kri:pa55@db.example:5432/kri?sslmode=disable&password=x"),
            "postgres://kri:***@db.example:5432/kri"
        );
        assert_eq!(redact_url("postgres://db/kri"), "postgres://db/kri");
        assert_eq!(redact_url("postgresql://u@h/d"), "postgresql://u@h/d");
        assert_eq!(redact_url("nonsense"), "[redacted]");
        let m = message(load_toml(&format!("{OK}[store]\nurl = \"mysql://a:b@c/d\"\n")));
        assert!(
            m.contains("store.url") && m.contains("postgres://") && !m.contains("a:b"),
            "{m}"
        );
        let m = message(load_toml(&format!(
            "{OK}[store]\npath = \"k.db\"\nurl = \"postgres://h/d\"\n"
        )));
        assert!(m.contains("not both"), "{m}");
        let l = load_toml(&format!("{OK}[store]\nurl = \"postgres://kri:s%40krit@h/d\"\n")).unwrap();
        assert_eq!(l.store_description(), "postgres://kri:***@h/d");
        assert_eq!(
            kri_core::secret::scrub("pw s@krit s%40krit"),
            "pw [redacted] [redacted]"
        );
        // A URL without a password is no secret: where the store is stays readable.
        let l = load_toml(&format!("{OK}[store]\nurl = \"postgres://kri@db.example/kri\"\n")).unwrap();
        assert_eq!(
            kri_core::secret::scrub(&l.store_description()),
            "postgres://kri@db.example/kri"
        );
    }

    #[test]
    fn environment_values_keep_the_characters_written() {
        let text = |v: Value| v.into_string();
        for raw in ["00123", "3.10", "1e3", "0042", " 7", "TRUE", "+5", "1_000"] {
            assert_eq!(text(lossless(raw)).as_deref(), Some(raw), "{raw}");
        }
        assert_eq!(
            lossless("12345").to_u128(),
            Some(12345),
            "a plain number stays a number"
        );
        assert_eq!(lossless("false").to_bool(), Some(false));
        assert_eq!(lossless("10.5").to_f64(), Some(10.5));
        assert!(lossless("[\"a\",\"b\"]").into_array().is_some(), "lists still parse");
    }

    #[test]
    fn framework_keys_are_bounded_and_taken_before_the_connector_sees_the_table() {
        let l = load_toml(&format!(
            "{OK}[connectors.efd]\ntimeout = \"5s\"\nconnect_timeout = 3\nrun_timeout = \"2m\"\n"
        ))
        .unwrap();
        let efd = l.tenants[0].modules.iter().find(|m| m.reg.module == "efd").unwrap();
        assert_eq!(efd.run_timeout, Duration::from_secs(120));
        assert_eq!(efd.settings.concurrency(), DEFAULT_CONCURRENCY);
        let l = load_toml(&format!("{OK}[connectors.tap]\nconcurrency = 16\n")).unwrap();
        let tap = l.tenants[0].modules.iter().find(|m| m.reg.module == "tap").unwrap();
        assert_eq!(tap.settings.concurrency(), 16);
        for (key, value) in [
            ("timeout", "\"2h\""),
            ("timeout", "0"),
            ("connect_timeout", "\"1h\""),
            ("run_timeout", "\"25h\""),
            ("run_timeout", "\"soon\""),
            ("concurrency", "0"),
            ("concurrency", "17"),
            ("concurrency", "\"many\""),
        ] {
            let m = message(load_toml(&format!("{OK}[connectors.tap]\n{key} = {value}\n")));
            assert!(m.contains(&format!("connectors.tap.{key}")), "{m}");
        }
        let m = message(load_toml(&format!(
            "{OK}[connectors.tap]\nschedule = \"100000000 years\"\n"
        )));
        assert!(m.contains("too long"), "{m}");
        let m = message(load_toml(&format!("{OK}[connectors.tap]\nenabled = \"maybe\"\n")));
        assert!(
            m.contains("connectors.tap.enabled") && m.contains("true or false"),
            "{m}"
        );
        assert!(load_toml(&format!("{OK}[connectors.tap]\nenabled = \"False\"\n")).is_ok());
    }

    #[test]
    fn bad_schedules_are_refused() {
        let m = message(load_toml(&format!("{OK}[connectors.tap]\nschedule = \"weekly-ish\"\n")));
        assert!(m.contains("connectors.tap.schedule") && m.contains("30m"), "{m}");
        assert!(message(load_toml(&format!("{OK}[connectors.tap]\nschedule = \"10s\"\n"))).contains("at least 1m"));
        assert_eq!(parse_schedule("hourly").unwrap().as_secs(), 3600);
        assert_eq!(parse_schedule("30m").unwrap().as_secs(), 1800);
    }

    #[test]
    fn ctr_max_fetch_500_is_refused_even_when_disabled() {
        let m = message(load_toml(&format!(
            "{OK}[connectors.ctr]\nenabled = false\nmax_fetch = 500\n"
        )));
        assert!(m.contains("connectors.ctr.max_fetch") && m.contains("1..=200"), "{m}");
    }

    #[test]
    fn a_kri_of_another_module_is_refused() {
        let m = message(load_toml(&format!(
            "{OK}[connectors.tap]\nkris = [\"pp_dmarc_enforcement_pct\"]\n"
        )));
        assert!(m.contains("connectors.tap.kris") && m.contains("pp_vap_count"), "{m}");
    }

    #[test]
    fn kris_tables_take_thresholds_and_the_practice_around_them() {
        let l = load_toml(&format!(
            "{OK}[kris.pp_vap_count]\namber = 5\ntitle = \"VAPs\"\nowner = \"Head of SecOps\"\n\
             action = \"https://wiki.example/vap\"\nrespond_within = {{ amber = \"7d\", red = \"24h\" }}\n\
             appetite = \"No more than 10 people attacked this hard\"\n\
             [thresholds.pp_malicious_delivered_24h]\nred = 9\n"
        ))
        .unwrap();
        let t = &l.tenants[0];
        assert_eq!(t.thresholds["pp_vap_count"], Thresholds { amber: 5.0, red: 25.0 });
        let p = t.practice_for("pp_vap_count");
        assert_eq!(
            (p.title.as_deref(), p.owner.as_deref(), p.appetite.is_some()),
            (Some("VAPs"), Some("Head of SecOps"), true)
        );
        assert_eq!(
            (p.respond_within.amber, p.respond_within.red),
            (
                Some(std::time::Duration::from_secs(7 * 86_400)),
                Some(std::time::Duration::from_secs(86_400))
            )
        );
        assert_eq!(t.practice_for("pp_malicious_delivered_24h"), Practice::default());
        // Every KRI has a title for people, whatever the config says.
        for r in registry::registrations() {
            for k in r.kris {
                assert!(!k.title().is_empty() && k.title() != k.slug(), "{}", k.slug());
            }
        }
    }

    #[test]
    fn a_threshold_set_twice_or_bad_practice_is_refused_with_both_places() {
        let m = message(load_toml(&format!(
            "{OK}[thresholds.pp_vap_count]\namber = 5\n[kris.pp_vap_count]\namber = 6\nred = 30\n"
        )));
        assert!(
            m.contains("kris.pp_vap_count.amber") && m.contains("thresholds.pp_vap_count"),
            "{m}"
        );
        let m = message(load_toml(&format!(
            "{OK}[kris.pp_vap_count]\nowner = \"a\\nb\"\nrespond_within = {{ red = \"soon\" }}\nescalate = 1\n[kris.pp_nope]\ntitle = \"x\"\n"
        )));
        for key in ["kris.pp_vap_count.escalate", "kris.pp_nope"] {
            assert!(m.contains(key), "{key}: {m}");
        }
        let m = message(load_toml(&format!(
            "{OK}[kris.pp_vap_count]\nowner = \"a\\nb\"\nrespond_within = {{ red = \"soon\" }}\n"
        )));
        assert!(m.contains("kris.pp_vap_count.owner") && m.contains("one line"), "{m}");
        let m = message(load_toml(&format!(
            "{OK}[kris.pp_vap_count]\nrespond_within = {{ red = \"soon\" }}\n"
        )));
        assert!(m.contains("kris.pp_vap_count.respond_within.red"), "{m}");
    }

    #[test]
    fn thresholds_override_partially_and_must_follow_the_direction() {
        let l = load_toml(&format!("{OK}[thresholds.pp_vap_count]\namber = 5\n")).unwrap();
        assert_eq!(
            l.tenants[0].thresholds["pp_vap_count"],
            Thresholds { amber: 5.0, red: 25.0 }
        );
        let m = message(load_toml(&format!(
            "{OK}[thresholds.pp_dmarc_enforcement_pct]\namber = 10\nred = 90\n"
        )));
        assert!(
            m.contains("thresholds.pp_dmarc_enforcement_pct") && m.contains("lower values are worse"),
            "{m}"
        );
    }

    #[test]
    fn missing_credentials_are_an_error_only_when_needed() {
        let m = message(load_toml(""));
        assert!(
            m.contains("no config") && m.contains("kri init") && m.contains("kri demo"),
            "{m}"
        );
        let m = message(load_toml("[store]\npath = \"x.db\"\n"));
        assert!(m.contains("KRI_PROOFPOINT__CREDENTIALS"), "{m}");
        assert!(load(&Sources::from_toml(""), Need::NoCredentials).is_ok());
        let l = load_toml(
            "[connectors.tap]\nenabled = false\n[connectors.efd]\nenabled = false\n[connectors.clear]\nenabled = false\n",
        )
        .unwrap();
        assert!(l.tenants[0].modules.iter().all(|m| !m.enabled));
    }

    fn message_of(text: &str) -> String {
        message(load_toml(text))
    }

    #[test]
    fn every_error_of_a_file_is_reported_at_once() {
        let m = message_of(&format!(
            "{OK}[stor]\npath = 1\n[connectors.tap]\nschedul = \"hourly\"\n[connectors.efd]\nschedule = \"weekly\"\n\
             [thresholds.pp_vap_count]\namber = \"ten\"\n[serve]\nlisten = \"nowhere\"\n"
        ));
        assert!(m.starts_with("5 config errors:"), "{m}");
        for key in [
            "stor",
            "connectors.tap.schedul",
            "connectors.efd.schedule",
            "thresholds.pp_vap_count",
            "serve.listen",
        ] {
            assert!(m.contains(&format!("- {key}")), "{key} in {m}");
        }
        assert!(m.contains("did you mean `schedule`?"), "{m}");
        assert!(m.contains("did you mean `store`?"), "{m}");
        assert!(
            m.contains("`enabled`") && m.contains("`kris`"),
            "framework keys are listed: {m}"
        );
        assert!(m.contains("\"daily\"") && !m.contains("expected number at 0"), "{m}");
        assert!(m.contains("a number") && !m.contains("f64"), "{m}");
    }

    /// A shared key wrong for three connectors is one error naming them; a table with two bad
    /// values says both, not only the first serde meets.
    #[test]
    fn a_shared_error_is_said_once_and_every_bad_key_of_a_table_is_said() {
        let m = message_of("[proofpoint]\nbase_url = \"ftp://tap.example\"\ncredentials = \"svc:pw\"\n");
        assert_eq!(m.matches("proofpoint.base_url").count(), 1, "{m}");
        assert!(m.contains("(for the `clear`, `efd` and `tap` connectors)"), "{m}");
        let m = message_of(
            "[proofpoint]\ncredentials = \"svc:pw\"\n[connectors.tap]\nlookback_minutes = -5\n\
             siem_timeout_seconds = \"ten\"\n",
        );
        assert!(m.starts_with("2 config errors:"), "{m}");
        for key in ["connectors.tap.lookback_minutes", "connectors.tap.siem_timeout_seconds"] {
            assert_eq!(m.matches(&format!("- {key}")).count(), 1, "{key} in {m}");
        }
    }

    /// The check runs before the token is a secret: "short" stays a word of the message.
    #[test]
    fn a_short_token_is_said_too_short_in_plain_words() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "short\n").unwrap();
        for serve in [
            "token = \"short\"".to_owned(),
            format!("token_file = \"{}\"", file.display()),
        ] {
            let m = message_of(&format!("{OK}[serve]\n{serve}\n"));
            let shown = kri_core::secret::scrub(&m);
            assert!(shown.contains("the token is too short: use at least"), "{shown}");
        }
    }

    #[test]
    fn near_misses_get_a_suggestion_and_types_plain_words() {
        let m = message_of(&format!("{OK}[connectors.tapp]\nenabled = true\n"));
        assert!(m.contains("did you mean `tap`?"), "{m}");
        let m = message_of(&format!("{OK}[thresholds.pp_vap_cont]\namber = 1\n"));
        assert!(m.contains("did you mean `pp_vap_count`?"), "{m}");
        let m = message_of(&format!("{OK}[connectors.tap]\nkris = \"pp_vap_count\"\n"));
        assert!(m.contains("a list") && m.contains("'[\"a\",\"b\"]'"), "{m}");
        assert!(
            load(
                &Sources::from_toml(&format!("{OK}[thresholds.pp_vap_count]\namber = \"10\"\n")),
                Need::Credentials
            )
            .is_ok(),
            "a number in quotes is a number"
        );
    }
}

#[cfg(test)]
mod sample_tests {
    use super::*;

    /// Every family's sample table parses through the real config pipeline, and its crate's
    /// README shows it verbatim.
    #[test]
    fn every_family_sample_parses_and_is_in_its_readme() {
        for family in registry::families() {
            if let Err(f) = load(&Sources::from_toml(family.sample_config), Need::NoCredentials) {
                panic!("[{}]: sample does not load: {}", family.key, f.message);
            }
            let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../{}/README.md", family.key));
            let readme = std::fs::read_to_string(&readme).unwrap_or_else(|e| panic!("{}: {e}", readme.display()));
            assert!(
                readme.contains(family.sample_config.trim_end()),
                "[{}]: README does not show its sample",
                family.key
            );
        }
    }

    /// Every connector's sample.toml parses through the real config pipeline, and its README
    /// shows it verbatim.
    #[test]
    fn every_sample_config_parses_and_is_in_its_readme() {
        for reg in registry::registrations() {
            let text = format!("[proofpoint]\ncredentials = \"svc:secret\"\n{}", reg.sample_config);
            if let Err(f) = load(&Sources::from_toml(&text), Need::Credentials) {
                panic!("{}: sample.toml does not load: {}", reg.module, f.message);
            }
            let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../connector-{}/README.md", reg.module));
            let readme = std::fs::read_to_string(&readme).unwrap_or_else(|e| panic!("{}: {e}", readme.display()));
            assert!(
                readme.contains(reg.sample_config.trim_end()),
                "{}: README does not show sample.toml",
                reg.module
            );
        }
    }
}
