//! Message assembly: a data message arriving in frames, as a whole or in chunks (RFC 6455
//! §5.4), inflated when compressed (RFC 7692).

use bytes::{Bytes, BytesMut};

use super::receive::{is_short_text, up_front};
use super::{Connection, Event};
use crate::proto::error::ProtocolError;
use crate::proto::frame::{FrameHeader, OpCode};
use crate::proto::mask::extend_payload;
use crate::proto::message::{Message, MessageKind, Utf8Bytes};
use crate::proto::utf8::Utf8Validator;

/// Text is unmasked and validated in blocks of this many bytes (see [`append_text`]), small
/// enough to stay in the L1 cache until they are copied onto the text.
const TEXT_BLOCK: usize = 4 << 10;

/// A data message being received.
#[derive(Debug)]
pub(super) struct Incoming {
    pub(super) kind: MessageKind,
    /// RSV1 was set on the first frame: the payload is DEFLATE data (RFC 7692).
    pub(super) compressed: bool,
    /// Binary fragments, or inflated bytes not yet validated.
    pub(super) data: BytesMut,
    /// The text of a text message, copied out of the read buffer as it is validated: each
    /// byte is checked once and the `String` becomes the message without a second check.
    pub(super) text: String,
    pub(super) len: u64,
    pub(super) fragments: usize,
    pub(super) utf8: Utf8Validator,
}

impl Incoming {
    /// Appends payload bytes still masked with `key` (from `offset` into the frame): text
    /// through [`append_text`], binary unmasked onto `data`.
    pub(super) fn append_masked(
        &mut self,
        masked: &[u8],
        key: Option<[u8; 4]>,
        offset: usize,
        scratch: &mut BytesMut,
    ) -> Result<(), ProtocolError> {
        match self.kind {
            MessageKind::Text => {
                append_text(&mut self.text, &mut self.utf8, masked, key, offset, scratch)?;
            }
            MessageKind::Binary => extend_payload(&mut self.data, masked, key, offset),
        }
        Ok(())
    }

    /// Makes room for a frame's text up front (up to [`MAX_UP_FRONT`](super::receive::MAX_UP_FRONT)), so the copy out of
    /// the read buffer rarely reallocates.
    fn reserve_text(&mut self, header: &FrameHeader, streaming: bool) {
        if self.kind == MessageKind::Text
            && !self.compressed
            && !streaming
            && !is_short_text(header)
        {
            self.text.reserve(up_front(header.payload_len));
        }
    }
}

/// Appends text payload bytes still masked with `key` (from `offset` into the frame) to
/// `text`: each block is unmasked into the empty `scratch`, validated there by `utf8` and
/// copied onto `text`, so it stays in the L1 cache between the three. `scratch` is left empty.
#[inline]
pub(super) fn append_text(
    text: &mut String,
    utf8: &mut Utf8Validator,
    masked: &[u8],
    key: Option<[u8; 4]>,
    mut offset: usize,
    scratch: &mut BytesMut,
) -> Result<(), ProtocolError> {
    for block in masked.chunks(TEXT_BLOCK) {
        extend_payload(scratch, block, key, offset);
        offset = offset.wrapping_add(block.len());
        let fed = utf8.feed_with(scratch, |piece| text.push_str(piece));
        scratch.clear();
        fed.map_err(|_| ProtocolError::InvalidUtf8)?;
    }
    Ok(())
}

impl Connection {
    /// Checks a new frame's place in the message sequence and its size against the limits,
    /// before any of its payload is buffered.
    pub(super) fn start_frame(&mut self, header: &FrameHeader) -> Result<(), ProtocolError> {
        let kind = match header.opcode {
            OpCode::Close | OpCode::Ping | OpCode::Pong => return Ok(()),
            OpCode::Continuation if header.rsv1 => return Err(ProtocolError::ReservedBits),
            OpCode::Continuation => {
                let incoming = self
                    .incoming
                    .as_mut()
                    .ok_or(ProtocolError::UnexpectedContinuation)?;
                incoming.fragments += 1;
                if incoming.fragments > self.config.max_fragments {
                    return Err(ProtocolError::TooManyFragments {
                        limit: self.config.max_fragments,
                    });
                }
                incoming.len += header.payload_len;
                check_message_size(incoming.len, self.config.max_message_size)?;
                incoming.reserve_text(header, self.config.streaming);
                return Ok(());
            }
            OpCode::Text => MessageKind::Text,
            OpCode::Binary => MessageKind::Binary,
        };
        if self.incoming.is_some() {
            return Err(ProtocolError::ExpectedContinuation);
        }
        check_message_size(header.payload_len, self.config.max_message_size)?;
        let incoming = self.incoming.insert(Incoming {
            kind,
            compressed: header.rsv1,
            data: BytesMut::new(),
            text: String::new(),
            len: header.payload_len,
            fragments: 1,
            utf8: Utf8Validator::default(),
        });
        incoming.reserve_text(header, self.config.streaming);
        Ok(())
    }

