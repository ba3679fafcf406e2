//! The `syslog` sink: each event as one RFC 5424 message to a syslog server or a SIEM's
//! collector, over TCP (the default), TLS (RFC 5425) or UDP (RFC 5426).
//!
//! `<PRI>1 TIMESTAMP HOSTNAME APP-NAME - MSGID [kri@32473 id="…" tenant="…"] MSG`: PRI from the
//! facility and the event's severity, TIMESTAMP the event's `time`, MSGID its type, MSG the event
//! JSON on one line (`format = "json"`) or an ArcSight CEF record (`format = "cef"`). TCP and TLS
//! frame each message with its length (octet counting, RFC 6587 §3.4.1) on one connection per
//! batch; UDP sends one datagram per event. Every header field is printable ASCII, bounded to
//! the RFC's lengths; text from outside is escaped where it goes (SD-PARAM, CEF).

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kri_core::config::ConfigError;
use kri_core::sink::{Sink, SinkError, SinkRegistration, SinkSettings};
use kri_core::text::{truncate, visible};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{CertificateError, RootCertStore};
use serde::Deserialize;
use serde_json::Value;
use tokio::io::{AsyncWrite, AsyncWriteExt};

kri_core::inventory::submit! {
    SinkRegistration {
        kind: "syslog",
        description: "events as RFC 5424 syslog messages over TCP, TLS or UDP",
        build,
        default_events: None,
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SyslogConfig {
    /// The server, `host:port` (`[v6]:port`).
    address: Option<String>,
    /// `tcp` | `udp` | `tls`.
    #[serde(default = "default_protocol")]
    protocol: String,
    /// For `tls`: trust the CA certificates of this PEM file instead of the system's roots.
    ca_file: Option<PathBuf>,
    /// `json` | `cef`.
    #[serde(default = "default_format")]
    format: String,
    /// A name (`kern` … `local7`) or a number 0-23; `local0` by default.
    #[serde(default, deserialize_with = "kri_core::secret::lenient_opt_string")]
    facility: Option<String>,
    /// APP-NAME; `kri` by default.
    #[serde(default, deserialize_with = "kri_core::secret::lenient_opt_string")]
    app_name: Option<String>,
    /// HOSTNAME; this machine's name by default.
    #[serde(default, deserialize_with = "kri_core::secret::lenient_opt_string")]
    hostname: Option<String>,
}

fn default_protocol() -> String {
    "tcp".into()
}

fn default_format() -> String {
    "json".into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Cef,
}

enum Transport {
    Tcp,
    Udp,
    Tls {
        connector: tokio_rustls::TlsConnector,
        name: ServerName<'static>,
        /// Trusts the CAs of `ca_file` (not the system's roots).
        ca_file: bool,
    },
}

impl Transport {
    fn as_str(&self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
            Transport::Tls { .. } => "tls",
        }
    }
}

struct Syslog {
    /// As configured (checked: `host:port`).
    address: String,
    transport: Transport,
    format: Format,
    facility: u8,
    /// Already sanitised header fields.
    hostname: String,
    app_name: String,
    timeout: Duration,
}

/// The facilities by number (RFC 5424 §6.2.1, with the names syslog daemons use).
const FACILITIES: [&str; 24] = [
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv", "ftp", "ntp",
    "audit", "alert", "clock", "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
];

/// The SD-ID of kri's STRUCTURED-DATA element.
const SD_ID: &str = "kri@32473";

/// RFC 5424's bounds on the header fields (§6).
const MAX_HOSTNAME: usize = 255;
const MAX_APP_NAME: usize = 48;
const MAX_MSGID: usize = 32;
/// An SD-PARAM value: ids and tenant names are far shorter.
const MAX_SD_VALUE: usize = 128;
/// The largest UDP payload over IPv4 (65 535 less the IP and UDP headers).
const MAX_DATAGRAM: usize = 65_507;

fn build(settings: &SinkSettings) -> Result<Box<dyn Sink>, ConfigError> {
    Ok(Box::new(configure(settings)?))
}

fn configure(settings: &SinkSettings) -> Result<Syslog, ConfigError> {
    let cfg: SyslogConfig = settings.parse()?;
    let address = cfg.address.map(|a| a.trim().to_owned()).ok_or_else(|| {
        ConfigError::invalid(
            settings.key("address"),
            "missing: the syslog server as host:port, e.g. \"siem.example:514\" (6514 for tls)",
        )
    })?;
    let host = split_address(&address).map_err(|m| ConfigError::invalid(settings.key("address"), m))?;
    let format = match cfg.format.trim() {
        "json" => Format::Json,
        "cef" => Format::Cef,
        other => {
            return Err(ConfigError::invalid(
                settings.key("format"),
                format!("`{}` is not json or cef", visible(other)),
            ));
        }
    };
    let protocol = cfg.protocol.trim();
    if cfg.ca_file.is_some() && protocol != "tls" {
        return Err(ConfigError::invalid(
            settings.key("ca_file"),
            format!(
                "a CA file is for protocol = \"tls\", not \"{}\": remove ca_file, or set protocol = \"tls\"",
                visible(protocol)
            ),
        ));
    }
    let transport = match protocol {
        "tcp" => Transport::Tcp,
        "udp" => Transport::Udp,
        "tls" => {
            let roots = match &cfg.ca_file {
                Some(path) => Some(
                    kri_core::tls::read_ca_file(path).map_err(|m| ConfigError::invalid(settings.key("ca_file"), m))?,
                ),
                None => None,
            };
            let config = tls_config(roots).map_err(|m| ConfigError::invalid(settings.key("protocol"), m))?;
            let name = ServerName::try_from(host.clone()).map_err(|_| {
                ConfigError::invalid(
                    settings.key("address"),
                    format!(
                        "`{}` is not a host name or an IP address a certificate can name",
                        visible(&host)
                    ),
                )
            })?;
            Transport::Tls {
                connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
                name,
                ca_file: cfg.ca_file.is_some(),
            }
        }
        other => {
            return Err(ConfigError::invalid(
                settings.key("protocol"),
                format!("`{}` is not tcp, udp or tls", visible(other)),
            ));
        }
    };
    let facility = match &cfg.facility {
        None => 16,
        Some(text) => parse_facility(text).map_err(|m| ConfigError::invalid(settings.key("facility"), m))?,
    };
    let hostname = cfg.hostname.unwrap_or_else(machine_hostname);
    Ok(Syslog {
        address,
        transport,
        format,
        facility,
        hostname: header_field(&hostname, MAX_HOSTNAME),
        app_name: header_field(cfg.app_name.as_deref().unwrap_or("kri"), MAX_APP_NAME),
        timeout: settings.timeout,
    })
}

/// The host of `host:port` (`[v6]:port`), or what is wrong with it.
fn split_address(address: &str) -> Result<String, String> {
    let shown = visible(address);
    let example = "write host:port, e.g. \"siem.example:514\" ([::1]:514 for an IPv6 address)";
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| format!("`{shown}` has no port: {example}"))?;
    let host = match host.strip_prefix('[') {
        Some(v6) => v6
            .strip_suffix(']')
            .filter(|h| h.parse::<std::net::Ipv6Addr>().is_ok())
            .ok_or_else(|| format!("`{shown}` is not an IPv6 address in brackets: {example}"))?,
        None if host.contains(':') => return Err(format!("`{shown}`: an IPv6 address goes in brackets: {example}")),
        None => host,
    };
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control() || c == '/') {
        return Err(format!("`{shown}` has no valid host: {example}"));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(host.to_owned()),
        _ => Err(format!("`{shown}`: the port is not a number 1-65535: {example}")),
    }
}

