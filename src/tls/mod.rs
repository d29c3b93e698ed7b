//! TLS for `wss://` (feature `rustls`): the client [`Connector`], the server [`Acceptor`] and the
//! [`TlsError`] a failed TLS handshake reports. Without the feature, this module only holds the
//! stream types `connect` returns, re-exported by the adapters.
//!
//! Every configuration here is built with the `ring` crypto provider passed explicitly, so
//! nothing depends on a process-wide default provider being installed.
//!
//! # Client
//!
//! [`sync::connect`](crate::sync::connect) and [`tokio::connect_async`](crate::tokio::connect_async)
//! open `wss://` URLs themselves and return the connection over a `MaybeTlsStream`
//! ([`sync::MaybeTlsStream`](crate::sync::MaybeTlsStream),
//! [`tokio::MaybeTlsStream`](crate::tokio::MaybeTlsStream)). By default the server is verified
//! against the roots of the features that are on: the platform's (`rustls-native-roots`, part
//! of `rustls`) and Mozilla's bundled ones (`rustls-webpki-roots`), with SNI and ALPN
//! `http/1.1`. To trust a private CA or present a client certificate, put a [`Connector`] in
//! [`Options::tls_connector`](crate::Options::tls_connector):
//!
//! ```no_run
//! # #[cfg(all(feature = "sync", feature = "rustls-manual-roots"))] {
//! use wsio::tls::{Connector, rustls};
//! let mut roots = rustls::RootCertStore::empty();
//! for cert in wsio::tls::load_certificates("ca.pem")? {
//!     roots.add(cert)?;
//! }
//! let mut options = wsio::Options::default();
//! options.tls_connector = Some(Connector::with_roots(roots));
//! let request = wsio::proto::handshake::ClientRequest::new("wss://internal.example/feed")?;
//! let (mut ws, _) = wsio::sync::connect_with(request, &options)?;
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Server
//!
//! An [`Acceptor`] runs the TLS handshake and then the WebSocket handshake on an accepted TCP
//! stream, both within [`Options::handshake_timeout`](crate::Options::handshake_timeout):
//!
//! ```no_run
//! # #[cfg(all(feature = "tokio", feature = "rustls-manual-roots"))]
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let acceptor = wsio::tls::Acceptor::from_pem_files("cert.pem", "key.pem")?;
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:443").await?;
//! loop {
//!     let (stream, _) = listener.accept().await?;
//!     let acceptor = acceptor.clone();
//!     tokio::spawn(async move {
//!         let mut ws = acceptor.accept_async(stream, &wsio::Options::default()).await?;
//!         while let Some(message) = ws.read().await? {
//!             ws.send(message).await?;
//!         }
//!         Ok::<(), wsio::Error>(())
//!     });
//! }
//! # }
//! ```

//!
//! # Failures
//!
//! A TLS handshake that fails returns [`Error::Tls`](crate::Error::Tls) with the [`TlsError`]
//! that says why: [`UnknownIssuer`](TlsError::UnknownIssuer),
//! [`WrongHostName`](TlsError::WrongHostName), [`NotTls`](TlsError::NotTls) (plaintext on a TLS
//! port, or TLS on a plain one), [`Alert`](TlsError::Alert) (the peer refused us),
//! [`HandshakeTimeout`](TlsError::HandshakeTimeout).
//!
//! # Ends of stream
//!
//! When a connection ends its write side (after the closing handshake, or after failing and
//! sending its close frame), the streams of this module send `close_notify` and then end TCP: the `MaybeTlsStream`s that `connect`
//! and `connect_async` return, and the [`ServerStream`] and [`AsyncServerStream`] that an
//! [`Acceptor`] hands out. (A TLS stream given to `sync::accept` or `sync::client` directly is
//! a generic stream to the blocking adapter: it is not shut down, and ends when dropped.)
//!
//! A peer that ends TCP without `close_notify` reads, on all four, as a plain end of stream,
//! which the WebSocket closing handshake then judges, in both roles and both adapters alike:
//!
//! - after the peer's close frame, it is no error: the close frame, inside the authenticated
//!   TLS stream, already told a finished connection from a cut one, and many peers skip
//!   `close_notify`. The read reports the close as usual.
//! - before it, the connection was cut short (truncated, by the peer or by someone on the
//!   path): the read fails with
//!   [`Error::Protocol`](crate::Error::Protocol)`(`[`ProtocolError::UnexpectedEof`](crate::proto::ProtocolError::UnexpectedEof)`)`,
//!   as a TCP stream ending without a close does. A TLS stream whose peer sent `close_notify`
//!   before its close frame fails the same way.

// The module text links the client, server and error types of `rustls` and both adapters;
// with fewer features some of them do not exist, and the links stay plain text.
#![cfg_attr(
    not(all(feature = "rustls-manual-roots", feature = "sync", feature = "tokio")),
    allow(rustdoc::broken_intra_doc_links)
)]

#[cfg(feature = "rustls-manual-roots")]
mod config;
#[cfg(feature = "sync")]
pub(crate) mod sync_io;
#[cfg(feature = "tokio")]
pub(crate) mod tokio_io;

#[cfg(all(feature = "tokio", feature = "rustls-manual-roots"))]
pub(crate) use self::config::server_name;
#[cfg(feature = "rustls-manual-roots")]
pub use self::config::{Acceptor, Connector, TlsError, load_certificates};
#[cfg(all(
    feature = "rustls-manual-roots",
    any(feature = "sync", feature = "tokio")
))]
pub(crate) use self::config::{connector, handshake_error, remaining};
#[cfg(all(feature = "sync", feature = "rustls-manual-roots"))]
pub use self::sync_io::ServerStream;
#[cfg(all(feature = "tokio", feature = "rustls-manual-roots"))]
pub use self::tokio_io::AsyncServerStream;
#[cfg(feature = "rustls-manual-roots")]
pub use rustls::{self, pki_types};
#[cfg(all(feature = "tokio", feature = "rustls-manual-roots"))]
pub use tokio_rustls;
