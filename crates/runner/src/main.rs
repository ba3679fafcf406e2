//! `kri`: turns security data into Key Risk Indicators, on a schedule, into an embedded store.
//! This binary is thin: config, command dispatch, output. It knows no vendor: connectors, their
//! shared settings and their subcommands come from the registry.

#[macro_use]
mod term;
mod ack;
mod calibrate;
mod commands;
mod connectors;
mod output;
mod setup;
mod table;

use std::path::PathBuf;

/// The configuration (its own crate): `crate::config::…` reads as before.
use kri_config as config;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use kri_core::{Clock, SystemClock};
use tracing_subscriber::EnvFilter;

/// Turn security data into Key Risk Indicators (KRIs) with thresholds and history.
///
/// Start with `kri demo` (a built-in sandbox, no account needed). Then `kri init` writes a
/// kri.toml to edit, `kri config check` checks it, `kri test` checks access, and `kri run` collects
/// once, or `kri serve` on a schedule with a dashboard and metrics.
///
/// Exit codes: 0 all good (or only `unlicensed` modules), 1 a KRI or connector failed,
/// 2 usage or config error, 3 a KRI at or past the band of `kri run --fail-on`.
#[derive(Debug, Parser)]
#[command(name = "kri", version = VERSION, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    global: Global,

    #[command(subcommand)]
    command: Command,
}

/// `0.1.0 (commit 1a2b3c4d5e6f, built 2026-11-23)`.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("BUILD_COMMIT"),
    ", built ",
    env!("BUILD_DATE"),
    ")"
);

/// The options every command takes.
#[derive(Debug, Args)]
pub struct Global {
    /// Config file (TOML). `KRI_…` environment variables override it, `__` separating levels,
    /// e.g. KRI_CONNECTORS__<MODULE>__ENABLED=false.
    #[arg(long, global = true, env = "KRI_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    /// Output for people (table), machines (json, stable) or spreadsheets (csv: values, history).
    #[arg(long, global = true, value_enum, default_value_t = Output::Table)]
    output: Output,

    /// One tenant of a many-tenant config (`[tenants] dir`): run, read or serve only it.
    /// Default: every tenant.
    #[arg(long, global = true, value_name = "NAME")]
    tenant: Option<String>,

    /// More log detail on stderr (-v info, -vv debug). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// For people: tables as wide as the terminal, bands coloured on a terminal (NO_COLOR honoured).
    Table,
    /// For machines: one JSON document (NDJSON events for `serve` and `daemon`).
    Json,
    /// For spreadsheets: `values` and `history` only.
    Csv,
}

/// `after_help` of a subcommand: its examples, then the exit codes.
macro_rules! examples {
    ($($line:literal),* $(,)?) => {
        concat!("Examples:\n", $("  ", $line, "\n",)* "\n", exit_codes!())
    };
}

macro_rules! exit_codes {
    () => {
        "Exit codes: 0 all good (unlicensed modules included), 1 a KRI or connector failed, 2 usage or \
         config error, 3 a KRI at or past the band of --fail-on (kri run)."
    };
}

