//! `kri ctr …`: Cloud Threat Response incidents — list with filters, get details, one cycle of
//! the incremental feed. Contributed to the `kri` binary through the registry; the runner
//! renders the output as a table or JSON.

use std::time::Duration;

use clap::{Args, FromArgMatches, Subcommand};
use kri_core::command::{Block, CommandError, CommandSpec, Invocation, Output, Table};
use kri_core::{Lease, RunContext};
use serde_json::{Value, json};

use crate::client::is_uuid;
use crate::filters::Filters;
use crate::time::parse_when;
use crate::{Ctr, CtrConfig, MODULE};

/// `kri ctr`.
pub const COMMAND: CommandSpec = CommandSpec { cli, run };

fn cli() -> clap::Command {
    CtrCommand::augment_subcommands(
        clap::Command::new(MODULE)
            .about("Cloud Threat Response incidents: `incidents list|get`, `fetch` (needs [connectors.ctr])")
            .subcommand_required(true)
            .arg_required_else_help(true),
    )
}

#[derive(Debug, Subcommand)]
pub enum CtrCommand {
    /// List incidents with filters, or read their full details.
    #[command(subcommand)]
    Incidents(IncidentsCommand),
    /// One cycle of the incremental incident feed: incidents new since the last cycle (at most
    /// max_fetch), saved in the store. `--output json` prints {"incidents": […]}.
    Fetch,
}

#[derive(Debug, Subcommand)]
pub enum IncidentsCommand {
    /// Incidents matching the filters, newest first (values are checked before any call).
    List(Box<ListArgs>),
    /// Full details (summary, comments, activities) of incidents by UUID; saved in the store.
    Get {
        /// Incident UUIDs, comma-separated.
        #[arg(value_delimiter = ',', required = true, value_name = "UUID[,UUID…]")]
        ids: Vec<String>,
    },
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Start of the time range: `3 days`, `12 hours`, `30m`, `2024-11-26` or `2024-11-26T16:18:07Z`.
    #[arg(long, value_name = "WHEN")]
    start_time: Option<String>,
    /// End of the time range (same forms); default now.
    #[arg(long, value_name = "WHEN")]
    end_time: Option<String>,
    /// Display ids (numbers), comma-separated, e.g. 781,782.
    #[arg(long, value_delimiter = ',', value_name = "IDS")]
    incident_ids: Vec<String>,
    /// abuse_mailbox, tap, smart_search, message_csv_upload.
    #[arg(long, value_delimiter = ',')]
    sources: Vec<String>,
    /// open_incidents, closed_incidents, vap (not open and closed together).
    #[arg(long, value_delimiter = ',')]
    states: Vec<String>,
    /// verdict_failed, verdict_low_risk, verdict_manual_review, verdict_threat.
    #[arg(long, value_delimiter = ',')]
    verdicts: Vec<String>,
    /// bulk, clean, impostor, in_progress, internal, low_risk, malware, manual_review, not_set,
    /// phish, scam, simulated_phish, spam, suspicious, tap_false_positive, toad, vendor.
    #[arg(long, value_delimiter = ',')]
    dispositions: Vec<String>,
    /// confidence_high, confidence_medium, confidence_low.
    #[arg(long, value_delimiter = ',')]
    confidences: Vec<String>,
    /// high, medium, low.
    #[arg(long, value_delimiter = ',')]
    priorities: Vec<String>,
    /// At most this many incidents (read 200 a page).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    limit: u32,
}

