//! The sink against a real SMTP server: aiosmtpd (Debian's `python3-aiosmtpd`, run by
//! kri-testtls's `smtpd.py` with `/usr/bin/python3`) on 127.0.0.1, with STARTTLS, implicit TLS, AUTH and
//! a refusing mode; certificates from a CA made in the test.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kri_core::figment::value::{Dict, Value as Fv};
use kri_core::sink::{Sink, SinkError, SinkSettings, sink_types};
use kri_testtls::TestCa;
use serde_json::{Value, json};

use kri_sink_email as _;

const PASSWORD: &str = "s3cret-Pass-word";

/// aiosmtpd on a free port (kri-testtls starts it), with `smtpd.py`'s options.
fn smtpd(args: &[&str]) -> kri_testtls::Smtpd {
    kri_testtls::Smtpd::start(args).unwrap_or_else(|e| panic!("{e}"))
}

/// A CA, a certificate for `localhost` signed by it, both written to `dir`: (CA file, cert, key).
fn certificates(dir: &Path, ca: &TestCa) -> (PathBuf, String, String) {
    let cert = ca.server(&["localhost"]);
    let (cert_path, key_path) = (dir.join("server.pem"), dir.join("server.key"));
    std::fs::write(&cert_path, &cert.cert_pem).unwrap();
    std::fs::write(&key_path, &cert.key_pem).unwrap();
    (
        ca.write(dir, "ca.pem"),
        cert_path.display().to_string(),
        key_path.display().to_string(),
    )
}

fn sink(entries: Vec<(&str, Fv)>) -> Box<dyn Sink> {
    sink_within(entries, Duration::from_secs(10))
}

fn sink_within(entries: Vec<(&str, Fv)>, timeout: Duration) -> Box<dyn Sink> {
    let reg = sink_types()
        .into_iter()
        .find(|r| r.kind == "email")
        .expect("the email sink is registered");
    let table: Dict = entries.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    (reg.build)(&SinkSettings::new("mail", table, timeout)).unwrap_or_else(|e| panic!("the sink builds: {e}"))
}

fn s(v: impl ToString) -> Fv {
    Fv::from(v.to_string())
}