/// A facility's number from its name (`local0`) or number (`16`).
fn parse_facility(text: &str) -> Result<u8, String> {
    let text = text.trim();
    if let Some(n) = FACILITIES.iter().position(|f| f.eq_ignore_ascii_case(text)) {
        return Ok(n as u8);
    }
    match text.parse::<u8>() {
        Ok(n) if (n as usize) < FACILITIES.len() => Ok(n),
        _ => Err(format!(
            "`{}` is not a facility: a number 0-23 or one of {}",
            visible(text),
            FACILITIES.join(", ")
        )),
    }
}

/// This machine's name (Linux), or `-` (the NILVALUE) when it cannot be read.
fn machine_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "-".into())
}

/// A header field: printable US-ASCII without spaces (RFC 5424's PRINTUSASCII), anything else
/// as `_`, at most `max` characters; `-` (the NILVALUE) when empty.
fn header_field(text: &str, max: usize) -> String {
    let field: String = text
        .chars()
        .take(max)
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .collect();
    if field.is_empty() { "-".into() } else { field }
}

/// An SD-PARAM value: control characters written out, bounded, and `"`, `\` and `]` escaped
/// (RFC 5424 §6.3.3).
fn sd_value(text: &str) -> String {
    let text = truncate(&visible(text), MAX_SD_VALUE);
    let mut out = String::with_capacity(text.len() + 4);
    for c in text.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// TIMESTAMP: the event's `time` as given when it is an RFC 5424 timestamp (RFC 3339 with `T`
/// and at most 6 digits of fraction), rewritten when it is RFC 3339 in another spelling, `-`
/// when absent or unreadable.
fn timestamp(time: &Value) -> String {
    let Some(text) = time.as_str() else {
        return "-".into();
    };
    let Ok(parsed) = chrono::DateTime::parse_from_rfc3339(text) else {
        return "-".into();
    };
    let fraction = text
        .split_once('.')
        .map_or(0, |(_, f)| f.chars().take_while(char::is_ascii_digit).count());
    let strict = text.len() <= 32
        && text.as_bytes().get(10) == Some(&b'T')
        && text.chars().all(|c| c.is_ascii_digit() || "TZ:+-.".contains(c))
        && fraction <= 6;
    if strict {
        text.to_owned()
    } else {
        parsed.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    }
}

/// The syslog severity of an event's `severity` (RFC 5424 §6.2.1): crit, warning, info.
fn severity(event: &Value) -> u8 {
    match event["severity"].as_str() {
        Some("critical") => 2,
        Some("warning") => 4,
        _ => 6,
    }
}

/// `LEN SP MSG` (octet counting, RFC 6587 §3.4.1), appended to `out`.
fn frame(message: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(message.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(message);
}

/// `text` cut to at most `max` bytes, at a character, with `…` when cut.
fn within_bytes(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let room = max.saturating_sub('…'.len_utf8());
    let chars = text
        .char_indices()
        .take_while(|(at, c)| at + c.len_utf8() <= room)
        .count();
    truncate(text, chars)
}

impl Syslog {
    /// Everything before MSG, ending in a space.
    fn header(&self, event: &Value) -> String {
        let pri = u16::from(self.facility) * 8 + u16::from(severity(event));
        format!(
            "<{pri}>1 {} {} {} - {} [{SD_ID} id=\"{}\" tenant=\"{}\"] ",
            timestamp(&event["time"]),
            self.hostname,
            self.app_name,
            header_field(event["type"].as_str().unwrap_or_default(), MAX_MSGID),
            sd_value(event["id"].as_str().unwrap_or_default()),
            sd_value(event["tenant"].as_str().unwrap_or_default()),
        )
    }

    /// MSG: the event JSON on one line, or its CEF record.
    fn body(&self, event: &Value) -> String {
        match self.format {
            Format::Json => event.to_string(),
            Format::Cef => cef(event),
        }
    }

    /// The whole RFC 5424 message.
    fn message(&self, event: &Value) -> String {
        self.header(event) + &self.body(event)
    }

    fn failed(&self, what: &str, e: impl fmt::Display) -> SinkError {
        SinkError::retry(format!(
            "syslog at {} ({}): {what}: {e}",
            visible(&self.address),
            self.transport.as_str()
        ))
    }

    async fn send(&self, events: &[Value]) -> Result<(), SinkError> {
        if matches!(self.transport, Transport::Udp) {
            return self.send_udp(events).await;
        }
        let mut bytes = Vec::new();
        for event in events {
            frame(self.message(event).as_bytes(), &mut bytes);
        }
        let tcp = tokio::net::TcpStream::connect(&self.address)
            .await
            .map_err(|e| self.failed("cannot connect", e))?;
        let _ = tcp.set_nodelay(true);
        let written = match &self.transport {
            Transport::Tls {
                connector,
                name,
                ca_file,
            } => {
                let tls = connector
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|e| self.failed("TLS handshake failed", handshake_error(&e, *ca_file)))?;
                write_all(tls, &bytes).await
            }
            _ => write_all(tcp, &bytes).await,
        };
        written.map_err(|e| self.failed("cannot send", e))
    }

    async fn send_udp(&self, events: &[Value]) -> Result<(), SinkError> {
        let to = tokio::net::lookup_host(&self.address)
            .await
            .map_err(|e| self.failed("cannot resolve", e))?
            .next()
            .ok_or_else(|| self.failed("cannot resolve", "no address"))?;
        let local = if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
        let socket = tokio::net::UdpSocket::bind(local)
            .await
            .map_err(|e| self.failed("cannot open a UDP socket", e))?;
        socket.connect(to).await.map_err(|e| self.failed("cannot connect", e))?;
        for event in events {
            let header = self.header(event);
            let body = within_bytes(&self.body(event), MAX_DATAGRAM.saturating_sub(header.len()));
            let datagram = header + &body;
            let sent = socket
                .send(datagram.as_bytes())
                .await
                .map_err(|e| self.failed("cannot send", e))?;
            if sent != datagram.len() {
                return Err(self.failed("cannot send", format!("{sent} of {} bytes sent", datagram.len())));
            }
        }
        Ok(())
    }
}

async fn write_all<S: AsyncWrite + Unpin>(mut stream: S, bytes: &[u8]) -> io::Result<()> {
    stream.write_all(bytes).await?;
    stream.flush().await?;
    stream.shutdown().await
}

/// A TLS client: the CA certificates of `ca_file` when given, else the system's roots.
fn tls_config(roots: Option<Vec<CertificateDer<'static>>>) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up: {e}"))?;
    Ok(match roots {
        Some(certs) => {
            let mut store = RootCertStore::empty();
            store.add_parsable_certificates(certs);
            builder.with_root_certificates(store).with_no_client_auth()
        }
        None => {
            let system = rustls_platform_verifier::Verifier::new(provider).map_err(|e| {
                format!("cannot load the system's trusted certificates ({e}): install them, or set ca_file")
            })?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(system))
                .with_no_client_auth()
        }
    })
}

