//! A first TAP run of the real `kri` binary against the sandbox API (real limits), side by side
//! in one run with the ways it is compared to:
//!
//! 1. a busy hour of `TAP_BENCH_MB` (default 200) MB among 167 ordinary ones: kri, then the peers'
//!    way (`peer_siem.py`: fetch each window, `json.loads`, count) — time and peak memory;
//! 2. every request taking 100 ms, like the real API's round trip: kri reading windows
//!    `concurrency` (4) at a time, then one after another (`concurrency = 1`) — time.
//!
//! Values are checked exact, and the sandbox enforces the pools (a 429 would fail the run). The
//! sandbox runs in a child process of this one, so this process stays small and the peak memory
//! measured for each child (kri, the peer) is its own.
//! `cargo bench -p kri-runner --bench tap_first_run`. Fails when a target is missed.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DurationRound, Utc};
use kri_sandbox::busy::BusyHour;
use kri_sandbox::tap::expected;
use kri_sandbox::{Sandbox, Scenario};
use serde_json::Value;

const SIEM_KRIS: &str =
    r#"["pp_malicious_delivered_24h", "pp_malicious_clicks_post_delivery_7d", "pp_bec_impostor_7d"]"#;

/// The largest resident size of the children waited for so far, in MiB.
fn children_peak_mib() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut u);
        u
    };
    usage.ru_maxrss as f64 / 1024.0
}

struct Run {
    secs: f64,
    delivered_24h: u64,
    calls: u64,
}

/// A sandbox in a child process: its base URL and the busy hour's distinct delivered records.
struct Server {
    child: Child,
    url: String,
    busy_delivered: u64,
}

impl Server {
    /// `--serve busy MB` (a busy hour fifteen hours back) or `--serve slow` (100 ms a request).
    fn start(args: &[&str]) -> Server {
        let mut child = Command::new(std::env::current_exe().expect("own path"))
            .arg("--serve")
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("server starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("server prints its URL");
        let mut words = line.split_whitespace();
        let url = words.next().expect("URL").to_owned();
        let busy_delivered = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
        Server {
            child,
            url,
            busy_delivered,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The child: serve until killed.
fn serve(args: &[String]) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut scenario = Scenario::default();
    let mut busy_delivered = 0;
    match args.first().map(String::as_str) {
        Some("busy") => {
            let mb: usize = args.get(1).and_then(|v| v.parse().ok()).unwrap_or(200);
            let slot =
                Utc::now().duration_trunc(chrono::Duration::hours(1)).expect("hour") - chrono::Duration::hours(15);
            let busy = BusyHour::generate(slot, mb * 1024 * 1024, false);
            busy_delivered = busy.counts.delivered;
            scenario.busy_hour = Some(Arc::new(busy));
        }
        _ => scenario.latency = Duration::from_millis(100),
    }
    rt.block_on(async move {
        let sandbox = Sandbox::start(scenario).await.expect("sandbox");
        println!("{} {busy_delivered}", sandbox.base_url());
        std::future::pending::<()>().await;
    });
}

fn credentials() -> String {
    format!("{}:{}", kri_sandbox::DEMO_PRINCIPAL, kri_sandbox::DEMO_SECRET)
}

/// One `kri run` of the SIEM KRIs against `server`, with `concurrency`, on a new store.
fn kri(server: &Server, dir: &Path, concurrency: usize) -> Run {
    let store = dir.join(format!("kri-{concurrency}.db"));
    let _ = std::fs::remove_file(&store);
    let config = dir.join("kri.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\npath = \"{}\"\n{}\n[connectors.efd]\nenabled = false\n[connectors.clear]\nenabled = false\n\
             [connectors.ctr]\nenabled = false\n[connectors.tap]\nkris = {SIEM_KRIS}\nconcurrency = {concurrency}\n",
            store.display(),
            kri_sandbox::tap::demo_config(&server.url, &credentials()),
        ),
    )
    .expect("config");
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_kri"))
        .args(["--config", config.to_str().expect("utf-8"), "run", "--output", "json"])
        .env_remove("RUST_LOG")
        .output()
        .expect("kri runs");
    let secs = start.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "kri failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let run: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let tap = &run["connectors"][0];
    let delivered = tap["kris"]
        .as_array()
        .and_then(|k| k.iter().find(|k| k["slug"] == "pp_malicious_delivered_24h"))
        .and_then(|k| k["value"].as_u64())
        .expect("a value");
    Run {
        secs,
        delivered_24h: delivered,
        calls: tap["api_calls"].as_u64().unwrap_or(0),
    }
}

/// The peers' way against `server`: seconds, peak MiB, delivered in 24 h; `None` without python3.
fn peer(server: &Server) -> Option<(f64, f64, u64)> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peer_siem.py");
    let out = Command::new("python3")
        .args([script.to_str()?, &server.url, &credentials()])
        .output()
        .ok()?;
    assert!(
        out.status.success(),
        "peer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("peer JSON");
    Some((
        v["seconds"].as_f64()?,
        v["maxrss_kib"].as_f64()? / 1024.0,
        v["delivered_24h"].as_u64()?,
    ))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--serve") {
        return serve(&args[2..]);
    }
    let mb: usize = std::env::var("TAP_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let dir = std::env::temp_dir().join(format!("kri-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut failed = Vec::new();

    // 1. A busy hour among 167 ordinary ones.
    let mb_arg = mb.to_string();
    let server = Server::start(&["busy", &mb_arg]);
    let want = expected::DELIVERED_24H + server.busy_delivered;
    let k = kri(&server, &dir, 4);
    let k_mib = children_peak_mib();
    drop(server);
    assert_eq!(k.delivered_24h, want, "kri's count is exact");
    println!(
        "busy {mb} MB hour + 167 hours   kri:  {:>6.2} s, peak {:>7.1} MiB, {} calls",
        k.secs, k_mib, k.calls
    );
    let server = Server::start(&["busy", &mb_arg]);
    match peer(&server) {
        Some((secs, mib, delivered)) => {
            assert_eq!(delivered, want, "the peer's count is exact too");
            println!("busy hour + 167 hours            peer: {secs:>6.2} s, peak {mib:>7.1} MiB");
            let (faster, smaller) = (secs / k.secs, mib / k_mib);
            println!("  kri is {faster:.1}× faster (target ≥ 3×) with {smaller:.0}× less memory (target ≥ 10×)");
            if faster < 3.0 || smaller < 10.0 {
                failed.push("busy hour against the peer");
            }
        }
        None => println!("busy hour: the peer needs python3; skipped"),
    }
    drop(server);

    // 2. Every request takes 100 ms.
    let server = Server::start(&["slow"]);
    let parallel = kri(&server, &dir, 4);
    drop(server);
    let server = Server::start(&["slow"]);
    let sequential = kri(&server, &dir, 1);
    drop(server);
    assert_eq!(parallel.delivered_24h, expected::DELIVERED_24H);
    assert_eq!(sequential.delivered_24h, expected::DELIVERED_24H);
    println!(
        "100 ms a request, 168 windows    kri, 4 at a time: {:>6.2} s; one after another: {:>6.2} s ({} calls each)",
        parallel.secs, sequential.secs, parallel.calls
    );
    let faster = sequential.secs / parallel.secs;
    println!("  {faster:.1}× faster (target ≥ 3×)");
    if faster < 3.0 {
        failed.push("parallel windows");
    }
    let _ = std::fs::remove_dir_all(&dir);
    if !failed.is_empty() {
        eprintln!("tap_first_run: FAIL: {}", failed.join(", "));
        std::process::exit(1);
    }
}
