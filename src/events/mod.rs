//! Socket.IO v5 over Engine.IO v4, WebSocket transport only (feature `events`).
//!
//! The codec is pure, like [`proto`](crate::proto): [`EnginePacket`] reads and writes the
//! Engine.IO framing of one WebSocket message, and [`Decoder`] / [`Packet::encode`] the
//! Socket.IO packets inside it, binary attachments included. Event arguments are [`Args`]:
//! JSON values whose binary parts are placeholders pointing at attachments.
//!
//! ```
//! use wsio::events::{Args, Decoder, EnginePacket, Packet};
//!
//! let packet = Packet::Event {
//!     namespace: "/chat".into(),
//!     event: "message".into(),
//!     args: Args::new().with("hello").with_binary(vec![1, 2, 3]),
//!     ack: Some(7),
//! };
//! let messages = packet.to_messages(); // one text message, then one binary
//!
//! let mut decoder = Decoder::default();
//! let mut decoded = None;
//! for message in &messages {
//!     decoded = match EnginePacket::decode(message)? {
//!         EnginePacket::Message(text) => decoder.receive_text(text)?,
//!         EnginePacket::Binary(data) => decoder.receive_binary(data)?,
//!         other => unreachable!("{other:?}"),
//!     };
//! }
//! assert_eq!(decoded, Some(packet));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod binary;
pub mod client;
mod engine;
mod packet;

pub use binary::Args;
pub use engine::{EngineError, EnginePacket, OpenInfo};
pub use packet::{
    DEFAULT_NAMESPACE, DecodeError, DecodeLimits, Decoder, EncodedPacket, Packet, RESERVED_EVENTS,
};
