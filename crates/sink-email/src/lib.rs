//! The `email` sink: one mail per batch of events over SMTP, a text and an HTML part, to a
//! list of recipients. STARTTLS (the default, port 587), implicit TLS (`tls`, port 465) or plain
//! SMTP (`none`, port 25: for a relay on this host). The password is a secret: sent only after
//! TLS is up (plain SMTP with credentials is refused at config time unless the server is this
//! host), never shown. The Message-ID is the first event's id, the Date its time: a batch sent
//! again is the same message, and receivers can drop the copy.

mod mail;

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::SystemTime;

use kri_core::Secret;
use kri_core::config::ConfigError;
use kri_core::secret::lenient_opt_string;
use kri_core::sink::{Sink, SinkError, SinkRegistration, SinkSettings};
use kri_core::text::{truncate, visible};
use lettre::message::header::{Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::Deserialize;
use serde_json::Value;

kri_core::inventory::submit! {
    SinkRegistration {
        kind: "email",
        description: "one mail per batch over SMTP (STARTTLS, TLS or plain), text and HTML",
        build,
        default_events: None,
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EmailConfig {
    /// The SMTP server's host name, e.g. `smtp.example.com`.
    server: Option<String>,
    /// Default by `security`: 587 (starttls), 465 (tls), 25 (none).
    port: Option<u16>,
    /// `starttls` (the default), `tls` (implicit TLS, "SMTPS") or `none` (a relay on this host).
    security: Option<String>,
    /// A PEM file of the CA certificates to trust instead of the system's.
    ca_file: Option<PathBuf>,
    #[serde(default, deserialize_with = "lenient_opt_string")]
    username: Option<String>,
    password: Option<Secret>,
    /// …or a file holding it.
    password_file: Option<PathBuf>,
    /// The sender, `kri@example.com` or `KRI <kri@example.com>`.
    from: Option<String>,
    /// The recipients: a list of addresses (or one).
    to: Option<Recipients>,
    /// Before every subject; `[kri]` by default, `""` for none.
    subject_prefix: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Recipients {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Security {
    StartTls,
    Tls,
    None,
}

impl Security {
    fn default_port(self) -> u16 {
        match self {
            Security::StartTls => 587,
            Security::Tls => 465,
            Security::None => 25,
        }
    }
}

/// `Auto-Submitted: auto-generated` (RFC 3834): no vacation replies to kri.
#[derive(Debug, Clone)]
struct AutoSubmitted;

impl Header for AutoSubmitted {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Auto-Submitted")
    }
    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(AutoSubmitted)
    }
    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "auto-generated".into())
    }
}

struct Email {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    /// `server:port`, for messages.
    endpoint: String,
    from: Mailbox,
    to: Vec<Mailbox>,
    subject_prefix: String,
    /// One attempt at most.
    timeout: std::time::Duration,
}

/// Longest subject prefix.
const MAX_PREFIX: usize = 40;

fn build(settings: &SinkSettings) -> Result<Box<dyn Sink>, ConfigError> {
    let cfg: EmailConfig = settings.parse()?;
    let key = |k: &str| settings.key(k);
    let server = cfg
        .server
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            ConfigError::missing(
                key("server"),
                "missing: the SMTP server's host name, e.g. \"smtp.example.com\"",
            )
        })?
        .to_owned();
    check_host(&server).map_err(|m| ConfigError::invalid(key("server"), m))?;
    let security = match cfg.security.as_deref().map(str::trim).unwrap_or("starttls") {
        "starttls" => Security::StartTls,
        "tls" => Security::Tls,
        "none" => Security::None,
        other => {
            return Err(ConfigError::invalid(
                key("security"),
                format!(
                    "`{}` is not starttls (port 587), tls (port 465) or none (a relay on this host)",
                    visible(other)
                ),
            ));
        }
    };
    let port = match cfg.port {
        Some(0) => {
            return Err(ConfigError::invalid(
                key("port"),
                "0 is no port: leave it out for the default (587 starttls, 465 tls, 25 none)",
            ));
        }
        Some(p) => p,
        None => security.default_port(),
    };
    let password = kri_core::secret::from_value_or_file(
        cfg.password,
        cfg.password_file.as_deref(),
        &key("password"),
        &key("password_file"),
    )?;
    let username = cfg.username.map(|u| u.trim().to_owned()).filter(|u| !u.is_empty());
    let credentials = match (username, password) {
        (None, None) => None,
        (None, Some(_)) => {
            return Err(ConfigError::missing(
                key("username"),
                "a password is set but no username: set username (the account to log in as), or remove the password",
            ));
        }
        (Some(_), None) => {
            return Err(ConfigError::missing(
                key("password"),
                format!(
                    "a username is set but no password: set password_file (or password, or \
                     KRI_SINKS__{}__PASSWORD)",
                    settings.name.to_uppercase()
                ),
            ));
        }
        (Some(user), Some(password)) => Some(Credentials::new(user, password.expose().to_owned())),
    };
    if credentials.is_some() && security == Security::None && !is_loopback(&server) {
        return Err(ConfigError::invalid(
            key("security"),
            format!(
                "\"none\" would send the password in clear to {server}: use starttls or tls (plain SMTP is for \
                 a relay on this host)"
            ),
        ));
    }
    let ca = match &cfg.ca_file {
        None => None,
        Some(_) if security == Security::None => {
            return Err(ConfigError::invalid(
                key("ca_file"),
                "has no use with security = \"none\" (no TLS): remove it, or use starttls or tls",
            ));
        }
        Some(path) => {
            let certs = kri_core::tls::read_ca_file(path).map_err(|m| ConfigError::invalid(key("ca_file"), m))?;
            let certs = certs
                .iter()
                .map(|c| Certificate::from_der(c.to_vec()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| ConfigError::invalid(key("ca_file"), format!("`{}`: {e}", path.display())))?;
            Some(certs)
        }
    };
    let from = cfg
        .from
        .as_deref()
        .ok_or_else(|| ConfigError::missing(key("from"), "missing: the sender, e.g. \"kri@example.com\""))
        .and_then(|a| mailbox(a).map_err(|m| ConfigError::invalid(key("from"), m)))?;
    let to = match cfg.to {
        None => Vec::new(),
        Some(Recipients::One(a)) => vec![a],
        Some(Recipients::Many(list)) => list,
    };
    if to.is_empty() {
        return Err(ConfigError::missing(
            key("to"),
            "missing: the recipients, e.g. [\"soc@example.com\"]",
        ));
    }
    let to = to
        .iter()
        .enumerate()
        .map(|(i, a)| mailbox(a).map_err(|m| ConfigError::invalid(key("to"), format!("entry {}: {m}", i + 1))))
        .collect::<Result<Vec<_>, _>>()?;
    let subject_prefix = cfg.subject_prefix.unwrap_or_else(|| "[kri]".into()).trim().to_owned();
    if subject_prefix.chars().any(char::is_control) || subject_prefix.chars().count() > MAX_PREFIX {
        return Err(ConfigError::invalid(
            key("subject_prefix"),
            format!("one line of at most {MAX_PREFIX} characters, e.g. \"[kri]\""),
        ));
    }
    let tls = match security {
        Security::None => Tls::None,
        Security::StartTls => Tls::Required(tls_parameters(&server, ca.as_deref(), settings)?),
        Security::Tls => Tls::Wrapper(tls_parameters(&server, ca.as_deref(), settings)?),
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(server.as_str())
        .port(port)
        .tls(tls)
        .timeout(Some(settings.timeout));
    if let Some(c) = credentials {
        builder = builder.credentials(c);
    }
    let endpoint = if server.contains(':') {
        format!("[{server}]:{port}")
    } else {
        format!("{server}:{port}")
    };
    Ok(Box::new(Email {
        transport: builder.build(),
        endpoint,
        from,
        to,
        subject_prefix,
        timeout: settings.timeout,
    }))
}

/// TLS to `server`: its certificate must chain to `ca` (the `ca_file`) when given, else to the
/// system's roots, and be for `server`.
fn tls_parameters(
    server: &str,
    ca: Option<&[Certificate]>,
    settings: &SinkSettings,
) -> Result<TlsParameters, ConfigError> {
    let mut builder = TlsParameters::builder(server.to_owned());
    if let Some(certs) = ca {
        builder = builder.certificate_store(CertificateStore::None);
        for cert in certs {
            builder = builder.add_root_certificate(cert.clone());
        }
    }
    builder.build().map_err(|e| {
        let (k, what) = match ca {
            Some(_) => ("ca_file", "cannot use these certificates"),
            None => (
                "server",
                "cannot load the system's trusted certificates (or name a ca_file)",
            ),
        };
        ConfigError::invalid(settings.key(k), format!("{what}: {e}"))
    })
}

/// A host name or an IP address, nothing else (no scheme, no port, no path).
fn check_host(server: &str) -> Result<(), String> {
    if server.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    let shown = truncate(&visible(server), 100);
    if server.contains("://") {
        return Err(format!(
            "`{shown}`: the host name only, e.g. \"smtp.example.com\" (say how with security)"
        ));
    }
    if server.contains(':') {
        return Err(format!("`{shown}`: the host name only; the port goes in port"));
    }
    let ok = server.len() <= 253
        && server.split('.').all(|l| {
            !l.is_empty() && l.len() <= 63 && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
    if !ok {
        return Err(format!("`{shown}` is not a host name, e.g. \"smtp.example.com\""));
    }
    Ok(())
}

/// `localhost` or a loopback address: plain SMTP never leaves this host.
fn is_loopback(server: &str) -> bool {
    server.eq_ignore_ascii_case("localhost") || server.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A mailbox, `a@example.com` or `Name <a@example.com>`, or what is wrong with it.
fn mailbox(text: &str) -> Result<Mailbox, String> {
    text.trim().parse::<Mailbox>().map_err(|e| {
        format!(
            "`{}` is not a mail address like \"kri@example.com\" or \"KRI <kri@example.com>\" ({e})",
            truncate(&visible(text), 200)
        )
    })
}

impl Email {
    fn message(&self, events: &[Value]) -> Result<Message, lettre::error::Error> {
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(mail::subject(&self.subject_prefix, events))
            .message_id(Some(mail::message_id(events)))
            .date(mail::date(events).unwrap_or_else(SystemTime::now))
            .header(AutoSubmitted);
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        builder.multipart(MultiPart::alternative_plain_html(
            mail::text(events),
            mail::html(events),
        ))
    }

    /// What went wrong, for the log and the dead letters: the server, what it said, what to
    /// check. A 5xx is permanent; anything else (4xx, no connection, TLS, a timeout) may pass.
    fn error(&self, e: &lettre::transport::smtp::Error) -> SinkError {
        let at = &self.endpoint;
        let detail = chain(e);
        if let Some(code) = e.status() {
            let code = u16::from(code);
            if e.is_permanent() {
                return SinkError::permanent(format!("SMTP server {at} refused the mail: {detail}; {}", hint(code)));
            }
            return SinkError::retry(format!("SMTP server {at} deferred the mail: {detail}"));
        }
        if e.is_timeout() {
            return SinkError::retry(format!("SMTP server {at} did not answer in time: {detail}"));
        }
        if e.is_tls() || detail.contains("certificate") {
            return SinkError::retry(format!(
                "TLS with SMTP server {at} failed: {detail}; check its certificate: trust its CA with ca_file (a PEM \
                 file) and set server to a name the certificate is for"
            ));
        }
        SinkError::retry(format!("cannot send through SMTP server {at}: {detail}"))
    }
}

/// An error and its causes, one line, visible, bounded, with every secret scrubbed.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    // lettre nests its errors: "Connection error: Connection error: …" says it once.
    let mut parts: Vec<&str> = text.split(": ").collect();
    parts.dedup();
    truncate(&kri_core::secret::scrub(&visible(&parts.join(": "))), 600)
}

/// What to check for a permanent SMTP answer.
fn hint(code: u16) -> &'static str {
    match code {
        530 | 534 | 535 | 538 => {
            "check username and password (password_file), and that the account may send mail through this server"
        }
        550 | 551 | 553 | 501 => {
            "check the addresses in from and to, and that this server relays mail from this sender"
        }
        552 => "the server refuses a mail this large",
        _ => "the server refuses this mail; its log says why",
    }
}

#[async_trait::async_trait]
impl Sink for Email {
    async fn deliver(&self, events: &[Value]) -> Result<(), SinkError> {
        if events.is_empty() {
            return Ok(());
        }
        let message = self.message(events).map_err(|e| {
            SinkError::permanent(format!("cannot make the mail for SMTP server {}: {e}", self.endpoint))
        })?;
        // lettre's timeout bounds connecting only: a server that stops answering is bounded here.
        match tokio::time::timeout(self.timeout, self.transport.send(message)).await {
            Ok(sent) => sent.map(drop).map_err(|e| self.error(&e)),
            Err(_) => Err(SinkError::retry(format!(
                "SMTP server {} did not finish within {} s",
                self.endpoint,
                self.timeout.as_secs_f64()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kri_core::figment::value::{Dict, Value as Fv};
    use std::time::Duration;

    fn build_with(entries: &[(&str, Fv)]) -> Result<Box<dyn Sink>, ConfigError> {
        let table: Dict = entries.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
        build(&SinkSettings::new("mail", table, Duration::from_secs(10)))
    }

    fn s(v: &str) -> Fv {
        Fv::from(v.to_owned())
    }

    fn base() -> Vec<(&'static str, Fv)> {
        vec![
            ("server", s("smtp.example.com")),
            ("from", s("KRI <kri@example.com>")),
            ("to", Fv::from(vec!["soc@example.com".to_owned()])),
        ]
    }

    fn error_with(change: &[(&'static str, Fv)], remove: &[&str]) -> ConfigError {
        let mut entries = base();
        entries.retain(|(k, _)| !remove.contains(k));
        entries.extend(change.iter().cloned());
        match build_with(&entries) {
            Ok(_) => panic!("{change:?} without {remove:?} was accepted"),
            Err(e) => e,
        }
    }

    /// Keys set, keys removed, the key the error names, what it says.
    type Case = (Vec<(&'static str, Fv)>, Vec<&'static str>, &'static str, &'static str);

    #[test]
    fn a_plain_table_builds_and_each_mistake_names_its_key() {
        assert!(build_with(&base()).is_ok());
        let one_to = [("to", s("soc@example.com"))];
        let mut entries = base();
        entries.retain(|(k, _)| *k != "to");
        entries.extend(one_to);
        assert!(build_with(&entries).is_ok(), "one address as a string");

        let cases: Vec<Case> = vec![
            (vec![], vec!["server"], "sinks.mail.server", "host name"),
            (
                vec![("server", s("smtp://smtp.example.com"))],
                vec!["server"],
                "sinks.mail.server",
                "host name only",
            ),
            (
                vec![("server", s("smtp.example.com:587"))],
                vec!["server"],
                "sinks.mail.server",
                "port",
            ),
            (vec![], vec!["from"], "sinks.mail.from", "sender"),
            (
                vec![("from", s("not an address"))],
                vec!["from"],
                "sinks.mail.from",
                "not a mail address",
            ),
            (vec![], vec!["to"], "sinks.mail.to", "recipients"),
            (
                vec![("to", Fv::from(Vec::<String>::new()))],
                vec!["to"],
                "sinks.mail.to",
                "recipients",
            ),
            (
                vec![("to", Fv::from(vec!["a@example.com".to_owned(), "b@".to_owned()]))],
                vec!["to"],
                "sinks.mail.to",
                "entry 2: `b@`",
            ),
            (
                vec![("security", s("ssl"))],
                vec![],
                "sinks.mail.security",
                "not starttls",
            ),
            (vec![("port", Fv::from(0u16))], vec![], "sinks.mail.port", "no port"),
            (
                vec![("password", s("hunter2-secret"))],
                vec![],
                "sinks.mail.username",
                "no username",
            ),
            (
                vec![("username", s("kri"))],
                vec![],
                "sinks.mail.password",
                "password_file",
            ),
            (
                vec![
                    ("username", s("kri")),
                    ("password", s("hunter2-secret")),
                    ("security", s("none")),
                ],
                vec![],
                "sinks.mail.security",
                "in clear to smtp.example.com",
            ),
            (
                vec![("security", s("none")), ("ca_file", s("/nonexistent.pem"))],
                vec![],
                "sinks.mail.ca_file",
                "no use",
            ),
            (
                vec![("ca_file", s("/nonexistent/ca.pem"))],
                vec![],
                "sinks.mail.ca_file",
                "cannot read",
            ),
            (
                vec![("subject_prefix", s("[kri]\nBcc: x@example.com"))],
                vec![],
                "sinks.mail.subject_prefix",
                "one line",
            ),
            (vec![("smtp_host", s("x"))], vec![], "sinks.mail", "smtp_host"),
        ];
        for (change, remove, key, says) in cases {
            let e = error_with(&change, &remove);
            assert!(e.key.starts_with(key), "{change:?}: {e}");
            assert!(e.to_string().contains(says), "{change:?}: {e}");
            assert!(!e.to_string().contains("hunter2-secret"), "{e}");
        }
    }

    #[test]
    fn plain_smtp_with_a_password_is_only_for_this_host() {
        let mut entries = base();
        entries.retain(|(k, _)| *k != "server");
        entries.extend([
            ("server", s("127.0.0.1")),
            ("security", s("none")),
            ("username", s("kri")),
            ("password", s("hunter2-secret")),
        ]);
        assert!(build_with(&entries).is_ok());
        assert!(is_loopback("localhost") && is_loopback("::1") && !is_loopback("10.0.0.1"));
    }

    #[test]
    fn the_hint_for_a_5xx_says_what_to_check() {
        assert!(hint(535).contains("password"));
        assert!(hint(550).contains("addresses"));
    }
}
