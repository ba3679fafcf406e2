//! `kri calibrate`: thresholds suggested from the stored history, per tenant and KRI, as a
//! table, JSON, or `[kris.SLUG]` snippets to paste (it never edits a file).

use chrono::{DateTime, Utc};
use kri_core::calibrate::{Calibration, calibrate, good_points};
use kri_core::store::Store;
use kri_core::{Band, Direction, Kri};
use serde_json::{Value, json};

use crate::Output;
use crate::config::Loaded;
use crate::output::{fmt_value, number, print_json, whole};
use crate::table::Cell;
use kri_agent::Failure;

/// One KRI of one tenant, calibrated.
pub struct Row {
    pub tenant: String,
    pub kri: &'static dyn Kri,
    pub calibration: Calibration,
}

/// Calibrate `slug` (or every selected KRI) of each tenant of `loaded` from `since` to `now`.
pub async fn rows(
    loaded: &Loaded,
    store: &Store,
    slug: Option<&str>,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Vec<Row>, Failure> {
    let mut rows = Vec::new();
    for tenant in &loaded.tenants {
        let scoped = store.scoped(Some(tenant.name.as_str()));
        for m in &tenant.modules {
            for kri in m.reg.kris {
                let wanted = match slug {
                    Some(s) => s == kri.slug(),
                    None => m.enabled && m.selected.contains(&kri.slug()),
                };
                if !wanted {
                    continue;
                }
                let series = scoped
                    .series(kri.slug(), since, u32::MAX)
                    .await
                    .map_err(|e| Failure::runtime(e.to_string()))?;
                let points = good_points(&series);
                rows.push(Row {
                    tenant: tenant.name.clone(),
                    kri: *kri,
                    calibration: calibrate(&points, kri.direction(), tenant.thresholds_for(*kri), now),
                });
            }
        }
    }
    Ok(rows)
}

fn direction(d: Direction) -> &'static str {
    match d {
        Direction::HigherIsWorse => "higher-is-worse",
        Direction::LowerIsWorse => "lower-is-worse",
    }
}

fn band_name(b: Band) -> &'static str {
    b.as_str()
}

/// `{"kris": [{"tenant", "slug", "direction", "values", "current", "suggested", "days_in_band",
/// "perpetual", "why_not"}]}`.
pub fn json(rows: &[Row], since: &str) -> Value {
    let kris: Vec<Value> = rows
        .iter()
        .map(|r| {
            let c = &r.calibration;
            json!({
                "tenant": r.tenant,
                "slug": r.kri.slug(),
                "title": r.kri.title(),
                "direction": direction(r.kri.direction()),
                "values": c.values,
                "current": c.current,
                "suggested": c.suggested,
                "days_in_band": c.days_in_band,
                "perpetual": c.perpetual.map(band_name),
                "why_not": c.why_not,
            })
        })
        .collect();
    json!({ "since": since, "kris": kris })
}

/// `[kris.SLUG]` snippets of the suggestions (a comment for a KRI without one).
pub fn toml(rows: &[Row], multi_tenant: bool) -> String {
    let mut out = String::from("# Suggested by `kri calibrate` from the stored history; paste what you agree with.\n");
    for r in rows {
        let c = &r.calibration;
        let head = if multi_tenant {
            format!("# tenant {}: in tenants.d/{}.toml\n", r.tenant, r.tenant)
        } else {
            String::new()
        };
        match c.suggested {
            Some(s) => out.push_str(&format!(
                "\n{head}[kris.{}]   # {} values; now amber {} red {}\namber = {}\nred = {}\n",
                r.kri.slug(),
                c.values,
                fmt_value(Some(c.current.amber)),
                fmt_value(Some(c.current.red)),
                toml_number(s.amber),
                toml_number(s.red)
            )),
            None => out.push_str(&format!(
                "\n{head}# {}: nothing suggested: {}\n",
                r.kri.slug(),
                c.why_not.as_deref().unwrap_or("no history")
            )),
        }
    }
    out
}

/// A TOML number that reads back as the same value.
fn toml_number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

/// Print `rows` as asked.
pub fn print(rows: &[Row], out: Output, as_toml: bool, since: &str, multi_tenant: bool) {
    if as_toml {
        outln!("{}", toml(rows, multi_tenant).trim_end());
        return;
    }
    if out == Output::Json {
        return print_json(&json(rows, since));
    }
    let mut columns = vec![
        whole("KRI", 0),
        number("VALUES", 3),
        number("AMBER", 0),
        number("RED", 0),
        number("→ AMBER", 0),
        number("→ RED", 0),
        whole("DAYS G/A/R NOW", 1),
        whole("SUGGESTED", 1),
        whole("NOTE", 2),
    ];
    if multi_tenant {
        columns.insert(0, whole("TENANT", 0));
    }
    let days = |d: &kri_core::calibrate::BandDays| format!("{}/{}/{}", d.green, d.amber, d.red);
    let table: Vec<Vec<Cell>> = rows
        .iter()
        .map(|r| {
            let c = &r.calibration;
            let note = match (c.perpetual, &c.why_not) {
                (Some(b), _) => format!("{} the whole period: the thresholds may not discriminate", b.as_str()),
                (None, Some(why)) => why.clone(),
                (None, None) => String::new(),
            };
            let mut row = vec![
                Cell::from(r.kri.slug()),
                Cell::from(c.values.to_string()),
                Cell::from(fmt_value(Some(c.current.amber))),
                Cell::from(fmt_value(Some(c.current.red))),
                Cell::from(fmt_value(c.suggested.map(|s| s.amber))),
                Cell::from(fmt_value(c.suggested.map(|s| s.red))),
                Cell::from(days(&c.days_in_band.current)),
                Cell::from(
                    c.days_in_band
                        .suggested
                        .as_ref()
                        .map(days)
                        .unwrap_or_else(|| "—".into()),
                ),
                Cell::from(note),
            ];
            if multi_tenant {
                row.insert(0, Cell::from(r.tenant.as_str()));
            }
            row
        })
        .collect();
    crate::output::print_table(&columns, &table);
    errln!(
        "since {since}: amber at the 75th, red at the 95th percentile of the values (25th and 5th when lower is \
         worse); days in green/amber/red under the current and the suggested thresholds. --toml prints them to paste."
    );
}
