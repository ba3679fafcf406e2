//! `kri ctr …`: Cloud Threat Response incidents — list with filters, get details, one cycle of
//! the incremental feed. Data to stdout, warnings to stderr.

use std::path::Path;
use std::sync::Arc;

use clap::{Args, Subcommand};
use comfy_table::presets::UTF8_BORDERS_ONLY;
use comfy_table::{ContentArrangement, Table};
use figment::value::Dict;
use kri_connector_ctr::client::is_uuid;
use kri_connector_ctr::filters::Filters;
use kri_connector_ctr::time::parse_when;
use kri_connector_ctr::{Ctr, CtrConfig};
use kri_core::config::{ConfigError, ProofpointDefaults};
use kri_core::{Clock, Lease, RunContext, Store};
use serde_json::{Value, json};

use crate::config::{Common, Need, Sources, load};
use crate::output::{err_line, print_json};
use crate::{Failure, Output};

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
    fn filters(&self, now: chrono::DateTime<chrono::Utc>) -> Result<Filters, Failure> {
        let when = |flag: &str, v: &Option<String>| {
            v.as_deref()
                .map(|t| parse_when(t, now).map_err(|e| Failure::config(format!("{flag}: {e}"))))
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
        f.validate(now).map_err(|e| Failure::config(e.0))?;
        Ok(f)
    }
}

/// Build the CTR connector from `[connectors.ctr]` (the whole config is validated first), with
/// the framework's keys (`timeout`, …) applied as for a run.
fn connector(sources: &Sources) -> Result<(Ctr, std::time::Duration), Failure> {
    let table: Dict = sources.figment.extract_inner("connectors.ctr").map_err(|_| {
        Failure::config(
            "no [connectors.ctr] table in the config: add one with client_id and client_secret \
             (see crates/connector-ctr/sample.toml; the secret is better in KRI_CONNECTORS__CTR__CLIENT_SECRET)",
        )
    })?;
    let reg = kri_core::registry::find(kri_connector_ctr::MODULE)
        .ok_or_else(|| Failure::runtime("the CTR connector is not linked into this kri"))?;
    let config_error = |e: ConfigError| Failure::config(format!("config error: {}: {}", e.key, e.message));
    let common = Common::take(reg, table, &ProofpointDefaults::default()).map_err(config_error)?;
    let config = CtrConfig::from_settings(&common.settings).map_err(config_error)?;
    Ok((Ctr::new(config).map_err(config_error)?, common.run_timeout))
}

/// The run context of a `kri ctr` command: the CTR slice of the store, a fresh call counter.
fn context(store: &Store, clock: Arc<dyn Clock>) -> RunContext {
    RunContext::new(clock, store, kri_connector_ctr::MODULE, false)
}