/// `--fail-on`: the band from which `kri run` exits 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailOn {
    Amber,
    Red,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run each enabled connector once now, store the values, print the run.
    #[command(after_help = examples!(
        "kri run                        # every enabled connector",
        "kri run --only tap,efd         # some of them (any case, spaces allowed)",
        "kri run --plan                 # what a run would call, and the budget left; calls nothing",
        "kri run --fail-on red          # exit 3 when a KRI is red: for cron or CI alerting",
        "kri run --output json | jq '.connectors[].kris[] | {slug, value, band}'",
    ))]
    Run {
        /// Only these modules, comma-separated module keys (`kri kris` lists them).
        #[arg(long, value_delimiter = ',', value_name = "MODULES")]
        only: Vec<String>,
        /// Dry run: print the windows and calls a run would make now, per rate-limit pool, with
        /// the calls used in the last 24 h and the budget left. Calls nothing, stores nothing.
        #[arg(long)]
        plan: bool,
        /// When another kri process is running a connector on the same store, wait this long
        /// for it (e.g. 5m) before reporting that connector as not run (exit 1).
        #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = parse_wait)]
        wait: std::time::Duration,
        /// Exit 3 when nothing failed and a KRI is at or past this band (amber: amber or red).
        #[arg(long, value_enum, value_name = "BAND")]
        fail_on: Option<FailOn>,
    },
    /// Check connectivity and credentials; each connector says what it saw (a count, say), so you
    /// can check it is the right tenant.
    #[command(after_help = examples!(
        "kri test                       # every enabled connector",
        "kri test tap                   # TAP only: prints the VAP count it saw",
    ))]
    Test {
        /// One module key (`kri kris` lists them); default: every enabled module.
        module: Option<String>,
    },
    /// List every registered connector and KRI: meaning, unit, direction, thresholds, selected?
    #[command(after_help = examples!(
        "kri kris",
        "kri kris --output json | jq '.connectors[] | {module, enabled}'",
    ))]
    Kris,
    /// Past runs with rows written / skipped, API calls and errors, newest first.
    #[command(after_help = examples!(
        "kri history                    # the 20 newest connector runs",
        "kri history --module tap --limit 5",
        "kri history --run 3f2a         # one run in full (its id, or the start of it)",
        "kri history --output csv > runs.csv",
    ))]
    History {
        /// How many connector runs to show.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Only this module.
        #[arg(long)]
        module: Option<String>,
        /// Show one run in full: every connector's row and every value it wrote. Its id, or
        /// enough of the start of it to be unique.
        #[arg(long, value_name = "ID")]
        run: Option<String>,
    },
    /// Stored KRI values over time, newest first, with the previous value and the change.
    ///
    /// One page at a time (50 values unless --limit says otherwise); when there are more, the
    /// page ends with the cursor of the next one (`next_cursor` in JSON). --all prints every
    /// value, a page at a time, whatever the history.
    #[command(after_help = examples!(
        "kri values                     # the 50 newest values of every KRI",
        "kri values pp_vap_count --since 30d",
        "kri values --cursor 1764547200.812   # the page after the one that printed this cursor",
        "kri values --all --output csv > values.csv",
    ))]
    Values {
        /// One KRI slug (see `kri kris`); default: all.
        slug: Option<String>,
        /// How many values to show at most (1 to 10000).
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000),
              conflicts_with = "all")]
        limit: u32,
        /// Only values measured within this long before now (e.g. 7d, 12h).
        #[arg(long, value_name = "DURATION", value_parser = parse_since)]
        since: Option<std::time::Duration>,
        /// Start after the page that ended with this cursor.
        #[arg(long, value_name = "CURSOR", value_parser = parse_cursor)]
        cursor: Option<kri_core::store::Cursor>,
        /// Every value (from the cursor, if given), printed a page at a time.
        #[arg(long)]
        all: bool,
    },
    /// Acknowledge a KRI's amber or red band: someone has seen it, and says why it may stay
    /// there for now. Kept with the history; it ends when the band changes, when --until is up,
    /// or with --clear. An acknowledged KRI is not overdue, and notifications do not repeat it.
    #[command(after_help = examples!(
        "kri ack pp_vap_count --note \"known campaign, blocked at the gateway\" --until 7d",
        "kri ack pp_vap_count --tenant acme-eu --note \"owner on leave\" --by \"J. Smith\"",
        "kri ack --clear pp_vap_count",
    ))]
    Ack {
        /// The KRI's slug (see `kri kris`).
        slug: String,
        /// Why it may stay amber or red for now (one line, at most 500 characters).
        #[arg(long, value_name = "TEXT", required_unless_present = "clear")]
        note: Option<String>,
        /// For how long (e.g. 7d, 24h); default: until the band changes.
        #[arg(long, value_name = "DURATION", value_parser = parse_since)]
        until: Option<std::time::Duration>,
        /// Who acknowledges it (default: $USER).
        #[arg(long, value_name = "NAME")]
        by: Option<String>,
        /// End the acknowledgement in force now.
        #[arg(long, conflicts_with_all = ["note", "until", "by"])]
        clear: bool,
    },
    /// Suggest thresholds from the stored history: amber at the 75th and red at the 95th
    /// percentile of each KRI's values (the 25th and 5th when lower is worse), with the days the
    /// history would have spent in green, amber and red under the current and the suggested
    /// thresholds, and how many values it used. Below 14 values it suggests nothing and says why.
    /// A KRI that sat in one band the whole period (30 days or more) is flagged: its thresholds
    /// may not discriminate. It never edits a file: --toml prints `[kris.SLUG]` snippets to paste.
    #[command(after_help = examples!(
        "kri calibrate                          # every selected KRI, the last 90 days",
        "kri calibrate pp_vap_count --since 1y",
        "kri calibrate --toml >> suggested.toml # then review and move into kri.toml",
        "kri calibrate --output json | jq '.kris[] | {slug, suggested, perpetual}'",
    ))]
    Calibrate {
        /// One KRI slug (see `kri kris`); default: every KRI selected in an enabled module.
        slug: Option<String>,
        /// The history to learn from: values measured within this long before now.
        #[arg(long, value_name = "DURATION", default_value = "90d", value_parser = parse_since)]
        since: std::time::Duration,
        /// Print `[kris.SLUG]` snippets with the suggested thresholds instead of the table.
        #[arg(long)]
        toml: bool,
    },
    /// Run each enabled connector on its schedule and serve a dashboard, Prometheus metrics, health
    /// checks and a JSON API over HTTP, until SIGTERM or Ctrl-C.
    ///
    /// Schedules are aligned to the clock in UTC: `hourly` runs at the top of each hour (or at
    /// `[connectors.KEY] at = ":05"`), `daily` at midnight (or `at = "02:30"`), each connector a few
    /// seconds apart. The first run of each connector starts at once; a failed run is retried after
    /// 1, 2, 4 … minutes (at most an hour); runs of one connector never overlap.
    ///
    /// Routes: `/` dashboard, `/kri/SLUG`, `/metrics`, `/healthz`, `/readyz`, `/api/v1/kris`,
    /// `/api/v1/values?slug=`, `/api/v1/runs`, `/api/v1/schedule`; `POST /api/v1/runs?module=KEY` (Run now),
    /// `POST /api/v1/test?module=KEY` (Test) and `POST /api/v1/ack` (acknowledge a breach, a JSON body)
    /// need `Authorization: Bearer TOKEN` ([serve] token,
    /// KRI_SERVE__TOKEN). A first SIGTERM/Ctrl-C stops scheduling and gives running runs `[serve] grace`
    /// (default 30s) before cancelling them (recorded as failed); the exit code is then 0. A second
    /// signal exits at once. With `--output json`, one JSON line per event on stdout.
    #[command(after_help = examples!(
        "kri serve                                  # http://127.0.0.1:9741/",
        "KRI_SERVE__TOKEN=$(openssl rand -hex 24) kri serve --listen 0.0.0.0:9741",
        "kri serve --output json                    # one JSON line per event, for log shippers",
        "curl -s localhost:9741/metrics | grep kri_value",
    ))]
    Serve {
        /// Address to listen on (IP:PORT), overriding `[serve] listen` (default 127.0.0.1:9741). A
        /// non-loopback address needs `[serve] token` or `[serve] public_read_only = true`.
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// `kri serve` without HTTP: each enabled connector on its schedule until SIGTERM or Ctrl-C.
    #[command(after_help = examples!("kri daemon", "kri daemon --output json   # one JSON line per event"))]
    Daemon,
    /// Write an executive report as one self-contained HTML file (no script, nothing loaded
    /// from elsewhere; it prints on A4), e.g. to attach to an e-mail: where the KRIs stand, what
    /// changed over the period (band changes, the biggest moves), the breaches now with owner,
    /// action, acknowledgement and overdue, and each KRI's trend. With several tenants (and no
    /// --tenant), the overview of all of them.
    #[command(after_help = examples!(
        "kri report --html kri-report.html              # the last 7 days",
        "kri report --html monthly.html --period 30d",
    ))]
    Report {
        /// The file to write (`-` for stdout).
        #[arg(long, value_name = "FILE")]
        html: PathBuf,
        /// The period the report covers, up to now (e.g. 7d, 30d, 90d).
        #[arg(long, value_name = "DURATION", default_value = "7d", value_parser = parse_since)]
        period: std::time::Duration,
    },
    /// Run every working connector against a built-in sandbox of the vendors' APIs (127.0.0.1, fake
    /// data) and print the KRI table. No account or network needed.
    ///
    /// The store is thrown away, unless `--keep DIR` keeps it with a kri.toml pointing at the
    /// sandbox: then start the sandbox again with `kri sandbox` and try every command in DIR.
    #[command(after_help = examples!(
        "kri demo",
        "kri demo --keep demo && kri sandbox &      # then, in demo/: kri values, kri history, kri serve",
    ))]
    Demo {
        /// Keep the store and a kri.toml pointing at the sandbox in this folder.
        #[arg(long, value_name = "DIR")]
        keep: Option<PathBuf>,
    },
    /// Serve the built-in sandbox (a fake Proofpoint API with fake data) until Ctrl-C, for the
    /// config `kri demo --keep` wrote.
    #[command(after_help = examples!("kri sandbox                     # on 127.0.0.1:9740", "kri sandbox --listen 127.0.0.1:9999"))]
    Sandbox {
        /// Address to serve it on.
        #[arg(long, value_name = "ADDR", default_value = DEFAULT_SANDBOX)]
        listen: String,
        /// Answer every request after this long, like a real API's round trip (e.g. 200ms).
        #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = parse_wait)]
        latency: std::time::Duration,
    },
    /// Write a commented kri.toml from the connectors' sample configs (credentials are left to
    /// the environment; modules that need their own account are off).
    #[command(after_help = examples!("kri init", "kri init --force          # overwrite an existing file"))]
    Init {
        /// Overwrite the file if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Configuration: check it without calling anything.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(after_help = examples!(
        "kri completions bash > ~/.local/share/bash-completion/completions/kri",
        "kri completions zsh > \"${fpath[1]}/_kri\"",
        "kri completions fish > ~/.config/fish/completions/kri.fish",
    ))]
    Completions { shell: clap_complete::Shell },
    /// Where events go: each `[sinks.NAME]` with what it delivered, what waits and what it gave
    /// up on (dead), and its last error.
    #[command(after_help = examples!(
        "kri sinks",
        "kri sinks --output json",
        "kri sinks test soc",
        "kri sinks retry soc"
    ))]
    Sinks {
        #[command(subcommand)]
        action: Option<SinksAction>,
    },
    /// Print the man page (roff), generated from this command line's definition.
    #[command(after_help = examples!("kri man > kri.1 && man ./kri.1"))]
    Man,
    /// Ask a running `kri serve` whether it is alive: GET its /healthz. Exit 0 when it answers
    /// 200, 1 otherwise (with why on stderr). Needs no config; for a container's HEALTHCHECK.
    #[command(after_help = examples!(
        "kri healthcheck",
        "kri healthcheck --url http://127.0.0.1:9741/healthz"
    ))]
    Healthcheck {
        /// The address of /healthz (kri serve's default listen address).
        #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:9741/healthz")]
        url: String,
    },
}

