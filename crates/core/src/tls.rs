//! Trust: extra CA certificates from a PEM file (`ca_file`, `sslrootcert`), and TLS for the
//! PostgreSQL store through rustls, with libpq's `sslmode`s.

use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

/// Largest CA file read: a corporate bundle is a few hundred KB.
const MAX_CA_FILE: u64 = 4 * 1024 * 1024;

/// The certificates of a PEM file, or what is wrong with it (the error names the file, never
/// its content).
pub fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read `{shown}`: {e}"))?;
    if !meta.is_file() {
        return Err(format!("`{shown}` is not a file: name a PEM file of CA certificates"));
    }
    if meta.len() > MAX_CA_FILE {
        return Err(format!(
            "`{shown}` is {} bytes: a file of CA certificates is far smaller (at most {MAX_CA_FILE})",
            meta.len()
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read `{shown}`: {e}"))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("`{shown}` is not a readable PEM file ({e})"))?;
    if certs.is_empty() {
        return Err(format!(
            "`{shown}` holds no certificate: it should hold one or more \"-----BEGIN CERTIFICATE-----\" blocks"
        ));
    }
    let mut store = RootCertStore::empty();
    let (_, unusable) = store.add_parsable_certificates(certs.iter().cloned());
    if unusable > 0 {
        return Err(format!(
            "`{shown}`: {unusable} of its {} certificates cannot be read as X.509",
            certs.len()
        ));
    }
    Ok(certs)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// How a PostgreSQL connection checks the server, from `sslmode` and `sslrootcert` (libpq's
/// meanings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PgTrust {
    /// `disable`: no TLS.
    Off,
    /// `prefer` (the default) and `require` without `sslrootcert`: encrypted, the server's
    /// certificate not checked (libpq does the same; it stops a listener, not an impostor).
    Encrypt,
    /// `verify-ca`, or `require` with `sslrootcert`: the certificate must chain to these roots;
    /// any name.
    Chain(Vec<CertificateDer<'static>>),
    /// `verify-full`: chain to these roots (`None`: the system's) and the host's name.
    Full(Option<Vec<CertificateDer<'static>>>),
}

/// The rustls side of a PostgreSQL connection: `tokio_postgres`'s TLS connector.
#[derive(Clone)]
pub struct PgTls {
    config: Arc<rustls::ClientConfig>,
}

impl PgTls {
    pub fn new(trust: &PgTrust) -> Result<PgTls, String> {
        let provider = provider();
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS set-up: {e}"))?;
        let roots = |certs: &[CertificateDer<'static>]| {
            let mut store = RootCertStore::empty();
            store.add_parsable_certificates(certs.iter().cloned());
            Arc::new(store)
        };
        let webpki = |certs: &[CertificateDer<'static>]| {
            WebPkiServerVerifier::builder_with_provider(roots(certs), provider.clone())
                .build()
                .map_err(|e| format!("TLS set-up: {e}"))
        };
        let config = match trust {
            PgTrust::Off | PgTrust::Encrypt => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider.clone())))
                .with_no_client_auth(),
            PgTrust::Chain(certs) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ChainOnly(webpki(certs)?)))
                .with_no_client_auth(),
            PgTrust::Full(Some(certs)) => builder.with_webpki_verifier(webpki(certs)?).with_no_client_auth(),
            PgTrust::Full(None) => {
                let system = rustls_platform_verifier::Verifier::new(provider.clone())
                    .map_err(|e| format!("cannot load the system's trusted certificates: {e}"))?;
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(system))
                    .with_no_client_auth()
            }
        };
        Ok(PgTls {
            config: Arc::new(config),
        })
    }
}

/// `sslmode=prefer|require` without roots: the handshake's signatures are checked (the session
/// is really encrypted to whoever holds the key), the certificate is not.
#[derive(Debug)]
struct EncryptOnly(Arc<CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `sslmode=verify-ca`: the full check, but a name that does not match is accepted.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            // The chain was checked before the name.
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

impl<S> MakeTlsConnect<S> for PgTls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = PgTlsStream<S>;
    type TlsConnect = PgTlsConnect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> io::Result<PgTlsConnect> {
        let name = ServerName::try_from(domain.to_owned())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("`{domain}`: {e}")))?;
        Ok(PgTlsConnect {
            connector: tokio_rustls::TlsConnector::from(self.config.clone()),
            name,
        })
    }
}

pub struct PgTlsConnect {
    connector: tokio_rustls::TlsConnector,
    name: ServerName<'static>,
}

impl<S> TlsConnect<S> for PgTlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = PgTlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<PgTlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let tls = self.connector.connect(self.name, stream).await?;
            Ok(PgTlsStream(tls))
        })
    }
}

/// A TLS connection to PostgreSQL. No channel binding: SCRAM authenticates as without TLS
/// (`channel_binding=require` is refused by the driver).
pub struct PgTlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for PgTlsStream<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for PgTlsStream<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for PgTlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}