/// A sink to `port` of `server`, with the sender, two recipients and what `more` adds.
fn mail_sink(server: &str, port: u16, more: Vec<(&'static str, Fv)>) -> Box<dyn Sink> {
    let mut entries = vec![
        ("server", s(server)),
        ("port", Fv::from(port)),
        ("from", s("KRI <kri@example.com>")),
        (
            "to",
            Fv::from(vec!["soc@example.com".to_owned(), "ciso@example.com".to_owned()]),
        ),
    ];
    entries.extend(more);
    sink(entries)
}

const FIRST_ID: &str = "0e7c1d2a-0000-4000-8000-000000000001";

fn batch() -> Vec<Value> {
    vec![
        json!({"id": FIRST_ID, "type": "kri.band_changed", "time": "2026-11-23T10:20:00Z", "tenant": "acme",
               "severity": "critical",
               "kri": {"slug": "pp_vap_count", "title": "Very Attacked People", "module": "tap", "value": 31.0,
                       "previous_value": 12.0, "from": "amber", "to": "red", "amber": 10.0, "red": 25.0,
                       "direction": "higher", "owner": "SOC lead", "action": "https://wiki.example/vap"}}),
        json!({"id": "0e7c1d2a-0000-4000-8000-000000000002", "type": "kri.band_changed",
               "time": "2026-11-23T10:20:00Z", "tenant": "acme", "severity": "warning",
               "kri": {"slug": "pp_click_rate", "title": "Click <script>x</script> rate", "module": "tap",
                       "value": 0.125, "from": null, "to": "amber", "amber": 0.1, "red": 0.2,
                       "owner": null, "action": "escalate"}}),
        json!({"id": "0e7c1d2a-0000-4000-8000-000000000003", "type": "incident.created",
               "time": "2026-11-23T10:20:00Z", "tenant": "acme", "severity": "critical", "kri": null,
               "incident": {"id": "5b7a", "module": "ctr", "display_id": 1234, "title": "Credential phish",
                            "state": "Open"}}),
    ]
}

fn auth(user: &str, password: &str) -> Vec<(&'static str, Fv)> {
    vec![("username", s(user)), ("password", s(password))]
}

async fn refused(sink: &dyn Sink) -> SinkError {
    match sink.deliver(&batch()).await {
        Ok(()) => panic!("the batch was delivered"),
        Err(e) => e,
    }
}

#[tokio::test]
async fn starttls_with_auth_sends_one_multipart_mail_per_batch_to_every_recipient() {
    let dir = tempfile::tempdir().unwrap();
    let (ca_file, cert, key) = certificates(dir.path(), &TestCa::new("kri mail test CA"));
    let server = smtpd(&["--starttls", &cert, &key, "--auth", "kri", PASSWORD]);
    let mut more = auth("kri", PASSWORD);
    more.push(("ca_file", s(ca_file.display())));
    let sink = mail_sink("localhost", server.port, more);
    sink.deliver(&batch()).await.unwrap();

    let mails = server.messages();
    assert_eq!(mails.len(), 1, "one mail for the batch: {mails:#?}");
    let m = &mails[0];
    assert_eq!(m["mail_from"], "kri@example.com");
    assert_eq!(m["rcpt_tos"], json!(["soc@example.com", "ciso@example.com"]));
    assert_eq!(
        (m["tls"].as_bool(), m["authenticated"].as_bool()),
        (Some(true), Some(true))
    );
    assert_eq!(m["subject"], "[kri] acme: 2 KRIs changed band (1 red), 1 new incident");
    assert_eq!(m["message_id"], format!("<{FIRST_ID}@kri>"));
    assert!(
        m["date"].as_str().unwrap().contains("23 Nov 2026 10:20:00"),
        "{}",
        m["date"]
    );
    assert_eq!(m["content_type"], "multipart/alternative");
    let parts: Vec<(&str, &str)> = m["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["type"].as_str().unwrap(), p["body"].as_str().unwrap()))
        .collect();
    assert_eq!(parts.len(), 2, "{parts:#?}");
    assert_eq!(parts[0].0, "text/plain");
    assert!(
        parts[0]
            .1
            .contains("- acme · Very Attacked People (pp_vap_count): amber → red, value 31 (amber 10, red 25)"),
        "{}",
        parts[0].1
    );
    assert_eq!(parts[1].0, "text/html");
    assert!(
        parts[1].1.contains("<a href=\"https://wiki.example/vap\">") && !parts[1].1.contains("<script>"),
        "{}",
        parts[1].1
    );

    // The same batch again (a retry) is the same message.
    sink.deliver(&batch()).await.unwrap();
    let mails = server.messages();
    assert_eq!(mails.len(), 2);
    assert_eq!(mails[1]["message_id"], mails[0]["message_id"]);
}

#[tokio::test]
async fn implicit_tls_works() {
    let dir = tempfile::tempdir().unwrap();
    let (ca_file, cert, key) = certificates(dir.path(), &TestCa::new("kri mail test CA"));
    let server = smtpd(&["--tls", &cert, &key, "--auth", "kri", PASSWORD]);
    let mut more = auth("kri", PASSWORD);
    more.extend([("security", s("tls")), ("ca_file", s(ca_file.display()))]);
    let sink = mail_sink("localhost", server.port, more);
    sink.deliver(&batch()).await.unwrap();
    let mails = server.messages();
    assert_eq!(mails.len(), 1);
    assert_eq!(
        (mails[0]["tls"].as_bool(), mails[0]["authenticated"].as_bool()),
        (Some(true), Some(true))
    );
    assert_eq!(mails[0]["message_id"], format!("<{FIRST_ID}@kri>"));
}

#[tokio::test]
async fn a_wrong_password_is_permanent_and_never_shown() {
    let dir = tempfile::tempdir().unwrap();
    let (ca_file, cert, key) = certificates(dir.path(), &TestCa::new("kri mail test CA"));
    let server = smtpd(&["--starttls", &cert, &key, "--auth", "kri", PASSWORD]);
    let wrong = "Wrong-Pass-4711";
    let mut more = auth("kri", wrong);
    more.push(("ca_file", s(ca_file.display())));
    let e = refused(&*mail_sink("localhost", server.port, more)).await;
    assert!(e.permanent, "{}", e.message);
    assert!(
        e.message.contains("535")
            && e.message.contains("password")
            && e.message.contains(&format!("localhost:{}", server.port)),
        "{}",
        e.message
    );
    assert!(!e.message.contains(wrong), "{}", e.message);
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn a_certificate_from_an_untrusted_ca_is_refused_and_tried_again() {
    let dir = tempfile::tempdir().unwrap();
    let (_, cert, key) = certificates(dir.path(), &TestCa::new("the server's CA"));
    let other = TestCa::new("another CA").write(dir.path(), "other-ca.pem");
    let server = smtpd(&["--starttls", &cert, &key]);
    let e = refused(&*mail_sink(
        "localhost",
        server.port,
        vec![("ca_file", s(other.display()))],
    ))
    .await;
    assert!(!e.permanent, "{}", e.message);
    assert!(
        !e.message.contains("error: Connection error"),
        "said once: {}",
        e.message
    );
    assert!(
        e.message.contains("certificate") && e.message.contains(&format!("localhost:{}", server.port)),
        "{}",
        e.message
    );
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn a_server_that_is_down_is_tried_again_and_named() {
    // A port nothing listens on: a server started and stopped.
    let port = smtpd(&[]).port;
    let e = refused(&*mail_sink("127.0.0.1", port, vec![("security", s("none"))])).await;
    assert!(!e.permanent, "{}", e.message);
    assert!(e.message.contains(&format!("127.0.0.1:{port}")), "{}", e.message);
}

#[tokio::test]
async fn a_550_to_a_recipient_is_permanent() {
    let server = smtpd(&["--fail-rcpt"]);
    let e = refused(&*mail_sink("127.0.0.1", server.port, vec![("security", s("none"))])).await;
    assert!(e.permanent, "{}", e.message);
    assert!(
        e.message.contains("550") && e.message.contains("from and to"),
        "{}",
        e.message
    );
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn a_server_that_stops_answering_is_given_up_on_after_the_timeout() {
    // Accepts the connection, never says a word.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let entries = vec![
        ("server", s("127.0.0.1")),
        ("port", Fv::from(port)),
        ("security", s("none")),
        ("from", s("kri@example.com")),
        ("to", s("soc@example.com")),
    ];
    let sink = sink_within(entries, Duration::from_secs(1));
    let started = std::time::Instant::now();
    let e = refused(&*sink).await;
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert!(!e.permanent, "{}", e.message);
    assert!(
        e.message
            .contains(&format!("127.0.0.1:{port} did not finish within 1 s")),
        "{}",
        e.message
    );
    drop(listener);
}
