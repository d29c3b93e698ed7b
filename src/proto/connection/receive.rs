//! The receive paths: bytes from the transport to frames, and the shortcuts that keep a
//! payload from being copied more than once (RFC 6455 §5.2, §5.3).
//!
//! Bytes normally go through the connection's read buffer, where [`Connection::step`] decodes
//! them a frame at a time. Around it:
//! - whole messages that arrive with their frame skip message assembly (`take_whole_message`,
//!   `take_whole_from`, `take_whole_text`);
//! - with nothing buffered, text and large binary payloads are copied straight from the
//!   caller's bytes onto their message, unmasked on the way (`receive_direct`);
//! - a frame cut by the end of a read is completed where it began (`complete_buffered_frame`,
//!   `begin_cut_frame`);
//! - the rest of a large binary frame is read straight onto its message (`receive_with`).

use bytes::{Bytes, BytesMut};

use super::incoming::{append_text, check_message_size};
use super::{Connection, Event, State};
use crate::proto::error::ProtocolError;
use crate::proto::frame::{FrameHeader, OpCode};
use crate::proto::mask::{apply_mask, extend_payload};
use crate::proto::message::{Message, MessageKind, Utf8Bytes};
use crate::proto::utf8::Utf8Validator;

/// Binary frames at least this long that arrive in pieces are assembled on the message rather
/// than in the read buffer, growing as the frame arrives (see [`MAX_UP_FRONT`]).
pub(super) const LARGE_FRAME: u64 = 64 << 10;

/// The most reserved from a peer-declared length before the bytes arrive: a peer that declares
/// a large frame and stalls must not make us hold its size; beyond this, buffers grow (by
/// doubling, or by several times what arrived: [`room_ahead`]) as the payload comes in.
pub(super) const MAX_UP_FRONT: u64 = 256 << 10;

/// Makes room for `additional` more bytes in a new allocation holding only the bytes of `buf`:
/// `realloc` would copy the whole old capacity, mostly empty when a message grows by reads.
fn grow_copying_len(buf: &mut BytesMut, additional: usize) {
    if buf.capacity() - buf.len() >= additional {
        return;
    }
    let mut grown = BytesMut::with_capacity(buf.len() + additional);
    grown.extend_from_slice(buf);
    *buf = grown;
}

/// How much room `receive_with` makes on a message holding `held` bytes for the `remaining`
/// bytes of its frame still to come, when it needs room for `wanted` more: several times what
/// the peer has proved by sending it (so a peer that declares a large frame and stalls cannot
/// make us hold its size), and the whole rest when that is not much more (growing again near
/// the end would copy everything held by then, up to the whole message once more).
pub(super) fn room_ahead(held: usize, remaining: u64, wanted: usize) -> usize {
    let proved = (8 * held as u64 + MAX_UP_FRONT).max(wanted as u64);
    let ahead = if remaining <= 2 * proved {
        remaining
    } else {
        proved
    };
    ahead as usize
}

/// Room beyond a frame's end when a message grows for it (see `receive_with`).
const FIRST_READ: usize = 4096;

/// What to reserve for `declared` bytes still to come.
pub(super) fn up_front(declared: u64) -> usize {
    declared.min(MAX_UP_FRONT) as usize
}

/// Whole binary messages at least this long that arrive with their frame are unmasked as they
/// are copied to the read buffer (`take_whole_from`), one pass over the payload instead of two;
/// shorter ones go through the read buffer with their header, where a read's frames are copied
/// together in one call, which is faster per message for a few hundred bytes.
const UNMASK_IN_COPY: u64 = 256;

/// Text frames shorter than this are validated by `std` in place when they arrive whole: below
/// 64 bytes `simdutf8` falls back to `std` anyway, and sharing the read buffer saves the copy.
const SHORT_TEXT: u64 = 64;

/// A whole text message in one frame, too short for SIMD validation to pay.
pub(super) fn is_short_text(header: &FrameHeader) -> bool {
    header.fin && header.opcode == OpCode::Text && header.payload_len < SHORT_TEXT
}