#[derive(Debug, Subcommand)]
enum SinksAction {
    /// Send one test event (`type` "sink.test") to sink NAME now and say what happened: exit 0
    /// when it arrived, 1 with the error.
    Test { name: String },
    /// Try the events sink NAME gave up on (dead) again now: those that arrive leave the dead
    /// list; exit 1 when some are still dead.
    Retry { name: String },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate the whole config (file and KRI_… environment) without a network call; print the
    /// effective values, where each came from, secrets redacted. Every error is reported.
    #[command(after_help = examples!("kri config check", "kri --config /etc/kri/kri.toml config check --output json"))]
    Check,
}

/// Where `kri sandbox` listens by default (and `kri demo --keep` points its config).
pub const DEFAULT_SANDBOX: &str = "127.0.0.1:9740";

/// What a command that did not succeed says, and its exit code (the agent's, shared by the
/// service and this CLI).
pub use kri_agent::Failure;

/// The wall clock, and how often a waiting scheduler reads it. A debug build (the tests') takes
/// a fixed "now" from `KRI_TEST_NOW` (RFC 3339), so end-to-end tests can assert exact values, or
/// a "now" the test moves from the file `KRI_TEST_CLOCK_FILE` (read every 20 ms); a release
/// build ignores both.
fn clock() -> (Arc<dyn Clock>, std::time::Duration) {
    #[cfg(debug_assertions)]
    {
        let read = |t: &str| chrono::DateTime::parse_from_rfc3339(t.trim()).ok().map(|t| t.to_utc());
        if let Ok(path) = std::env::var("KRI_TEST_CLOCK_FILE")
            && let Some(now) = std::fs::read_to_string(&path).ok().as_deref().and_then(read)
        {
            let clock = kri_core::ManualClock::new(now);
            let moved = clock.clone();
            std::thread::spawn(move || {
                loop {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    if let Some(t) = std::fs::read_to_string(&path).ok().as_deref().and_then(read) {
                        moved.set(t);
                    }
                }
            });
            return (Arc::new(clock), std::time::Duration::from_millis(50));
        }
        if let Some(now) = std::env::var("KRI_TEST_NOW").ok().as_deref().and_then(read) {
            return (
                Arc::new(kri_core::ManualClock::new(now)),
                std::time::Duration::from_secs(1),
            );
        }
    }
    (Arc::new(SystemClock), std::time::Duration::from_secs(1))
}

