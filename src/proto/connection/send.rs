//! Sending: data messages whole, copied, prepared or in fragments, and control frames
//! (RFC 6455 §5.4, §5.5).

use bytes::Bytes;

use super::{Connection, State};
use crate::proto::error::SendError;
use crate::proto::frame::OpCode;
use crate::proto::message::{Message, MessageKind};
use crate::proto::prepared::PreparedMessage;

impl Connection {
    /// Sends a whole data message, compressed when permessage-deflate is on and the message is
    /// long enough to gain from it.
    pub fn send(&mut self, message: Message) -> Result<(), SendError> {
        let (opcode, payload) = self.start_message(message)?;
        match self.compression.compress(&payload) {
            Some(compressed) => self.out.queue_frame_with(true, true, opcode, compressed),
            None => self.out.queue_frame(true, opcode, payload),
        }
        Ok(())
    }

    /// Sends a whole data message without compressing it, even when permessage-deflate is on
    /// (for data that is already compressed, or a broadcast encoded once for many peers).
    pub fn send_uncompressed(&mut self, message: Message) -> Result<(), SendError> {
        let (opcode, payload) = self.start_message(message)?;
        self.out.queue_frame(true, opcode, payload);
        Ok(())
    }

    /// Sends a whole binary message copied from `data`, so the caller keeps its buffer and no
    /// `Bytes` is made for it: the frame is written straight into the outgoing buffer.
    /// Compressed like [`send`](Self::send) when permessage-deflate is on.
    ///
    /// The fastest way to send a message from a borrow. A payload of 4 KiB or more that is
    /// already a `Bytes` (an echo, a broadcast) is better given to [`send`](Self::send), which
    /// on a server queues it as it is, without copying it.
    ///
    /// ```
    /// use std::io::Write;
    /// use wsio::proto::{Config, Connection};
    /// let mut server = Connection::server(Config::default());
    /// for reading in [17u8, 18, 19] {
    ///     server.send_binary(&[reading])?;
    /// }
    /// let mut socket = Vec::new();
    /// loop {
    ///     let chunk = server.transmit_chunk();
    ///     if chunk.is_empty() {
    ///         break;
    ///     }
    ///     let written = socket.write(chunk)?;
    ///     server.advance_transmit(written);
    /// }
    /// assert_eq!(socket, [0x82, 1, 17, 0x82, 1, 18, 0x82, 1, 19]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_binary(&mut self, data: &[u8]) -> Result<(), SendError> {
        self.send_copied(OpCode::Binary, data)
    }

    /// Sends a whole text message copied from `text`; see [`send_binary`](Self::send_binary).
    pub fn send_text(&mut self, text: &str) -> Result<(), SendError> {
        self.send_copied(OpCode::Text, text.as_bytes())
    }

    fn send_copied(&mut self, opcode: OpCode, payload: &[u8]) -> Result<(), SendError> {
        self.check_can_start_message()?;
        match self.compression.compress(payload) {
            Some(compressed) => self.out.queue_frame_with(true, true, opcode, compressed),
            None => self.out.queue_frame_copied(true, false, opcode, payload),
        }
        Ok(())
    }

    /// Sends a message prepared once for many connections (a broadcast).
    ///
    /// The same frames as [`send`](Self::send) would write, but the payload is shared and,
    /// with permessage-deflate and no context kept on our side, compressed once for all the
    /// connections that share a window size; see [`PreparedMessage`].
    pub fn send_prepared(&mut self, message: &PreparedMessage) -> Result<(), SendError> {
        self.check_can_start_message()?;
        match self.compression.compress_prepared(message) {
            Some(compressed) => self
                .out
                .queue_frame_with(true, true, message.opcode(), compressed),
            None => self.out.queue_prepared(message),
        }
        Ok(())
    }

    /// Sends one fragment of a message that is streamed out piece by piece; `last` ends it.
    ///
    /// The caller keeps text fragments valid UTF-8 as a whole; control frames may be sent
    /// between fragments.
    pub fn send_fragment(
        &mut self,
        kind: MessageKind,
        data: impl Into<Bytes>,
        last: bool,
    ) -> Result<(), SendError> {
        self.check_can_send()?;
        let opcode = match self.sending_fragmented {
            Some(open) if open != kind => return Err(SendError::FragmentKindMismatch),
            Some(_) => OpCode::Continuation,
            None if kind == MessageKind::Text => OpCode::Text,
            None => OpCode::Binary,
        };
        self.sending_fragmented = (!last).then_some(kind);
        self.out.queue_frame(last, opcode, data.into());
        Ok(())
    }

    /// Sends a ping with up to 125 bytes of payload.
    pub fn ping(&mut self, data: impl Into<Bytes>) -> Result<(), SendError> {
        self.send_control(OpCode::Ping, data.into())
    }

    /// Sends an unsolicited pong with up to 125 bytes of payload (a heartbeat that expects no
    /// reply).
    pub fn pong(&mut self, data: impl Into<Bytes>) -> Result<(), SendError> {
        self.send_control(OpCode::Pong, data.into())
    }

    /// Checks that a whole message may be sent now and splits it into opcode and payload.
    fn start_message(&self, message: Message) -> Result<(OpCode, Bytes), SendError> {
        self.check_can_start_message()?;
        Ok(match message {
            Message::Text(text) => (OpCode::Text, text.into_bytes()),
            Message::Binary(data) => (OpCode::Binary, data),
        })
    }

    /// Checks that a whole message may be sent now: open, room queued, no fragmented message
    /// being sent.
    fn check_can_start_message(&self) -> Result<(), SendError> {
        self.check_can_send()?;
        if self.sending_fragmented.is_some() {
            return Err(SendError::FragmentedMessageOpen);
        }
        Ok(())
    }

    fn check_can_send(&self) -> Result<(), SendError> {
        if self.state != State::Open {
            return Err(SendError::Closed);
        }
        if self.out.buffered() > self.config.max_buffered {
            return Err(SendError::BufferFull {
                buffered: self.out.buffered(),
                limit: self.config.max_buffered,
            });
        }
        Ok(())
    }

    fn send_control(&mut self, opcode: OpCode, payload: Bytes) -> Result<(), SendError> {
        if self.state != State::Open {
            return Err(SendError::Closed);
        }
        if payload.len() > 125 {
            return Err(SendError::ControlPayloadTooLong(payload.len()));
        }
        self.out.queue_frame(true, opcode, payload);
        Ok(())
    }
}
