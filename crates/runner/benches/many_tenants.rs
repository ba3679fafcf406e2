//! Many tenants on one PostgreSQL store, shared by several `kri daemon` workers: the path an
//! MSSP takes. The sandbox serves `TENANTS` tenants (default 1000), each request answered after
//! `LATENCY_MS` (default 100, like the real API's round trip); `WORKERS` (default 2) release
//! binaries run every tenant's TAP, EFD and CLEAR connectors, hourly, on a throw-away
//! PostgreSQL server. Real clock, no test hooks.
//!
//! Reports: the time for every tenant's first run; the time for a steady hourly refresh of
//! every tenant (the hourly slot is set `SLOT_AFTER_MIN`, default 6, minutes after the start,
//! once the first runs are done; its runs are timed from the slot to the last one stored); API calls per tenant-hour; the
//! peak number of PostgreSQL connections; CPU per tenant-run; and whether every pool stayed
//! within its limit. Fails when a goal is missed: first runs under 15 minutes, the hourly refresh
//! under 5 minutes, no pool over its limit, every run ok and every value exact.
//!
//! `cargo bench -p kri-runner --bench many_tenants` (TENANTS=100 for a quick look).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{Timelike, Utc};
use kri_core::Store;
use kri_sandbox::{Sandbox, Scenario, tenant_credentials, tenant_vap_users};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A worker: `kri daemon` with its pid, for its CPU time.
struct Worker {
    child: Child,
}

impl Worker {
    fn start(config: &Path) -> Worker {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kri"))
            .args([
                "--config",
                config.to_str().expect("utf-8"),
                "--output",
                "json",
                "daemon",
            ])
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("kri daemon starts");
        // Drain its events so it never blocks on a full pipe.
        let out = child.stdout.take().expect("stdout");
        std::thread::spawn(move || for _ in BufReader::new(out).lines() {});
        Worker { child }
    }

