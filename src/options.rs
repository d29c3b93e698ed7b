//! What the adapters need beyond the core's [`Config`]: handshake limits and timeouts.

use std::time::Duration;

use crate::proto::Config;
use crate::proto::handshake::HandshakeLimits;

/// Settings of a connection driven by the blocking or tokio adapter.
///
/// ```
/// use std::time::Duration;
/// let mut options = wsio::Options::default();
/// options.handshake_timeout = Some(Duration::from_secs(5));
/// options.connection.max_message_size = 1 << 20;
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// Limits and timers of the connection after the handshake.
    pub connection: Config,
    /// Size limits of the opening handshake.
    pub handshake: HandshakeLimits,
    /// How long the whole opening handshake may take. Default 10 s.
    pub handshake_timeout: Option<Duration>,
    /// How long one write to the transport may block before the connection fails. Default 30 s.
    ///
    /// The blocking adapter applies it through the socket: [`connect`](crate::sync::connect)
    /// does, and a server passes each accepted stream to
    /// [`configure_tcp`](crate::sync::configure_tcp).
    // The links name the blocking adapter, which exists only with the `sync` feature.
    #[cfg_attr(not(feature = "sync"), allow(rustdoc::broken_intra_doc_links))]
    pub write_timeout: Option<Duration>,
    /// How many bytes one read from the transport asks for once data keeps coming. Default
    /// 64 KiB. The tokio adapter reads into a small stack buffer first and allocates this
    /// buffer only while reads fill that one, releasing it when the transport has nothing more.
    pub read_chunk: usize,
    /// permessage-deflate: offered by clients and accepted by servers when `Some`.
    /// Default: on, with [`DeflateConfig::default`](crate::proto::deflate::DeflateConfig).
    #[cfg(feature = "deflate")]
    pub deflate: Option<crate::proto::deflate::DeflateConfig>,
    /// How a client opens `wss://` connections (a private CA, client certificates). Default
    /// `None`: the roots of [`Connector::default_roots`](crate::tls::Connector::default_roots).
    /// Servers ignore it.
    #[cfg(feature = "rustls-manual-roots")]
    pub tls_connector: Option<crate::tls::Connector>,
}

impl Options {
    /// These options with every timeout off: the handshake and write timeouts, keepalive and
    /// the close timeout. The tokio adapter then never uses tokio's timer, so it runs on a
    /// runtime built without the time driver (`Builder::enable_io` alone).
    ///
    /// ```
    /// let options = wsio::Options::default().without_timeouts();
    /// assert!(options.handshake_timeout.is_none());
    /// assert!(options.connection.keepalive_interval.is_none());
    /// ```
    pub fn without_timeouts(mut self) -> Self {
        self.handshake_timeout = None;
        self.write_timeout = None;
        self.connection.keepalive_interval = None;
        self.connection.keepalive_timeout = None;
        self.connection.close_timeout = None;
        self
    }

    /// Whether any timeout is on, so a timer is needed to run it.
    #[cfg(feature = "tokio")]
    pub(crate) fn has_timeouts(&self) -> bool {
        let config = &self.connection;
        self.handshake_timeout.is_some()
            || self.write_timeout.is_some()
            || config.keepalive_interval.is_some()
            || config.keepalive_timeout.is_some()
            || config.close_timeout.is_some()
    }
}

impl Default for Options {
    fn default() -> Self {
        Self {
            connection: Config::default(),
            handshake: HandshakeLimits::default(),
            handshake_timeout: Some(Duration::from_secs(10)),
            write_timeout: Some(Duration::from_secs(30)),
            read_chunk: 64 << 10,
            #[cfg(feature = "deflate")]
            deflate: Some(crate::proto::deflate::DeflateConfig::default()),
            #[cfg(feature = "rustls-manual-roots")]
            tls_connector: None,
        }
    }
}
