//! The permessage-deflate extension (RFC 7692 §7): negotiation and the payload codec.
//!
//! The handshake side is pure functions over [`ExtensionOffer`](super::handshake::ExtensionOffer)s:
//! a client sends [`DeflateConfig::offer`] and checks the answer with
//! [`DeflateConfig::accept_response`]; a server answers with [`DeflateConfig::negotiate`]. Both
//! end with the same [`DeflateParams`], from which each side makes a [`Compressor`] for the
//! messages it sends and a [`Decompressor`] for those it receives.
//!
//! ```
//! use wsio::proto::Role;
//! use wsio::proto::deflate::{Compressor, DeflateConfig, Decompressor};
//! # use wsio::proto::handshake::{HandshakeLimits, RequestParser};
//! # let request = "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
//! #     Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
//! #     Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n";
//! # let request = RequestParser::new(HandshakeLimits::default())
//! #     .receive(request.as_bytes()).unwrap().unwrap();
//!
//! // A server, given a parsed request.
//! let (params, answer) = DeflateConfig::default()
//!     .negotiate(request.extensions())
//!     .expect("the client offered permessage-deflate");
//! assert_eq!(answer, "permessage-deflate"); // goes in Sec-WebSocket-Extensions
//!
//! let mut compressor = Compressor::new(&params, Role::Server);
//! let mut payload = bytes::BytesMut::new();
//! compressor.compress(b"Hello", &mut payload); // send with RSV1 set
//! assert_eq!(&payload[..], [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
//!
//! // The client's decompressor, frame by frame.
//! let mut decompressor = Decompressor::new(&params, Role::Client);
//! let mut message = bytes::BytesMut::new();
//! decompressor.decompress(&payload, true, &mut message, 1 << 20)?;
//! assert_eq!(&message[..], b"Hello");
//! # Ok::<(), wsio::proto::deflate::InflateError>(())
//! ```
//!
//! # Window size 8
//!
//! §7.1.2 allows windows of 2^8 to 2^15 bytes, but zlib cannot compress with 256 bytes: asked
//! for 8 it uses 9, and it refuses raw streams with 8 outright, since a peer held to 256 bytes
//! might be sent references up to 512 bytes back. We never promise what we cannot keep:
//!
//! - A server declines an offer with `server_max_window_bits=8`. §7.1.2.1 lets it answer only
//!   with the requested value or a smaller one, so 9 is not an option; §7 lets it decline a
//!   configuration it does not support, and the client may have listed a fallback offer.
//! - A client never asks for 8 for itself ([`DeflateConfig`] windows are at least 9), but a
//!   server may still answer `client_max_window_bits=8` to our valueless offer, and a client
//!   cannot decline. Rather than fail a valid handshake, the [`Compressor`] then writes stored
//!   blocks (level 0), which refer to no earlier data and so fit any window.
//! - Decompressing needs no such care: a 512-byte window decodes anything a 256-byte one
//!   produced, so the [`Decompressor`] uses 9 for 8. (zlib-rs keeps 32 KiB of history whatever
//!   the window, so a peer that overshoots its agreed window is decoded, not refused.)
//!
//! # Memory
//!
//! zlib's formulas give, per stream, `(1 << (wbits + 2)) + (1 << (memLevel + 9))` bytes for
//! deflate (256 KiB at 15 with memLevel 8, which flate2 fixes) and `(1 << wbits)` plus about
//! 7 KiB for inflate. zlib-rs, the backend behind the `deflate` feature, measures higher on the
//! heap: a [`Compressor`] holds 245 KiB at 9 bits, 259 KiB at 12 and 371 KiB at 15, and a
//! [`Decompressor`] 46 KiB at every window, because zlib-rs always allocates a 32 KiB inflate
//! window. A connection with both directions active thus costs about 420 KiB at the default 15
//! bits. Each is allocated on first use, so a connection that never sends (or never receives)
//! a compressed message pays nothing for that direction.
//!
//! Without context takeover in a direction the state carries nothing from one message to the
//! next: [`Compressor::release`] and [`Decompressor::release`] free it between messages, and
//! the next message allocates it again. That costs a few microseconds per message, so call
//! them when a connection goes idle rather than after every message. The same independence
//! lets a broadcaster compress a message once for many connections:
//! [`PreparedMessage`](super::PreparedMessage) does that for every connection where
//! [`DeflateParams::shares_compressed_frames`] holds (for a server, set
//! [`DeflateConfig::server_no_context_takeover`]).

mod codec;
mod negotiate;

pub use codec::{Compressor, Decompressor, InflateError};
pub use negotiate::{DeflateConfig, DeflateNegotiationError, DeflateParams};
