//! Rendering: `table` for people, `json` (stable) for machines. Always to stdout.

use comfy_table::presets::UTF8_BORDERS_ONLY;
use comfy_table::{ContentArrangement, Table};
use kri_core::KriStatus;
use kri_core::report::{RunReport, RunRow, ValueRow};
use serde::Serialize;
use serde_json::json;

use crate::Output;
use crate::config::Loaded;

pub use crate::term::err_line;

/// What a connector's subcommand produced: JSON for machines, its tables and lines for people.
pub fn command(out: &kri_core::command::Output, format: Output) {
    if format == Output::Json {
        return print_json(&out.json);
    }
    for block in &out.human {
        match block {
            kri_core::command::Block::Line(line) => outln!("{line}"),
            kri_core::command::Block::Table(t) => {
                let mut table = table(&t.header.iter().map(String::as_str).collect::<Vec<_>>());
                for row in &t.rows {
                    table.add_row(row.clone());
                }
                outln!("{table}");
            }
        }
    }
}

pub fn print_json(value: &impl Serialize) {
    match serde_json::to_string_pretty(value) {
        Ok(s) => outln!("{s}"),
        Err(e) => errln!("error: cannot encode the output as JSON: {e}"),
    }
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.to_vec());
    t
}

/// `12`, `66.67`, or `—` for no value.
pub fn fmt_value(v: Option<f64>) -> String {
    match v {
        Some(v) if v.fract() == 0.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.2}"),
        None => "—".into(),
    }
}

pub fn run(report: &RunReport, out: Output) {
    if out == Output::Json {
        return print_json(report);
    }
    let mut t = table(&["MODULE", "KRI", "VALUE", "UNIT", "STATUS", "BAND", "MESSAGE"]);
    for c in &report.connectors {
        for k in &c.kris {
            t.add_row(vec![
                c.module.clone(),
                k.slug.to_owned(),
                fmt_value(k.value),
                k.unit.to_owned(),
                k.status.as_str().to_owned(),
                k.band.map(|b| b.as_str()).unwrap_or("—").to_owned(),
                k.message.clone().unwrap_or_default(),
            ]);
        }
    }
    outln!(
        "run {}  {}",
        report.run_id,
        kri_core::store::fmt_time(&report.started_at)
    );
    outln!("{t}");
    for c in &report.connectors {
        let mut line = format!(
            "{}: {} ({} written, {} skipped, {} API call{})",
            c.module,
            c.status.as_str(),
            c.rows_written,
            c.rows_skipped,
            c.api_calls,
            if c.api_calls == 1 { "" } else { "s" }
        );
        if c.rows_written == 0 && c.rows_skipped > 0 {
            line.push_str(&format!(
                " — no KRI selected: check [connectors.{}] kris (`kri kris` lists them)",
                c.module
            ));
        }
        outln!("{line}");
    }
}

/// `kri kris --output json` (and `GET /api/v1/kris`).
pub fn kris_json(loaded: &Loaded) -> serde_json::Value {
    let connectors: Vec<_> = loaded
        .modules
        .iter()
        .map(|m| {
            let kris: Vec<_> = m
                .reg
                .kris
                .iter()
                .map(|k| {
                    let t = loaded.thresholds_for(*k);
                    json!({
                        "slug": k.slug(), "meaning": k.meaning(), "unit": k.unit(), "direction": k.direction(),
                        "amber": t.amber, "red": t.red, "how": k.how(),
                        "licensed_module": k.licensed_module(),
                        "selected": m.enabled && m.selected.contains(&k.slug()),
                    })
                })
                .collect();
            json!({"connector": m.reg.id, "module": m.reg.module, "enabled": m.enabled,
                   "schedule": m.schedule_text, "description": m.reg.description, "kris": kris})
        })
        .collect();
    json!({ "connectors": connectors })
}

