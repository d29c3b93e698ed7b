//! Errors of the protocol core, split by whose fault they are.

use super::close::CloseCode;

/// The peer broke RFC 6455, or stopped responding: the connection has failed (§7.1.7).
///
/// By the time the application sees one of these, the core has already queued the close frame
/// with [`ProtocolError::close_code`] (where one may still be sent) and a transport shutdown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// RSV2, RSV3, or RSV1 without a negotiated extension (§5.2).
    #[error("reserved bits set without a negotiated extension")]
    ReservedBits,
    /// An opcode from the reserved ranges 0x3–0x7 or 0xB–0xF (§5.2).
    #[error("reserved opcode {0:#x}")]
    ReservedOpCode(u8),
    /// A control frame without FIN (§5.5).
    #[error("fragmented control frame")]
    FragmentedControlFrame,
    /// A control frame with more than 125 bytes of payload (§5.5).
    #[error("control frame payload over 125 bytes")]
    ControlFrameTooLong,
    /// A client frame without a mask (§5.1).
    #[error("unmasked frame from a client")]
    UnmaskedClientFrame,
    /// A server frame with a mask (§5.1).
    #[error("masked frame from a server")]
    MaskedServerFrame,
    /// A 16- or 64-bit length that fits a shorter form (§5.2).
    #[error("payload length not in its minimal encoding")]
    NonMinimalLength,
    /// A 64-bit length with its most significant bit set (§5.2).
    #[error("64-bit payload length with the most significant bit set")]
    LengthMsbSet,
    /// A continuation frame with no message to continue (§5.4).
    #[error("continuation frame without a message to continue")]
    UnexpectedContinuation,
    /// A new text or binary frame while a fragmented message is still open (§5.4).
    #[error("new data frame inside an unfinished fragmented message")]
    ExpectedContinuation,
    /// Text that is not valid UTF-8 (§8.1).
    #[error("invalid utf-8 in text message")]
    InvalidUtf8,
    /// A frame longer than the configured limit.
    #[error("frame of {size} bytes exceeds the limit of {limit}")]
    FrameTooBig {
        /// The declared payload length.
        size: u64,
        /// The configured limit.
        limit: usize,
    },
    /// A message longer than the configured limit.
    #[error("message of at least {size} bytes exceeds the limit of {limit}")]
    MessageTooBig {
        /// The message length known so far.
        size: u64,
        /// The configured limit.
        limit: usize,
    },
    /// A message in more fragments than the configured limit.
    #[error("message in more than {limit} fragments")]
    TooManyFragments {
        /// The configured limit.
        limit: usize,
    },
    /// A compressed message whose data is not valid DEFLATE (RFC 7692 §6.2).
    #[error("invalid compressed data")]
    InvalidCompressedData,
    /// A close frame with a one-byte payload (§5.5.1).
    #[error("close frame payload of one byte")]
    CloseFrameTooShort,
    /// A close code that may not be sent (§7.4).
    #[error("invalid close code {0}")]
    InvalidCloseCode(u16),
    /// A close reason that is not valid UTF-8 (§5.5.1).
    #[error("invalid utf-8 in close reason")]
    InvalidCloseReason,
    /// The transport ended without a closing handshake, possibly mid-frame (§7.1.5: 1006).
    #[error("connection ended without a closing handshake")]
    UnexpectedEof,
    /// The peer sent nothing, not even a pong, within the keepalive timeout.
    #[error("keepalive timeout: no pong from the peer")]
    KeepaliveTimeout,
    /// The peer did not complete the closing handshake within the close timeout.
    #[error("closing handshake timed out")]
    CloseTimeout,
}

impl ProtocolError {
    /// The close code this failure is reported with.
    ///
    /// Codes that may not be sent (1006) describe failures where no close frame goes out.
    pub fn close_code(&self) -> CloseCode {
        match self {
            Self::ReservedBits
            | Self::ReservedOpCode(_)
            | Self::FragmentedControlFrame
            | Self::ControlFrameTooLong
            | Self::UnmaskedClientFrame
            | Self::MaskedServerFrame
            | Self::NonMinimalLength
            | Self::LengthMsbSet
            | Self::UnexpectedContinuation
            | Self::ExpectedContinuation
            | Self::CloseFrameTooShort
            | Self::InvalidCloseCode(_) => CloseCode::PROTOCOL_ERROR,
            Self::InvalidUtf8 | Self::InvalidCloseReason | Self::InvalidCompressedData => {
                CloseCode::INVALID_PAYLOAD
            }
            Self::FrameTooBig { .. } | Self::MessageTooBig { .. } => CloseCode::MESSAGE_TOO_BIG,
            Self::TooManyFragments { .. } => CloseCode::POLICY_VIOLATION,
            Self::KeepaliveTimeout => CloseCode::INTERNAL_ERROR,
            Self::UnexpectedEof | Self::CloseTimeout => CloseCode::ABNORMAL,
        }
    }
}

/// The application used the connection in a way the protocol does not allow.
///
/// Nothing was queued; the connection is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The closing handshake has started (or the connection failed): nothing more may be sent.
    #[error("the connection is closing or closed")]
    Closed,
    /// A control frame payload (ping, pong, close reason with its code) over 125 bytes.
    #[error("control frame payload of {0} bytes exceeds 125")]
    ControlPayloadTooLong(usize),
    /// A close code that may not be sent (§7.4), such as 1005 or 1006.
    #[error("close code {0} may not be sent")]
    InvalidCloseCode(u16),
    /// A whole message was sent while a fragmented one is still being streamed out.
    #[error("a fragmented message is still being sent")]
    FragmentedMessageOpen,
    /// A fragment of a different kind than the message it continues.
    #[error("fragment kind does not match the message being sent")]
    FragmentKindMismatch,
    /// The outgoing buffer is over its limit; drain `poll_transmit` first.
    #[error("outgoing buffer full ({buffered} bytes queued, limit {limit})")]
    BufferFull {
        /// Bytes queued for the transport.
        buffered: usize,
        /// The configured limit.
        limit: usize,
    },
}
