//! Rendering: `table` for people, `json` (stable) for machines. Always to stdout.

use std::collections::HashMap;

use kri_core::report::{RunReport, RunRow, ValueRow};
use kri_core::text::visible;
use serde::Serialize;
use serde_json::json;

use crate::Output;
use crate::config::Loaded;
use crate::table::{self, Cell, Column, Fit, Tone, band_tone, status_tone};
use kri_agent::api_calls;

pub use crate::term::err_line;

/// A column shown whole (slugs, ids, times, numbers), dropped at `drop` (0: never) when the
/// terminal is too narrow.
pub const fn whole(header: &'static str, drop: u8) -> Column {
    Column {
        header: std::borrow::Cow::Borrowed(header),
        fit: Fit::Whole,
        drop_priority: drop,
        right: false,
    }
}

/// A number: whole, right-aligned.
pub const fn number(header: &'static str, drop: u8) -> Column {
    Column {
        header: std::borrow::Cow::Borrowed(header),
        fit: Fit::Whole,
        drop_priority: drop,
        right: true,
    }
}

/// Free text that wraps down to `min` columns before it is dropped.
pub const fn text(header: &'static str, min: usize, drop: u8) -> Column {
    Column {
        header: std::borrow::Cow::Borrowed(header),
        fit: Fit::Wrap { min },
        drop_priority: drop,
        right: false,
    }
}

/// Print a table as wide as the terminal (`COLUMNS`, else the tty, else 100), coloured on a tty.
/// A droppable column with nothing in it is left out without a word.
pub fn print_table(columns: &[Column], rows: &[Vec<Cell>]) {
    let keep: Vec<usize> = (0..columns.len())
        .filter(|&i| {
            columns[i].drop_priority == 0 || rows.iter().any(|r| r.get(i).is_some_and(|c| !c.text.trim().is_empty()))
        })
        .collect();
    let columns: Vec<Column> = keep.iter().map(|&i| columns[i].clone()).collect();
    let rows: Vec<Vec<Cell>> = rows
        .iter()
        .map(|r| keep.iter().map(|&i| r.get(i).cloned().unwrap_or_default()).collect())
        .collect();
    outln!("{}", table::render(&columns, &rows, table::width(), table::colour()));
}