/// The payload of the frame whose header (`len` bytes long) starts `data`, if all of it is there.
fn frame_payload<'a>(header: &FrameHeader, len: usize, data: &'a [u8]) -> Option<&'a [u8]> {
    let end = usize::try_from(header.payload_len).ok()?.checked_add(len)?;
    data.get(len..end)
}

impl Connection {
    /// Reads straight into the connection's buffer, for drivers whose transport can fill a
    /// `BytesMut` (such as `tokio_util::io::poll_read_buf`): `read` gets an empty buffer with
    /// room for about `room` bytes, and whatever it appends is received as by
    /// [`receive`](Self::receive), without the copy from the driver's own buffer. The rest of a
    /// large binary frame is read straight onto its message, in room sized to the frame (and a
    /// few kilobytes more). Returns what `read` returns.
    ///
    /// ```
    /// use bytes::BufMut;
    /// use wsio::proto::{Config, Connection, Event};
    /// let mut server = Connection::server(Config::default());
    /// let wire = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
    /// server.receive_with(4096, |buf| buf.put_slice(&wire));
    /// let Some(Ok(Event::Message(message))) = server.poll_event() else { panic!() };
    /// assert_eq!(message.as_text(), Some("Hello"));
    /// ```
    pub fn receive_with<T>(&mut self, room: usize, read: impl FnOnce(&mut BytesMut) -> T) -> T {
        if !self.reads_onto_message() {
            return self.read_into_buffer(room, read);
        }
        let remaining = self.decoder.payload_remaining().map_or(0, |(_, n)| n);
        let incoming = self.incoming.as_mut().expect("reading onto a message");
        // Grow the message by more than a read when its frame has proved long: fewer
        // reallocations, while what is reserved stays within a few times what the peer has
        // actually sent.
        let ahead = room_ahead(incoming.data.len(), remaining, room);
        if incoming.data.capacity() - incoming.data.len() < ahead {
            // A little more than the frame needs: a read that ends the frame then shows
            // whether the transport had more (it did if it filled the room).
            grow_copying_len(&mut incoming.data, ahead + FIRST_READ);
        }
        let mut fresh = incoming.data.split_off(incoming.data.len());
        let result = read(&mut fresh);
        if self.state == State::Closed || self.reading_stopped {
            return result;
        }
        self.receive_onto_message(fresh);
        result
    }

    /// `receive_with` into the read buffer: the read gets `room` bytes.
    fn read_into_buffer<T>(&mut self, room: usize, read: impl FnOnce(&mut BytesMut) -> T) -> T {
        match self.missing_in_place() {
            // The room already there takes the rest of the frame: the read lands behind it
            // without moving what is buffered.
            Some(missing) => self.read_buf.reserve(missing),
            // Room for a header more than asked: a frame of `room` payload bytes then arrives
            // whole, and its payload is shared from the buffer rather than copied out of it.
            None => self.read_buf.reserve(room.max(1) + FrameHeader::MAX_LEN),
        }
        let mut fresh = self.read_buf.split_off(self.read_buf.len());
        let result = read(&mut fresh);
        if self.state == State::Closed || self.reading_stopped {
            return result;
        }
        let received = !fresh.is_empty();
        // Contiguous with the buffered bytes unless `read` reallocated: then this copies.
        self.read_buf.unsplit(fresh);
        if received {
            self.timers.traffic_seen = true;
            self.process();
            self.flush_texts();
            self.track_message_timer();
        }
        result
    }

    /// The bytes still missing from a large frame cut by the end of the buffer when they fit
    /// in the room behind it: the frame then completes where it is (see `step`).
    pub(super) fn missing_in_place(&self) -> Option<usize> {
        let (header, remaining) = self.decoder.payload_remaining()?;
        let missing = usize::try_from(remaining)
            .ok()?
            .checked_sub(self.read_buf.len())
            .filter(|&missing| missing > 0)?;
        let incoming = self.incoming.as_ref()?;
        (header.payload_len >= LARGE_FRAME
            && incoming.kind == MessageKind::Binary
            && !incoming.compressed
            && !self.config.streaming
            && !self.read_buf.is_empty()
            && missing <= self.read_buf.capacity() - self.read_buf.len())
        .then_some(missing)
    }