    /// User + system CPU seconds so far, from /proc.
    fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        // Fields 14 and 15 of the line (utime, stime), counted from the state field (3).
        (ticks(11) + ticks(12)) / 100.0
    }

    fn stop(mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// PostgreSQL connections open now (all databases but this query's own).
fn pg_connections(url: &str) -> u64 {
    Command::new("psql")
        .args([
            url,
            "-Atc",
            "SELECT count(*) - 1 FROM pg_stat_activity WHERE backend_type = 'client backend'",
        ])
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(0)
}

/// Runs stored per status, and the newest finish time.
async fn stored(store: &Store) -> (u64, u64) {
    let summary = store.run_summary().await.expect("the store answers");
    let all = summary.iter().flat_map(|m| &m.by_status).map(|(_, n)| n).sum();
    let ok = summary
        .iter()
        .flat_map(|m| &m.by_status)
        .filter(|(s, _)| s == "ok")
        .map(|(_, n)| n)
        .sum();
    (all, ok)
}

/// Wait until `want` runs are stored, sampling the connections; the elapsed time and the peak.
async fn until_stored(store: &Store, url: &str, want: u64, limit: Duration) -> (Duration, u64) {
    let start = Instant::now();
    let mut peak = 0;
    loop {
        peak = peak.max(pg_connections(url));
        let (all, _) = stored(store).await;
        if all >= want {
            return (start.elapsed(), peak);
        }
        assert!(start.elapsed() < limit, "only {all} of {want} runs after {limit:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn write_config(dir: &Path, url: &str, base: &str, at: u32) -> std::path::PathBuf {
    let config = dir.join("kri.toml");
    let mut text =
        format!("[store]\nurl = \"{url}\"\n\n[proofpoint]\nbase_url = \"{base}\"\n\n[tenants]\ndir = \"tenants.d\"\n");
    for m in ["tap", "efd", "clear"] {
        text.push_str(&format!(
            "\n[connectors.{m}]\nschedule = \"hourly\"\nat = \":{at:02}\"\n"
        ));
    }
    std::fs::write(&config, text).expect("config");
    config
}

fn main() {
    let tenants = env_or("TENANTS", 1000) as u32;
    let latency = Duration::from_millis(env_or("LATENCY_MS", 100));
    let workers = env_or("WORKERS", 2) as usize;
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async move {
        let pg = kri_testpg::TestPg::start().expect("a PostgreSQL server (install postgresql)");
        let sandbox = Sandbox::start(Scenario {
            tenants,
            latency,
            ..Scenario::default()
        })
        .await
        .expect("sandbox");
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("tenants.d")).expect("tenants.d");
        for i in 1..=tenants {
            let (p, s) = tenant_credentials(i);
            std::fs::write(
                dir.path().join(format!("tenants.d/t{i:04}.toml")),
                format!("[proofpoint]\ncredentials = \"{p}:{s}\"\n"),
            )
            .expect("tenant file");
        }
        let store = Store::connect(&pg.url).await.expect("store");
        let runs_per_round = u64::from(tenants) * 3;
        let mut failed = Vec::new();

        // 1. Every tenant's first run (seven days of SIEM windows, thirty campaign days…), with
        // the hourly slot set `SLOT_AFTER_MIN` minutes ahead, after the first runs are done.
        let slot_after = env_or("SLOT_AFTER_MIN", 6) as i64;
        let slot = Utc::now().with_second(0).and_then(|t| t.with_nanosecond(0)).expect("a minute")
            + chrono::Duration::minutes(slot_after);
        let config = write_config(dir.path(), &pg.url, &sandbox.base_url(), slot.minute());
        let hits0 = sandbox.total_hits();
        let started: Vec<Worker> = (0..workers).map(|_| Worker::start(&config)).collect();
        let (first, first_peak) = until_stored(&store, &pg.url, runs_per_round, Duration::from_secs(3600)).await;
        let first_calls = sandbox.total_hits() - hits0;
        let first_cpu: f64 = started.iter().map(Worker::cpu_seconds).sum();
        if Utc::now() >= slot {
            failed.push(format!("the first runs outlasted the slot {slot}: raise SLOT_AFTER_MIN"));
        }

        // 2. The steady hourly refresh: the same workers at the slot, timed to the last run.
        let wait = (slot - Utc::now()).to_std().unwrap_or_default();
        tokio::time::sleep(wait).await;
        let hits1 = sandbox.total_hits();
        let (refresh, refresh_peak) =
            until_stored(&store, &pg.url, 2 * runs_per_round, Duration::from_secs(3600)).await;
        let refresh_calls = sandbox.total_hits() - hits1;
        let refresh_cpu: f64 = started.iter().map(Worker::cpu_seconds).sum::<f64>() - first_cpu;
        started.into_iter().for_each(Worker::stop);

        // Every run ok, every value exact, every pool within its limit.
        let (all, ok) = stored(&store).await;
        if ok != all {
            failed.push(format!("{} of {all} runs not ok", all - ok));
        }
        let values = store.latest_values().await.expect("values");
        let wrong = (1..=tenants)
            .filter(|i| {
                !values.iter().any(|v| {
                    v.tenant == format!("t{i:04}") && v.slug == "pp_vap_count" && v.value == Some(tenant_vap_users(*i) as f64)
                })
            })
            .count();
        if wrong > 0 {
            failed.push(format!("{wrong} tenants without their exact pp_vap_count"));
        }
        let over = (1..=tenants)
            .filter(|i| sandbox.pool_calls(*i, "siem") > 1800 || sandbox.pool_calls(*i, "campaign-ids") > 50)
            .count();
        if over > 0 {
            failed.push(format!("{over} tenants over a pool's limit"));
        }

        let per = |d: Duration| d.as_secs_f64();
        println!(
            "{tenants} tenants × 3 connectors, {} ms per request, {workers} workers, one PostgreSQL",
            latency.as_millis()
        );
        println!(
            "first runs of all:      {:>7.1} s   (goal < 900 s)  {first_calls} calls, {:.1} per tenant; peak {first_peak} PG connections; CPU {:.1} ms per tenant-run",
            per(first),
            first_calls as f64 / f64::from(tenants),
            1000.0 * first_cpu / runs_per_round as f64
        );
        println!(
            "hourly refresh of all:  {:>7.1} s   (goal < 300 s; runs spread over the slot's first minute by design)  {refresh_calls} calls, {:.1} per tenant-hour; peak {refresh_peak} PG connections; CPU {:.1} ms per tenant-run",
            per(refresh),
            refresh_calls as f64 / f64::from(tenants),
            1000.0 * refresh_cpu / runs_per_round as f64
        );
        println!("pools over their limit: {over}");
        if first > Duration::from_secs(900) {
            failed.push(format!("first runs took {first:?}, goal 15 min"));
        }
        if refresh > Duration::from_secs(300) {
            failed.push(format!("the hourly refresh took {refresh:?}, goal 5 min"));
        }
        drop(pg);
        assert!(failed.is_empty(), "goals missed: {failed:#?}");
    });
}
