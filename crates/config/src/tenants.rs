//! Many tenants in one config: `[tenants] dir = "tenants.d"` holds one TOML file per tenant
//! (its name is the file's stem). A tenant file has the tables of a single-tenant config
//! (`[proofpoint]`, `[connectors.*]`, `[thresholds.*]`); the same tables in `kri.toml` are the
//! defaults every tenant inherits. A tenant's own environment variables are
//! `KRI_TENANT_<NAME>__<TABLE>__<KEY>` (the name in upper case, `-` written `_`), so each
//! tenant's secret can come from the environment, or from a `*_file` key (container secrets).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use figment::providers::Format;
use figment::value::{Dict, Map};
use figment::{Figment, Metadata, Profile, Provider, Source};

use crate::sources::{Sources, lossless, merge};

/// The prefix of every tenant's own environment variables.
pub const ENV_PREFIX: &str = "KRI_TENANT_";

/// The longest tenant name.
const MAX_NAME: usize = 64;

/// A tenant file found in the tenants folder.
#[derive(Debug)]
pub struct TenantFile {
    pub name: String,
    pub path: PathBuf,
}

/// `acme-eu` → `ACME_EU`: the `<NAME>` of its environment variables.
pub fn env_name(tenant: &str) -> String {
    tenant.to_ascii_uppercase().replace('-', "_")
}

/// Why `name` cannot be a tenant name, if it cannot.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok_start = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let ok_rest = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok_start && ok_rest && name.len() <= MAX_NAME {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a tenant name: use lower-case letters, digits, `-` and `_`, starting with a letter \
             or digit, at most {MAX_NAME} characters (the file is then `{}.toml`)",
            suggest(name)
        ))
    }
}

fn suggest(name: &str) -> String {
    let s: String = name
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let s = s.trim_start_matches(['-', '_']);
    if s.is_empty() {
        "tenant-name".into()
    } else {
        s.chars().take(MAX_NAME).collect()
    }
}

/// The tenant files of `dir`, sorted by name: every `*.toml` (hidden files and other files are
/// not tenants), and what is wrong: the folder cannot be read, a file name that is not a tenant
/// name, two names with one environment prefix, or no tenant at all. The good files are listed
/// even when others are wrong, so every tenant's errors are said at once.
pub fn list(dir: &Path, key: &str) -> (Vec<TenantFile>, Vec<String>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            return (
                Vec::new(),
                vec![format!(
                    "{key}: cannot read the tenants folder `{}` ({e}); create it with one TOML file per tenant, \
                     or remove [tenants] for a single tenant",
                    dir.display()
                )],
            );
        }
    };
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if file_name.starts_with('.') || path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        // A tenant file is a file of the folder: a symlink could make kri read (and quote in
        // an error) any file the service may read.
        match entry.file_type() {
            Ok(t) if t.is_symlink() => {
                errors.push(format!(
                    "{}: is a symbolic link; a tenant file must be a regular file in the tenants folder (copy it there)",
                    path.display()
                ));
                continue;
            }
            Ok(t) if t.is_file() => {}
            _ => continue,
        }
        let name = file_name.trim_end_matches(".toml").to_owned();
        match check_name(&name) {
            Ok(()) => files.push(TenantFile { name, path }),
            Err(m) => errors.push(format!("{}: {m}", path.display())),
        }
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    let mut by_env: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for f in &files {
        by_env.entry(env_name(&f.name)).or_default().push(&f.name);
    }
    for (env, names) in by_env.iter().filter(|(_, n)| n.len() > 1) {
        errors.push(format!(
            "tenants {} would share the environment variables {ENV_PREFIX}{env}__…: rename one of their files",
            names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(" and ")
        ));
    }
    if files.is_empty() && errors.is_empty() {
        errors.push(format!(
            "{key}: the tenants folder `{}` has no tenant file: add one `NAME.toml` per tenant (with the tables \
             that differ from kri.toml's, such as its credentials), or remove [tenants] for a single tenant",
            dir.display()
        ));
    }
    (files, errors)
}

/// The tenants' own environment variables, read once: `<NAME>` → (key path, raw value, variable).
pub type TenantVars = BTreeMap<String, Vec<(String, String, String)>>;

/// Every `KRI_TENANT_<NAME>__…` variable, grouped by `<NAME>`.
pub fn tenant_vars() -> TenantVars {
    let mut out: TenantVars = BTreeMap::new();
    for (var, raw) in std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))) {
        let upper = var.to_ascii_uppercase();
        let Some(rest) = upper.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let Some((name, key)) = rest.split_once("__") else {
            continue;
        };
        let key = key.to_ascii_lowercase().replace("__", ".");
        out.entry(name.to_owned()).or_default().push((key, raw, var));
    }
    out
}

/// Variables of tenants that do not exist (a typo would otherwise be silently ignored).
pub fn stray_vars(vars: &TenantVars, files: &[TenantFile]) -> Vec<String> {
    let mut out = Vec::new();
    for (env, list) in vars {
        if files.iter().any(|f| env_name(&f.name) == *env) {
            continue;
        }
        for (_, _, var) in list {
            out.push(format!(
                "environment variable {var}: there is no tenant `{}` (no `{}.toml` in the tenants folder)",
                env.to_ascii_lowercase(),
                env.to_ascii_lowercase().replace('_', "-")
            ));
        }
    }
    out
}