/// What a connector's subcommand produced: JSON for machines, its tables and lines for people.
/// Columns the connector marked as free text wrap and go first when the terminal is narrow.
pub fn command(out: &kri_core::command::Output, format: Output) {
    if format != Output::Table {
        return print_json(&out.json);
    }
    for block in &out.human {
        match block {
            kri_core::command::Block::Line(line) => outln!("{}", visible(line)),
            kri_core::command::Block::Table(t) => {
                let columns: Vec<Column> = t
                    .header
                    .iter()
                    .map(|h| {
                        // Free text gives way in the order the connector listed it.
                        let (fit, drop) = match t.free_text.iter().position(|f| f == h) {
                            Some(i) => (Fit::Wrap { min: 12 }, u8::try_from(i + 1).unwrap_or(u8::MAX)),
                            None => (Fit::Whole, 0),
                        };
                        Column {
                            header: h.clone().into(),
                            fit,
                            drop_priority: drop,
                            right: false,
                        }
                    })
                    .collect();
                let rows: Vec<Vec<Cell>> = t
                    .rows
                    .iter()
                    .map(|r| r.iter().map(|c| Cell::from(c.as_str())).collect())
                    .collect();
                print_table(&columns, &rows);
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

/// RFC 4180 CSV: a header line, then one line per row; fields with a comma, a quote or a line
/// break are quoted, quotes doubled.
pub fn print_csv(header: &[&str], rows: &[Vec<String>]) {
    outln!("{}", csv_line(&mut header.iter().copied()));
    print_csv_rows(rows);
}

/// [`print_csv`]'s rows without the header (a listing printed page by page).
fn print_csv_rows(rows: &[Vec<String>]) {
    for r in rows {
        outln!("{}", csv_line(&mut r.iter().map(String::as_str)));
    }
}

fn csv_line(cells: &mut dyn Iterator<Item = &str>) -> String {
    let field = |f: &str| {
        if f.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", f.replace('"', "\"\""))
        } else {
            f.to_owned()
        }
    };
    cells.map(|c| field(&visible(c))).collect::<Vec<_>>().join(",")
}

/// The tenant, left empty for the one tenant of a config without tenants (its column is then
/// left out).
fn tenant_cell(tenant: &str) -> Cell {
    if tenant == crate::config::DEFAULT_TENANT {
        Cell::default()
    } else {
        Cell::from(tenant)
    }
}

/// The TENANT column: first, kept to the end, hidden when every row is the default tenant's.
const TENANT: Column = whole("TENANT", 9);

fn band_cell(band: Option<&str>) -> Cell {
    match band {
        Some(b) => Cell::toned(b, band_tone(b)),
        None => Cell::from("—"),
    }
}

fn status_cell(status: &str) -> Cell {
    Cell::toned(status, status_tone(status))
}

/// `12`, `66.67`, or `—` for no value.
pub fn fmt_value(v: Option<f64>) -> String {
    match v {
        Some(v) if v.fract() == 0.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.2}"),
        None => "—".into(),
    }
}

pub fn run(report: &RunReport, out: Output, standing: &HashMap<(String, String), ValueRow>) {
    if out != Output::Table {
        return print_json(&run_json(report, standing));
    }
    let columns = [
        TENANT,
        whole("MODULE", 0),
        whole("KRI", 0),
        number("VALUE", 0),
        whole("UNIT", 3),
        whole("STATUS", 0),
        whole("BAND", 0),
        text("MESSAGE", 20, 1),
    ];
    let mut rows = Vec::new();
    for c in &report.connectors {
        for k in &c.kris {
            rows.push(vec![
                tenant_cell(&c.tenant),
                Cell::from(c.module.as_str()),
                Cell::from(k.slug),
                Cell::from(fmt_value(k.value)),
                Cell::from(k.unit),
                status_cell(k.status.as_str()),
                band_cell(k.band.map(|b| b.as_str())),
                Cell::from(k.message.clone().unwrap_or_default()),
            ]);
        }
    }
    outln!(
        "run {}  {}",
        report.run_id,
        kri_core::store::fmt_time(&report.started_at)
    );
    print_table(&columns, &rows);
    for c in &report.connectors {
        let who = if c.tenant == crate::config::DEFAULT_TENANT {
            c.module.clone()
        } else {
            format!("{} {}", c.tenant, c.module)
        };
        let mut line = format!(
            "{}: {} ({} written, {} skipped, {})",
            who,
            c.status.as_str(),
            c.rows_written,
            c.rows_skipped,
            api_calls(c.api_calls)
        );
        if c.kris.is_empty() && c.rows_skipped > 0 {
            line.push_str(&format!(
                " — no KRI selected: check [connectors.{}] kris (`kri kris` lists them)",
                c.module
            ));
        }
        outln!("{line}");
    }
}

/// The run's JSON, each KRI with where it stands after the run (`previous_value`, `change`,
/// `band_since`, `stale`, `acknowledged`, `overdue`) from its newest value, when that value is
/// this run's.
pub fn run_json(report: &RunReport, standing: &HashMap<(String, String), ValueRow>) -> serde_json::Value {
    let mut v = serde_json::to_value(report).unwrap_or_default();
    for c in v["connectors"].as_array_mut().into_iter().flatten() {
        let tenant = c["tenant"].as_str().unwrap_or_default().to_owned();
        for k in c["kris"].as_array_mut().into_iter().flatten() {
            let slug = k["slug"].as_str().unwrap_or_default().to_owned();
            let row = standing
                .get(&(tenant.clone(), slug))
                .filter(|r| r.run_id == report.run_id);
            let fields = match row {
                Some(r) => json!({
                    "previous_value": r.previous_value, "change": r.change, "band_since": r.band_since,
                    "stale": r.stale, "acknowledged": r.acknowledged, "overdue": r.overdue,
                }),
                None => json!({
                    "previous_value": null, "change": null, "band_since": null,
                    "stale": false, "acknowledged": null, "overdue": false,
                }),
            };
            if let (Some(obj), serde_json::Value::Object(extra)) = (k.as_object_mut(), fields) {
                obj.extend(extra);
            }
        }
    }
    v
}

/// `kri kris --output json` (and `GET /api/v1/kris`).
pub fn kris_json(loaded: &Loaded, perpetual: &HashMap<String, String>) -> serde_json::Value {
    match loaded.tenants.first() {
        Some(t) => kri_agent::kris_json(t, perpetual),
        None => json!({ "connectors": [] }),
    }
}

/// `kri kris --output json` of one tenant: its selections and thresholds; `perpetual`: the
/// KRIs that sat in one band for the last 30 days or more.
pub fn kris(loaded: &Loaded, out: Output, perpetual: &HashMap<String, String>) {
    if out == Output::Json {
        return print_json(&kris_json(loaded, perpetual));
    }
    let mut stuck: Vec<(&String, &String)> = perpetual.iter().collect();
    stuck.sort();
    for (slug, band) in stuck {
        errln!(
            "{slug}: {band} for 30 days or more: the thresholds may not discriminate; `kri calibrate {slug}` suggests some"
        );
    }
    let columns = [
        whole("MODULE", 0),
        whole("KRI", 0),
        text("MEANING", 16, 1),
        whole("UNIT", 3),
        whole("WORSE WHEN", 2),
        number("AMBER", 0),
        number("RED", 0),
        text("SELECTED", 3, 0),
    ];
    // The only tenant's, or the first's (said on stderr).
    let Some(tenant) = loaded.tenants.first() else { return };
    if loaded.tenants.len() > 1 {
        errln!(
            "{} tenants; thresholds and selections shown are tenant `{}`'s: --tenant NAME shows another's",
            loaded.tenants.len(),
            tenant.name
        );
    }
    let mut rows = Vec::new();
    for m in &tenant.modules {
        if m.reg.kris.is_empty() {
            rows.push(vec![
                Cell::from(m.reg.module),
                Cell::from("(none yet)"),
                Cell::from(m.reg.description),
            ]);
        }
        for k in m.reg.kris {
            let th = tenant.thresholds_for(*k);
            let worse = match k.direction() {
                kri_core::Direction::HigherIsWorse => "higher",
                kri_core::Direction::LowerIsWorse => "LOWER",
            };
            let selected = if !m.enabled {
                Cell::toned("no (module disabled)", Tone::Dim)
            } else if m.selected.contains(&k.slug()) {
                Cell::from("yes")
            } else {
                Cell::toned("no", Tone::Dim)
            };
            rows.push(vec![
                Cell::from(m.reg.module),
                Cell::from(k.slug()),
                Cell::from(k.meaning()),
                Cell::from(k.unit().as_str()),
                Cell::from(worse),
                Cell::from(fmt_value(Some(th.amber))),
                Cell::from(fmt_value(Some(th.red))),
                selected,
            ]);
        }
    }
    print_table(&columns, &rows);
}

const HISTORY_CSV: [&str; 11] = [
    "run_id",
    "module",
    "connector",
    "started_at",
    "finished_at",
    "status",
    "rows_written",
    "rows_skipped",
    "api_calls",
    "error",
    "tenant",
];

/// `store`: where the runs were read (said when there are none).
pub fn history(rows: &[RunRow], out: Output, store: &str) {
    match out {
        Output::Json => return print_json(&json!({ "runs": rows })),
        Output::Csv => {
            let csv: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    vec![
                        r.run_id.clone(),
                        r.module.clone(),
                        r.connector.clone(),
                        r.started_at.clone(),
                        r.finished_at.clone(),
                        r.status.clone(),
                        r.rows_written.to_string(),
                        r.rows_skipped.to_string(),
                        r.api_calls.to_string(),
                        r.error.clone().unwrap_or_default(),
                        r.tenant.clone(),
                    ]
                })
                .collect();
            return print_csv(&HISTORY_CSV, &csv);
        }
        Output::Table => {}
    }
    if rows.is_empty() {
        outln!("No runs stored yet in {store}: `kri run` makes the first one.");
        return;
    }
    let columns = [
        TENANT,
        whole("STARTED", 0),
        whole("RUN", 4),
        whole("MODULE", 0),
        whole("STATUS", 0),
        number("WRITTEN", 0),
        number("SKIPPED", 3),
        number("API CALLS", 2),
        text("ERROR", 20, 1),
    ];
    let rows: Vec<Vec<Cell>> = rows
        .iter()
        .map(|r| {
            vec![
                tenant_cell(&r.tenant),
                Cell::from(r.started_at.as_str()),
                Cell::from(r.run_id.as_str()),
                Cell::from(r.module.as_str()),
                status_cell(&r.status),
                Cell::from(r.rows_written.to_string()),
                Cell::from(r.rows_skipped.to_string()),
                Cell::from(r.api_calls.to_string()),
                Cell::from(r.error.clone().unwrap_or_default()),
            ]
        })
        .collect();
    print_table(&columns, &rows);
}