/// Why a handshake failed, for people: a refused certificate says so and what to check.
fn handshake_error(e: &io::Error, ca_file: bool) -> String {
    let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
        return e.to_string();
    };
    match tls {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) if ca_file => {
            format!("the server's certificate is not trusted ({tls}): no CA of ca_file signed it")
        }
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => format!(
            "the server's certificate is not trusted ({tls}): no CA this system trusts signed it; with a \
             private CA, set ca_file to its PEM file"
        ),
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => format!("the server's certificate is not valid for the host of address ({tls})"),
        rustls::Error::InvalidCertificate(_) => format!("the server's certificate was refused ({tls})"),
        other => other.to_string(),
    }
}

/// The CEF severity (0-10) of an event's `severity`.
fn cef_severity(event: &Value) -> u8 {
    match event["severity"].as_str() {
        Some("critical") => 9,
        Some("warning") => 6,
        _ => 3,
    }
}

/// A CEF header field: one line, `\` and `|` escaped, bounded.
fn cef_header(text: &str, max: usize) -> String {
    truncate(&visible(text), max).replace('\\', "\\\\").replace('|', "\\|")
}

/// A CEF extension value: `\` and `=` escaped, line breaks as `\n` and `\r`, other control
/// characters written out.
fn cef_value(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '=' => out.push_str("\\="),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => {
                let mut one = [0u8; 4];
                out.push_str(&visible(c.encode_utf8(&mut one)).replace('\\', "\\\\"));
            }
        }
    }
    out
}

