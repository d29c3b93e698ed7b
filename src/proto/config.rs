//! Limits and timers of a connection.

use std::time::Duration;

/// Limits and timers of one connection. Every field has a documented default and can be changed
/// after `Config::default()`.
///
/// ```
/// use std::time::Duration;
/// use wsio::proto::Config;
/// let mut config = Config::default();
/// config.max_message_size = 1 << 20;
/// config.keepalive_interval = None; // no pings
/// config.close_timeout = Some(Duration::from_secs(2));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// The largest frame payload accepted, checked from the header before the payload is
    /// buffered. Over it: close 1009. Default 16 MiB.
    pub max_frame_size: usize,
    /// The largest message accepted, checked on the running total of its fragments. Over it:
    /// close 1009. Default 64 MiB.
    pub max_message_size: usize,
    /// The most frames one message may be split into. Over it: close 1008. Default 131 072.
    pub max_fragments: usize,
    /// Deliver data messages as [`Event::MessageChunk`](super::Event::MessageChunk)s as they
    /// arrive instead of whole [`Event::Message`](super::Event::Message)s, so a large message
    /// never has to fit in memory. Limits still apply. Default false.
    pub streaming: bool,
    /// When nothing has been received for this long, send a ping. `None`: never. Default 30 s.
    pub keepalive_interval: Option<Duration>,
    /// After a keepalive ping, how long the peer has to send anything back before the
    /// connection fails with close 1011. `None`: wait forever. Default 30 s.
    pub keepalive_timeout: Option<Duration>,
    /// How long the peer has to answer our close frame (and, for a client, to close the
    /// transport afterwards) before we shut the transport down. `None`: wait forever.
    /// Default 10 s.
    pub close_timeout: Option<Duration>,
    /// The longest one incoming message may take to arrive, from the first byte of its first
    /// frame header to the last byte of its final frame (a control frame counts as a message
    /// of its own). Guards against a peer that trickles a message in a byte at a time, which
    /// keepalive does not catch, since the connection is never idle. On expiry the connection
    /// starts the closing handshake with 1008 (policy violation, reason "message timeout"),
    /// and the close timeout then bounds how long the peer has to answer before the transport
    /// is shut: the application sees the peer's answer as
    /// [`Event::Closed`](super::Event::Closed), or
    /// [`ProtocolError::CloseTimeout`](super::ProtocolError::CloseTimeout). Measured by the
    /// driver's clock through [`Connection::poll_timeout`](super::Connection::poll_timeout),
    /// from the first `handle_timeout` after the read that brought the first byte. `None`: no
    /// limit. Default `None`.
    pub message_timeout: Option<Duration>,
    /// The most bytes queued for the transport before `send` refuses with
    /// [`SendError::BufferFull`](super::SendError::BufferFull). Control replies are never
    /// refused. Default 64 MiB.
    pub max_buffered: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_frame_size: 16 << 20,
            max_message_size: 64 << 20,
            max_fragments: 131_072,
            streaming: false,
            keepalive_interval: Some(Duration::from_secs(30)),
            keepalive_timeout: Some(Duration::from_secs(30)),
            close_timeout: Some(Duration::from_secs(10)),
            message_timeout: None,
            max_buffered: 64 << 20,
        }
    }
}