pub async fn dispatch(
    command: CtrCommand,
    config: Option<&Path>,
    out: Output,
    clock: Arc<dyn Clock>,
) -> Result<u8, Failure> {
    let sources = Sources::from_file_and_env(config)?;
    let loaded = load(&sources, Need::NoCredentials)?;
    // Usage errors first: nothing is opened or called when an argument is wrong.
    let list_filters = match &command {
        CtrCommand::Incidents(IncidentsCommand::List(args)) => Some(args.filters(clock.now())?),
        CtrCommand::Incidents(IncidentsCommand::Get { ids }) => {
            if let Some(bad) = ids.iter().find(|id| !is_uuid(id.trim())) {
                return Err(Failure::config(format!(
                    "`{bad}` is not an incident UUID (like 440def43-c322-42ba-a6d6-a2306128ea3b); \
                     `kri ctr incidents list --incident-ids` takes display ids"
                )));
            }
            None
        }
        CtrCommand::Fetch => None,
    };
    let (ctr, run_timeout) = connector(&sources)?;
    let store = Store::open(&loaded.store_path).map_err(|e| Failure::runtime(e.to_string()))?;
    let ctx = context(&store, clock.clone());
    let code = match command {
        CtrCommand::Incidents(IncidentsCommand::List(args)) => {
            let filters = list_filters.unwrap_or_default();
            let (incidents, total) = within(run_timeout, "the list", ctr.list(&ctx, &filters, args.limit))
                .await?
                .map_err(|e| Failure::runtime(e.to_string()))?;
            kri_connector_ctr::fetch::store_incidents(&ctx.state, ctx.clock.now(), &incidents)
                .await
                .map_err(|e| Failure::runtime(e.to_string()))?;
            if out == Output::Json {
                print_json(&json!({"total": total, "incidents": incidents}));
            } else {
                outln!("{}", incident_table(&incidents));
                outln!(
                    "{} incident{} shown{}",
                    incidents.len(),
                    if incidents.len() == 1 { "" } else { "s" },
                    total.map(|t| format!(" of {t} matching")).unwrap_or_default()
                );
            }
            0
        }
        CtrCommand::Incidents(IncidentsCommand::Get { ids }) => {
            let ids: Vec<String> = ids.iter().map(|s| s.trim().to_owned()).collect();
            if let Some(d) = ctr.rate_limited_duration(ids.len()) {
                err_line(&format!(
                    "fetching {} incidents under the client-side limit of {} calls per minute takes about {} \
                     (rate_limit_per_minute in [connectors.ctr])",
                    ids.len(),
                    ctr.config().rate_limit_per_minute,
                    humantime::format_duration(d)
                ));
            }
            let bar = progress(ids.len());
            let deadline = run_timeout + ctr.rate_limited_duration(ids.len()).unwrap_or_default();
            let results = within(
                deadline,
                "getting the incidents",
                ctr.get_many(&ctx, &ids, &|n| bar.set_position(n as u64)),
            )
            .await;
            bar.finish_and_clear();
            let results = results?;
            let mut found = Vec::new();
            let mut errors = Vec::new();
            for (id, r) in results {
                match r {
                    Ok(v) => found.push(v),
                    Err(e) => {
                        errln!("error: incident {id}: {e}");
                        errors.push(json!({"id": id, "error": e.to_string()}));
                    }
                }
            }
            if out == Output::Json {
                print_json(&json!({"incidents": found, "errors": errors}));
            } else {
                for inc in &found {
                    outln!("{}", detail_table(inc));
                }
            }
            u8::from(!errors.is_empty())
        }
        CtrCommand::Fetch => {
            // The feed's cursor moves: one writer at a time (a daemon may be running a CTR cycle).
            let lease = Lease::acquire(&store, kri_connector_ctr::MODULE, "kri ctr fetch", clock, FETCH_WAIT)
                .await
                .map_err(|e| Failure::runtime(e.to_string()))?;
            let cycle = within(run_timeout, "the fetch", ctr.fetch(&ctx)).await;
            lease.release().await;
            let cycle = cycle?.map_err(|e| Failure::runtime(e.to_string()))?;
            for w in &cycle.warnings {
                errln!("warning: {w}");
            }
            if out == Output::Json {
                print_json(&json!({"incidents": cycle.incidents}));
            } else {
                outln!("{}", incident_table(&cycle.incidents));
                outln!(
                    "{} new incident{}{}",
                    cycle.incidents.len(),
                    if cycle.incidents.len() == 1 { "" } else { "s" },
                    if cycle.more {
                        "; more are waiting: run `kri ctr fetch` again"
                    } else {
                        ""
                    }
                );
            }
            0
        }
    };
    tracing::info!(api_calls = ctx.calls.get(), "kri ctr done");
    Ok(code)
}

/// `work`, stopped after `limit` (the connector's run_timeout) with a message saying so.
async fn within<T>(limit: std::time::Duration, what: &str, work: impl Future<Output = T>) -> Result<T, Failure> {
    tokio::time::timeout(limit, work).await.map_err(|_| {
        Failure::runtime(format!(
            "{what} was stopped after {} (run_timeout in [connectors.ctr]); what was already stored is kept",
            humantime::format_duration(limit)
        ))
    })
}

/// How long `kri ctr fetch` waits for another process's CTR run.
const FETCH_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// A progress bar on stderr when a person is watching and there is more than one step.
fn progress(len: usize) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if len < 2 || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::with_draw_target(Some(len as u64), indicatif::ProgressDrawTarget::stderr());
    if let Ok(style) = indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} incidents, {elapsed} elapsed") {
        bar.set_style(style);
    }
    bar
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.to_vec());
    t
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(cell).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
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
    let mut t = table(&[
        "ID",
        "Created At",
        "Type",
        "State",
        "Message Count",
        "Assigned Team Name",
        "Title",
        "Source Types",
    ]);
    for i in incidents {
        t.add_row(vec![
            cell(&i["id"]),
            cell(&i["createdAt"]),
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

fn detail_table(inc: &Value) -> String {
    let mut t = table(&[
        "ID",
        "Created At",
        "State",
        "Message Count",
        "Assigned Team Name",
        "Title",
    ]);
    t.add_row(vec![
        cell(&inc["id"]),
        cell(&inc["createdAt"]),
        cell(&inc["state"]),
        cell(&inc["messageCount"]),
        cell(&inc["assignedTeamName"]),
        cell(&inc["title"]),
    ]);
    let n = |k: &str| inc[k].as_array().map_or(0, Vec::len);
    format!(
        "Incident {}\n{t}\n{} comment{}, {} activit{}",
        cell(&inc["displayId"]),
        n("comments"),
        if n("comments") == 1 { "" } else { "s" },
        n("activities"),
        if n("activities") == 1 { "y" } else { "ies" }
    )
}