    /// How many bytes [`receive_with`](Self::receive_with) would now read straight onto the
    /// message being assembled (the rest of a large binary frame, with nothing buffered before
    /// it), or `None` when it would read into the connection's buffer. A driver that reads
    /// into a buffer of its own can call `receive_with` when this is large, and save copying
    /// that many bytes out of its buffer; for a few bytes, its own read (which may bring the
    /// frames after too) costs fewer reads.
    ///
    /// ```
    /// use wsio::proto::{Config, Connection};
    /// let mut server = Connection::server(Config::default());
    /// assert_eq!(server.direct_read_len(), None);
    /// // The header and first 1 000 payload bytes of a masked 100 000-byte binary frame.
    /// let mut head = vec![0x82, 0xff, 0, 0, 0, 0, 0, 0x01, 0x86, 0xa0, 1, 2, 3, 4];
    /// head.extend_from_slice(&[0; 1000]);
    /// server.receive(&head);
    /// assert_eq!(server.direct_read_len(), Some(99_000));
    /// ```
    pub fn direct_read_len(&self) -> Option<u64> {
        let (header, remaining) = self.decoder.payload_remaining()?;
        let incoming = self.incoming.as_ref()?;
        (self.read_buf.is_empty()
            && incoming.kind == MessageKind::Binary
            && self.goes_direct(header))
        .then_some(remaining)
    }

    /// Whether the next bytes read belong on the message being assembled (see
    /// [`direct_read_len`](Self::direct_read_len)).
    fn reads_onto_message(&self) -> bool {
        self.direct_read_len().is_some()
    }

    /// Takes bytes read straight onto the message (see `reads_onto_message`): unmasks the
    /// frame's part where it lies, and leaves whatever follows the frame to the read buffer.
    fn receive_onto_message(&mut self, mut fresh: BytesMut) {
        let incoming = self.incoming.as_mut().expect("reading onto a message");
        if fresh.is_empty() {
            incoming.data.unsplit(fresh);
            return;
        }
        self.timers.traffic_seen = true;
        let (&header, remaining) = self.decoder.payload_remaining().expect("a frame");
        let taken = usize::try_from(remaining).map_or(fresh.len(), |n| n.min(fresh.len()));
        // Split only when the frame ends inside: otherwise the room left stays the message's.
        let after_frame = (taken < fresh.len()).then(|| fresh.split_off(taken));
        let (offset, done) = self.decoder.take_direct(taken);
        if let Some(key) = header.mask {
            apply_mask(&mut fresh, key, offset);
        }
        incoming.data.unsplit(fresh);
        let delivered = done && header.fin;
        if delivered {
            let mut incoming = self.incoming.take().expect("reading onto a message");
            let payload = incoming.data.split().freeze();
            if let Err(error) = self.deliver(incoming, payload) {
                return self.fail(error);
            }
        }
        // The bytes the read brought after the frame (usually a few kilobytes) are copied to
        // the read buffer rather than shared: sharing would make the message copy itself when it grows again,
        // or, once the message went out, make the read buffer take over the message's large
        // allocation when it grows, so that the next large message lands in memory that is
        // not in the cache (about 20 % slower decoding of 1 MiB messages).
        if let Some(after_frame) = after_frame {
            self.read_buf.extend_from_slice(&after_frame);
        }
        self.process();
        self.flush_texts();
        self.track_message_timer();
    }

    /// When the read buffer ends with a frame begun in an earlier read, appends only the bytes
    /// that frame still needs, in the room left for it (`read_slack`), and decodes it; the rest
    /// of `data` then starts between frames, often with an empty buffer. Returns how many bytes
    /// of `data` it took.
    pub(super) fn complete_buffered_frame(&mut self, data: &[u8]) -> usize {
        if self.read_buf.is_empty() {
            return 0;
        }
        let Some((header, remaining)) = self.decoder.payload_remaining() else {
            // The header itself is unfinished: its length is not known yet.
            return 0;
        };
        let Some(missing) = usize::try_from(remaining)
            .ok()
            .and_then(|remaining| remaining.checked_sub(self.read_buf.len()))
            .filter(|&missing| missing > 0 && missing < data.len())
        else {
            return 0;
        };
        self.read_slack = header.payload_len.min(LARGE_FRAME) as usize;
        self.decoder
            .extend_arrived(&mut self.read_buf, &data[..missing]);
        self.process();
        if self.state == State::Closed || self.reading_stopped {
            // Nothing more is read; `receive_direct` sees no bytes.
            return data.len();
        }
        missing
    }

