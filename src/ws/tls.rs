//! TLS on rustls (feature `tls`): [`TlsConnector`] for `wss://` clients
//! and [`TlsAcceptor`] for servers. Both hand back a
//! [`MaybeTlsStream`], the stream a socket runs over when it may or may
//! not be encrypted.
//!
//! rtwire does no cryptography of its own: certificates are checked by
//! rustls (with its `ring` provider) against Mozilla's roots
//! (webpki-roots), the operating system's (feature `native-roots`), or a
//! root store the caller supplies.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use rtwire::ws::{self, tls::TlsConnector, ConnectConfig};
//!
//! // A public server: Mozilla's roots, the default for wss://.
//! let (ws, _response) = ws::connect("wss://example.com/socket").await?;
//!
//! // A private CA, e.g. in tests.
//! let config = ConnectConfig::default().tls(TlsConnector::from_pem_file("ca.pem")?);
//! let (ws, _response) = ws::connect_with("wss://localhost:9443/", &config).await?;
//! # Ok(()) }
//! ```

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};

use super::MaybeTlsStream;

pub use rustls;

/// The one application protocol rtwire speaks over TLS (RFC 7301 ALPN):
/// a WebSocket handshake, like every other request it serves, is HTTP/1.1.
const ALPN_HTTP1: &[u8] = b"http/1.1";

/// What can go wrong building a TLS configuration: the caller's files or
/// settings, never the peer.
#[derive(Debug)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read.
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        error: io::Error,
    },
    /// The certificate PEM holds no certificate, or an unreadable one.
    NoCertificate,
    /// The key PEM holds no private key (PKCS#8, PKCS#1 or SEC1), or an
    /// unreadable one.
    NoPrivateKey,
    /// rustls refused the configuration (e.g. the key does not match the
    /// certificate).
    Rustls(rustls::Error),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Io { path, error } => write!(f, "cannot read {}: {error}", path.display()),
            TlsError::NoCertificate => f.write_str("no PEM certificate found"),
            TlsError::NoPrivateKey => f.write_str("no PEM private key found"),
            TlsError::Rustls(e) => write!(f, "TLS configuration refused: {e}"),
        }
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TlsError::Io { error, .. } => Some(error),
            TlsError::Rustls(e) => Some(e),
            TlsError::NoCertificate | TlsError::NoPrivateKey => None,
        }
    }
}

impl From<rustls::Error> for TlsError {
    fn from(e: rustls::Error) -> Self {
        TlsError::Rustls(e)
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|error| TlsError::Io {
        path: path.to_owned(),
        error,
    })
}

/// Every certificate in a PEM text, in order; at least one.
fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|_| TlsError::NoCertificate)?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate);
    }
    Ok(certs)
}

/// The ring provider, whatever other provider the process installed:
/// the crate is built against this one.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// How a `wss://` client checks servers; cheap to clone.
#[derive(Clone)]
pub struct TlsConnector {
    inner: tokio_rustls::TlsConnector,
}

impl fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConnector").finish_non_exhaustive()
    }
}

impl TlsConnector {
    /// Trusts Mozilla's root certificates (webpki-roots): the default for
    /// `wss://`. Built once per process, then shared.
    pub fn webpki_roots() -> TlsConnector {
        static SHARED: OnceLock<TlsConnector> = OnceLock::new();
        SHARED
            .get_or_init(|| {
                let mut roots = rustls::RootCertStore::empty();
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
                TlsConnector::with_roots(roots)
            })
            .clone()
    }

    /// Trusts the operating system's root certificates. Certificates the
    /// system store holds but rustls cannot parse are skipped; fails only
    /// if none is usable.
    #[cfg(feature = "native-roots")]
    #[cfg_attr(docsrs, doc(cfg(feature = "native-roots")))]
    pub fn native_roots() -> Result<TlsConnector, TlsError> {
        let found = rustls_native_certs::load_native_certs();
        let mut roots = rustls::RootCertStore::empty();
        let (added, _ignored) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            return Err(TlsError::NoCertificate);
        }
        Ok(TlsConnector::with_roots(roots))
    }

    /// Trusts exactly these roots.
    pub fn with_roots(roots: rustls::RootCertStore) -> TlsConnector {
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        TlsConnector::from_config(Arc::new(config))
    }

    /// Trusts the CA certificates in a PEM file (e.g. a test or company CA).
    pub fn from_pem_file(path: impl AsRef<Path>) -> Result<TlsConnector, TlsError> {
        TlsConnector::from_pem(&read_file(path.as_ref())?)
    }

    /// Trusts the CA certificates in a PEM text.
    pub fn from_pem(pem: &[u8]) -> Result<TlsConnector, TlsError> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in certificates(pem)? {
            roots.add(cert)?;
        }
        Ok(TlsConnector::with_roots(roots))
    }

    /// Uses a rustls configuration as it is (client certificates, custom
    /// verifiers, session resumption). Its ALPN list is set to
    /// `http/1.1` if empty.
    pub fn from_config(mut config: Arc<rustls::ClientConfig>) -> TlsConnector {
        if config.alpn_protocols.is_empty() {
            Arc::make_mut(&mut config).alpn_protocols = vec![ALPN_HTTP1.to_vec()];
        }
        TlsConnector {
            inner: tokio_rustls::TlsConnector::from(config),
        }
    }

    /// The TLS handshake with the server named `host` (a DNS name or an
    /// IP address, as in the URL) over `stream`. No deadline of its own:
    /// the caller bounds it (`connect_with` does, with the handshake
    /// timeout).
    pub async fn connect<S>(&self, host: &str, stream: S) -> io::Result<MaybeTlsStream<S>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let name = ServerName::try_from(host.to_owned())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "invalid TLS server name"))?;
        let tls = self.inner.connect(name, stream).await?;
        Ok(MaybeTlsStream::Tls(Box::new(tls.into())))
    }
}

/// How a server presents its certificate; cheap to clone.
#[derive(Clone)]
pub struct TlsAcceptor {
    inner: tokio_rustls::TlsAcceptor,
}

impl fmt::Debug for TlsAcceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsAcceptor").finish_non_exhaustive()
    }
}

impl TlsAcceptor {
    /// A certificate chain (leaf first) and its private key, from PEM
    /// files, as `rtwire serve --tls-cert FILE --tls-key FILE` takes them.
    pub fn from_pem_files(
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<TlsAcceptor, TlsError> {
        TlsAcceptor::from_pem(&read_file(cert.as_ref())?, &read_file(key.as_ref())?)
    }

    /// A certificate chain and its private key, from PEM texts.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<TlsAcceptor, TlsError> {
        let chain = certificates(cert_pem)?;
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|_| TlsError::NoPrivateKey)?;
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        Ok(TlsAcceptor::from_config(Arc::new(config)))
    }

    /// Uses a rustls configuration as it is (client certificates, SNI
    /// resolvers). Its ALPN list is set to `http/1.1` if empty.
    pub fn from_config(mut config: Arc<rustls::ServerConfig>) -> TlsAcceptor {
        if config.alpn_protocols.is_empty() {
            Arc::make_mut(&mut config).alpn_protocols = vec![ALPN_HTTP1.to_vec()];
        }
        TlsAcceptor {
            inner: tokio_rustls::TlsAcceptor::from(config),
        }
    }

    /// The TLS handshake with a client over `stream`. No deadline of its
    /// own: a client can stall it, so bound it with a timeout.
    pub async fn accept<S>(&self, stream: S) -> io::Result<MaybeTlsStream<S>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let tls = self.inner.accept(stream).await?;
        Ok(MaybeTlsStream::Tls(Box::new(tls.into())))
    }
}