/// `kri history --run ID`: one run in full, each connector's row and every value it wrote.
pub fn one_run(rows: &[RunRow], values_of_run: &[ValueRow], out: Output) {
    match out {
        Output::Json => return print_json(&json!({ "runs": rows, "values": values_of_run })),
        // The run's connector rows, as `kri history --output csv` prints them.
        Output::Csv => return history(rows, out, ""),
        Output::Table => {}
    }
    let values = values_of_run;
    for r in rows {
        let run_id = visible(&r.run_id);
        if r.tenant == crate::config::DEFAULT_TENANT {
            outln!("run {run_id}  {} ({})", r.module, r.connector);
        } else {
            outln!("run {run_id}  tenant {}  {} ({})", r.tenant, r.module, r.connector);
        }
        outln!("  started   {}", r.started_at);
        outln!("  finished  {}", r.finished_at);
        outln!(
            "  status    {}: {} written, {} skipped, {}",
            r.status,
            r.rows_written,
            r.rows_skipped,
            api_calls(r.api_calls)
        );
        if let Some(e) = &r.error {
            outln!("  error     {}", visible(e));
        }
    }
    values_table(values);
}

const VALUES_CSV: [&str; 19] = [
    "measured_at",
    "slug",
    "module",
    "connector",
    "value",
    "previous",
    "delta",
    "unit",
    "status",
    "band",
    "message",
    "run_id",
    "tenant",
    "title",
    "owner",
    "band_since",
    "stale",
    "acknowledged_by",
    "overdue",
];

