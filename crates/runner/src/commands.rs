//! One function per command. Data to stdout, logs to stderr.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use kri_agent::{RunHow, check_module, exit_code, open_store, probe, run_once};
use kri_core::report::RunReport;
use kri_core::{Clock, KriStatus, Store};
use kri_sandbox::{Sandbox, Scenario};
use kri_service::{ServeHow, report_html, serve};

use crate::config::{Loaded, Need, Sources, load};
use crate::output;
use crate::{Command, ConfigCommand, FailOn, Failure, Global, Output, setup};

pub async fn dispatch(global: Global, command: Command, clock: Arc<dyn Clock>, tick: Duration) -> Result<u8, Failure> {
    let cli = global;
    let tabular = matches!(command, Command::History { .. } | Command::Values { .. });
    if cli.output == Output::Csv && !tabular {
        return Err(Failure::config(
            "--output csv is for `kri values` and `kri history`; use --output json here",
        ));
    }
    let sources = || Sources::from_file_and_env(cli.config.as_deref());
    // Load, then keep the `--tenant` one (all without it).
    let load = |sources: &Sources, need: Need| -> Result<Loaded, Failure> {
        let mut loaded = load(sources, need)?;
        loaded.select_tenant(cli.tenant.as_deref())?;
        Ok(loaded)
    };
    match command {
        Command::Demo { keep } => {
            if let Some(cfg) = &cli.config {
                errln!(
                    "note: kri demo runs against its own sandbox and does not read {} (--config / KRI_CONFIG); \
                     `kri run` uses it",
                    cfg.display()
                );
            }
            demo(cli.output, clock, keep.as_deref()).await
        }
        Command::Sandbox { listen, latency } => setup::sandbox(&listen, latency, clock).await,
        Command::Init { force } => setup::init(cli.config.as_deref(), force),
        Command::Config(ConfigCommand::Check) => setup::check(&sources()?, cli.output),
        Command::Completions { shell } => {
            // Into a buffer first: clap_complete panics when its writer fails (`| head`).
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut crate::cli(), "kri", &mut script);
            crate::term::out_bytes(&script);
            Ok(0)
        }
        Command::Healthcheck { url } => healthcheck(&url).await,
        Command::Sinks { action: Some(action) } => {
            let loaded = load(&sources()?, Need::NoCredentials)?;
            needs_config(&loaded, "sinks")?;
            sinks_action(&loaded, action, clock, cli.output).await
        }
        Command::Sinks { action: None } => {
            let loaded = load(&sources()?, Need::NoCredentials)?;
            needs_config(&loaded, "sinks")?;
            let store = match open_existing(&loaded).await? {
                Some(s) => s,
                None => Store::in_memory().map_err(|e| Failure::runtime(e.to_string()))?,
            };
            let rows = kri_agent::sink_status(&loaded.sinks, &store)
                .await
                .map_err(|e| Failure::runtime(e.to_string()))?;
            output::sinks(&rows, cli.output);
            Ok(0)
        }
        Command::Man => {
            let mut page = Vec::new();
            clap_mangen::Man::new(crate::cli())
                .render(&mut page)
                .map_err(|e| Failure::runtime(format!("cannot write the man page: {e}")))?;
            outln!("{}", String::from_utf8_lossy(&page).trim_end());
            Ok(0)
        }
        Command::Run {
            only,
            plan,
            wait,
            fail_on,
        } => {
            let loaded = load(&sources()?, Need::Credentials)?;
            let only = normalize_only(&only);
            if plan {
                // Read-only: a store that does not exist yet is not created.
                let store = match open_existing(&loaded).await? {
                    Some(s) => s,
                    None => Store::in_memory().map_err(|e| Failure::runtime(e.to_string()))?,
                };
                let rows = kri_agent::plan(&loaded, &only, &store, clock).await?;
                output::plan(&rows, cli.output);
                return Ok(0);
            }
            let store = open_store(&loaded).await?;
            let how = RunHow::once(wait, "kri run");
            let report = run_once(&loaded, &only, &store, clock.clone(), interactive(cli.output), &how).await?;
            output::run(&report, cli.output, &standing(&loaded, &store, clock.now()).await);
            // What the run has for the sinks goes before kri exits, bounded; what is left waits
            // for the next run or a service.
            for d in kri_agent::deliver(&loaded.sinks, &store, clock, SINK_BUDGET).await {
                if let Some(why) = d.failing {
                    errln!(
                        "sink {}: events wait: {why} (`kri sinks` shows them; the next run or kri serve tries again)",
                        d.sink
                    );
                }
            }
            let code = exit_code(&report);
            Ok(match fail_on {
                Some(level) if code == 0 && past(&report, level) => {
                    if cli.output == Output::Table {
                        errln!("a KRI is at or past {}: exit 3 (--fail-on)", band_word(level));
                    }
                    3
                }
                _ => code,
            })
        }
        Command::Test { module } => {
            let loaded = load(&sources()?, Need::Credentials)?;
            test(
                &loaded,
                module.map(|m| m.trim().to_ascii_lowercase()).as_deref(),
                clock,
                cli.output,
            )
            .await
        }
        Command::Ack {
            slug,
            note,
            until,
            by,
            clear,
        } => {
            let loaded = load(&sources()?, Need::NoCredentials)?;
            needs_config(&loaded, "ack")?;
            let Some(store) = open_existing(&loaded).await? else {
                return Err(Failure::runtime(format!(
                    "nothing to acknowledge: there is no store yet at {}; `kri run` measures the KRIs",
                    loaded.store_and_config()
                )));
            };
            let req = crate::ack::Request {
                slug,
                note,
                until,
                by,
                clear,
            };
            crate::ack::run(&loaded, &store, req, clock, cli.output).await
        }
        Command::Calibrate { slug, since, toml } => {
            let loaded = load(&sources()?, Need::NoCredentials)?;
            needs_config(&loaded, "calibrate")?;
            if let Some(s) = &slug
                && kri_core::registry::find_kri(s).is_none()
            {
                return Err(Failure::config(format!("unknown KRI `{s}`: `kri kris` lists the KRIs")));
            }
            let period = humantime::format_duration(since).to_string();
            let Some(store) = open_existing(&loaded).await? else {
                return Err(Failure::runtime(format!(
                    "nothing to calibrate from: there is no store yet at {}; `kri run` (or `kri serve`) builds the \
                     history",
                    loaded.store_and_config()
                )));
            };
            let now = clock.now();
            let from = chrono::Duration::from_std(since)
                .ok()
                .and_then(|d| now.checked_sub_signed(d))
                .unwrap_or(now);
            let rows = crate::calibrate::rows(&loaded, &store, slug.as_deref(), from, now).await?;
            crate::calibrate::print(&rows, cli.output, toml, &period, loaded.multi_tenant);
            Ok(0)
        }
        Command::Kris => {
            let loaded = load(&sources()?, Need::NoCredentials)?;
            // The KRIs stuck in one band, from the history when there is a store; the list
            // itself never needs one (a store that does not answer is said, not fatal).
            let perpetual = match (open_existing(&loaded).await, loaded.tenants.first()) {
                (Ok(Some(store)), Some(t)) => kri_agent::practice::perpetual_bands(&store, t, clock.now())
                    .await
                    .unwrap_or_else(|e| {
                        errln!("note: cannot read the history to flag KRIs stuck in one band: {e}");
                        Default::default()
                    }),
                (Err(f), _) => {
                    errln!(
                        "note: cannot read the history to flag KRIs stuck in one band: {}",
                        f.message
                    );
                    Default::default()
                }
                _ => Default::default(),
            };
            output::kris(&loaded, cli.output, &perpetual);
            Ok(0)
        }
        Command::History { limit, module, run } => {
            let loaded = load(&sources()?, Need::NoCredentials)?;
            needs_config(&loaded, "history")?;
            if let Some(m) = &module {
                check_module(&loaded, m)?;
            }
            let Some(store) = open_existing(&loaded).await? else {
                if let Some(id) = run {
                    return Err(Failure::runtime(format!(
                        "no run `{id}`: there is no store yet at {}",
                        loaded.store_and_config()
                    )));
                }
                output::history(&[], cli.output, &loaded.store_and_config());
                return Ok(0);
            };
            let read = |e: kri_core::store::StoreError| Failure::runtime(e.to_string());
            let store = store.scoped(loaded.tenant_filter().as_deref());
            if let Some(id) = run {
                return one_run(&store, id.trim(), cli.output, &loaded, clock.now()).await;
            }
            let rows = store.history(limit, module).await.map_err(read)?;
            output::history(&rows, cli.output, &loaded.store_and_config());
            Ok(0)
        }
        Command::Values {
            slug,
            limit,
            since,
            cursor,
            all,
        } => {
            let loaded = load(&sources()?, Need::NoCredentials)?;
            needs_config(&loaded, "values")?;
            if let Some(s) = &slug
                && kri_core::registry::find_kri(s).is_none()
            {
                return Err(Failure::config(format!("unknown KRI `{s}`: `kri kris` lists the KRIs")));
            }
            let Some(store) = open_existing(&loaded).await? else {
                output::ValuesOut::start(cli.output, loaded.store_and_config()).finish(None);
                return Ok(0);
            };
            let store = store.scoped(loaded.tenant_filter().as_deref());
            let since = since
                .and_then(|d| chrono::Duration::from_std(d).ok())
                .and_then(|d| clock.now().checked_sub_signed(d));
            let mut q = kri_core::store::ValuesQuery {
                slug,
                since,
                limit: if all { ALL_PAGE } else { limit },
                cursor,
            };
            let mut out = output::ValuesOut::start(cli.output, loaded.store_and_config());
            let standing = kri_agent::practice::Standing::read(&store, clock.now())
                .await
                .map_err(|e| Failure::runtime(e.to_string()))?;
            loop {
                let mut page = store
                    .values_page(&q)
                    .await
                    .map_err(|e| Failure::runtime(e.to_string()))?;
                standing.annotate(&mut page.values, &loaded.tenants);
                out.page(&page.values);
                match page.next_cursor {
                    Some(next) if all => q.cursor = Some(next),
                    next => {
                        out.finish(next.map(|c| c.to_string()).as_deref());
                        return Ok(0);
                    }
                }
            }
        }
        Command::Serve { listen } => {
            let loaded = load(&sources()?, Need::Credentials)?;
            let store = open_store(&loaded).await?;
            let how = serve_how(cli.output, listen, true, tick);
            serve(loaded, store, clock, how).await
        }
        Command::Daemon => {
            let loaded = load(&sources()?, Need::Credentials)?;
            let store = open_store(&loaded).await?;
            let how = serve_how(cli.output, None, false, tick);
            serve(loaded, store, clock, how).await
        }
        Command::Report { html, period } => {
            let loaded = load(&sources()?, Need::NoCredentials)?;
            let store = match open_existing(&loaded).await? {
                Some(s) => s,
                None => Store::in_memory().map_err(|e| Failure::runtime(e.to_string()))?,
            };
            // "7 days", "12 hours": the period in words for the page.
            let secs = period.as_secs();
            let plural = |n: u64, one: &str| {
                if n == 1 {
                    format!("1 {one}")
                } else {
                    format!("{n} {one}s")
                }
            };
            let asked = match secs {
                s if s >= 86_400 && s % 86_400 == 0 => plural(s / 86_400, "day"),
                s if s >= 3_600 && s % 3_600 == 0 => plural(s / 3_600, "hour"),
                _ => humantime::format_duration(period).to_string(),
            };
            let page = report_html(&loaded, &store, clock, (period, &asked)).await?;
            write_file(&html, &page)?;
            if html.as_os_str() != "-" && cli.output == Output::Table {
                errln!(
                    "wrote {} ({} bytes): the report as one self-contained file",
                    html.display(),
                    page.len()
                );
            }
            Ok(0)
        }
    }
}

