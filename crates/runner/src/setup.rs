//! Getting started: `kri init` (a commented kri.toml from the connectors' samples),
//! `kri config check` (everything validated, nothing called, the effective values and where each
//! came from) and `kri sandbox` (the fake API that `kri demo --keep` points its config at).

use std::path::Path;
use std::sync::Arc;

use kri_core::Clock;
use kri_core::registry;
use kri_sandbox::{Sandbox, Scenario};
use serde_json::json;

use crate::config::{Need, Sources, load};
use crate::output::{text, whole};
use crate::table::{self, Cell, Tone};
use crate::{Failure, Output};

use kri_config::SECRET_KEYS;

/// `kri init`: write a commented kri.toml (or the `--config` path).
pub fn init(path: Option<&Path>, force: bool) -> Result<u8, Failure> {
    let path = path.unwrap_or(Path::new("kri.toml"));
    if path.exists() && !force {
        return Err(Failure::config(format!(
            "`{}` exists already: kri init never overwrites a config; pass --force to replace it, or --config OTHER.toml",
            path.display()
        )));
    }
    let text = sample_config();
    let tmp = path.with_extension("toml.partial");
    let fail = |e: std::io::Error| Failure::runtime(format!("cannot write {}: {e}", path.display()));
    std::fs::write(&tmp, &text).map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)?;
    errln!(
        "wrote {}: fill in base URLs and ids, put the credentials in the environment (see the top of the file), \
         then `kri config check` and `kri test`",
        path.display()
    );
    Ok(0)
}

/// The whole commented config: the framework's tables, then every family's and connector's
/// sample, credentials commented out in favour of the environment.
pub fn sample_config() -> String {
    let mut out = String::from(
        "# kri.toml, written by `kri init`. Every key: README.md and each connector's README.\n\
         # Secrets belong in the environment, not in this file:\n",
    );
    for family in registry::families() {
        for (key, var) in secret_vars(family.sample_config) {
            out.push_str(&format!("#   {var}=…   ({key})\n"));
        }
    }
    for reg in registry::registrations() {
        for (key, var) in secret_vars(reg.sample_config) {
            out.push_str(&format!("#   {var}=…   ({key})\n"));
        }
    }
    out.push_str(
        "#   KRI_SERVE__TOKEN=…   (kri serve: enables Run now and Test; at least 16 random characters)\n\
         # Check it without calling anything: `kri config check`. Then `kri test`, `kri run`, `kri serve`.\n\n\
         [store]\n\
         path = \"kri.db\"              # the embedded store, created by the first run\n\
         # keep_days = 400            # runs and values older than this are pruned\n\n\
         # [serve]                    # kri serve: the dashboard, /metrics and the API\n\
         # listen = \"127.0.0.1:9741\"\n\
         # grace = \"30s\"              # on SIGTERM, running runs get this long to finish\n\n",
    );
    for family in registry::families() {
        out.push_str(&without_secrets(family.sample_config));
        out.push('\n');
    }
    for reg in registry::registrations() {
        out.push_str(&without_secrets(reg.sample_config));
        out.push('\n');
    }
    out
}

/// The secret keys set in a sample, with the environment variable that should carry each.
fn secret_vars(sample: &str) -> Vec<(String, String)> {
    let mut table = String::new();
    let mut out = Vec::new();
    for line in sample.lines() {
        let t = line.trim();
        if let Some(name) = t.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            table = name.to_owned();
        } else if let Some(key) = secret_key(t) {
            let var = format!("KRI_{}__{}", table.replace('.', "__"), key).to_uppercase();
            out.push((format!("{table}.{key}"), var));
        }
    }
    out
}

/// `credentials` for a line `credentials = "…"` (not commented) of a secret key.
fn secret_key(line: &str) -> Option<&'static str> {
    let key = line.split_once('=')?.0.trim();
    SECRET_KEYS.iter().find(|k| **k == key).copied()
}

