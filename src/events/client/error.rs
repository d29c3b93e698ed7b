//! What can go wrong on the client side, and why a connection ended.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

/// Everything a [`Client`](super::Client) call or callback can report.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The URL is not `http://host[:port][/namespace][?query]`, `https://…`, `ws://…` or
    /// `wss://…`.
    #[error("invalid url: {0}")]
    InvalidUrl(String),
    /// An `https://` or `wss://` URL, and the crate was built without the feature `rustls`.
    #[error("unsupported url {0}: TLS needs the `rustls` feature")]
    UnsupportedUrl(String),
    /// A namespace that does not start with `/`.
    #[error("invalid namespace {0:?}: it must start with '/'")]
    InvalidNamespace(String),
    /// The auth payload is not a JSON object.
    #[error("auth payload must be a json object")]
    InvalidAuth,
    /// The WebSocket connection could not be opened, or failed.
    #[error("transport error: {0}")]
    Transport(Arc<crate::Error>),
    /// The server's first packet was not an Engine.IO `open`.
    #[error("engine.io handshake failed: {0}")]
    Handshake(String),
    /// The connection or the namespace did not open within the connect timeout.
    #[error("no connection within {0:?}")]
    ConnectTimeout(Duration),
    /// The server refused to connect the namespace (`CONNECT_ERROR`), usually because the
    /// auth payload was refused. The client does not retry: connect again to ask anew.
    #[error("namespace {namespace} refused the connection: {message}")]
    ConnectRefused {
        /// The namespace refused.
        namespace: String,
        /// The server's message.
        message: String,
        /// The extra data the server sent with it, if any.
        data: Option<Value>,
    },
    /// The server accepted the namespace without a session id (`sid`) in its CONNECT reply, as
    /// a Socket.IO v2 server does: the protocol versions do not match. Not retried.
    #[error("namespace {namespace}: connect reply without a session id (a Socket.IO v2 server?)")]
    InvalidConnect {
        /// The namespace.
        namespace: String,
    },
    /// The event name is one socket.io reserves (`connect`, `disconnect`, …).
    #[error("reserved event name {0:?}")]
    ReservedEvent(String),
    /// Too many emits are waiting to be sent (or for their acknowledgement).
    #[error("{limit} emits already waiting")]
    BufferFull {
        /// The limit, [`ClientBuilder::max_buffered`](super::ClientBuilder::max_buffered).
        limit: usize,
    },
    /// One message of the packet is larger than the server accepts (its `maxPayload`).
    #[error("message of {size} bytes exceeds the server's limit of {limit}")]
    TooLarge {
        /// The size of the message.
        size: usize,
        /// The server's limit.
        limit: usize,
    },
    /// No acknowledgement arrived in time.
    #[error("no acknowledgement within {0:?}")]
    AckTimeout(Duration),
    /// An emit with retries ([`ClientBuilder::retries`](super::ClientBuilder::retries)) had no
    /// acknowledgement after its last attempt.
    #[error("no acknowledgement after {attempts} attempts of {timeout:?} each")]
    RetriesExhausted {
        /// How many times the event was sent.
        attempts: u32,
        /// How long each attempt waited.
        timeout: Duration,
    },
    /// The connection was lost after the event was sent, so its acknowledgement cannot come.
    #[error("disconnected before the acknowledgement arrived")]
    Disconnected,
    /// The namespace is disconnected for good: by [`Client::disconnect`](super::Client::disconnect),
    /// by the server, or after the reconnection attempts ran out.
    #[error("the client is disconnected")]
    Closed,
}

impl From<crate::Error> for ClientError {
    fn from(error: crate::Error) -> Self {
        Self::Transport(Arc::new(error))
    }
}

/// Why a namespace was disconnected; [`as_str`](Self::as_str) gives socket.io's name for it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// The server disconnected the socket. No automatic reconnection.
    IoServerDisconnect,
    /// [`Client::disconnect`](super::Client::disconnect) was called. No automatic reconnection.
    IoClientDisconnect,
    /// No ping from the server within `pingInterval + pingTimeout`.
    PingTimeout,
    /// The server closed the connection.
    TransportClose,
    /// The connection failed; the message says how.
    TransportError(String),
    /// The server sent something that is not Engine.IO / Socket.IO; the message says what.
    ParseError(String),
}

impl DisconnectReason {
    /// The reason as socket.io names it: `"io server disconnect"`, `"ping timeout"`, ….
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::IoServerDisconnect => "io server disconnect",
            Self::IoClientDisconnect => "io client disconnect",
            Self::PingTimeout => "ping timeout",
            Self::TransportClose => "transport close",
            Self::TransportError(_) => "transport error",
            Self::ParseError(_) => "parse error",
        }
    }

    /// Whether the client reconnects by itself after this (when reconnection is enabled).
    pub fn reconnects(&self) -> bool {
        match self {
            Self::IoServerDisconnect | Self::IoClientDisconnect => false,
            Self::PingTimeout
            | Self::TransportClose
            | Self::TransportError(_)
            | Self::ParseError(_) => true,
        }
    }
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TransportError(detail) | Self::ParseError(detail) => {
                write!(f, "{}: {detail}", self.as_str())
            }
            _ => f.write_str(self.as_str()),
        }
    }
}
