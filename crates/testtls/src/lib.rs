//! TLS and proxies for tests: a CA made in the test, a TLS front for a plain test server, and a
//! real forward proxy (see README.md).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

/// A certificate authority made for one test.
pub struct TestCa {
    /// The CA's certificate, PEM: what a client is told to trust.
    pub cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A server certificate signed by a [`TestCa`], with its key.
#[derive(Clone)]
pub struct ServerCert {
    pub cert_pem: String,
    pub key_pem: String,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA certificate");
        TestCa {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A certificate for `names` (host names or IP addresses), signed by this CA.
    pub fn server(&self, names: &[&str]) -> ServerCert {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("server parameters");
        params.distinguished_name.push(DnType::CommonName, "kri test server");
        let key = KeyPair::generate().expect("server key");
        let cert = params.signed_by(&key, &self.issuer).expect("server certificate");
        ServerCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// Write the CA certificate to `dir/name` and return the path.
    pub fn write(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, &self.cert_pem).expect("write the CA certificate");
        path
    }
}

/// A TLS listener on 127.0.0.1 that forwards each connection to a plain server. Stops when
/// dropped.
pub struct TlsFront {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl TlsFront {
    /// Serve `cert` on a free port, forwarding to `backend`.
    pub async fn start(backend: SocketAddr, cert: &ServerCert) -> TlsFront {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .expect("server certificate PEM");
        let key = PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes()).expect("server key PEM");
        let config =
            rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
                .with_safe_default_protocol_versions()
                .expect("TLS versions")
                .with_no_client_auth()
                .with_single_cert(chain, key)
                .expect("server certificate and key");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // A client that refuses the certificate ends here: that is the test.
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let Ok(mut plain) = tokio::net::TcpStream::connect(backend).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                });
            }
        });
        TlsFront { addr, task }
    }

    /// `https://localhost:PORT`.
    pub fn url(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Debian's `tinyproxy`, a real forward proxy, on a free port of 127.0.0.1. Stops when dropped.
pub struct Tinyproxy {
    pub port: u16,
    child: Child,
    dir: tempfile::TempDir,
}

impl Tinyproxy {
    /// Start it; the error says what is missing.
    pub fn start() -> Result<Tinyproxy, String> {
        let (program, dir, port) = prepare(
            &["/usr/bin/tinyproxy", "/usr/sbin/tinyproxy"],
            "a forward proxy (the `tinyproxy` package)",
            "kri-proxy-",
        )?;
        let log = dir.path().join("proxy.log");
        let conf = dir.path().join("tinyproxy.conf");
        // No `ConnectPort` line: CONNECT to any port (the test servers' ports are random).
        std::fs::write(
            &conf,
            format!(
                "Port {port}\nListen 127.0.0.1\nTimeout 30\nMaxClients 64\nAllow 127.0.0.1\nLogLevel Connect\n\
                 LogFile \"{}\"\n",
                log.display()
            ),
        )
        .map_err(|e| format!("cannot write the proxy's config: {e}"))?;
        let child = Command::new(program)
            .arg("-d")
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start tinyproxy: {e}"))?;
        let proxy = Tinyproxy { port, child, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err(format!("tinyproxy did not listen on port {port} within 10 s"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(proxy)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What the proxy logged: one `Request` line per request it forwarded (`CONNECT host:port`
    /// for HTTPS, the full URL for plain HTTP).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("proxy.log")).unwrap_or_default()
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Debian's `prometheus-alertmanager`, a real Alertmanager on a free port of 127.0.0.1, with a
/// route to a receiver that sends nothing (the tests read its API). Stops when dropped.
pub struct Alertmanager {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Alertmanager {
    /// Start it and wait until it is ready; the error says what is missing.
    pub fn start() -> Result<Alertmanager, String> {
        let (program, dir, port) = prepare(
            &["/usr/bin/prometheus-alertmanager", "/usr/bin/alertmanager"],
            "Alertmanager (the `prometheus-alertmanager` package)",
            "kri-alertmanager-",
        )?;
        let conf = dir.path().join("alertmanager.yml");
        std::fs::write(&conf, "route:\n  receiver: quiet\nreceivers:\n  - name: quiet\n")
            .map_err(|e| format!("cannot write Alertmanager's config: {e}"))?;
        let child = Command::new(program)
            .arg(format!("--config.file={}", conf.display()))
            .arg(format!("--storage.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            // No cluster: one instance, no gossip port.
            .arg("--cluster.listen-address=")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start Alertmanager: {e}"))?;
        let am = Alertmanager { port, child, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !http_get_ok(port, "/-/ready") {
            if Instant::now() > deadline {
                return Err(format!("Alertmanager was not ready on port {port} within 20 s"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(am)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The body of `GET path` (e.g. `/api/v2/alerts`), or why not.
    pub fn get(&self, path: &str) -> Result<String, String> {
        http_get(self.port, path)
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a real server needs to start: its program (the first of `candidates` there is), a
/// folder of its own, and a free port.
fn prepare(candidates: &[&str], what: &str, prefix: &str) -> Result<(PathBuf, tempfile::TempDir, u16), String> {
    let program = candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or_else(|| format!("no {what} here: install it (Debian), as .ci/run does"))?;
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .map_err(|e| format!("cannot make a folder for {what}: {e}"))?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))?;
    Ok((program, dir, port))
}

/// A plain HTTP/1.0 GET to 127.0.0.1 (test servers only): the body of a 200, else why not.
fn http_get(port: u16, path: &str) -> Result<String, String> {
    use std::io::{Read, Write};
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    write!(tcp, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").map_err(|e| format!("write: {e}"))?;
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).map_err(|e| format!("read: {e}"))?;
    let (head, body) = answer.split_once("\r\n\r\n").ok_or("no end of headers")?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        return Err(head.lines().next().unwrap_or_default().to_owned());
    }
    Ok(body.to_owned())
}

fn http_get_ok(port: u16, path: &str) -> bool {
    http_get(port, path).is_ok()
}

/// Debian's `python3-aiosmtpd`, a real SMTP server (run by Debian's own `/usr/bin/python3` with
/// `smtpd.py` of this crate) on a free port of 127.0.0.1, recording each message it accepts.
/// Killed when dropped.
pub struct Smtpd {
    pub port: u16,
    child: Child,
    dir: tempfile::TempDir,
}

impl Smtpd {
    /// Start it with `smtpd.py`'s options (`--starttls CERT KEY`, `--tls CERT KEY`,
    /// `--auth USER PASS`, `--fail-rcpt`) and wait until it listens.
    pub fn start(args: &[&str]) -> Result<Smtpd, String> {
        use std::io::{BufRead, BufReader};
        let (python, dir, port) = prepare(
            &["/usr/bin/python3"],
            "Debian's python3 (the `python3-aiosmtpd` package)",
            "kri-smtpd-",
        )?;
        let found = Command::new(&python)
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            return Err(format!(
                "{} cannot import aiosmtpd: install Debian's python3-aiosmtpd package, as .ci/run does",
                python.display()
            ));
        }
        let script = dir.path().join("smtpd.py");
        std::fs::write(&script, include_str!("../smtpd.py")).map_err(|e| format!("cannot write smtpd.py: {e}"))?;
        let log = dir.path().join("smtpd.log");
        let mut child = Command::new(&python)
            .arg(&script)
            .arg(port.to_string())
            .arg(dir.path().join("mail.jsonl"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).map_err(|e| format!("cannot make its log: {e}"))?)
            .spawn()
            .map_err(|e| format!("cannot start the SMTP server: {e}"))?;
        let stdout = child.stdout.take().ok_or("no output of the SMTP server")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let server = Smtpd { port, child, dir };
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(line) if line.trim() == "ready" => Ok(server),
            other => Err(format!(
                "the SMTP server did not start ({other:?}): {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )),
        }
    }

    /// The messages it accepted, in order: one JSON object each (envelope, headers, parts).
    pub fn messages(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.path().join("mail.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

impl Drop for Smtpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