/// The sample with its secret lines commented out, each with one comment: the variable that
/// should carry it (the sample's own comment on that line is replaced, not doubled).
fn without_secrets(sample: &str) -> String {
    let mut table = String::new();
    let mut out = String::new();
    for line in sample.lines() {
        let t = line.trim();
        if let Some(name) = t.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            table = name.to_owned();
        }
        match secret_key(t) {
            Some(key) => {
                let var = format!("KRI_{}__{}", table.replace('.', "__"), key).to_uppercase();
                out.push_str(&format!("# {}   # set {var} in the environment instead\n", code_of(t)));
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// A TOML line without its comment: up to the first `#` outside a string.
fn code_of(line: &str) -> &str {
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '#' if !quoted => return line[..i].trim_end(),
            _ => {}
        }
    }
    line.trim_end()
}

/// `kri config check`: load and validate everything (no network call), then print the
/// effective settings and where each came from. Exit 0, or 2 with every error.
pub fn check(sources: &Sources, out: Output) -> Result<u8, Failure> {
    let loaded = load(sources, Need::Credentials)?;
    let settings = loaded.settings(sources)?;
    let modules_of = |t: &crate::config::Tenant| -> Vec<serde_json::Value> {
        t.modules
            .iter()
            .map(|m| {
                json!({"module": m.reg.module, "connector": m.reg.id, "enabled": m.enabled,
                       "enabled_from": m.enabled_from.clone().unwrap_or_else(|| "default".into()),
                       "schedule": m.schedule_text, "kris": m.selected})
            })
            .collect()
    };
    let tenants: Vec<_> = loaded
        .tenants
        .iter()
        .map(|t| json!({"tenant": t.name, "file": t.file, "connectors": modules_of(t)}))
        .collect();
    let modules = loaded.tenants.first().map(modules_of).unwrap_or_default();
    let file = sources.file.as_ref().map(|f| f.display().to_string());
    if out != Output::Table {
        let settings: Vec<_> = settings
            .iter()
            .map(|(k, v, from)| json!({"key": k, "value": v, "from": from}))
            .collect();
        crate::output::print_json(&json!({
            "valid": true, "file": file, "file_found": sources.file_found,
            "store": loaded.store_description(), "settings": settings, "connectors": modules,
            "tenants": tenants,
        }));
        return Ok(0);
    }
    match (&file, sources.file_found) {
        (Some(f), true) => outln!("config file: {f}"),
        (Some(f), false) => outln!("config file: none (no `{f}`); environment only"),
        (None, _) => {}
    }
    let columns = [whole("KEY", 0), text("VALUE", 12, 0), text("FROM", 12, 1)];
    let rows: Vec<Vec<Cell>> = settings
        .iter()
        .map(|(k, v, from)| {
            vec![
                Cell::from(k.as_str()),
                Cell::from(v.as_str()),
                Cell::from(from.as_str()),
            ]
        })
        .collect();
    outln!("{}", table::render(&columns, &rows, table::width(), table::colour()));
    outln!("");
    let columns = [
        whole("MODULE", 0),
        whole("ENABLED", 0),
        whole("SCHEDULE", 0),
        text("KRIS", 16, 0),
    ];
    let Some(first) = loaded.tenants.first() else {
        return Ok(0);
    };
    if loaded.multi_tenant {
        let columns = [whole("TENANT", 0), text("FILE", 12, 1), text("ENABLED", 12, 0)];
        let rows: Vec<Vec<Cell>> = loaded
            .tenants
            .iter()
            .map(|t| {
                let enabled: Vec<&str> = t.modules.iter().filter(|m| m.enabled).map(|m| m.reg.module).collect();
                vec![
                    Cell::from(t.name.as_str()),
                    Cell::from(t.file.as_ref().map(|f| f.display().to_string()).unwrap_or_default()),
                    Cell::from(enabled.join(" ")),
                ]
            })
            .collect();
        outln!("{}", table::render(&columns, &rows, table::width(), table::colour()));
        outln!(
            "\n{} tenants. The connectors of tenant `{}` (--tenant NAME shows another's):",
            loaded.tenants.len(),
            first.name
        );
    }
    let rows: Vec<Vec<Cell>> = first
        .modules
        .iter()
        .map(|m| {
            let enabled = match (&m.enabled_from, m.enabled) {
                (_, true) => Cell::from("yes"),
                (None, false) => Cell::toned("no (default)", Tone::Dim),
                (Some(_), false) => Cell::toned("no", Tone::Dim),
            };
            vec![
                Cell::from(m.reg.module),
                enabled,
                Cell::from(m.schedule_text.as_str()),
                Cell::from(m.selected.join(" ")),
            ]
        })
        .collect();
    outln!("{}", table::render(&columns, &rows, table::width(), table::colour()));
    outln!(
        "\nThe config is valid (store {}; nothing was called). Next: `kri test`.",
        loaded.store_description()
    );
    Ok(0)
}

/// `kri sandbox`: the fake API, until SIGTERM or Ctrl-C.
pub async fn sandbox(listen: &str, latency: std::time::Duration, clock: Arc<dyn Clock>) -> Result<u8, Failure> {
    let addr = crate::config::parse_listen(listen).map_err(|m| Failure::config(format!("--listen: {m}")))?;
    if !addr.ip().is_loopback() {
        return Err(Failure::config(format!(
            "--listen {addr}: the sandbox serves only on 127.0.0.1 (it accepts demo credentials)"
        )));
    }
    let scenario = Scenario {
        latency,
        ..scenario(clock.as_ref())
    };
    let sandbox = Sandbox::start_on(scenario, addr.port()).await.map_err(|e| {
        Failure::runtime(format!(
            "cannot serve the sandbox on {addr}: {e} (another `kri sandbox`? pick a port with --listen)"
        ))
    })?;
    errln!(
        "kri sandbox: {} until Ctrl-C. Its credentials: {} (fake); kri demo --keep wrote a config for it.",
        sandbox.description(),
        sandbox.credentials()
    );
    let tenants: Vec<String> = (1..=SANDBOX_TENANTS)
        .map(|i| {
            let ((principal, secret), (client, client_secret)) =
                (kri_sandbox::tenant_credentials(i), kri_sandbox::tenant_ctr_client(i));
            format!("credentials \"{principal}:{secret}\" and CTR client {client} / {client_secret}")
        })
        .collect();
    errln!(
        "For a [tenants] walkthrough, {} more fake tenants, each with its own pools: {}",
        SANDBOX_TENANTS,
        tenants.join("; ")
    );
    kri_service::until_signal(std::sync::Arc::new(crate::term::Terminal)).await;
    Ok(0)
}

/// The sandbox's scenario: the wall clock, or the tests' fixed instant.
pub fn scenario(clock: &dyn Clock) -> Scenario {
    let fixed = cfg!(debug_assertions) && std::env::var_os("KRI_TEST_NOW").is_some();
    Scenario {
        now: fixed.then(|| clock.now()),
        // Two more fake tenants with credentials of their own, for the README's [tenants]
        // walkthrough: tenants sharing one credential would share (and exhaust) its pools, as
        // on the real API.
        tenants: SANDBOX_TENANTS,
        ..Scenario::default()
    }
}

/// Fake tenants the sandbox serves besides its own (`tenant-0001`, `tenant-0002`).
const SANDBOX_TENANTS: u32 = 2;

#[cfg(test)]
mod tests {
    use super::*;

    /// A secret line of the written config carries one comment, naming its variable; the
    /// sample's own "better: …" comment is not doubled after it.
    #[test]
    fn kri_init_comments_each_secret_line_once() {
        let text = sample_config();
        let secret_lines: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("in the environment instead"))
            .collect();
        assert!(secret_lines.len() >= 2, "{text}");
        for line in secret_lines {
            assert_eq!(line.matches('#').count(), 2, "{line}");
            assert!(!line.contains("better:"), "{line}");
        }
        assert!(
            text.contains(
                "# credentials = \"principal:secret\"   # set KRI_PROOFPOINT__CREDENTIALS in the environment instead\n"
            ),
            "{text}"
        );
        assert_eq!(code_of(r#"a = "x # y"   # note"#), r#"a = "x # y""#);
    }
}
