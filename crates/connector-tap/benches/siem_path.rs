//! The SIEM read path at full speed, as `kri run` takes it: the sandbox API on 127.0.0.1 serves
//! a busy hour of `SIEM_BENCH_MB` (default 256) MB, once with a `Content-Length` and once
//! chunked, and it is read through the same HTTP client, stream and parser as a run
//! (`feed::read_window`). Beside it, in the same run: the ceiling, a bare
//! `serde_json::from_slice::<IgnoredAny>` scan of the same bytes, and the parser alone on them.
//!
//! `cargo bench -p kri-connector-tap --bench siem_path`. The server and the reader are child
//! processes of this one, so the reader's peak memory (VmHWM) is its own; over the budget the
//! bench fails.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use kri_sandbox::busy::BusyHour;
use kri_sandbox::{Sandbox, Scenario};

/// The reader's peak memory budget.
const BUDGET_MB: f64 = 32.0;

fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn size_mb() -> usize {
    std::env::var("SIEM_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

/// The busy hour's slot, and the sandbox's "now" fifteen hours later.
fn slot_and_now() -> (DateTime<Utc>, DateTime<Utc>) {
    let slot = DateTime::parse_from_rfc3339("2026-11-23T00:00:00Z")
        .expect("valid")
        .to_utc();
    (slot, slot + chrono::Duration::hours(15))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or_default();
    match arg(1) {
        "--serve" => serve(arg(2) == "chunked"),
        "--read" => read(arg(2), false),
        "--drain" => read(arg(2), true),
        // For a profiler: only the parser, or only the ceiling, on the in-memory hour.
        "--only" => {
            let (slot, _) = slot_and_now();
            let hour = BusyHour::generate(slot, size_mb() * 1024 * 1024, false);
            let t = Instant::now();
            if arg(2) == "ceiling" {
                serde_json::from_slice::<serde::de::IgnoredAny>(&hour.body).expect("valid JSON");
            } else {
                kri_connector_tap::siem::parse_slice(&hour.body).expect("parses");
            }
            println!(
                "{:.0} MB/s",
                hour.body.len() as f64 / 1048576.0 / t.elapsed().as_secs_f64()
            );
        }
        _ => compare(),
    }
}

/// Child: serve the busy hour until killed; print the base URL.
fn serve(chunked: bool) {
    let (slot, now) = slot_and_now();
    let busy = BusyHour::generate(slot, size_mb() * 1024 * 1024, chunked);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async move {
        let sandbox = Sandbox::start(Scenario {
            now: Some(now),
            busy_hour: Some(Arc::new(busy)),
            ..Default::default()
        })
        .await
        .expect("sandbox");
        println!("{}", sandbox.base_url());
        std::future::pending::<()>().await;
    });
}

/// Child: read the hour through the production path (or only drain the body, for the cost of
/// the transport alone); print `seconds records delivered rss`.
fn read(base_url: &str, drain: bool) {
    let (slot, _) = slot_and_now();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async move {
        let credentials = kri_core::BasicCredentials::parse(&kri_core::Secret::new(format!(
            "{}:{}",
            kri_sandbox::DEMO_PRINCIPAL,
            kri_sandbox::DEMO_SECRET
        )))
        .expect("credentials");
        let opts = kri_core::HttpOptions {
            timeout: std::time::Duration::from_secs(600),
            ..Default::default()
        };
        let http = kri_core::HttpClient::new(base_url, Arc::new(kri_core::BasicAuth::new(credentials, "")), opts)
            .expect("client");
        let start = Instant::now();
        let (records, delivered) = if drain {
            use futures_util::StreamExt;
            let interval = format!(
                "{}/{}",
                kri_core::store::fmt_time(&slot),
                kri_core::store::fmt_time(&(slot + chrono::Duration::hours(1)))
            );
            let answer = http
                .stream(kri_core::Request::get("/v2/siem/all").query(&[("interval", &interval), ("format", "json")]))
                .await
                .expect("answer");
            let mut body = std::pin::pin!(answer.into_stream());
            let mut n = 0usize;
            while let Some(chunk) = body.next().await {
                n += chunk.expect("chunk").len();
            }
            assert!(n > 0);
            (0, 0)
        } else {
            let counts = kri_connector_tap::feed::read_window(&http, slot, slot + chrono::Duration::hours(1))
                .await
                .expect("the hour reads");
            (counts.records, counts.delivered.len() as u64)
        };
        let secs = start.elapsed().as_secs_f64();
        println!("{secs} {records} {delivered} {}", peak_rss_mb().unwrap_or(f64::NAN));
    });
}