fn trimmed(v: &[String]) -> Vec<String> {
    v.iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

impl ListArgs {
    fn filters(&self, now: chrono::DateTime<chrono::Utc>) -> Result<Filters, CommandError> {
        let when = |flag: &str, v: &Option<String>| {
            v.as_deref()
                .map(|t| parse_when(t, now).map_err(|e| CommandError::usage(format!("{flag}: {e}"))))
                .transpose()
        };
        let f = Filters {
            start: when("--start-time", &self.start_time)?,
            end: when("--end-time", &self.end_time)?,
            incident_ids: trimmed(&self.incident_ids),
            sources: trimmed(&self.sources),
            states: trimmed(&self.states),
            verdicts: trimmed(&self.verdicts),
            dispositions: trimmed(&self.dispositions),
            confidences: trimmed(&self.confidences),
            priorities: trimmed(&self.priorities),
        };
        f.validate(now)
            .map_err(|e| CommandError::usage(format!("--{}: {}", e.field.replace('_', "-"), e.message)))?;
        Ok(f)
    }
}

/// How long `kri ctr fetch` waits for another process's CTR run.
const FETCH_WAIT: Duration = Duration::from_secs(30);

fn run(call: Invocation<'_>) -> futures_util::future::BoxFuture<'_, Result<Output, CommandError>> {
    Box::pin(dispatch(call))
}

async fn dispatch(call: Invocation<'_>) -> Result<Output, CommandError> {
    let command = CtrCommand::from_arg_matches(call.matches).map_err(|e| CommandError::usage(e.to_string()))?;
    let now = call.clock.now();
    // Usage errors first: nothing is opened or called when an argument is wrong.
    let list_filters = match &command {
        CtrCommand::Incidents(IncidentsCommand::List(args)) => Some(args.filters(now)?),
        CtrCommand::Incidents(IncidentsCommand::Get { ids }) => {
            if let Some(bad) = ids.iter().find(|id| !is_uuid(id.trim())) {
                return Err(CommandError::usage(format!(
                    "`{bad}` is not an incident UUID (like 440def43-c322-42ba-a6d6-a2306128ea3b); \
                     `kri ctr incidents list --incident-ids` takes display ids"
                )));
            }
            None
        }
        CtrCommand::Fetch => None,
    };
    if !call.configured {
        return Err(CommandError::usage(
            "no [connectors.ctr] table in the config: add one with client_id and client_secret \
             (see crates/connector-ctr/sample.toml; the secret is better in KRI_CONNECTORS__CTR__CLIENT_SECRET)",
        ));
    }
    let config = CtrConfig::from_settings(call.settings).map_err(CommandError::Config)?;
    let ctr = Ctr::new(config).map_err(CommandError::Config)?;
    let ctx = RunContext::for_tenant(call.clock.clone(), call.store, call.tenant, MODULE, false);
    let output = match command {
        CtrCommand::Incidents(IncidentsCommand::List(args)) => {
            let filters = list_filters.unwrap_or_default();
            let (incidents, total) = within(call.run_timeout, "the list", ctr.list(&ctx, &filters, args.limit))
                .await?
                .map_err(failed)?;
            crate::fetch::store_incidents(&ctx.state, &ctx.tenant, ctx.clock.now(), &incidents)
                .await
                .map_err(failed)?;
            let summary = format!(
                "{} incident{} shown{}",
                incidents.len(),
                if incidents.len() == 1 { "" } else { "s" },
                total.map(|t| format!(" of {t} matching")).unwrap_or_default()
            );
            Output {
                human: vec![Block::Table(incident_table(&incidents)), Block::Line(summary)],
                json: json!({"total": total, "incidents": incidents}),
                exit_code: 0,
            }
        }
        CtrCommand::Incidents(IncidentsCommand::Get { ids }) => {
            let ids: Vec<String> = ids.iter().map(|s| s.trim().to_owned()).collect();
            let wait = ctr.rate_limited_duration(ids.len());
            if let Some(d) = wait {
                (call.notice)(&format!(
                    "fetching {} incidents under the client-side limit of {} calls per minute takes about {} \
                     (rate_limit_per_minute in [connectors.ctr])",
                    ids.len(),
                    ctr.config().rate_limit_per_minute,
                    humantime::format_duration(d)
                ));
            }
            let bar = progress(call.interactive, ids.len());
            let deadline = call.run_timeout + wait.unwrap_or_default();
            let results = within(
                deadline,
                "getting the incidents",
                ctr.get_many(&ctx, &ids, &|n| bar.set_position(n as u64)),
            )
            .await;
            bar.finish_and_clear();
            let mut found = Vec::new();
            let mut errors = Vec::new();
            for (id, r) in results? {
                match r {
                    Ok(v) => found.push(v),
                    Err(e) => {
                        (call.notice)(&format!("error: incident {id}: {e}"));
                        errors.push(json!({"id": id, "error": e.to_string()}));
                    }
                }
            }
            Output {
                human: found.iter().flat_map(detail_blocks).collect(),
                exit_code: u8::from(!errors.is_empty()),
                json: json!({"incidents": found, "errors": errors}),
            }
        }
        CtrCommand::Fetch => {
            // The feed's cursor moves: one writer at a time (a daemon may be running a CTR cycle).
            let lease = Lease::acquire(call.store, MODULE, "kri ctr fetch", call.clock.clone(), FETCH_WAIT)
                .await
                .map_err(failed)?;
            let cycle = within(call.run_timeout, "the fetch", ctr.fetch(&ctx)).await;
            lease.release().await;
            let cycle = cycle?.map_err(failed)?;
            for w in &cycle.warnings {
                (call.notice)(&format!("warning: {w}"));
            }
            let summary = format!(
                "{} new incident{}{}",
                cycle.incidents.len(),
                if cycle.incidents.len() == 1 { "" } else { "s" },
                if cycle.more {
                    "; more are waiting: run `kri ctr fetch` again"
                } else {
                    ""
                }
            );
            Output {
                human: vec![Block::Table(incident_table(&cycle.incidents)), Block::Line(summary)],
                json: json!({"incidents": cycle.incidents}),
                exit_code: 0,
            }
        }
    };
    tracing::info!(api_calls = ctx.calls.get(), "kri ctr done");
    Ok(output)
}

fn failed(e: impl std::fmt::Display) -> CommandError {
    CommandError::failed(e.to_string())
}

/// `work`, stopped after `limit` (the connector's run_timeout) with a message saying so.
async fn within<T>(limit: Duration, what: &str, work: impl Future<Output = T>) -> Result<T, CommandError> {
    tokio::time::timeout(limit, work).await.map_err(|_| {
        CommandError::failed(format!(
            "{what} was stopped after {} (run_timeout in [connectors.ctr]); what was already stored is kept",
            humantime::format_duration(limit)
        ))
    })
}

/// A progress bar on stderr when a person is watching and there is more than one step.
fn progress(interactive: bool, len: usize) -> indicatif::ProgressBar {
    if len < 2 || !interactive {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::with_draw_target(Some(len as u64), indicatif::ProgressDrawTarget::stderr());
    if let Ok(style) = indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} incidents, {elapsed} elapsed") {
        bar.set_style(style);
    }
    bar
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(cell).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

/// A time for people: `2026-11-23 09:20Z` (to the minute, UTC), short enough to leave the
/// title room on a 100-column terminal; the JSON keeps the API's own text.
fn when(v: &Value) -> String {
    match v.as_str().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()) {
        Some(t) => t.to_utc().format("%Y-%m-%d %H:%MZ").to_string(),
        None => cell(v),
    }
}

/// The types of the incident's sources (`sourcesData[].type`), deduplicated.
fn types(inc: &Value) -> String {
    let mut out: Vec<String> = Vec::new();
    for s in inc["sourcesData"].as_array().into_iter().flatten() {
        let t = cell(&s["type"]);
        if !t.is_empty() && !out.contains(&t) {
            out.push(t);
        }
    }
    out.join(", ")
}

/// The seed's columns: ID, Created At, Type, State, Message Count, Assigned Team Name, Title,
/// Source Types.
fn incident_table(incidents: &[Value]) -> Table {
    let mut t = Table::new(&[
        "ID",
        "Created At",
        "Type",
        "State",
        "Message Count",
        "Assigned Team Name",
        "Title",
        "Source Types",
    ])
    // The title tells most: it gives way last.
    .with_free_text(&["Source Types", "Assigned Team Name", "Type", "Title"]);
    for i in incidents {
        t.row(vec![
            cell(&i["id"]),
            when(&i["createdAt"]),
            types(i),
            cell(&i["state"]),
            cell(&i["messageCount"]),
            cell(&i["assignedTeamName"]),
            cell(&i["title"]),
            cell(&i["sourceTypes"]),
        ]);
    }
    t
}

fn detail_blocks(inc: &Value) -> Vec<Block> {
    let mut t = Table::new(&[
        "ID",
        "Created At",
        "State",
        "Message Count",
        "Assigned Team Name",
        "Title",
    ])
    .with_free_text(&["Assigned Team Name", "Title"]);
    t.row(vec![
        cell(&inc["id"]),
        when(&inc["createdAt"]),
        cell(&inc["state"]),
        cell(&inc["messageCount"]),
        cell(&inc["assignedTeamName"]),
        cell(&inc["title"]),
    ]);
    let n = |k: &str| inc[k].as_array().map_or(0, Vec::len);
    vec![
        Block::Line(format!("Incident {}", cell(&inc["displayId"]))),
        Block::Table(t),
        Block::Line(format!(
            "{} comment{}, {} activit{}",
            n("comments"),
            if n("comments") == 1 { "" } else { "s" },
            n("activities"),
            if n("activities") == 1 { "y" } else { "ies" }
        )),
    ]
}