/// The connectors and shared tables this binary has, for `--help`.
fn registry_help() -> String {
    let mut out = String::from("Connectors (config table [connectors.KEY], `--only KEY`):\n");
    for reg in kri_core::registry::registrations() {
        out.push_str(&format!("  {:<8} {}\n", reg.module, reg.description));
    }
    let families = kri_core::registry::families();
    if !families.is_empty() {
        out.push_str("Shared tables (any KEY may also be set in the environment as KRI_TABLE__KEY):\n");
        for f in families {
            out.push_str(&format!("  [{}] {}\n", f.key, f.description));
        }
    }
    out
}

fn parse_wait(text: &str) -> Result<std::time::Duration, String> {
    kri_core::config::parse_duration_within(text, std::time::Duration::from_secs(24 * 3600))
}

fn parse_cursor(text: &str) -> Result<kri_core::store::Cursor, String> {
    kri_core::store::Cursor::parse(text)
}

fn parse_since(text: &str) -> Result<std::time::Duration, String> {
    kri_core::config::parse_duration_within(text, std::time::Duration::from_secs(10 * 366 * 86_400))
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // No colour codes in logs: every control character of a log line is written out (a field
    // may hold an API's text), escape bytes included.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(term::ScrubbedStderr)
        .with_ansi(false)
        .with_target(false)
        .init();
}