    /// With nothing buffered, when `rest` is the start of a frame that ends in a later read:
    /// takes its header, then its payload unmasked as it is copied (if at least
    /// [`UNMASK_IN_COPY`] bytes long, and masked), instead of copying it to be unmasked in the
    /// buffer. Returns the bytes still to be buffered as they are.
    pub(super) fn begin_cut_frame<'a>(&mut self, rest: &'a [u8]) -> &'a [u8] {
        if !self.read_buf.is_empty() || self.decoder.current_header().is_some() {
            return rest;
        }
        let Ok(Some((header, len))) = self.decoder.peek_header(rest) else {
            return rest;
        };
        let cut = (len as u64 + header.payload_len) > rest.len() as u64;
        if !cut || header.mask.is_none() || header.payload_len < UNMASK_IN_COPY {
            return rest;
        }
        self.read_buf.extend_from_slice(&rest[..len]);
        self.process();
        if self.state == State::Closed || self.reading_stopped {
            return &[];
        }
        // The frame is in progress with none of its payload buffered: what follows is all
        // payload of this frame.
        self.decoder
            .extend_arrived(&mut self.read_buf, &rest[len..]);
        &[]
    }

    /// goes onto the message anyway (text, large binary): text is then copied once, not
    /// through the read buffer too. Returns the bytes left for the read buffer.
    pub(super) fn receive_direct<'a>(
        &mut self,
        mut data: &'a [u8],
    ) -> Result<&'a [u8], ProtocolError> {
        while self.read_buf.is_empty() && !data.is_empty() {
            if self.decoder.current_header().is_none() {
                // Any other frame is left, header and all, to the read buffer, where short
                // payloads are shared rather than copied.
                let Some((header, len)) = self.decoder.peek_header(data)? else {
                    break;
                };
                if !self.goes_direct(&header) {
                    if self.take_whole_from(&header, len, data)? {
                        data = &data[len + header.payload_len as usize..];
                        continue;
                    }
                    break;
                }
                if self.take_whole_text(&header, len, data)? {
                    data = &data[len + header.payload_len as usize..];
                    continue;
                }
                self.decoder.begin_frame(header);
                data = &data[len..];
                self.start_frame(&header)?;
                self.reserve_direct_binary(&header, data.len());
            }
            match self.receive_payload(data)? {
                Some(taken) => data = &data[taken..],
                None => break,
            }
        }
        Ok(data)
    }

    /// Makes room up front for a large binary frame's payload on its message, `arrived` bytes
    /// of which are here: as much as `receive_with` would make (see [`room_ahead`]), or up to
    /// [`MAX_UP_FRONT`] when none are, so the payload is not copied again as the message grows:
    /// the rest of a frame cut by a read is read straight onto the message into that room.
    fn reserve_direct_binary(&mut self, header: &FrameHeader, arrived: usize) {
        if let Some(incoming) = self.incoming.as_mut()
            && incoming.kind == MessageKind::Binary
        {
            let room = match arrived {
                0 => up_front(header.payload_len),
                arrived => room_ahead(arrived, header.payload_len, 0),
            };
            incoming.data.reserve(room);
        }
    }

    /// A whole masked binary message in `data` (its header `len` bytes long) between
    /// [`UNMASK_IN_COPY`] and [`LARGE_FRAME`]: only its payload is copied to the read buffer,
    /// unmasked on the way, and shared with the messages after it in this read. False, having
    /// done nothing, for anything else (and for the whole frame not yet in `data`).
    fn take_whole_from(
        &mut self,
        header: &FrameHeader,
        len: usize,
        data: &[u8],
    ) -> Result<bool, ProtocolError> {
        let wanted = header.mask.is_some()
            && header.opcode == OpCode::Binary
            && header.payload_len >= UNMASK_IN_COPY
            && self.is_whole_message(header);
        if !wanted {
            return Ok(false);
        }
        let Some(payload) = frame_payload(header, len, data) else {
            return Ok(false);
        };
        check_message_size(header.payload_len, self.config.max_message_size)?;
        if self.read_buf.capacity() < payload.len() {
            // One allocation for this message and those after it in `data`.
            self.read_buf.reserve(data.len() - len + self.read_slack);
        }
        extend_payload(&mut self.read_buf, payload, header.mask, 0);
        let payload = self.read_buf.split().freeze();
        self.deliver_whole(header, payload)?;
        Ok(true)
    }

    /// A whole unfragmented text message in `data` (its header `len` bytes long): unmasked in
    /// the empty read buffer, validated once and added to the shared texts. False, having
    /// done nothing, for anything else.
    fn take_whole_text(
        &mut self,
        header: &FrameHeader,
        len: usize,
        data: &[u8],
    ) -> Result<bool, ProtocolError> {
        let wanted = header.opcode == OpCode::Text && self.is_whole_message(header);
        if !wanted {
            return Ok(false);
        }
        let Some(payload) = frame_payload(header, len, data) else {
            return Ok(false);
        };
        check_message_size(header.payload_len, self.config.max_message_size)?;
        // Through the (empty) read buffer as scratch: each byte is unmasked and validated
        // there, then copied once onto the text.
        let mut scratch = std::mem::take(&mut self.read_buf);
        let appended = self
            .texts
            .push_with(payload.len(), data.len() - len, |text| {
                let mut utf8 = Utf8Validator::default();
                append_text(text, &mut utf8, payload, header.mask, 0, &mut scratch)?;
                utf8.finish().map_err(|_| ProtocolError::InvalidUtf8)
            });
        self.read_buf = scratch;
        appended.map(|()| true)
    }

    /// Whether a data frame's payload is copied straight from `receive` onto its message: text
    /// (but short whole messages) and large binary, neither compressed nor streamed.
    fn goes_direct(&self, header: &FrameHeader) -> bool {
        if self.config.streaming {
            return false;
        }
        let (kind, compressed) = match (header.opcode, &self.incoming) {
            (OpCode::Close | OpCode::Ping | OpCode::Pong, _) => return false,
            (OpCode::Continuation, Some(incoming)) => (incoming.kind, incoming.compressed),
            (OpCode::Continuation, None) => return false,
            (OpCode::Text, _) => (MessageKind::Text, header.rsv1),
            (OpCode::Binary, _) => (MessageKind::Binary, header.rsv1),
        };
        !compressed
            && match kind {
                MessageKind::Text => !is_short_text(header),
                MessageKind::Binary => header.payload_len >= LARGE_FRAME,
            }
    }

    /// Copies the next payload bytes of a frame in progress that goes direct from `data` onto
    /// its message, unmasking them on the way, and returns how many it took; `None` when the
    /// frame in progress (if any) goes through the read buffer. Only called with nothing
    /// buffered, so the bytes are the frame's next ones: the read buffer never holds, nor
    /// regrows for, a payload that arrives in pieces.
    fn receive_payload(&mut self, data: &[u8]) -> Result<Option<usize>, ProtocolError> {
        let Some((&header, remaining)) = self.decoder.payload_remaining() else {
            return Ok(None);
        };
        if !self.goes_direct(&header) {
            return Ok(None);
        }
        let incoming = self.incoming.as_mut().expect("data frame has a message");
        let taken = usize::try_from(remaining).map_or(data.len(), |n| n.min(data.len()));
        let (offset, done) = self.decoder.take_direct(taken);
        incoming.append_masked(&data[..taken], header.mask, offset, &mut self.read_buf)?;
        if done && header.fin {
            let mut incoming = self.incoming.take().expect("data frame has a message");
            let payload = incoming.data.split().freeze();
            self.deliver(incoming, payload)?;
        }
        Ok(Some(taken))
    }

    /// Validates the text bytes that arrived and copies them onto the message, so the read
    /// buffer keeps no text and every byte is checked exactly once (whole frames in one call).
    pub(super) fn take_text(
        &mut self,
        header: &FrameHeader,
        available: usize,
        fresh: usize,
    ) -> Result<bool, ProtocolError> {
        if is_short_text(header) && available as u64 == header.payload_len {
            // Short enough that SIMD validation would not pay for a copy: the payload is
            // shared with the read buffer and checked once by `std`.
            let (_, payload) = self.decoder.take_frame(&mut self.read_buf).expect("whole");
            self.incoming = None;
            let text = Utf8Bytes::try_from(payload).map_err(|_| ProtocolError::InvalidUtf8)?;
            self.push_event(Ok(Event::Message(Message::Text(text))));
            return Ok(true);
        }
        let incoming = self.incoming.as_mut().expect("data frame has a message");
        let text = &mut incoming.text;
        incoming
            .utf8
            .feed_with(&self.read_buf[available - fresh..available], |piece| {
                text.push_str(piece)
            })
            .map_err(|_| ProtocolError::InvalidUtf8)?;
        let Some((header, done)) = self.decoder.skip_unmasked(&mut self.read_buf) else {
            return Ok(false);
        };
        if !done {
            return Ok(false);
        }
        if header.fin {
            let incoming = self.incoming.take().expect("data frame has a message");
            self.deliver(incoming, Bytes::new())?;
        }
        Ok(true)
    }

    /// The common case without the message state machine: a whole unfragmented, uncompressed
    /// data message, all in the read buffer. Returns false, having done nothing, otherwise.
    pub(super) fn take_whole_message(
        &mut self,
        header: &FrameHeader,
    ) -> Result<bool, ProtocolError> {
        if !self.is_whole_message(header) {
            return Ok(false);
        }
        check_message_size(header.payload_len, self.config.max_message_size)?;
        if header.opcode == OpCode::Text && !is_short_text(header) {
            return self.take_whole_text_copied();
        }
        let Some(payload) = self.decoder.take_whole(&mut self.read_buf) else {
            return Ok(false);
        };
        self.deliver_whole(header, payload)?;
        Ok(true)
    }

    /// `take_whole_message` for a text too long to validate with `std`: unmasked and checked
    /// with SIMD where it lies in the read buffer, copied onto the shared texts (the copy is
    /// what lets the `String` skip `std`'s check), then dropped from the buffer.
    #[inline(always)]
    fn take_whole_text_copied(&mut self) -> Result<bool, ProtocolError> {
        // What bounds the texts still to come: this payload and the rest of the buffer.
        let room = self.read_buf.len();
        let texts = &mut self.texts;
        let copied = self
            .decoder
            .take_whole_copied(&mut self.read_buf, |payload| {
                let text =
                    simdutf8::basic::from_utf8(payload).map_err(|_| ProtocolError::InvalidUtf8)?;
                texts.push(text, room);
                Ok(())
            });
        let Some(copied) = copied else {
            return Ok(false);
        };
        copied?;
        self.timers.message_ended = true;
        Ok(true)
    }

    /// Whether a frame is a whole message on its own that skips the message state machine:
    /// unfragmented, uncompressed data, outside a fragmented message, not streamed.
    fn is_whole_message(&self, header: &FrameHeader) -> bool {
        header.fin
            && !header.rsv1
            && matches!(header.opcode, OpCode::Text | OpCode::Binary)
            && self.incoming.is_none()
            && !self.config.streaming
    }

    /// Delivers the unmasked payload of a whole binary message or short text (see
    /// `is_whole_message`); longer texts go through `take_whole_text_copied`.
    // Inlined in `step`, the path of every short message (a call there costs them 20 %).
    #[inline(always)]
    fn deliver_whole(&mut self, header: &FrameHeader, payload: Bytes) -> Result<(), ProtocolError> {
        let message = if header.opcode == OpCode::Binary {
            Message::Binary(payload)
        } else {
            debug_assert!(is_short_text(header), "longer texts are copied, not shared");
            Message::Text(Utf8Bytes::try_from(payload).map_err(|_| ProtocolError::InvalidUtf8)?)
        };
        self.push_event(Ok(Event::Message(message)));
        Ok(())
    }
}