/// A value listing printed page by page as the store hands them over, so `kri values --all`
/// holds one page in memory whatever the history: JSON as one object (`values`, then
/// `next_cursor`), CSV with one header, a table per page.
pub struct ValuesOut {
    out: Output,
    /// Rows printed so far.
    printed: usize,
    /// JSON: the last row, printed once it is known whether a comma follows it.
    pending: Option<String>,
    /// Where the values are read (said when there are none).
    store: String,
}

impl ValuesOut {
    pub fn start(out: Output, store: String) -> ValuesOut {
        if out == Output::Csv {
            print_csv(&VALUES_CSV, &[]);
        }
        ValuesOut {
            out,
            printed: 0,
            pending: None,
            store,
        }
    }

    pub fn page(&mut self, rows: &[ValueRow]) {
        match self.out {
            Output::Json => {
                for r in rows {
                    match self.pending.take() {
                        Some(p) => outln!("{p},"),
                        None => outln!("{{\n  \"values\": ["),
                    }
                    let text = serde_json::to_string_pretty(r).unwrap_or_else(|_| "null".into());
                    self.pending = Some(format!("    {}", text.replace('\n', "\n    ")));
                }
            }
            Output::Csv => print_csv_rows(&rows.iter().map(value_csv).collect::<Vec<_>>()),
            Output::Table if !rows.is_empty() => values_table(rows),
            Output::Table => {}
        }
        self.printed += rows.len();
    }