/// One tenant's config: `kri.toml` and the `KRI_…` variables as defaults, then the tenant's file,
/// then its own variables. `Err` when the file cannot be read, is not TOML, or has tables that
/// only `kri.toml` may have.
pub fn sources(base: &Sources, file: &TenantFile, vars: &TenantVars, allowed: &[&str]) -> Result<Sources, String> {
    let text =
        std::fs::read_to_string(&file.path).map_err(|e| format!("{}: cannot be read: {e}", file.path.display()))?;
    let data = figment::providers::Toml::string(&text)
        .data()
        .map_err(|e| format!("{}: is not valid TOML: {e}", file.path.display()))?;
    let dict = data.into_values().next().unwrap_or_default();
    let mut bad: Vec<&str> = dict
        .keys()
        .map(String::as_str)
        .filter(|k| !allowed.contains(k))
        .collect();
    if !bad.is_empty() {
        bad.sort_unstable();
        return Err(format!(
            "{}: [{}] cannot be set per tenant; a tenant file takes only {} (the rest is kri.toml's)",
            file.path.display(),
            bad.join("], ["),
            allowed.iter().map(|k| format!("[{k}]")).collect::<Vec<_>>().join(", ")
        ));
    }
    let env = env_name(&file.name);
    let mut figment: Figment = base.figment.clone().merge(Parsed {
        dict,
        metadata: Metadata::from("tenant file", Source::File(file.path.clone())),
    });
    if let Some(list) = vars.get(&env) {
        let mut dict = Dict::new();
        for (key, raw, _) in list {
            if let figment::value::Value::Dict(_, nested) = figment::util::nest(key, lossless(raw)) {
                merge(&mut dict, nested);
            }
        }
        figment = figment.merge(Parsed {
            dict,
            metadata: Metadata::named("tenant environment variable"),
        });
    }
    Ok(Sources {
        figment,
        file: Some(file.path.clone()),
        file_found: true,
        env_prefix: format!("{ENV_PREFIX}{env}__"),
        tenant: Some(file.name.clone()),
    })
}

/// Values already read, with where they came from.
struct Parsed {
    dict: Dict,
    metadata: Metadata,
}

impl Provider for Parsed {
    fn metadata(&self) -> Metadata {
        self.metadata.clone()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.dict.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_names_are_plain_and_map_to_one_env_prefix() {
        for ok in ["acme", "acme-eu", "t_01", "0day"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Acme", "-x", "a b", "ä", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert!(check_name("Acme Corp").unwrap_err().contains("`acme-corp.toml`"));
        assert_eq!(env_name("acme-eu"), "ACME_EU");
    }

    #[test]
    fn the_folder_lists_toml_files_only_and_refuses_clashes() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["b.toml", "a.toml", ".hidden.toml", "README.md", "c.toml.bak"] {
            std::fs::write(dir.path().join(f), "").unwrap();
        }
        let (files, errors) = list(dir.path(), "tenants.dir");
        let names: Vec<String> = files.into_iter().map(|f| f.name).collect();
        assert_eq!(
            (names, errors),
            (vec!["a".to_owned(), "b".to_owned()], Vec::<String>::new())
        );
        std::fs::write(dir.path().join("a-b.toml"), "").unwrap();
        std::fs::write(dir.path().join("a_b.toml"), "").unwrap();
        std::fs::write(dir.path().join("Bad Name.toml"), "").unwrap();
        let (files, errors) = list(dir.path(), "tenants.dir");
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_eq!(files.len(), 4, "the good files are still listed");
        assert!(
            errors
                .iter()
                .any(|e| e.contains("`a-b` and `a_b`") && e.contains("KRI_TENANT_A_B__"))
        );
        assert!(
            errors
                .iter()
                .any(|e| e.contains("Bad Name.toml") && e.contains("`bad-name.toml`"))
        );
        let empty = tempfile::tempdir().unwrap();
        assert!(list(empty.path(), "tenants.dir").1[0].contains("has no tenant file"));

        // Regression: a tenants.d entry that was a symlink to an outside file was followed, and
        // the file's first line quoted in the error.
        #[cfg(unix)]
        {
            let dir = tempfile::tempdir().unwrap();
            let outside = dir.path().join("shadow");
            std::fs::write(&outside, "root:secret-line\n").unwrap();
            std::fs::create_dir(dir.path().join("t")).unwrap();
            std::os::unix::fs::symlink(&outside, dir.path().join("t/acme.toml")).unwrap();
            std::fs::write(dir.path().join("t/globex.toml"), "").unwrap();
            let (files, errors) = list(&dir.path().join("t"), "tenants.dir");
            assert_eq!(files.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(), ["globex"]);
            assert!(errors[0].contains("acme.toml: is a symbolic link"), "{errors:?}");
            assert!(!errors.concat().contains("secret-line"), "{errors:?}");
        }
        assert!(list(&empty.path().join("nope"), "tenants.dir").1[0].contains("cannot read"));
    }
}