/// Values per page of `kri values --all`.
const ALL_PAGE: u32 = 1000;

/// `kri sinks test NAME` / `kri sinks retry NAME`.
async fn sinks_action(
    loaded: &Loaded,
    action: crate::SinksAction,
    clock: Arc<dyn Clock>,
    out: Output,
) -> Result<u8, Failure> {
    let name = match &action {
        crate::SinksAction::Test { name } | crate::SinksAction::Retry { name } => name.trim(),
    };
    let Some(sink) = loaded.sinks.iter().find(|s| s.name == name) else {
        let names: Vec<&str> = loaded.sinks.iter().map(|s| s.name.as_str()).collect();
        return Err(Failure::config(format!(
            "no sink `{name}`; the sinks are: {}",
            if names.is_empty() {
                "none (add a [sinks.NAME] table)".to_owned()
            } else {
                names.join(", ")
            }
        )));
    };
    let (sent, failed, error) = match action {
        crate::SinksAction::Test { .. } => {
            let event = serde_json::json!({
                "id": uuid::Uuid::new_v4().to_string(), "type": "sink.test", "time": kri_core::store::fmt_time(&clock.now()),
                "tenant": crate::config::DEFAULT_TENANT, "severity": "info", "kri": null, "incident": null, "run_id": null,
            });
            match kri_agent::deliver_now(sink, &[event]).await {
                Ok(()) => (1, 0, None),
                Err(e) => (0, 1, Some(e)),
            }
        }
        crate::SinksAction::Retry { .. } => {
            let store = open_store(loaded).await?;
            let r = kri_agent::retry_dead(sink, &store)
                .await
                .map_err(|e| Failure::runtime(e.to_string()))?;
            (r.0, r.1, r.2)
        }
    };
    if out == Output::Table {
        match &error {
            None => outln!("sink {name} ({}): {sent} delivered", sink.kind),
            Some(e) => errln!(
                "sink {name} ({}): {sent} delivered, {failed} not: {}",
                sink.kind,
                kri_core::text::visible(e)
            ),
        }
    } else {
        output::print_json(
            &serde_json::json!({"sink": name, "type": sink.kind, "delivered": sent, "failed": failed, "error": error}),
        );
    }
    Ok(u8::from(failed > 0))
}