/// A number as people write it: `31`, `12.5`.
fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        v.to_string()
    }
}

/// The CEF Name: what happened, for people.
fn cef_name(event: &Value) -> String {
    let k = &event["kri"];
    let slug = k["slug"].as_str().unwrap_or("?");
    let band = |v: &Value| v.as_str().unwrap_or("none").to_owned();
    match event["type"].as_str().unwrap_or_default() {
        "kri.band_changed" => format!("KRI {slug} {} → {}", band(&k["from"]), band(&k["to"])),
        "kri.failed" => format!("KRI {slug} failed"),
        "kri.recovered" => format!("KRI {slug} recovered"),
        "kri.value" => format!("KRI {slug} value"),
        "connector.failed" => format!(
            "Connector {} failed",
            event["connector"]["module"].as_str().unwrap_or("?")
        ),
        "incident.created" => "Incident created".into(),
        "incident.updated" => "Incident updated".into(),
        other => other.to_owned(),
    }
}

/// The `msg` extension: the KRI's title, value and thresholds, owner and action; an incident's
/// title, state and priority; a connector's error.
fn cef_message(event: &Value) -> String {
    let mut parts: Vec<String> = Vec::new();
    let k = &event["kri"];
    let i = &event["incident"];
    if let Some(title) = k["title"].as_str() {
        let mut text = title.to_owned();
        if let Some(v) = k["value"].as_f64() {
            text.push_str(&format!(": {}", number(v)));
        }
        if let (Some(a), Some(r)) = (k["amber"].as_f64(), k["red"].as_f64()) {
            text.push_str(&format!(" (amber {}, red {})", number(a), number(r)));
        }
        parts.push(text);
    }
    for (what, v) in [("owner", &k["owner"]), ("action", &k["action"])] {
        if let Some(v) = v.as_str() {
            parts.push(format!("{what}: {v}"));
        }
    }
    if let Some(title) = i["title"].as_str() {
        parts.push(title.to_owned());
    }
    for what in ["state", "priority"] {
        if let Some(v) = i[what].as_str() {
            parts.push(format!("{what}: {v}"));
        }
    }
    if let Some(error) = event["connector"]["error"].as_str() {
        parts.push(error.to_owned());
    }
    truncate(&parts.join("; "), 1000)
}

