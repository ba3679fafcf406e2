//! The sink against a real rsyslogd (Debian's `rsyslog`, started here per test on free ports of
//! 127.0.0.1, writing what it receives to a file): TCP, UDP, TLS through a TLS front, CEF, and the
//! failures a delivery reports.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kri_core::figment::value::{Dict, Value as Fv};
use kri_core::sink::{Sink, SinkError, SinkSettings, sink_types};
use serde_json::{Value, json};

use kri_sink_syslog as _;

const RSYSLOGD: &str = "/usr/sbin/rsyslogd";

/// One rsyslogd with a TCP and a UDP input, writing every message to `out.log` as
/// `PRI|HOSTNAME|APP-NAME|PROCID|MSGID|STRUCTURED-DATA|MSG`. Stopped when dropped.
struct Rsyslog {
    tcp: u16,
    udp: u16,
    dir: tempfile::TempDir,
    child: Child,
}

/// One message as rsyslog parsed it.
#[derive(Debug)]
struct Record {
    pri: String,
    hostname: String,
    app: String,
    procid: String,
    msgid: String,
    sd: String,
    msg: String,
}

impl Rsyslog {
    fn start() -> Rsyslog {
        assert!(
            Path::new(RSYSLOGD).is_file(),
            "no {RSYSLOGD} here: install rsyslog (Debian: apt-get install rsyslog), as .ci/run does"
        );
        let dir = tempfile::Builder::new()
            .prefix("kri-rsyslog-")
            .tempdir()
            .expect("a folder");
        let tcp = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free TCP port")
            .port();
        let udp = std::net::UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .expect("a free UDP port")
            .port();
        let d = dir.path().display();
        let conf = dir.path().join("rsyslog.conf");
        std::fs::write(
            &conf,
            format!(
                r#"global(workDirectory="{d}" maxMessageSize="64k")
module(load="imtcp")
input(type="imtcp" port="{tcp}" address="127.0.0.1")
module(load="imudp")
input(type="imudp" port="{udp}" address="127.0.0.1")
template(name="t" type="string" string="%pri%|%hostname%|%app-name%|%procid%|%msgid%|%structured-data%|%msg%\n")
action(type="omfile" file="{d}/out.log" template="t")
"#
            ),
        )
        .expect("write rsyslog.conf");
        let child = Command::new(RSYSLOGD)
            .arg("-n")
            .arg("-f")
            .arg(&conf)
            .arg("-i")
            .arg(dir.path().join("rsyslogd.pid"))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.path().join("stdout")).expect("stdout file"))
            .stderr(std::fs::File::create(dir.path().join("stderr")).expect("stderr file"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {RSYSLOGD}: {e}"));
        let mut r = Rsyslog { tcp, udp, dir, child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", tcp)).is_err() || !udp_bound(udp) {
            if let Ok(Some(status)) = r.child.try_wait() {
                panic!("rsyslogd ended ({status}): {}", r.stderr());
            }
            assert!(
                Instant::now() < deadline,
                "rsyslogd did not listen on {tcp}/tcp and {udp}/udp within 10 s: {}",
                r.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        r
    }

    fn stderr(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default();
        format!("{}{}", read("stdout"), read("stderr"))
    }

    /// The messages from kri received so far (not rsyslogd's own).
    fn records(&self) -> Vec<Record> {
        let text = std::fs::read_to_string(self.dir.path().join("out.log")).unwrap_or_default();
        text.lines()
            .filter_map(|line| {
                let f: Vec<&str> = line.splitn(7, '|').collect();
                (f.len() == 7).then(|| Record {
                    pri: f[0].into(),
                    hostname: f[1].into(),
                    app: f[2].into(),
                    procid: f[3].into(),
                    msgid: f[4].into(),
                    sd: f[5].into(),
                    msg: f[6].into(),
                })
            })
            .filter(|r| r.app == "kri")
            .collect()
    }

    /// Wait (10 s at most) until `n` messages from kri have arrived.
    async fn wait_for(&self, n: usize) -> Vec<Record> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let records = self.records();
            if records.len() >= n {
                return records;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} messages arrived within 10 s: {records:#?}\nrsyslogd: {}",
                records.len(),
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A UDP socket is bound to 127.0.0.1:`port` (rsyslog's UDP input is up).
fn udp_bound(port: u16) -> bool {
    let table = std::fs::read_to_string("/proc/net/udp").unwrap_or_default();
    let local = format!("0100007F:{port:04X}");
    table
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some(local.as_str()))
}

fn sink(table: &[(&str, String)], timeout: Duration) -> Result<Box<dyn Sink>, String> {
    let reg = sink_types()
        .into_iter()
        .find(|r| r.kind == "syslog")
        .expect("the syslog sink is registered");
    let table: Dict = table
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Fv::from(v.clone())))
        .collect();
    (reg.build)(&SinkSettings::new("siem", table, timeout)).map_err(|e| format!("{}: {}", e.key, e.message))
}

fn band_changed(id: &str) -> Value {
    json!({"id": id, "type": "kri.band_changed", "time": "2026-11-23T10:20:00Z", "tenant": "acme",
           "severity": "critical",
           "kri": {"slug": "pp_vap_count", "title": "Very Attacked People", "module": "tap", "value": 31.0,
                   "previous_value": 12.0, "from": "amber", "to": "red", "amber": 10.0, "red": 25.0,
                   "direction": "higher-is-worse", "owner": "SOC lead (Zoë Ström)", "action": "Review the VAP list"},
           "incident": null, "run_id": "4b1e9c0a-0d7f-4c55-9a3e-2f6d8b7c1e00"})
}

fn incident_created(id: &str) -> Value {
    json!({"id": id, "type": "incident.created", "time": "2026-11-23T10:21:07.250Z", "tenant": "acme",
           "severity": "warning", "kri": null,
           "incident": {"id": "8d2f4e6a-3c1b-4a9d-b7e5-0f2a4c6e8b1d", "module": "ctr", "display_id": 4711,
                        "title": "Credential phish reported by finance", "state": "Open", "priority": "High",
                        "dispositions": ["Phish"], "assigned_team": "SOC", "message_count": 3,
                        "created_at": "2026-11-23T10:05:00Z", "updated_at": "2026-11-23T10:20:00Z",
                        "closed_at": null},
           "run_id": "4b1e9c0a-0d7f-4c55-9a3e-2f6d8b7c1e00"})
}

fn connector_failed(id: &str) -> Value {
    json!({"id": id, "type": "connector.failed", "time": "2026-11-23T10:20:00+01:00", "tenant": "acme",
           "severity": "critical", "kri": null, "incident": null, "run_id": null,
           "connector": {"module": "tap", "error": "401 Unauthorized: check the service principal"}})
}

/// Text from outside that would break a line-based or a naive SD parser: a newline, `]`, `"`, a
/// forged SD element.
fn awkward(id: &str) -> Value {
    let mut e = incident_created(id);
    e["tenant"] = json!(r#"acme "eu"]"#);
    e["incident"]["title"] = json!("Payroll change\n] [kri@32473 id=\"forged\"] <13>1 - forged - - -");
    e
}

fn id(n: u32) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

/// The record is `event`, sent by kri with its PRI, MSGID and SD, the JSON intact.
fn assert_json_record(r: &Record, event: &Value) {
    let severity = match event["severity"].as_str() {
        Some("critical") => 2,
        Some("warning") => 4,
        _ => 6,
    };
    assert_eq!(r.pri, (16 * 8 + severity).to_string(), "local0 and the severity: {r:?}");
    assert_eq!((r.hostname.as_str(), r.procid.as_str()), ("kri-test", "-"));
    assert_eq!(r.msgid, event["type"].as_str().unwrap());
    let tenant = event["tenant"]
        .as_str()
        .unwrap()
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace(']', "\\]");
    assert_eq!(
        r.sd,
        format!(
            r#"[kri@32473 id="{}" tenant="{tenant}"]"#,
            event["id"].as_str().unwrap()
        )
    );
    let back: Value = serde_json::from_str(&r.msg).unwrap_or_else(|e| panic!("MSG is not the event JSON ({e}): {r:?}"));
    assert_eq!(&back, event);
}

fn table(address: String, more: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    let mut t = vec![("address", address), ("hostname", "kri-test".to_owned())];
    t.extend(more.iter().map(|(k, v)| (*k, (*v).to_owned())));
    t
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_over_tcp_arrives_in_rsyslog_one_record_per_event() {
    let rs = Rsyslog::start();
    let s = sink(&table(format!("127.0.0.1:{}", rs.tcp), &[]), Duration::from_secs(5)).unwrap();
    let batch = [band_changed(&id(1)), incident_created(&id(2)), connector_failed(&id(3))];
    s.deliver(&batch).await.expect("delivered");
    let records = rs.wait_for(3).await;
    for (r, e) in records.iter().zip(&batch) {
        assert_json_record(r, e);
    }

    let odd = awkward(&id(4));
    s.deliver(std::slice::from_ref(&odd)).await.expect("delivered");
    let records = rs.wait_for(4).await;
    assert_json_record(&records[3], &odd);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        rs.records().len(),
        4,
        "the newline and the forged element made no record of their own"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_over_udp_arrives_in_rsyslog_one_datagram_per_event() {
    let rs = Rsyslog::start();
    let s = sink(
        &table(format!("127.0.0.1:{}", rs.udp), &[("protocol", "udp")]),
        Duration::from_secs(5),
    )
    .unwrap();
    let batch = [band_changed(&id(1)), incident_created(&id(2)), awkward(&id(3))];
    s.deliver(&batch).await.expect("sent");
    let records = rs.wait_for(3).await;
    for (r, e) in records.iter().zip(&batch) {
        assert_json_record(r, e);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rs.records().len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn over_tls_it_arrives_with_the_ca_and_is_refused_with_another() {
    let rs = Rsyslog::start();
    let ca = kri_testtls::TestCa::new("kri syslog test CA");
    let front = kri_testtls::TlsFront::start(
        format!("127.0.0.1:{}", rs.tcp).parse().unwrap(),
        &ca.server(&["localhost", "127.0.0.1"]),
    )
    .await;
    let certs = tempfile::tempdir().unwrap();
    let address = format!("localhost:{}", front.addr.port());
    let trusted = ca.write(certs.path(), "ca.pem");
    let other: PathBuf = kri_testtls::TestCa::new("another CA").write(certs.path(), "other.pem");
    let tls = |ca_file: &Path| {
        sink(
            &table(
                address.clone(),
                &[("protocol", "tls"), ("ca_file", ca_file.to_str().unwrap())],
            ),
            Duration::from_secs(5),
        )
        .unwrap()
    };

    let refused: SinkError = tls(&other)
        .deliver(&[band_changed(&id(66))])
        .await
        .expect_err("a server the CA did not sign");
    assert!(!refused.permanent, "tried again later: {}", refused.message);
    assert!(
        refused.message.contains("certificate is not trusted") && refused.message.contains(&address),
        "{}",
        refused.message
    );

    let batch = [band_changed(&id(1)), incident_created(&id(2))];
    tls(&trusted).deliver(&batch).await.expect("delivered over TLS");
    let records = rs.wait_for(2).await;
    for (r, e) in records.iter().zip(&batch) {
        assert_json_record(r, e);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rs.records().len(), 2, "nothing of the refused delivery arrived");
}

#[tokio::test(flavor = "multi_thread")]
async fn cef_arrives_as_one_cef_record() {
    let rs = Rsyslog::start();
    let s = sink(
        &table(format!("127.0.0.1:{}", rs.tcp), &[("format", "cef")]),
        Duration::from_secs(5),
    )
    .unwrap();
    s.deliver(&[band_changed(&id(1)), awkward(&id(2))])
        .await
        .expect("delivered");
    let records = rs.wait_for(2).await;
    let cef = &records[0].msg;
    assert!(cef.starts_with("CEF:0|kri|kri|"), "{cef}");
    assert!(
        cef.contains("|kri.band_changed|KRI pp_vap_count amber → red|9|rt=1795429200000 "),
        "{cef}"
    );
    assert!(cef.contains(&format!("externalId={}", id(1))), "{cef}");
    assert!(cef.contains("cs2Label=slug cs2=pp_vap_count cs3Label=band cs3=red cn1Label=value cn1=31"));
    let odd = &records[1].msg;
    assert!(odd.contains("|incident.created|Incident created|6|"), "{odd}");
    assert!(
        odd.contains(r#"msg=Payroll change\n] [kri@32473 id\="forged"]"#),
        "{odd}"
    );
    assert_eq!(records[1].msgid, "incident.created");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_closed_port_is_a_retry_naming_the_address() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let address = format!("127.0.0.1:{port}");
    let s = sink(&table(address.clone(), &[]), Duration::from_secs(5)).unwrap();
    let e = s.deliver(&[band_changed(&id(1))]).await.expect_err("nothing listens");
    assert!(!e.permanent);
    assert!(
        e.message.contains(&address) && e.message.contains("cannot connect"),
        "{}",
        e.message
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_never_answers_the_handshake_is_a_timeout() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("localhost:{}", silent.local_addr().unwrap().port());
    let accepting = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = silent.accept().await {
            held.push(tcp);
        }
    });
    let certs = tempfile::tempdir().unwrap();
    let ca = kri_testtls::TestCa::new("kri syslog test CA").write(certs.path(), "ca.pem");
    let s = sink(
        &table(
            address.clone(),
            &[("protocol", "tls"), ("ca_file", ca.to_str().unwrap())],
        ),
        Duration::from_millis(500),
    )
    .unwrap();
    let started = Instant::now();
    let e = s.deliver(&[band_changed(&id(1))]).await.expect_err("no handshake");
    assert!(started.elapsed() < Duration::from_secs(3), "bounded by the timeout");
    assert!(!e.permanent);
    assert!(
        e.message.contains("timeout") && e.message.contains(&address),
        "{}",
        e.message
    );
    accepting.abort();
}