    /// The end; `next`: where the next page starts, when this was one page of several.
    pub fn finish(self, next: Option<&str>) {
        match self.out {
            Output::Json => {
                let next = next.map_or("null".to_owned(), |c| serde_json::Value::from(c).to_string());
                match self.pending {
                    Some(p) => outln!("{p}\n  ],\n  \"next_cursor\": {next}\n}}"),
                    None => outln!("{{\n  \"values\": [],\n  \"next_cursor\": {next}\n}}"),
                }
            }
            Output::Csv => {
                if let Some(c) = next {
                    errln!("more values: add --cursor {c} for the next page, or --all for every one");
                }
            }
            Output::Table => {
                if self.printed == 0 {
                    outln!("No values stored yet in {}: `kri run` collects them.", self.store);
                } else if let Some(c) = next {
                    outln!("More values: add --cursor {c} for the next page, or --all for every one.");
                }
            }
        }
    }
}

/// One page of values (and where the next starts), printed at once.
fn value_csv(r: &ValueRow) -> Vec<String> {
    let num = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    vec![
        r.measured_at.clone(),
        r.slug.clone(),
        r.module.clone(),
        r.connector.clone(),
        num(r.value),
        num(r.previous),
        num(r.delta),
        r.unit.clone(),
        r.status.clone(),
        r.band.clone().unwrap_or_default(),
        r.message.clone().unwrap_or_default(),
        r.run_id.clone(),
        r.tenant.clone(),
        r.title.clone(),
        r.owner.clone().unwrap_or_default(),
        r.band_since.clone().unwrap_or_default(),
        r.stale.to_string(),
        r.acknowledged
            .as_ref()
            .map(|a| a.by.clone().unwrap_or_else(|| "someone".into()))
            .unwrap_or_default(),
        r.overdue.to_string(),
    ]
}

/// `+3`, `-1.50`, `0`, or `—`.
fn fmt_delta(d: Option<f64>) -> String {
    match d {
        Some(d) if d > 0.0 => format!("+{}", fmt_value(Some(d))),
        other => fmt_value(other),
    }
}

fn values_table(rows: &[ValueRow]) {
    let columns = [
        TENANT,
        whole("MEASURED", 0),
        whole("KRI", 0),
        number("VALUE", 0),
        number("PREVIOUS", 3),
        number("DELTA", 4),
        whole("UNIT", 2),
        whole("STATUS", 0),
        whole("BAND", 0),
        text("STANDING", 12, 2),
        text("MESSAGE", 20, 1),
    ];
    let rows: Vec<Vec<Cell>> = rows
        .iter()
        .map(|r| {
            // Where the KRI stands, on its newest value: overdue, stale, acknowledged, owner.
            let mut standing: Vec<String> = Vec::new();
            if r.overdue {
                standing.push("OVERDUE".into());
            }
            if r.stale {
                standing.push("stale".into());
            }
            if let Some(a) = &r.acknowledged {
                standing.push(format!("ack {}", a.by.as_deref().unwrap_or("someone")));
            }
            if let (Some(o), Some("amber" | "red")) = (&r.owner, r.band.as_deref())
                && r.band_since.is_some()
            {
                standing.push(format!("owner {}", visible(o)));
            }
            let standing_tone = if r.overdue { Tone::Red } else { Tone::Plain };
            vec![
                tenant_cell(&r.tenant),
                Cell::from(r.measured_at.as_str()),
                Cell::from(r.slug.as_str()),
                Cell::from(fmt_value(r.value)),
                Cell::from(fmt_value(r.previous)),
                Cell::from(fmt_delta(r.delta)),
                Cell::from(r.unit.as_str()),
                status_cell(&r.status),
                band_cell(r.band.as_deref()),
                Cell::toned(standing.join(", "), standing_tone),
                Cell::from(r.message.clone().unwrap_or_default()),
            ]
        })
        .collect();
    print_table(&columns, &rows);
}