/// `CEF:0|kri|kri|VERSION|TYPE|NAME|SEVERITY|EXTENSIONS`.
fn cef(event: &Value) -> String {
    let mut ext: Vec<(&str, String)> = Vec::new();
    if let Some(t) = event["time"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
    {
        ext.push(("rt", t.timestamp_millis().to_string()));
    }
    let text = |v: &Value, max: usize| v.as_str().map(|s| truncate(s, max));
    let k = &event["kri"];
    let custom = [
        ("externalId", None, text(&event["id"], 128)),
        ("cs1", Some("tenant"), text(&event["tenant"], 128)),
        ("cs2", Some("slug"), text(&k["slug"], 128)),
        ("cs3", Some("band"), text(&k["to"], 16)),
        ("cs4", Some("incident"), text(&event["incident"]["id"], 128)),
    ];
    for (key, label, value) in custom {
        if let Some(value) = value {
            if let Some(label) = label {
                ext.push((label_key(key), label.into()));
            }
            ext.push((key, value));
        }
    }
    if let Some(v) = k["value"].as_f64() {
        // cn1 is an integer; a fractional value goes in the float field.
        let key = if v.fract() == 0.0 && v.abs() < 1e15 {
            "cn1"
        } else {
            "cfp1"
        };
        ext.push((label_key(key), "value".into()));
        ext.push((key, number(v)));
    }
    let msg = cef_message(event);
    if !msg.is_empty() {
        ext.push(("msg", msg));
    }
    let extensions: Vec<String> = ext.iter().map(|(k, v)| format!("{k}={}", cef_value(v))).collect();
    format!(
        "CEF:0|kri|kri|{}|{}|{}|{}|{}",
        env!("CARGO_PKG_VERSION"),
        cef_header(event["type"].as_str().unwrap_or("-"), 100),
        cef_header(&cef_name(event), 200),
        cef_severity(event),
        extensions.join(" ")
    )
}

/// The label key of a custom field: `cs2` → `cs2Label`.
fn label_key(key: &str) -> &'static str {
    match key {
        "cs1" => "cs1Label",
        "cs2" => "cs2Label",
        "cs3" => "cs3Label",
        "cs4" => "cs4Label",
        "cn1" => "cn1Label",
        _ => "cfp1Label",
    }
}

