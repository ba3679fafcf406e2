//! Where the config comes from: the file, the `KRI_…` environment read without losing what was
//! written, and where each key was set; and the error a config that cannot be used is. Both
//! the top-level config and each tenant's are `Sources` (tenants.rs builds those).

use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Toml};
use figment::value::{Dict, Map, Num, Value};
use figment::{Figment, Metadata, Profile, Provider, Source};
use kri_core::config::ConfigError;

/// A config that cannot be used: every error, each naming its key, where it was set and the
/// fix (the CLI exits 2 with it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    pub message: String,
}

impl LoadError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for LoadError {}

/// Where the config comes from.
pub struct Sources {
    pub figment: Figment,
    /// The file, for messages; `None` for a config built in code (`kri demo`).
    pub file: Option<PathBuf>,
    pub file_found: bool,
    /// The prefix of the environment variables read: `KRI_`, or a tenant's `KRI_TENANT_<NAME>__`.
    pub env_prefix: String,
    /// The tenant these sources are of (`None`: the top-level config).
    pub tenant: Option<String>,
}

impl Sources {
    /// `path` (explicit `--config` or `$KRI_CONFIG`) or `kri.toml`, merged with `KRI_…` variables.
    pub fn from_file_and_env(path: Option<&Path>) -> Result<Sources, LoadError> {
        let (file, explicit) = match path {
            Some(p) => (p.to_owned(), true),
            None => (PathBuf::from("kri.toml"), false),
        };
        let file_found = file.is_file();
        if explicit && !file_found {
            return Err(LoadError::new(format!(
                "config file `{}` not found: check --config / KRI_CONFIG, or write one with `kri init` (it writes the --config path)",
                file.display()
            )));
        }
        let mut figment = Figment::new();
        if file_found {
            figment = figment.merge(Toml::file_exact(&file));
        }
        // A tenant's own variables (KRI_TENANT_<NAME>__…) are read per tenant, not here.
        let env = Env::prefixed("KRI_")
            .filter(|k| !k.as_str().to_ascii_lowercase().starts_with("tenant_"))
            .split("__")
            .ignore(&["config", "test_now", "test_clock_file"]);
        let figment = figment.merge(LosslessEnv(env));
        Ok(Sources {
            figment,
            file: Some(file),
            file_found,
            env_prefix: "KRI_".into(),
            tenant: None,
        })
    }

    /// A config written in code (the demo): no file, no environment.
    pub fn from_toml(text: &str) -> Sources {
        Sources {
            figment: Figment::from(Toml::string(text)),
            file: None,
            file_found: false,
            env_prefix: "KRI_".into(),
            tenant: None,
        }
    }

    /// Where `key` was set: the file, or the exact environment variable(s).
    pub fn origin(&self, key: &str) -> String {
        let mut probe = key.to_owned();
        loop {
            if let Some(md) = self.figment.find_metadata(&probe) {
                if md.name.contains("environment") {
                    // Name the exact variables: the key's own, or those under its table.
                    let prefix = if md.name.contains("tenant") {
                        self.env_prefix.as_str()
                    } else {
                        "KRI_"
                    };
                    let name = format!("{prefix}{}", probe.replace('.', "__").to_uppercase());
                    let prefix = format!("{name}__");
                    let mut vars: Vec<String> = std::env::vars()
                        .map(|(k, _)| k)
                        .filter(|k| {
                            let k = k.to_uppercase();
                            k == name || k.starts_with(&prefix)
                        })
                        .collect();
                    vars.sort();
                    if !vars.is_empty() {
                        return format!("environment variable {}", vars.join(", "));
                    }
                }
                return describe_source(md, &probe, &self.env_prefix);
            }
            match probe.rfind('.') {
                Some(i) => probe.truncate(i),
                None => break,
            }
        }
        match (&self.file, self.file_found) {
            (Some(f), true) => f.display().to_string(),
            (Some(f), false) => format!("defaults; no config file `{}` was found", f.display()),
            (None, _) => "the built-in config".into(),
        }
    }

    pub fn error(&self, e: ConfigError) -> LoadError {
        LoadError::new(format!("config error: {}", self.describe_error(&e)))
    }

    /// `key: message (set in …)`; a missing key is not said to be set anywhere.
    pub fn describe_error(&self, e: &ConfigError) -> String {
        if e.missing {
            return format!("{}: {}", e.key, e.message);
        }
        format!("{}: {} (set in {})", e.key, e.message, self.origin(&e.key))
    }

    /// Where exactly `key` was set, or `None` when it was not (its default applies).
    pub fn exact_origin(&self, key: &str) -> Option<String> {
        self.figment
            .find_metadata(key)
            .map(|md| describe_source(md, key, &self.env_prefix))
    }
}

fn describe_source(md: &Metadata, key: &str, env_prefix: &str) -> String {
    match &md.source {
        Some(Source::File(p)) => p.display().to_string(),
        _ if md.name.contains("tenant environment") => {
            format!(
                "environment variable {env_prefix}{}",
                key.replace('.', "__").to_uppercase()
            )
        }
        _ if md.name.contains("environment") => {
            format!("environment variable KRI_{}", key.replace('.', "__").to_uppercase())
        }
        _ => md.name.to_string(),
    }
}

/// The `KRI_…` environment, parsed like figment's `Env` EXCEPT where parsing would change what
/// the user wrote: `00123` stays the text `00123` (figment alone reads the number 123), `3.10`
/// stays `3.10`. Secrets and ids keep exactly their characters; numeric and boolean settings
/// accept the text (see `lenient_bool`, `lenient_f64`).
pub(crate) struct LosslessEnv(Env);

impl Provider for LosslessEnv {
    fn metadata(&self) -> Metadata {
        self.0.metadata()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut dict = Dict::new();
        for (key, raw) in self.0.iter() {
            if let Value::Dict(_, nested) = figment::util::nest(key.as_str(), lossless(&raw)) {
                merge(&mut dict, nested);
            }
        }
        Ok(Profile::Default.collect(dict))
    }
}

/// figment's reading of `raw`, unless it would not print back as `raw`.
pub(crate) fn lossless(raw: &str) -> Value {
    let parsed: Value = raw.parse().unwrap_or_else(|_| Value::from(raw.to_owned()));
    let same = match &parsed {
        Value::Num(_, n) => num_text(*n).is_some_and(|t| t == raw),
        Value::Bool(_, b) => b.to_string() == raw,
        Value::Char(..) => false,
        _ => true,
    };
    if same { parsed } else { Value::from(raw.to_owned()) }
}

fn num_text(n: Num) -> Option<String> {
    n.to_u128()
        .map(|v| v.to_string())
        .or_else(|| n.to_i128().map(|v| v.to_string()))
        .or_else(|| n.to_f64().map(|v| v.to_string()))
}

pub(crate) fn merge(into: &mut Dict, from: Dict) {
    for (k, v) in from {
        match (into.get_mut(&k), v) {
            (Some(Value::Dict(_, a)), Value::Dict(_, b)) => merge(a, b),
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
}
