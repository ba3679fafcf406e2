//! A backlog drained to a Splunk HTTP Event Collector: `EVENTS` (default 100,000) events wait in
//! the store's outbox (written through the store's own feed path, as new incidents would be),
//! and the release binary's `kri daemon` delivers them to the sandbox's receiver on 127.0.0.1
//! with the `splunk_hec` sink, batched, through the production path (lease, cursor, batches of
//! 100, one transaction per batch). Real clock, no test hooks.
//!
//! Reports the drain's throughput and the daemon's peak memory, side by side with the ceiling:
//! the same batches POSTed straight to the receiver by this process, with no store. Fails when
//! a target is missed: at least 5,000 events/s, under 64 MiB, every event exactly once.
//!
//! `cargo bench -p kri-runner --bench sink_drain` (EVENTS=10000 for a quick look).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kri_connector_ctr::fetch::StoredIncident;
use kri_core::Store;
use kri_core::events::FeedChange;
use kri_sandbox::receiver::Receiver;
use serde_json::json;

/// The peak resident size of process `pid` since it started its program (`VmHWM`), in MiB.
/// (Not the children's `ru_maxrss`: that counts the forked copy of this process before it runs
/// kri, and this process holds the whole backlog.)
fn peak_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// An incident as a SOC would forward it: a summary of a few hundred bytes.
fn incident(i: usize) -> serde_json::Value {
    json!({
        "display_id": 10_000 + i,
        "title": format!("user[@]example[.]com reported a message \"Invoice {i} overdue\""),
        "state": "open", "priority": "high", "dispositions": ["malicious"],
        "assigned_team": "SOC_Analyst", "message_count": 1 + i % 7,
        "created_at": "2026-12-02T10:00:00.000+00:00", "updated_at": "2026-12-02T10:05:00.000+00:00",
        "closed_at": null,
    })
}

fn main() {
    let events: usize = std::env::var("EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("kri.db");
    let (drain, ceiling, peak) = rt.block_on(async {
        let receiver = Receiver::start().await.expect("the receiver");

        // The backlog, through the store's feed path, 5,000 incidents a transaction.
        let store = Store::open(&db).expect("store");
        let now = chrono::Utc::now();
        let id = |i: usize| format!("00000000-0000-4000-8000-{i:012}");
        let seeding = Instant::now();
        for chunk in (0..events).collect::<Vec<_>>().chunks(5_000) {
            let rows: Vec<(String, StoredIncident)> = chunk
                .iter()
                .map(|&i| (format!("incident/{}", id(i)), StoredIncident(incident(i))))
                .collect();
            let changes = chunk
                .iter()
                .map(|&i| FeedChange {
                    id: id(i),
                    created: true,
                    severity: "critical",
                    module: "ctr".into(),
                    item: incident(i),
                })
                .collect();
            store
                .state("ctr")
                .put_feed(now, "default", &rows, changes)
                .await
                .expect("seed the outbox");
        }
        println!("{events} events written to the outbox in {:.1} s", seeding.elapsed().as_secs_f64());
        drop(store);
        // Every connector marked as run in a far slot: the daemon starts no run while measured.
        let conn = rusqlite::Connection::open(&db).expect("the store file");
        for m in ["tap", "efd", "clear", "ctr"] {
            conn.execute(
                "INSERT INTO slots (name, slot) VALUES (?1, '9999-12-31T00:00:00Z')",
                rusqlite::params![m],
            )
            .expect("a slot mark");
        }
        drop(conn);

        // The ceiling: the same batches, straight from here, one connection, no store.
        let bodies: Vec<String> = (0..events)
            .collect::<Vec<_>>()
            .chunks(100)
            .map(|c| {
                c.iter()
                    .map(|&i| {
                        let e = json!({"id": format!("ceiling-{i}"), "type": "incident.created", "incident": incident(i)});
                        format!("{}\n", json!({"time": now.timestamp(), "event": e, "sourcetype": "kri:event"}))
                    })
                    .collect()
            })
            .collect();
        let http = reqwest::Client::new();
        let url = format!("{}/services/collector/event", receiver.base_url());
        let started = Instant::now();
        for body in bodies {
            let r = http.post(&url).body(body).send().await.expect("the receiver answers");
            assert!(r.status().is_success());
        }
        let ceiling = started.elapsed();
        assert_eq!(receiver.accepted(), events);

        // The drain: kri daemon with the backlog and a splunk_hec sink; nothing else to run.
        let config = dir.path().join("kri.toml");
        std::fs::write(
            &config,
            format!(
                "[store]\npath = \"{}\"\n\n[proofpoint]\nbase_url = \"http://127.0.0.1:9\"\ncredentials = \"bench:bench\"\n\n\
                 [sinks.splunk]\ntype = \"splunk_hec\"\nurl = \"{}\"\ntoken = \"bench-token\"\n\
                 events = [\"incident.created\"]\n",
                db.display(),
                receiver.base_url()
            ),
        )
        .expect("config");
        let started = Instant::now();
        let mut child = Command::new(env!("CARGO_BIN_EXE_kri"))
            .args(["--config", config.to_str().expect("utf-8"), "--output", "json", "daemon"])
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kri daemon starts");
        let out = child.stdout.take().expect("stdout");
        std::thread::spawn(move || for _ in BufReader::new(out).lines() {});
        let err = child.stderr.take().expect("stderr");
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let keep = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                keep.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let deadline = Instant::now() + Duration::from_secs(600);
        while receiver.accepted() < 2 * events {
            if Instant::now() > deadline || child.try_wait().ok().flatten().is_some() {
                let _ = child.kill();
                panic!(
                    "only {} of {events} events delivered; kri said:\n{}",
                    receiver.accepted() - events,
                    stderr.lock().unwrap()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let drain = started.elapsed();
        // SAFETY: kill sends a signal to our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        // The peak as it stops (a final delivery pass), read until it is gone.
        let mut peak = 0.0_f64;
        let status = loop {
            if let Some(mib) = peak_mib(child.id()) {
                peak = peak.max(mib);
            }
            if let Some(status) = child.try_wait().expect("kri daemon") {
                break status;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        assert!(status.success(), "kri daemon: {status}");
        let twice = receiver.ids().values().filter(|n| **n != 1).count();
        assert_eq!(twice, 0, "events delivered more than once");
        let batches = receiver.batches();
        assert!(batches.iter().all(|b| b.len() <= 100));
        (drain, ceiling, peak)
    });

    let rate = |d: Duration| events as f64 / d.as_secs_f64();
    println!();
    println!("| {events} events to the HEC receiver | time | events/s | peak memory |");
    println!("|---|---|---|---|");
    println!(
        "| kri daemon, outbox → splunk_hec (start-up included) | {:.2} s | {:.0} | {peak:.1} MiB |",
        drain.as_secs_f64(),
        rate(drain)
    );
    println!(
        "| ceiling: the same batches POSTed straight, no store | {:.2} s | {:.0} | – |",
        ceiling.as_secs_f64(),
        rate(ceiling)
    );
    let mut failed = Vec::new();
    if rate(drain) < 5_000.0 {
        failed.push(format!("{:.0} events/s is under 5,000", rate(drain)));
    }
    if peak >= 64.0 {
        failed.push(format!("{peak:.1} MiB is not under 64 MiB"));
    }
    if !failed.is_empty() {
        eprintln!("missed: {}", failed.join("; "));
        std::process::exit(1);
    }
}