/// The whole command line: the built-in commands, plus the ones connectors contribute through
/// the registry (for parsing, completions and the man page alike).
pub fn cli() -> clap::Command {
    let mut cli = Cli::command().after_help(registry_help());
    for reg in kri_core::registry::registrations() {
        if let Some(spec) = &reg.command {
            cli = cli.subcommand((spec.cli)());
        }
    }
    cli
}

/// Make the process not dumpable: no core file, and no other process of the same user reading
/// its memory (`/proc/PID/mem`, ptrace), where the API secrets, the serve token and access tokens
/// live. A refusal (a seccomp filter) leaves it as it was.
fn not_dumpable() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl(PR_SET_DUMPABLE, 0) takes no pointers and only changes this process's flag.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
}

fn main() -> ExitCode {
    not_dumpable();
    let matches = cli().get_matches();
    let global = Global::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    init_logging(global.verbose);
    let (clock, tick) = clock();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            errln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let contributed = matches.subcommand().and_then(|(name, sub)| {
        kri_core::registry::registrations().into_iter().find_map(|reg| {
            reg.command
                .filter(|spec| (spec.cli)().get_name() == name)
                .map(|spec| (reg, spec, sub))
        })
    });
    let result = match contributed {
        Some((reg, spec, sub)) => runtime.block_on(commands::connector_command(reg, spec, sub, &global, clock)),
        None => {
            let command = Command::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
            runtime.block_on(commands::dispatch(global, command, clock, tick))
        }
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            errln!("error: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

#[cfg(test)]
mod tests {
    /// Regression: with core dumps on, a crash of `kri serve` wrote the TAP and CTR secrets, the
    /// serve token and the CTR access token to disk.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_process_is_not_dumpable() {
        super::not_dumpable();
        // SAFETY: PR_GET_DUMPABLE reads this process's flag.
        assert_eq!(unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) }, 0);
    }
}