pub fn probes(rows: &[kri_agent::ProbeRow], out: Output) {
    if out != Output::Table {
        return print_json(&json!({ "probes": rows }));
    }
    let columns = [TENANT, whole("MODULE", 0), whole("STATUS", 0), text("MESSAGE", 20, 0)];
    let rows: Vec<Vec<Cell>> = rows
        .iter()
        .map(|p| {
            vec![
                tenant_cell(&p.tenant),
                Cell::from(p.module),
                status_cell(p.status.as_str()),
                Cell::from(p.message.as_str()),
            ]
        })
        .collect();
    print_table(&columns, &rows);
}

pub fn plan(rows: &[kri_agent::PlanRow], out: Output) {
    if out != Output::Table {
        return print_json(&json!({ "plan": rows }));
    }
    let opt = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_else(|| "—".into());
    let columns = [
        TENANT,
        whole("MODULE", 0),
        whole("POOL", 0),
        number("PLANNED CALLS", 0),
        number("USED (24 H)", 3),
        number("LIMIT (24 H)", 2),
        number("LEFT AFTER", 0),
        text("FIRST / LAST", 20, 1),
    ];
    let table_rows: Vec<Vec<Cell>> = rows
        .iter()
        .map(|r| {
            let span = match (r.detail.first(), r.detail.last()) {
                (Some(a), Some(b)) if r.detail.len() > 1 => format!("{a} … {b}"),
                (Some(a), _) => a.clone(),
                _ => String::new(),
            };
            let left = match r.remaining_after {
                Some(n) if n < 0 => Cell::toned(n.to_string(), Tone::Red),
                other => Cell::from(opt(other)),
            };
            vec![
                tenant_cell(&r.tenant),
                Cell::from(r.module),
                Cell::from(r.pool),
                Cell::from(r.calls.to_string()),
                Cell::from(opt(r.used_24h.map(i64::from))),
                Cell::from(opt(r.limit.map(i64::from))),
                left,
                Cell::from(span),
            ]
        })
        .collect();
    print_table(&columns, &table_rows);
    outln!("Nothing was called. `--output json` lists every planned call.");
}

pub fn sinks(rows: &[kri_agent::SinkStatus], out: Output) {
    if out != Output::Table {
        return print_json(&json!({ "sinks": rows }));
    }
    if rows.is_empty() {
        outln!("No sinks: add a [sinks.NAME] table with a type (file) to send events somewhere.");
        return;
    }
    let columns = [
        whole("SINK", 0),
        whole("TYPE", 0),
        number("DELIVERED", 0),
        number("WAITING", 0),
        number("DEAD", 0),
        text("LAST ERROR", 16, 1),
    ];
    let rows: Vec<Vec<Cell>> = rows
        .iter()
        .map(|r| {
            vec![
                Cell::from(r.name.as_str()),
                Cell::from(r.kind),
                Cell::from(r.delivered.to_string()),
                Cell::from(r.waiting.to_string()),
                Cell::from(r.dead.to_string()),
                Cell::from(r.last_error.as_deref().map(visible).unwrap_or_default().into_owned()),
            ]
        })
        .collect();
    print_table(&columns, &rows);
}