pub fn kris(loaded: &Loaded, out: Output) {
    if out == Output::Json {
        return print_json(&kris_json(loaded));
    }
    let mut t = table(&[
        "MODULE",
        "KRI",
        "MEANING",
        "UNIT",
        "WORSE WHEN",
        "AMBER",
        "RED",
        "SELECTED",
    ]);
    for m in &loaded.modules {
        if m.reg.kris.is_empty() {
            t.add_row(vec![m.reg.module, "(none yet)", m.reg.description, "", "", "", "", ""]);
        }
        for k in m.reg.kris {
            let th = loaded.thresholds_for(*k);
            let worse = match k.direction() {
                kri_core::Direction::HigherIsWorse => "higher",
                kri_core::Direction::LowerIsWorse => "LOWER",
            };
            let selected = if !m.enabled {
                "no (module disabled)"
            } else if m.selected.contains(&k.slug()) {
                "yes"
            } else {
                "no"
            };
            t.add_row(vec![
                m.reg.module,
                k.slug(),
                k.meaning(),
                k.unit().as_str(),
                worse,
                &fmt_value(Some(th.amber)),
                &fmt_value(Some(th.red)),
                selected,
            ]);
        }
    }
    outln!("{t}");
}

pub fn history(rows: &[RunRow], out: Output) {
    if out == Output::Json {
        return print_json(&json!({ "runs": rows }));
    }
    if rows.is_empty() {
        outln!("No runs stored yet: `kri run` makes the first one.");
        return;
    }
    let mut t = table(&[
        "STARTED",
        "RUN",
        "MODULE",
        "STATUS",
        "WRITTEN",
        "SKIPPED",
        "API CALLS",
        "ERROR",
    ]);
    for r in rows {
        t.add_row(vec![
            r.started_at.clone(),
            r.run_id.chars().take(8).collect(),
            r.module.clone(),
            r.status.clone(),
            r.rows_written.to_string(),
            r.rows_skipped.to_string(),
            r.api_calls.to_string(),
            r.error.clone().unwrap_or_default(),
        ]);
    }
    outln!("{t}");
}

pub fn values(rows: &[ValueRow], out: Output) {
    if out == Output::Json {
        return print_json(&json!({ "values": rows }));
    }
    if rows.is_empty() {
        outln!("No values stored yet: `kri run` collects them.");
        return;
    }
    let mut t = table(&["MEASURED", "KRI", "VALUE", "UNIT", "STATUS", "BAND", "MESSAGE"]);
    for r in rows {
        t.add_row(vec![
            r.measured_at.clone(),
            r.slug.clone(),
            fmt_value(r.value),
            r.unit.clone(),
            r.status.clone(),
            r.band.clone().unwrap_or_else(|| "—".into()),
            r.message.clone().unwrap_or_default(),
        ]);
    }
    outln!("{t}");
}

/// One line of `kri test`.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeRow {
    pub connector: &'static str,
    pub module: &'static str,
    pub status: KriStatus,
    pub message: String,
    pub api_calls: u64,
}

pub fn probes(rows: &[ProbeRow], out: Output) {
    if out == Output::Json {
        return print_json(&json!({ "probes": rows }));
    }
    let mut t = table(&["MODULE", "STATUS", "MESSAGE"]);
    for p in rows {
        t.add_row(vec![p.module, p.status.as_str(), &p.message]);
    }
    outln!("{t}");
}

/// One line of `kri run --plan`.
#[derive(Debug, Serialize)]
pub struct PlanRow {
    pub module: &'static str,
    pub pool: &'static str,
    pub calls: u32,
    pub used_24h: Option<u32>,
    pub limit: Option<u32>,
    /// Budget left after the planned calls (negative: the run would be throttled).
    pub remaining_after: Option<i64>,
    pub detail: Vec<String>,
}

pub fn plan(rows: &[PlanRow], out: Output) {
    if out == Output::Json {
        return print_json(&json!({ "plan": rows }));
    }
    let opt = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_else(|| "—".into());
    let mut t = table(&[
        "MODULE",
        "POOL",
        "PLANNED CALLS",
        "USED (24 H)",
        "LIMIT (24 H)",
        "LEFT AFTER",
        "FIRST / LAST",
    ]);
    for r in rows {
        let span = match (r.detail.first(), r.detail.last()) {
            (Some(a), Some(b)) if r.detail.len() > 1 => format!("{a}\n… {b}"),
            (Some(a), _) => a.clone(),
            _ => String::new(),
        };
        t.add_row(vec![
            r.module.to_owned(),
            r.pool.to_owned(),
            r.calls.to_string(),
            opt(r.used_24h.map(i64::from)),
            opt(r.limit.map(i64::from)),
            opt(r.remaining_after),
            span,
        ]);
    }
    outln!("{t}");
    outln!("Nothing was called. `--output json` lists every planned call.");
}
