//! The sans-IO WebSocket protocol core (RFC 6455): bytes in, events out.
//!
//! Nothing here touches a socket, a clock or a global random source. The opening handshake is a
//! one-shot parse ([`handshake`]); the [`Connection`] built after it takes the bytes that followed
//! the handshake and everything read afterwards.

mod close;
mod compression;
mod config;
mod connection;
#[cfg(feature = "deflate")]
pub mod deflate;
mod error;
mod frame;
pub mod handshake;
mod mask;
mod message;
mod prepared;
mod rng;
mod utf8;

pub use close::{CloseCode, CloseFrame};
pub use config::Config;
pub use connection::{CloseState, Connection, Event, Transmit};
pub use error::{ProtocolError, SendError};
pub use frame::{DecoderLimits, Frame, FrameDecoder, FrameHeader, OpCode};
#[cfg(any(test, fuzzing))]
#[doc(hidden)]
pub use mask::apply_mask_reference;
pub use mask::{apply_mask, extend_unmasked};
pub use message::{IntoTextError, Message, MessageKind, Utf8Bytes};
pub use prepared::PreparedMessage;
pub use rng::Rng;
pub use utf8::{InvalidUtf8, Utf8Validator};

/// Which end of the connection an endpoint is: it decides who masks (§5.3) and who closes the
/// transport first (§7.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The endpoint that sent the opening handshake; it masks every frame.
    Client,
    /// The endpoint that accepted it; it closes the TCP connection first.
    Server,
}
