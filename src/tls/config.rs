//! Building the rustls configurations and naming what went wrong in a TLS handshake.

// Without an adapter there is no connect or accept path to use the handshake helpers: the
// feature then only offers the configuration types.
#![cfg_attr(not(any(feature = "sync", feature = "tokio")), allow(dead_code))]

use std::io;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use crate::error::Error;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// The ALPN protocol a WebSocket handshake runs over.
const ALPN_HTTP_1_1: &[u8] = b"http/1.1";

/// Why a TLS handshake failed, or why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The server's certificate does not chain to a root this client trusts.
    #[error("the peer's certificate is signed by an unknown authority")]
    UnknownIssuer,
    /// The server's certificate is not valid for the host name that was connected to.
    #[error("the peer's certificate is not valid for the host name")]
    WrongHostName,
    /// The peer's certificate was refused for another reason (expired, revoked, malformed…).
    #[error("the peer's certificate was refused: {0:?}")]
    BadCertificate(rustls::CertificateError),
    /// The peer does not speak TLS: a plaintext client on a TLS port, or a TLS client on a
    /// plaintext port.
    #[error("the peer does not speak TLS")]
    NotTls,
    /// The peer ended the TLS handshake with this alert (for example, it did not trust our
    /// certificate).
    #[error("the peer refused the TLS handshake: {0:?}")]
    Alert(rustls::AlertDescription),
    /// The TLS handshake did not complete within the handshake timeout.
    #[error("the TLS handshake timed out")]
    HandshakeTimeout,
    /// The host of the URL is not a valid DNS name or IP address for TLS.
    #[error("invalid server name for TLS: {0}")]
    InvalidServerName(String),
    /// No root certificate is available to verify servers: enable `rustls-native-roots` or
    /// `rustls-webpki-roots`, or pass a [`Connector`].
    #[error("no root certificates to verify the server with")]
    NoRoots,
    /// A PEM file could not be read or holds no usable certificate or key.
    #[error("invalid PEM: {0}")]
    Pem(String),
    /// Any other TLS failure.
    #[error("tls: {0}")]
    Other(rustls::Error),
}

/// How a client opens TLS connections: a rustls [`ClientConfig`] with ALPN `http/1.1`.
///
/// Cheap to clone (the configuration is shared). Without one in
/// [`Options::tls_connector`](crate::Options::tls_connector), a `wss://` connect uses
/// [`Connector::default_roots`].
#[derive(Debug, Clone)]
pub struct Connector {
    config: Arc<ClientConfig>,
}

impl Connector {
    /// Uses the application's own configuration (private roots, client certificates, a custom
    /// verifier). When it names no ALPN protocol, `http/1.1` is added to a copy.
    ///
    /// ```no_run
    /// use std::sync::Arc;
    /// use wsio::tls::rustls;
    /// # fn run(roots: rustls::RootCertStore, chain: Vec<wsio::tls::pki_types::CertificateDer<'static>>,
    /// #        key: wsio::tls::pki_types::PrivateKeyDer<'static>) -> Result<(), Box<dyn std::error::Error>> {
    /// let provider = Arc::new(rustls::crypto::ring::default_provider());
    /// let config = rustls::ClientConfig::builder_with_provider(provider)
    ///     .with_safe_default_protocol_versions()?
    ///     .with_root_certificates(roots)
    ///     .with_client_auth_cert(chain, key)?;
    /// let connector = wsio::tls::Connector::new(Arc::new(config));
    /// # Ok(()) }
    /// ```
    pub fn new(config: Arc<ClientConfig>) -> Self {
        if !config.alpn_protocols.is_empty() {
            return Self { config };
        }
        let mut config = (*config).clone();
        config.alpn_protocols = vec![ALPN_HTTP_1_1.to_vec()];
        Self {
            config: Arc::new(config),
        }
    }

    /// Verifies servers against `roots` only, with the `ring` provider.
    pub fn with_roots(roots: RootCertStore) -> Self {
        let config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Self::new(Arc::new(config))
    }

    /// The connector a `wss://` connect uses when the options name none: the platform's roots
    /// (feature `rustls-native-roots`) and the bundled webpki roots (feature
    /// `rustls-webpki-roots`), loaded once per process.
    ///
    /// Fails with [`TlsError::NoRoots`] when neither feature is on or no root could be loaded.
    pub fn default_roots() -> Result<Self, TlsError> {
        static DEFAULT: OnceLock<Connector> = OnceLock::new();
        if let Some(connector) = DEFAULT.get() {
            return Ok(connector.clone());
        }
        let roots = default_root_store();
        if roots.is_empty() {
            return Err(TlsError::NoRoots);
        }
        Ok(DEFAULT.get_or_init(|| Self::with_roots(roots)).clone())
    }

    /// The configuration connections are made with.
    pub fn config(&self) -> &Arc<ClientConfig> {
        &self.config
    }

    /// The rustls client connection for `host`, with SNI when it is a DNS name.
    #[cfg(feature = "sync")]
    pub(crate) fn client_connection(&self, host: &str) -> Result<rustls::ClientConnection, Error> {
        let name = server_name(host)?;
        rustls::ClientConnection::new(Arc::clone(&self.config), name)
            .map_err(|error| Error::Tls(TlsError::Other(error)))
    }
}

impl From<Arc<ClientConfig>> for Connector {
    fn from(config: Arc<ClientConfig>) -> Self {
        Self::new(config)
    }
}