    pub(super) fn take_chunk(&mut self, available: usize) -> Result<bool, ProtocolError> {
        let Some(header) = self.decoder.current_header() else {
            return Ok(false);
        };
        let frame_ends = available as u64 == header.payload_len;
        if available == 0 && !frame_ends {
            return Ok(false);
        }
        let (header, mut data, done) = self
            .decoder
            .take_partial(&mut self.read_buf)
            .expect("frame");
        let incoming = self.incoming.as_mut().expect("data frame has a message");
        let last = done && header.fin;
        if incoming.compressed {
            let mut inflated = BytesMut::new();
            let limit = self.config.max_message_size;
            self.compression
                .inflate(&data, last, &mut inflated, limit)?;
            if incoming.kind == MessageKind::Text {
                incoming
                    .utf8
                    .feed(&inflated)
                    .map_err(|_| ProtocolError::InvalidUtf8)?;
            }
            data = inflated.freeze();
        }
        if last && incoming.kind == MessageKind::Text {
            incoming
                .utf8
                .finish()
                .map_err(|_| ProtocolError::InvalidUtf8)?;
        }
        let kind = incoming.kind;
        if last {
            self.incoming = None;
        }
        if !data.is_empty() || last {
            self.push_event(Ok(Event::MessageChunk { kind, data, last }));
        }
        Ok(true)
    }

    pub(super) fn end_data_frame(
        &mut self,
        fin: bool,
        payload: Bytes,
    ) -> Result<(), ProtocolError> {
        let incoming = self.incoming.as_mut().expect("data frame has a message");
        if incoming.compressed {
            let start = incoming.data.len();
            let limit = self.config.max_message_size;
            self.compression
                .inflate(&payload, fin, &mut incoming.data, limit)?;
            if incoming.kind == MessageKind::Text {
                // Validated as it inflates, so a bad message fails before the rest arrives.
                let text = &mut incoming.text;
                incoming
                    .utf8
                    .feed_with(&incoming.data[start..], |piece| text.push_str(piece))
                    .map_err(|_| ProtocolError::InvalidUtf8)?;
                incoming.data.clear();
            }
            if !fin {
                return Ok(());
            }
            let mut incoming = self.incoming.take().expect("data frame has a message");
            let payload = incoming.data.split().freeze();
            return self.deliver(incoming, payload);
        }
        if !fin {
            incoming.data.extend_from_slice(&payload);
            return Ok(());
        }
        let mut incoming = self.incoming.take().expect("data frame has a message");
        let payload = if incoming.data.is_empty() {
            payload
        } else {
            incoming.data.extend_from_slice(&payload);
            incoming.data.split().freeze()
        };
        self.deliver(incoming, payload)
    }

    /// Hands out a complete message.
    pub(super) fn deliver(
        &mut self,
        mut incoming: Incoming,
        payload: Bytes,
    ) -> Result<(), ProtocolError> {
        let message = match incoming.kind {
            MessageKind::Binary => Message::Binary(payload),
            MessageKind::Text => {
                incoming
                    .utf8
                    .finish()
                    .map_err(|_| ProtocolError::InvalidUtf8)?;
                Message::Text(Utf8Bytes::from(std::mem::take(&mut incoming.text)))
            }
        };
        self.push_event(Ok(Event::Message(message)));
        Ok(())
    }
}

pub(super) fn check_message_size(len: u64, limit: usize) -> Result<(), ProtocolError> {
    if len > limit as u64 {
        return Err(ProtocolError::MessageTooBig { size: len, limit });
    }
    Ok(())
}
