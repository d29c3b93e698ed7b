//! A data message prepared once and sent to many connections: the broadcast building block.

#[cfg(feature = "deflate")]
use std::sync::Mutex;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use super::Message;
use super::frame::{FrameHeader, OpCode};
use super::message::MessageKind;

#[cfg(feature = "deflate")]
use super::Role;
#[cfg(feature = "deflate")]
use super::deflate::{Compressor, DeflateParams};

/// A whole data message to send to many connections with
/// [`Connection::send_prepared`](super::Connection::send_prepared), doing the per-message work
/// once.
///
/// The payload is shared, never copied per recipient beyond what writing it needs. With
/// permessage-deflate, a connection whose own side keeps no compression context
/// ([`DeflateParams::shares_compressed_frames`](super::deflate::DeflateParams::shares_compressed_frames),
/// e.g. a server configured with `server_no_context_takeover`) takes the compressed payload
/// from this message: it is compressed once per distinct window size and level, the first time
/// a connection needs it, and reused by every other. A connection with context takeover has to
/// compress with its own history, so it compresses the message itself, as
/// [`Connection::send`](super::Connection::send) would.
///
/// Cloning is cheap (a reference count), and the value can be shared across threads.
///
/// ```
/// use wsio::proto::{Config, Connection, Message, PreparedMessage, Transmit};
///
/// let update = PreparedMessage::new(Message::text(r#"{"price":42}"#));
/// let mut peers = vec![Connection::server(Config::default()), Connection::server(Config::default())];
/// for peer in &mut peers {
///     peer.send_prepared(&update).unwrap();
///     let Some(Transmit::Data(frame)) = peer.poll_transmit() else { unreachable!() };
///     assert_eq!(&frame[..2], [0x81, 12]); // FIN + text, 12 bytes, unmasked
/// }
/// ```
// The text links permessage-deflate items, which exist only with the `deflate` feature.
#[cfg_attr(not(feature = "deflate"), allow(rustdoc::broken_intra_doc_links))]
#[derive(Clone)]
pub struct PreparedMessage(Arc<Prepared>);

struct Prepared {
    kind: MessageKind,
    payload: Bytes,
    /// Whether a connection with permessage-deflate may compress it.
    compressible: bool,
    /// The whole uncompressed frame a server sends, header included: made the first time a
    /// server connection queues the message on an empty output, then queued by reference by
    /// every other one.
    server_frame: OnceLock<Bytes>,
    /// Compressed payloads, by the (window bits, level) they were made with. Few distinct
    /// agreements exist in practice, so a short list beats a map.
    #[cfg(feature = "deflate")]
    compressed: Mutex<Vec<((u8, u32), Bytes)>>,
}

impl PreparedMessage {
    /// Prepares a message for sending to many connections.
    pub fn new(message: Message) -> Self {
        Self::with_compression(message, true)
    }

    /// Prepares a message that goes out uncompressed even where permessage-deflate is on
    /// (socket.io's `compress(false)`), as [`Connection::send_uncompressed`] sends one: for
    /// data that is already compressed, or too short or too random to gain from it.
    ///
    /// [`Connection::send_uncompressed`]: super::Connection::send_uncompressed
    pub fn uncompressed(message: Message) -> Self {
        Self::with_compression(message, false)
    }

    fn with_compression(message: Message, compressible: bool) -> Self {
        let (kind, payload) = match message {
            Message::Text(text) => (MessageKind::Text, text.into_bytes()),
            Message::Binary(data) => (MessageKind::Binary, data),
        };
        Self(Arc::new(Prepared {
            kind,
            payload,
            compressible,
            server_frame: OnceLock::new(),
            #[cfg(feature = "deflate")]
            compressed: Mutex::new(Vec::new()),
        }))
    }

    /// Whether the message is text or binary.
    pub fn kind(&self) -> MessageKind {
        self.0.kind
    }

    /// The payload as given, uncompressed.
    pub fn payload(&self) -> &Bytes {
        &self.0.payload
    }

    /// The payload length in bytes, uncompressed.
    pub fn len(&self) -> usize {
        self.0.payload.len()
    }

    /// Returns true for an empty message.
    pub fn is_empty(&self) -> bool {
        self.0.payload.is_empty()
    }

    /// Whether a connection may compress it: `false` when made with
    /// [`uncompressed`](Self::uncompressed).
    pub fn compressible(&self) -> bool {
        self.0.compressible
    }

    pub(crate) fn opcode(&self) -> OpCode {
        match self.0.kind {
            MessageKind::Text => OpCode::Text,
            MessageKind::Binary => OpCode::Binary,
        }
    }

    /// The frame a server sends for this message uncompressed, header and payload; made on
    /// the first call.
    pub(crate) fn server_frame(&self) -> Bytes {
        self.0
            .server_frame
            .get_or_init(|| {
                let header = FrameHeader {
                    fin: true,
                    rsv1: false,
                    opcode: self.opcode(),
                    mask: None,
                    payload_len: self.0.payload.len() as u64,
                };
                let (head, head_len) = header.to_bytes();
                let mut frame = bytes::BytesMut::with_capacity(head_len + self.0.payload.len());
                frame.extend_from_slice(&head[..head_len]);
                frame.extend_from_slice(&self.0.payload);
                frame.freeze()
            })
            .clone()
    }

    /// The payload compressed for a sender playing `role` under `params`, which must keep no
    /// context between messages; compressed on the first call for these window bits and level.
    #[cfg(feature = "deflate")]
    pub(crate) fn compressed(&self, params: &DeflateParams, role: Role) -> Bytes {
        debug_assert!(params.shares_compressed_frames(role));
        let key = (params.compressor_window_bits(role), params.level());
        // A panic while compressing cannot leave the list half-updated: keep using it.
        let mut cache = crate::lock::lock(&self.0.compressed);
        if let Some((_, payload)) = cache.iter().find(|(k, _)| *k == key) {
            return payload.clone();
        }
        let mut out = bytes::BytesMut::new();
        Compressor::new(params, role).compress(&self.0.payload, &mut out);
        let payload = out.freeze();
        cache.push((key, payload.clone()));
        payload
    }
}

impl From<Message> for PreparedMessage {
    fn from(message: Message) -> Self {
        Self::new(message)
    }
}

impl std::fmt::Debug for PreparedMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedMessage")
            .field("kind", &self.0.kind)
            .field("len", &self.0.payload.len())
            .finish_non_exhaustive()
    }
}