/// How a server accepts TLS connections: a rustls [`ServerConfig`] with ALPN `http/1.1`.
///
/// Cheap to clone. [`accept`](Self::accept) (blocking) and [`accept_async`](Self::accept_async)
/// (tokio) run the TLS handshake and the WebSocket handshake within
/// [`Options::handshake_timeout`](crate::Options::handshake_timeout); a failed TLS handshake
/// returns [`Error::Tls`] and drops only that connection.
#[derive(Debug, Clone)]
pub struct Acceptor {
    config: Arc<ServerConfig>,
}

impl Acceptor {
    /// Uses the application's own configuration. When it names no ALPN protocol, `http/1.1`
    /// is added to a copy.
    pub fn new(config: Arc<ServerConfig>) -> Self {
        if !config.alpn_protocols.is_empty() {
            return Self { config };
        }
        let mut config = (*config).clone();
        config.alpn_protocols = vec![ALPN_HTTP_1_1.to_vec()];
        Self {
            config: Arc::new(config),
        }
    }

    /// Serves the certificate chain and private key (PKCS#8, PKCS#1 RSA or SEC1 EC) read from
    /// two PEM files, with the `ring` provider and no client authentication.
    pub fn from_pem_files(
        cert_chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Self, TlsError> {
        let chain = load_certificates(cert_chain)?;
        let key = PrivateKeyDer::from_pem_file(key.as_ref())
            .map_err(|error| pem_error(key.as_ref(), error))?;
        Self::from_der(chain, key)
    }

    /// Like [`from_pem_files`](Self::from_pem_files), from PEM text in memory.
    pub fn from_pem(cert_chain: &[u8], key: &[u8]) -> Result<Self, TlsError> {
        let chain = CertificateDer::pem_slice_iter(cert_chain)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| TlsError::Pem(format!("certificate chain: {error}")))?;
        if chain.is_empty() {
            return Err(TlsError::Pem("no certificate in the chain".into()));
        }
        let key = PrivateKeyDer::from_pem_slice(key)
            .map_err(|error| TlsError::Pem(format!("private key: {error}")))?;
        Self::from_der(chain, key)
    }

    /// Serves a DER certificate chain (leaf first) and its private key.
    pub fn from_der(
        cert_chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self, TlsError> {
        let config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Other)?
            .with_no_client_auth()
            .with_single_cert(cert_chain, key)
            .map_err(TlsError::Other)?;
        Ok(Self::new(Arc::new(config)))
    }

    /// The configuration connections are accepted with.
    pub fn config(&self) -> &Arc<ServerConfig> {
        &self.config
    }
}

/// Reads every certificate of a PEM file (a chain, or CA roots to trust).
pub fn load_certificates(path: impl AsRef<Path>) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let path = path.as_ref();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|error| pem_error(path, error))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| pem_error(path, error))?;
    if certs.is_empty() {
        return Err(TlsError::Pem(format!(
            "{}: no certificate found",
            path.display()
        )));
    }
    Ok(certs)
}

/// The crypto provider of every configuration this module builds.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    // rustls deprecates `ring`'s provider for lacking post-quantum key exchange; it is still the
    // one that builds without cmake or a C++ toolchain, which is why this crate picks it.
    #[allow(deprecated)]
    Arc::new(rustls::crypto::ring::default_provider())
}

fn pem_error(path: &Path, error: rustls::pki_types::pem::Error) -> TlsError {
    TlsError::Pem(format!("{}: {error}", path.display()))
}

pub(crate) fn server_name(host: &str) -> Result<ServerName<'static>, Error> {
    // A bracketed IPv6 literal from a URL names the address without its brackets.
    let host = host
        .strip_prefix('[')
        .and_then(|host| host.strip_suffix(']'))
        .unwrap_or(host);
    ServerName::try_from(host.to_owned())
        .map_err(|_| Error::Tls(TlsError::InvalidServerName(host.to_owned())))
}

fn default_root_store() -> RootCertStore {
    #[allow(unused_mut)]
    let mut roots = RootCertStore::empty();
    #[cfg(feature = "rustls-native-roots")]
    {
        // Unreadable files are skipped: the roots that did load still verify.
        let loaded = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(loaded.certs);
    }
    #[cfg(feature = "rustls-webpki-roots")]
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    roots
}

/// The connector for a client request: the options' own, else the default roots.
pub(crate) fn connector(options: &crate::Options) -> Result<Connector, Error> {
    match &options.tls_connector {
        Some(connector) => Ok(connector.clone()),
        None => Connector::default_roots().map_err(Error::Tls),
    }
}

/// Turns an I/O error of a TLS handshake into the [`TlsError`] it carries, if any.
pub(crate) fn handshake_error(error: io::Error) -> Error {
    let Some(tls) = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return Error::Io(error);
    };
    Error::Tls(classify(tls.clone()))
}

fn classify(error: rustls::Error) -> TlsError {
    use rustls::{CertificateError, InvalidMessage};
    match error {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            TlsError::UnknownIssuer
        }
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => TlsError::WrongHostName,
        rustls::Error::InvalidCertificate(other) => TlsError::BadCertificate(other),
        // The first bytes were not a TLS record: an HTTP request or response instead.
        rustls::Error::InvalidMessage(
            InvalidMessage::InvalidContentType | InvalidMessage::UnknownProtocolVersion,
        ) => TlsError::NotTls,
        rustls::Error::AlertReceived(alert) => TlsError::Alert(alert),
        other => TlsError::Other(other),
    }
}

/// The options for the WebSocket handshake that follows a TLS handshake: the time left of
/// the handshake timeout.
pub(crate) fn remaining(options: &crate::Options, started: std::time::Instant) -> crate::Options {
    let mut options = options.clone();
    if let Some(timeout) = options.handshake_timeout {
        options.handshake_timeout = Some(timeout.saturating_sub(started.elapsed()));
    }
    options
}
