//! The error of the I/O adapters: the core's errors plus what the transport and the clock add.

use std::io;

use crate::proto::handshake::HandshakeError;
use crate::proto::{CloseCode, ProtocolError, SendError};

/// Everything that can go wrong on a connection driven by an adapter.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The transport failed.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    /// The opening handshake failed; for a server the matching HTTP error response was sent.
    #[error("handshake failed: {0}")]
    Handshake(#[from] HandshakeError),
    /// The application rejected the handshake with this HTTP status.
    #[error("handshake rejected with status {0}")]
    Rejected(u16),
    /// The peer broke the protocol or stopped responding; the close frame was sent where
    /// possible.
    #[error("protocol error: {0} (close code {code})", code = .0.close_code())]
    Protocol(#[from] ProtocolError),
    /// The application asked for something the protocol does not allow at this point.
    #[error("cannot send: {0}")]
    Send(#[from] SendError),
    /// The opening handshake did not complete in time.
    #[error("handshake timed out")]
    HandshakeTimeout,
    /// The connection was already closed when this call was made.
    #[error("connection already closed")]
    AlreadyClosed,
    /// The server's answer to our permessage-deflate offer is not one we can accept.
    #[cfg(feature = "deflate")]
    #[error("extension negotiation failed: {0}")]
    Extension(#[from] crate::proto::deflate::DeflateNegotiationError),
    /// The URL cannot be connected to by this adapter (for example `wss://` without TLS).
    #[error("unsupported url: {0}")]
    UnsupportedUrl(String),
    /// A timeout is on but there is no timer to run it: the tokio adapter was called outside a
    /// tokio runtime. Use [`Options::without_timeouts`](crate::Options::without_timeouts), or
    /// run on a tokio runtime with its time driver.
    #[error("timeouts need a tokio runtime with its time driver")]
    NoTimer,
    /// The TLS handshake failed or stalled; the variant says why.
    #[cfg(feature = "rustls-manual-roots")]
    #[error("tls handshake failed: {0}")]
    Tls(#[from] crate::tls::TlsError),
}

impl Error {
    /// The close code that describes this error to the peer, when there is one.
    pub fn close_code(&self) -> Option<CloseCode> {
        match self {
            Self::Protocol(error) => Some(error.close_code()),
            Self::Io(_)
            | Self::Handshake(_)
            | Self::Rejected(_)
            | Self::Send(_)
            | Self::HandshakeTimeout
            | Self::AlreadyClosed
            | Self::UnsupportedUrl(_)
            | Self::NoTimer => None,
            #[cfg(feature = "deflate")]
            Self::Extension(_) => None,
            #[cfg(feature = "rustls-manual-roots")]
            Self::Tls(_) => None,
        }
    }
}
