//! Benchmark: parse a synthetic one-hour `/v2/siem/all` answer of at least 200 MB from disk,
//! as the connector does (streamed), and report throughput and peak memory.
//!
//! `cargo bench -p kri-connector-tap --bench siem_parse` (size: `SIEM_BENCH_MB`, default 256).
//! Peak memory is the process's high-water mark (VmHWM, Linux); the answer is written to a
//! temp file record by record first, so the mark is the parser's.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::time::Instant;

fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn message(i: u64, classification: &str) -> String {
    format!(
        r#"{{"GUID":"guid-{g}","id":"id-{i}","QID":"q{i}","messageID":"<{i}@example.com>","messageTime":"2026-11-23T09:{m:02}:00.000Z","sender":"s{i}@example.net","recipient":["r{i}@example.com"],"senderIP":"192.0.2.{ip}","subject":"Invoice {i} please review the attached document","fromAddress":["s{i}@example.net"],"headerFrom":"\"Sender\" <s{i}@example.net>","spamScore":{s},"phishScore":{p},"malwareScore":0,"impostorScore":0.0,"quarantineFolder":null,"quarantineRule":null,"modulesRun":["spam","urldefense","sandbox"],"policyRoutes":["default_inbound"],"completelyRewritten":"true","messageParts":[{{"contentType":"text/html","filename":"text.html","md5":"008c5926ca861023c1d2a36653fd88e2","sha256":"85738f8f9a7f1b04b5329c590ebcb9e425925c6d0984089c43a022de4f19c281","sandboxStatus":null,"disposition":"inline","oContentType":"text/html"}}],"threatsInfoMap":[{{"threatID":"{t:064x}","threatStatus":"active","classification":"{classification}","threatUrl":"https://threatinsight.proofpoint.com/x/threat/email/{t:064x}","threatTime":"2026-11-23T09:{m:02}:30.000Z","threat":"http://bad.example/{i}","campaignID":null,"threatType":"url"}}]}}"#,
        g = i / 3,
        m = i % 60,
        ip = i % 250,
        s = i % 100,
        p = (i * 7) % 100,
        t = u128::from(i) * 0x9e37_79b9_7f4a_7c15,
    )
}

fn main() {
    let target_mb: u64 = std::env::var("SIEM_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let dir = tempfile_dir();
    let path = dir.join("siem-all-hour.json");
    let mut written: u64 = 0;
    let mut records: u64 = 0;
    // clicksBlocked (the last section) is skipped with IgnoredAny, not counted.
    let mut skipped: u64 = 0;
    {
        let mut w = BufWriter::new(File::create(&path).expect("create bench file"));
        let mut put = |s: &str, written: &mut u64| {
            w.write_all(s.as_bytes()).expect("write");
            *written += s.len() as u64;
        };
        put(
            r#"{"queryEndTime":"2026-11-23T10:00:00Z","messagesDelivered":["#,
            &mut written,
        );
        let arrays = ["messagesBlocked", "clicksPermitted", "clicksBlocked"];
        let per_array = target_mb * 1024 * 1024 / 4;
        let mut section = 0;
        let mut first = true;
        loop {
            let class = if records.is_multiple_of(10) {
                "IMPOSTOR"
            } else {
                "phish"
            };
            if !first {
                put(",", &mut written);
            }
            first = false;
            put(&message(records, class), &mut written);
            records += 1;
            if section == 3 {
                skipped += 1;
            }
            if written >= per_array * (section + 1) {
                if section == 3 {
                    break;
                }
                put(&format!(r#"],"{}":["#, arrays[section as usize]), &mut written);
                section += 1;
                first = true;
            }
        }
        put("]}", &mut written);
        w.flush().expect("flush");
    }
    let before = peak_rss_mb();
    let start = Instant::now();
    let counts = kri_connector_tap::siem::parse(BufReader::with_capacity(64 * 1024, File::open(&path).expect("open")))
        .expect("parse");
    let secs = start.elapsed().as_secs_f64();
    let mb = written as f64 / (1024.0 * 1024.0);
    let _ = std::fs::remove_file(&path);
    assert_eq!(counts.records, records - skipped);
    println!(
        "siem_parse: {mb:.0} MB, {records} records in {secs:.2} s = {:.0} MB/s",
        mb / secs
    );
    println!(
        "siem_parse: counted delivered={} clicks_permitted={} impostor={}",
        counts.delivered.len(),
        counts.clicks_permitted.len(),
        counts.impostor.len()
    );
    match (before, peak_rss_mb()) {
        (Some(b), Some(p)) => {
            println!("siem_parse: peak memory (VmHWM) {p:.1} MB (before parsing {b:.1} MB)");
            assert!(p < 64.0, "peak memory {p:.1} MB is over the 64 MB budget");
        }
        _ => println!("siem_parse: peak memory not available on this platform"),
    }
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("kri-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}