/// How long `kri run` delivers to its sinks before it exits.
const SINK_BUDGET: Duration = Duration::from_secs(10);

/// `--only "tap, EFD"` is `tap` and `efd`.
fn normalize_only(only: &[String]) -> Vec<String> {
    only.iter()
        .flat_map(|o| o.split(','))
        .map(|o| o.trim().to_ascii_lowercase())
        .filter(|o| !o.is_empty())
        .collect()
}

fn band_word(level: FailOn) -> &'static str {
    match level {
        FailOn::Amber => "amber",
        FailOn::Red => "red",
    }
}

/// Whether a KRI of the run is at or past `level`.
fn past(report: &RunReport, level: FailOn) -> bool {
    report.connectors.iter().flat_map(|c| &c.kris).any(|k| {
        matches!(
            (k.band, level),
            (Some(kri_core::Band::Red), _) | (Some(kri_core::Band::Amber), FailOn::Amber)
        )
    })
}

/// `kri history --run ID`: one run in full.
async fn one_run(
    store: &Store,
    id: &str,
    out: Output,
    loaded: &Loaded,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<u8, Failure> {
    let read = |e: kri_core::store::StoreError| Failure::runtime(e.to_string());
    if id.len() < 4 {
        return Err(Failure::config(format!(
            "--run `{id}`: give the run id, or at least its first 4 characters"
        )));
    }
    let rows = store.run_rows(id).await.map_err(read)?;
    let mut ids: Vec<&str> = rows.iter().map(|r| r.run_id.as_str()).collect();
    ids.dedup();
    match ids.as_slice() {
        [] => Err(Failure::runtime(format!(
            "no run `{id}` in the store: `kri history` lists the runs"
        ))),
        [one] => {
            let mut values = store.run_values(one).await.map_err(read)?;
            kri_agent::practice::Standing::read(store, now)
                .await
                .map_err(read)?
                .annotate(&mut values, &loaded.tenants);
            output::one_run(&rows, &values, out);
            Ok(0)
        }
        many => Err(Failure::config(format!(
            "--run `{id}` matches {} runs ({}…): give more of the id",
            many.len(),
            many.iter().take(3).copied().collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// Write `text` to `path` whole (a temporary file renamed into place), or to stdout for `-`.
fn write_file(path: &std::path::Path, text: &str) -> Result<(), Failure> {
    if path.as_os_str() == "-" {
        outln!("{text}");
        return Ok(());
    }
    let fail = |e: std::io::Error| Failure::runtime(format!("cannot write {}: {e}", path.display()));
    // A new file of an unguessable name beside the target, created exclusively (never through
    // a symlink someone planted at a predictable `F.partial`), then renamed over the target.
    let name = path
        .file_name()
        .map_or_else(|| "report".into(), |n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(".{name}.{}.partial", uuid::Uuid::new_v4().simple()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()).and_then(|()| f.sync_all()));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail(e));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        fail(e)
    })
}

/// `kri healthcheck`: GET `url` (direct, never through a proxy), 5 s at most, no retry.
async fn healthcheck(url: &str) -> Result<u8, Failure> {
    let url = url.trim();
    let (base, path) = match url.split_once("://") {
        Some((scheme, rest)) => match rest.find('/') {
            Some(i) => (format!("{scheme}://{}", &rest[..i]), rest[i..].to_owned()),
            None => (url.to_owned(), "/healthz".to_owned()),
        },
        None => {
            return Err(Failure::config(format!(
                "--url `{url}` is not a URL: write it like http://127.0.0.1:9741/healthz"
            )));
        }
    };
    let opts = kri_core::HttpOptions {
        timeout: std::time::Duration::from_secs(5),
        connect_timeout: std::time::Duration::from_secs(3),
        retries: 0,
        network: kri_core::Network {
            proxy: kri_core::Proxy::Direct,
            ca: None,
        },
        ..Default::default()
    };
    let client = kri_core::HttpClient::new(&base, std::sync::Arc::new(kri_core::NoAuth), opts)
        .map_err(|m| Failure::config(format!("--url: {m}")))?;
    match client.stream(kri_core::Request::get(path)).await {
        Ok(_) => {
            outln!("healthy: {url} answered 200");
            Ok(0)
        }
        Err(e) => {
            errln!("unhealthy: {e}");
            Ok(1)
        }
    }
}

/// Progress bars: for people on a terminal.
fn interactive(out: Output) -> bool {
    out == Output::Table && std::io::stderr().is_terminal()
}

/// How `kri serve` (`http`) or `kri daemon` runs: its events on this terminal.
fn serve_how(out: Output, listen: Option<String>, http: bool, tick: Duration) -> ServeHow {
    ServeHow {
        json: out == Output::Json,
        lines: Arc::new(crate::term::Terminal),
        listen,
        http,
        tick,
        commit: env!("BUILD_COMMIT"),
    }
}

/// A read command without any config (no file, no `KRI_…` setting) has no store to read: it
/// says so (exit 2) rather than "nothing stored yet", which reads like an empty store.
fn needs_config(loaded: &Loaded, command: &str) -> Result<(), Failure> {
    if loaded.configured {
        return Ok(());
    }
    Err(Failure::config(format!(
        "no config: there is no `kri.toml` here and no KRI_… setting in the environment, so `kri {command}` has \
         no store to read. Pass --config FILE (or KRI_CONFIG), or run it in the folder of your kri.toml"
    )))
}

/// Each KRI's newest value with where it stands (the run output's extra fields); empty when
/// the store does not answer (the run itself is already stored and printed either way).
async fn standing(
    loaded: &Loaded,
    store: &Store,
    now: chrono::DateTime<chrono::Utc>,
) -> std::collections::HashMap<(String, String), kri_core::report::ValueRow> {
    match kri_agent::practice::newest(store, &loaded.tenants, now).await {
        Ok(rows) => rows
            .into_iter()
            .map(|r| ((r.tenant.clone(), r.slug.clone()), r))
            .collect(),
        Err(e) => {
            tracing::warn!("cannot read where the KRIs stand after the run: {e}");
            Default::default()
        }
    }
}

/// The store, when it exists; read-only commands create no file and no folder (a PostgreSQL
/// store is always there).
async fn open_existing(loaded: &Loaded) -> Result<Option<Store>, Failure> {
    if loaded.store_url.is_none() && !loaded.store_path.exists() {
        return Ok(None);
    }
    open_store(loaded).await.map(Some)
}

/// `kri KEY …`: a subcommand a connector contributed. It gets the connector's settings (whether
/// or not it is enabled), the store, the clock and the connector's deadline; what it returns is
/// rendered like every other command's output.
pub async fn connector_command(
    reg: &'static kri_core::Registration,
    spec: kri_core::command::CommandSpec,
    matches: &clap::ArgMatches,
    global: &Global,
    clock: Arc<dyn Clock>,
) -> Result<u8, Failure> {
    use kri_core::command::{CommandError, Invocation};
    let sources = Sources::from_file_and_env(global.config.as_deref())?;
    let mut loaded = load(&sources, Need::NoCredentials)?;
    loaded.select_tenant(global.tenant.as_deref())?;
    let tenant = match loaded.tenants.as_slice() {
        [one] => one,
        many => {
            let names: Vec<&str> = many.iter().take(5).map(|t| t.name.as_str()).collect();
            return Err(Failure::config(format!(
                "`kri {}` works on one tenant at a time: add --tenant NAME (tenants: {}{})",
                reg.module,
                names.join(", "),
                if many.len() > 5 { ", …" } else { "" }
            )));
        }
    };
    let module = tenant
        .modules
        .iter()
        .find(|m| m.reg.module == reg.module)
        .ok_or_else(|| Failure::runtime(format!("the `{}` connector is not loaded", reg.module)))?;
    let store = open_store(&loaded).await?;
    // One line each (a warning holds ids and titles from the API): written out whole.
    let notice = |line: &str| output::err_line(&kri_core::text::visible(line));
    let call = Invocation {
        matches,
        settings: &module.settings,
        configured: module.configured,
        tenant: &tenant.name,
        store: &store,
        clock,
        run_timeout: module.run_timeout,
        interactive: global.output == Output::Table && std::io::stderr().is_terminal(),
        notice: &notice,
    };
    match (spec.run)(call).await {
        Ok(out) => {
            output::command(&out, global.output);
            Ok(out.exit_code)
        }
        Err(CommandError::Usage(m)) => Err(Failure::config(m)),
        Err(CommandError::Config(e)) => Err(sources.error(e).into()),
        Err(CommandError::Failed(m)) => Err(Failure::runtime(m)),
    }
}

/// 0 when every connector is ok (unlicensed KRIs count as ok); 1 otherwise.
async fn test(loaded: &Loaded, module: Option<&str>, clock: Arc<dyn Clock>, out: Output) -> Result<u8, Failure> {
    if let Some(m) = module {
        check_module(loaded, m)?;
    }
    // The real store: probe calls count against the same rolling-24 h budgets as runs (the
    // People API allows only 50 calls a day).
    let store = open_store(loaded).await?;
    let mut probes = Vec::new();
    for (t, m) in loaded
        .tenants
        .iter()
        .flat_map(|t| t.modules.iter().map(move |m| (t, m)))
    {
        if module.is_some_and(|x| x != m.reg.module) {
            continue;
        }
        let Some(connector) = &m.connector else {
            if module.is_some() {
                return Err(Failure::config(format!(
                    "the `{}` connector is disabled; set [connectors.{}] enabled = true to test it",
                    m.reg.module, m.reg.module
                )));
            }
            continue;
        };
        probes.push(probe(&t.name, m, connector.as_ref(), &store, clock.clone()).await);
    }
    if probes.is_empty() {
        return Err(Failure::config("no connector is enabled, so there is nothing to test"));
    }
    output::probes(&probes, out);
    Ok(u8::from(probes.iter().any(|p| p.status == KriStatus::Failed)))
}

async fn demo(out: Output, clock: Arc<dyn Clock>, keep: Option<&std::path::Path>) -> Result<u8, Failure> {
    // The sandbox shares kri's "now" (the wall clock, or the tests' fixed instant). A kept demo
    // takes the port `kri sandbox` serves on by default, so its config works with it later.
    let scenario = Scenario {
        now: Some(clock.now()),
        ..Scenario::default()
    };
    let port = match keep {
        Some(_) => crate::config::parse_listen(crate::DEFAULT_SANDBOX).map_or(0, |a| a.port()),
        None => 0,
    };
    let sandbox = match Sandbox::start_on(scenario.clone(), port).await {
        Ok(s) => Ok(s),
        // Taken (a `kri sandbox` running, say): any free port; the config says which.
        Err(_) if port != 0 => Sandbox::start(scenario).await,
        Err(e) => Err(e),
    }
    .map_err(|e| Failure::runtime(format!("cannot start the sandbox API on 127.0.0.1: {e}")))?;
    let (store, config) = match keep {
        None => (
            Store::in_memory().map_err(|e| Failure::runtime(e.to_string()))?,
            sandbox.demo_config(),
        ),
        Some(dir) => keep_dir(dir, &sandbox)?,
    };
    let loaded = load(&Sources::from_toml(&config), Need::Credentials)?;
    if out == Output::Table {
        let kept = if keep.is_some() {
            "a kept store"
        } else {
            "a throw-away store"
        };
        errln!(
            "kri demo: {} and {kept}; nothing leaves this machine.",
            sandbox.description()
        );
    }
    let how = RunHow::once(Duration::ZERO, "kri demo");
    let report = run_once(&loaded, &[], &store, clock.clone(), interactive(out), &how).await?;
    output::run(&report, out, &standing(&loaded, &store, clock.now()).await);
    if out == Output::Table {
        match keep {
            Some(dir) => {
                // The exact command: the default port was taken if the sandbox runs elsewhere.
                let addr = sandbox.base_url().replacen("http://", "", 1);
                let serve = if addr == crate::DEFAULT_SANDBOX {
                    "`kri sandbox &`".to_owned()
                } else {
                    format!(
                        "`kri sandbox --listen {addr} &` ({} was taken: is a `kri sandbox` running already?)",
                        crate::DEFAULT_SANDBOX
                    )
                };
                errln!(
                    "Kept {dir}/kri.toml and {dir}/kri.db. To try every command without an account: {serve}, \
                     then `cd {dir}` and `kri values`, `kri history`, `kri run`, `kri serve`.",
                    dir = dir.display()
                )
            }
            None => errln!(
                "Next: `kri init` writes a kri.toml for your tenant; `kri config check`, `kri test`, then `kri run`. \
                 `kri demo --keep DIR` keeps this demo to explore."
            ),
        }
    }
    Ok(exit_code(&report))
}

/// `kri demo --keep DIR`: DIR/kri.db and a DIR/kri.toml pointing at the sandbox (and the store).
fn keep_dir(dir: &std::path::Path, sandbox: &Sandbox) -> Result<(Store, String), Failure> {
    let fail = |e: std::io::Error| Failure::runtime(format!("cannot keep the demo in {}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(fail)?;
    let (cfg, db) = (dir.join("kri.toml"), dir.join("kri.db"));
    if cfg.exists() || db.exists() {
        return Err(Failure::config(format!(
            "{} already has a kri.toml or kri.db: kri demo --keep never overwrites; choose a new folder",
            dir.display()
        )));
    }
    let abs = std::path::absolute(&db).map_err(fail)?;
    let text = format!(
        "# Written by `kri demo --keep`: the sandbox's fake API (start it with `kri sandbox`) and\n\
         # its fake credentials. For your tenant, start from `kri init` instead.\n\
         [store]\npath = {}\n\n{}",
        toml_string(&abs.display().to_string()),
        sandbox.demo_config()
    );
    std::fs::write(&cfg, &text).map_err(fail)?;
    let store = Store::open(&db).map_err(|e| Failure::runtime(e.to_string()))?;
    Ok((store, text))
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}