struct Read {
    secs: f64,
    rss_mb: f64,
}

/// The best of five timings of `f`, in seconds (this machine is shared: the best is the least
/// disturbed).
fn best(f: impl Fn()) -> f64 {
    (0..5)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

/// Parent: one server and one reader per transfer mode, then the ceiling on the same bytes.
fn compare() {
    let me = std::env::current_exe().expect("own path");
    let (slot, _) = slot_and_now();
    let hour = BusyHour::generate(slot, size_mb() * 1024 * 1024, false);
    let mb = hour.body.len() as f64 / (1024.0 * 1024.0);
    println!(
        "siem_path: a busy hour of {mb:.0} MB, {} records counted",
        hour.counts.records
    );

    let mut reads = Vec::new();
    for (mode, reader) in [("length", "--read"), ("chunked", "--read"), ("length", "--drain")] {
        let mut server = Command::new(&me)
            .args(["--serve", mode])
            .stdout(Stdio::piped())
            .spawn()
            .expect("server starts");
        let mut url = String::new();
        BufReader::new(server.stdout.take().expect("stdout"))
            .read_line(&mut url)
            .expect("server prints its URL");
        let out = Command::new(&me)
            .args([reader, url.trim()])
            .output()
            .expect("reader runs");
        let _ = server.kill();
        let _ = server.wait();
        let text = String::from_utf8_lossy(&out.stdout);
        let f: Vec<f64> = text.split_whitespace().filter_map(|v| v.parse().ok()).collect();
        assert!(
            out.status.success() && f.len() == 4,
            "reader failed: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if reader == "--drain" {
            println!(
                "siem_path: HTTP ({mode:>7}) → body drained, no parsing:  {:>6.0} MB/s (the transport alone)",
                mb / f[0]
            );
            continue;
        }
        assert_eq!(
            (f[1] as u64, f[2] as u64),
            (hour.counts.records, hour.counts.delivered),
            "{mode}: the counts are exact"
        );
        println!(
            "siem_path: HTTP ({mode:>7}) → kri read path:             {:>6.0} MB/s, peak memory {:.1} MB",
            mb / f[0],
            f[3]
        );
        reads.push(Read {
            secs: f[0],
            rss_mb: f[3],
        });
    }

    let ceiling = best(|| {
        serde_json::from_slice::<serde::de::IgnoredAny>(&hour.body).expect("valid JSON");
    });
    let parser = best(|| {
        let c = kri_connector_tap::siem::parse_slice(&hour.body).expect("parses");
        assert_eq!(c.records, hour.counts.records);
    });
    let fed = best(|| {
        let mut p = kri_connector_tap::siem::Parser::default();
        for chunk in hour.body.chunks(64 * 1024) {
            p.feed(chunk).expect("parses");
        }
        assert_eq!(p.finish().expect("complete").records, hour.counts.records);
    });
    let read_best = reads.iter().map(|r| r.secs).fold(f64::INFINITY, f64::min);
    println!(
        "siem_path: in memory, the kri parser fed 64 KiB chunks: {:>6.0} MB/s",
        mb / fed
    );
    println!(
        "siem_path: in memory, the kri parser alone:           {:>6.0} MB/s",
        mb / parser
    );
    println!(
        "siem_path: in memory, from_slice::<IgnoredAny> (ceiling): {:>6.0} MB/s",
        mb / ceiling
    );
    println!(
        "siem_path: parser fed in chunks = {:.0} % of the ceiling (target ≥ 40 %), alone = {:.0} %, over HTTP = {:.0} %",
        100.0 * ceiling / fed,
        100.0 * ceiling / parser,
        100.0 * ceiling / read_best
    );
    let peak = reads.iter().map(|r| r.rss_mb).fold(0.0, f64::max);
    println!("siem_path: the reader's peak memory {peak:.1} MB (budget {BUDGET_MB:.0} MB)");
    if peak.is_finite() && peak > BUDGET_MB {
        eprintln!("siem_path: FAIL: peak memory {peak:.1} MB is over the {BUDGET_MB:.0} MB budget");
        std::process::exit(1);
    }
}
