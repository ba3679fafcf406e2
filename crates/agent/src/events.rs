//! What the service says while it runs: one line at start, one per run, one when stopping and
//! one when stopped. Plain lines on stderr for people; with `--output json`, one JSON object
//! per line (NDJSON) on stdout, each with `event` and `at`. Everything goes through the secret
//! scrubber on the way out.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use kri_core::Clock;
use kri_core::report::RunReport;
use kri_core::store::fmt_time;
use serde_json::{Value, json};

use crate::run::{ProbeRow, api_calls};

/// Where the agent's lines go. The CLI writes them to stdout (`out`, the NDJSON events) and
/// stderr (`err`, lines for people), through its secret scrubber, quiet on a closed pipe.
pub trait Lines: Send + Sync {
    fn out(&self, line: &str);
    fn err(&self, line: &str);
}

/// The newest run of a connector this process made (what a failed run's event says, and what
/// the scheduler shows of each slot).
#[derive(Debug, Clone, serde::Serialize)]
pub struct LastRun {
    pub run_id: String,
    pub status: String,
    pub started_at: String,
    pub finished_at: String,
    pub error: Option<String>,
}

#[derive(Clone)]
pub struct Events {
    /// One JSON object per line on `out`; else one line for people on `err`.
    json: bool,
    clock: Arc<dyn Clock>,
    lines: Arc<dyn Lines>,
}

impl Events {
    pub fn new(json: bool, clock: Arc<dyn Clock>, lines: Arc<dyn Lines>) -> Self {
        Self { json, clock, lines }
    }

    /// Where these events write (for the lines of the service around them).
    pub fn lines(&self) -> Arc<dyn Lines> {
        self.lines.clone()
    }

    fn emit(&self, event: &str, mut fields: Value, line: impl FnOnce() -> String) {
        let at = fmt_time(&self.clock.now());
        if self.json {
            if let Value::Object(map) = &mut fields {
                map.insert("event".into(), event.into());
                map.insert("at".into(), at.into());
            }
            match serde_json::to_string(&fields) {
                Ok(text) => self.lines.out(&text),
                Err(e) => self.lines.err(&format!("error: cannot encode the {event} event: {e}")),
            }
        } else {
            // One line: text from outside in it (an API's error) is written out whole.
            self.lines.err(&format!("{at} {}", kri_core::text::visible(&line())));
        }
    }

    /// The start line: what listens where, and each connector's schedule.
    pub fn started(
        &self,
        what: &str,
        listen: Option<&str>,
        store: &str,
        plan: &[(String, String, String, DateTime<Utc>)],
    ) {
        let connectors: Vec<Value> = plan
            .iter()
            .map(|(t, m, s, next)| {
                json!({"tenant": t, "module": m, "schedule": s, "first_run": "now", "next_run": fmt_time(next)})
            })
            .collect();
        let mut tenants: Vec<&str> = plan.iter().map(|(t, ..)| t.as_str()).collect();
        tenants.dedup();
        self.emit(
            "started",
            json!({"command": what, "listen": listen.map(|l| format!("http://{l}/")), "store": store,
                   "version": env!("CARGO_PKG_VERSION"), "connectors": connectors}),
            || {
                let at = listen.map(|l| format!(" on http://{l}/")).unwrap_or_default();
                if tenants.len() > 1 {
                    return format!(
                        "{what} started{at}; store {store}; runs {} connectors of {} tenants, first runs now",
                        plan.len(),
                        tenants.len()
                    );
                }
                let list: Vec<String> = plan
                    .iter()
                    .map(|(_, m, s, next)| format!("{m} ({s}: now, then {})", fmt_time(next)))
                    .collect();
                format!("{what} started{at}; store {store}; runs {}", list.join(", "))
            },
        );
    }

    pub fn run_started(&self, tenant: &str, module: &str, run_id: &str) {
        tracing::info!(tenant, module, run_id, "run started");
    }

    /// One line per finished run.
    pub fn run(&self, report: &RunReport, (next, failures): (DateTime<Utc>, u32)) {
        let took = (report.finished_at - report.started_at).num_milliseconds() as f64 / 1000.0;
        let mut fields = serde_json::to_value(report).unwrap_or_else(|_| json!({}));
        if let Value::Object(map) = &mut fields {
            map.insert("duration_seconds".into(), took.into());
            map.insert("next_run".into(), fmt_time(&next).into());
            map.insert("failures_in_a_row".into(), failures.into());
        }
        self.emit("run", fields, || {
            let parts: Vec<String> = report
                .connectors
                .iter()
                .map(|c| {
                    let mut t = format!(
                        "{} {}: {} written, {}",
                        kri_core::store::namespace(&c.tenant, &c.module),
                        c.status.as_str(),
                        c.rows_written,
                        api_calls(c.api_calls)
                    );
                    if let Some(e) = &c.error {
                        t.push_str(&format!(" ({e})"));
                    }
                    t
                })
                .collect();
            let retry = if failures > 0 { " (retry)" } else { "" };
            format!(
                "run {} {} in {took:.1}s; next{retry} {}",
                report.run_id,
                parts.join("; "),
                fmt_time(&next)
            )
        });
    }

    /// A run that could not even be made or stored.
    pub fn run_error(&self, tenant: &str, module: &str, last: &LastRun, (next, failures): (DateTime<Utc>, u32)) {
        self.emit(
            "run",
            json!({"run_id": last.run_id, "tenant": tenant, "module": module, "status": "failed", "error": last.error,
                   "next_run": fmt_time(&next), "failures_in_a_row": failures}),
            || {
                format!(
                    "run {} {} failed: {}; next (retry) {}",
                    last.run_id,
                    kri_core::store::namespace(tenant, module),
                    last.error.as_deref().unwrap_or("unknown error"),
                    fmt_time(&next)
                )
            },
        );
    }

    /// A slot's run another worker on the store made already.
    pub fn skipped(&self, tenant: &str, module: &str, slot: &str, done: &str, next: DateTime<Utc>) {
        self.emit(
            "skipped",
            json!({"tenant": tenant, "module": module, "slot": slot, "done_up_to": done, "next_run": fmt_time(&next)}),
            || {
                format!(
                    "{} {slot}: already run (by this store's other worker, or before a restart); next {}",
                    kri_core::store::namespace(tenant, module),
                    fmt_time(&next)
                )
            },
        );
    }

    pub fn test(&self, test_id: &str, row: &ProbeRow) {
        self.emit("test", json!({"test_id": test_id, "probe": row}), || {
            format!(
                "test {test_id} {}: {} ({})",
                kri_core::store::namespace(&row.tenant, row.module),
                row.status.as_str(),
                row.message
            )
        });
    }

    pub fn stopping(&self, running: &[String], grace: Duration) {
        self.emit(
            "stopping",
            json!({"running": running, "grace_seconds": grace.as_secs_f64()}),
            || {
                if running.is_empty() {
                    "stopping: no run in progress".to_owned()
                } else {
                    format!(
                        "stopping: no new runs; waiting up to {} for {} (a second signal exits at once)",
                        humantime::format_duration(grace),
                        running.join(", ")
                    )
                }
            },
        );
    }

    pub fn stopped(&self) {
        self.emit("stopped", json!({}), || "stopped".to_owned());
    }
}