#[async_trait::async_trait]
impl Sink for Syslog {
    async fn deliver(&self, events: &[Value]) -> Result<(), SinkError> {
        if events.is_empty() {
            return Ok(());
        }
        match tokio::time::timeout(self.timeout, self.send(events)).await {
            Ok(sent) => sent,
            Err(_) => Err(self.failed(
                "timeout",
                format!("not delivered within {} s", self.timeout.as_secs_f64()),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kri_core::figment::value::{Dict, Value as Fv};
    use serde_json::json;

    fn settings(table: &[(&str, Fv)]) -> SinkSettings {
        let table: Dict = table.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
        SinkSettings::new("siem", table, Duration::from_secs(5))
    }

    fn sink(table: &[(&str, Fv)]) -> Syslog {
        configure(&settings(table)).unwrap_or_else(|e| panic!("{}: {}", e.key, e.message))
    }

    fn refused(table: &[(&str, Fv)]) -> ConfigError {
        match configure(&settings(table)) {
            Ok(_) => panic!("accepted"),
            Err(e) => e,
        }
    }

    fn band_changed() -> Value {
        json!({"id": "7f3c2a9e-1b4d-4e5f-8a6b-0c1d2e3f4a5b", "type": "kri.band_changed",
               "time": "2026-11-23T10:20:00Z", "tenant": "acme", "severity": "critical",
               "kri": {"slug": "pp_vap_count", "title": "Very Attacked People", "module": "tap", "value": 31.0,
                       "previous_value": 12.0, "from": "amber", "to": "red", "amber": 10.0, "red": 25.0,
                       "direction": "higher-is-worse", "owner": "SOC lead", "action": "Review the VAP list"},
               "incident": null, "run_id": "r-1"})
    }

    #[test]
    fn an_event_is_one_rfc5424_line_with_its_pri_time_type_and_escaped_structured_data() {
        let s = sink(&[("address", "127.0.0.1:514".into()), ("hostname", "kri-host".into())]);
        let mut e = band_changed();
        e["tenant"] = json!(r#"ac"me]\eu"#);
        let line = s.message(&e);
        let expected_header = r#"<130>1 2026-11-23T10:20:00Z kri-host kri - kri.band_changed [kri@32473 id="7f3c2a9e-1b4d-4e5f-8a6b-0c1d2e3f4a5b" tenant="ac\"me\]\\eu"] "#;
        assert_eq!(line, format!("{expected_header}{e}"));
        let msg = line.strip_prefix(expected_header).unwrap();
        assert_eq!(serde_json::from_str::<Value>(msg).unwrap(), e);

        // PRI is facility * 8 + severity; the time "-" when it is not RFC 3339.
        let s = sink(&[("address", "127.0.0.1:514".into()), ("facility", "auth".into())]);
        let info = json!({"type": "kri.recovered", "severity": "info", "time": "yesterday"});
        assert!(s.message(&info).starts_with("<38>1 - "), "{}", s.message(&info));
        let warning = json!({"type": "x", "severity": "warning", "time": "2026-11-23 10:20:00.123456789+01:00"});
        assert!(
            s.message(&warning)
                .starts_with("<36>1 2026-11-23T10:20:00.123456+01:00 "),
            "{}",
            s.message(&warning)
        );
    }

    #[test]
    fn header_fields_are_printable_ascii_without_spaces_and_bounded() {
        let s = sink(&[
            ("address", "127.0.0.1:514".into()),
            ("hostname", "my host\n\x1b[2J".into()),
            ("app_name", "kri app\té".into()),
        ]);
        assert_eq!(
            (s.hostname.as_str(), s.app_name.as_str()),
            ("my_host__[2J", "kri_app__")
        );
        let long = json!({"type": "t".repeat(40) + " x", "id": "1", "tenant": "a"});
        let line = s.message(&long);
        let fields: Vec<&str> = line.splitn(7, ' ').collect();
        assert_eq!(fields[5], "t".repeat(32), "MSGID at most 32");
        assert_eq!(header_field(&"h".repeat(300), MAX_HOSTNAME).len(), 255);
        assert_eq!(header_field("", MAX_APP_NAME), "-");
        let s = sink(&[("address", "127.0.0.1:514".into()), ("app_name", "a".repeat(60).into())]);
        assert_eq!(s.app_name.len(), 48);
        assert!(machine_hostname().chars().all(|c| !c.is_whitespace()));
    }

    #[test]
    fn cef_escapes_its_header_and_extension_values() {
        let mut e = band_changed();
        e["kri"]["title"] = json!("VAPs | a=b \\ c\nforged");
        let line = cef(&e);
        let version = env!("CARGO_PKG_VERSION");
        assert_eq!(
            line,
            format!(
                "CEF:0|kri|kri|{version}|kri.band_changed|KRI pp_vap_count amber → red|9|rt=1795429200000 \
                 externalId=7f3c2a9e-1b4d-4e5f-8a6b-0c1d2e3f4a5b cs1Label=tenant cs1=acme cs2Label=slug \
                 cs2=pp_vap_count cs3Label=band cs3=red cn1Label=value cn1=31 msg=VAPs | a\\=b \\\\ c\\nforged: 31 \
                 (amber 10, red 25); owner: SOC lead; action: Review the VAP list"
            )
        );
        assert_eq!(cef_header("a|b\\c\nd", 100), "a\\|b\\\\c\\\\nd");
        assert_eq!(cef_value("x=1\r\n\\\x1b"), "x\\=1\\r\\n\\\\\\\\x1b");
        let incident = json!({"id": "2", "type": "incident.created", "severity": "warning", "tenant": "acme",
                              "incident": {"id": "inc-9", "title": "Payroll phish", "state": "Open"}});
        let line = cef(&incident);
        assert!(
            line.contains("|incident.created|Incident created|6|externalId=2 cs1Label=tenant cs1=acme cs4Label=incident cs4=inc-9 msg=Payroll phish; state: Open"),
            "{line}"
        );
        let mut fractional = band_changed();
        fractional["kri"]["value"] = json!(12.5);
        assert!(cef(&fractional).contains("cfp1Label=value cfp1=12.5"));
        let mut long = band_changed();
        long["kri"]["title"] = json!("x".repeat(5000));
        assert!(cef(&long).len() < 1500, "msg is bounded");
    }

    #[test]
    fn tcp_frames_each_message_with_its_length_in_bytes() {
        let mut out = Vec::new();
        frame("<14>1 - - - - - - é".as_bytes(), &mut out);
        frame(b"ab", &mut out);
        assert_eq!(out, "20 <14>1 - - - - - - é2 ab".as_bytes());
    }

    #[test]
    fn a_udp_message_is_cut_at_a_character_to_fit_a_datagram() {
        assert_eq!(within_bytes("héllo", 6), "héllo");
        assert_eq!(within_bytes("héllo", 5), "h…", "not half of é");
        assert_eq!(within_bytes("héllo x", 7), "hél…");
        let big = "é".repeat(40_000);
        let cut = within_bytes(&big, MAX_DATAGRAM - 200);
        assert!(cut.len() <= MAX_DATAGRAM - 200 && cut.len() > MAX_DATAGRAM - 210 && cut.ends_with('…'));
    }

    #[test]
    fn facilities_are_names_or_numbers_0_to_23() {
        assert_eq!(parse_facility("local0"), Ok(16));
        assert_eq!(parse_facility("LOCAL7"), Ok(23));
        assert_eq!(parse_facility("kern"), Ok(0));
        assert_eq!(parse_facility("authpriv"), Ok(10));
        assert_eq!(parse_facility("4"), Ok(4));
        assert!(parse_facility("24").unwrap_err().contains("0-23"));
        assert!(parse_facility("local8").is_err());
        assert_eq!(sink(&[("address", "h:514".into())]).facility, 16, "local0 by default");
        // A number, as figment reads KRI_SINKS__SIEM__FACILITY=17.
        assert_eq!(
            sink(&[("address", "h:514".into()), ("facility", 17.into())]).facility,
            17
        );
        let e = refused(&[("address", "h:514".into()), ("facility", "local9".into())]);
        assert_eq!(e.key, "sinks.siem.facility");
    }

    #[test]
    fn config_errors_name_the_key_and_the_fix() {
        let e = refused(&[]);
        assert_eq!(e.key, "sinks.siem.address");
        assert!(e.message.contains("host:port"), "{}", e.message);
        let e = refused(&[("address", "siem.example".into())]);
        assert_eq!(e.key, "sinks.siem.address");
        assert!(e.message.contains("no port"), "{}", e.message);
        for bad in ["::1:514", "[siem]:514", "siem:0", "siem:http", ":514", "a b:514"] {
            assert_eq!(refused(&[("address", bad.into())]).key, "sinks.siem.address", "{bad}");
        }
        assert_eq!(sink(&[("address", "[::1]:514".into())]).address, "[::1]:514");
        let e = refused(&[("address", "h:514".into()), ("protocol", "relp".into())]);
        assert_eq!(e.key, "sinks.siem.protocol");
        assert!(e.message.contains("tcp, udp or tls"), "{}", e.message);
        let e = refused(&[
            ("address", "h:514".into()),
            ("protocol", "udp".into()),
            ("ca_file", "/etc/ssl/ca.pem".into()),
        ]);
        assert_eq!(e.key, "sinks.siem.ca_file");
        assert!(e.message.contains("protocol = \"tls\""), "{}", e.message);
        let e = refused(&[("address", "h:514".into()), ("ca_file", "/etc/ssl/ca.pem".into())]);
        assert_eq!(e.key, "sinks.siem.ca_file", "tcp is the default protocol");
        let e = refused(&[
            ("address", "h:6514".into()),
            ("protocol", "tls".into()),
            ("ca_file", "/nonexistent/ca.pem".into()),
        ]);
        assert_eq!(e.key, "sinks.siem.ca_file");
        assert!(e.message.contains("/nonexistent/ca.pem"), "{}", e.message);
        let e = refused(&[("address", "h:514".into()), ("format", "leef".into())]);
        assert_eq!(e.key, "sinks.siem.format");
        let e = refused(&[("address", "h:514".into()), ("port", "514".into())]);
        assert_eq!(e.key, "sinks.siem.port", "unknown keys are refused");
    }
}
