//! The connection state machine: data framing, message assembly, control frames and the
//! closing handshake (RFC 6455 §5, §7).

use std::collections::VecDeque;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;

use super::Role;
use super::close::{CloseCode, CloseFrame};
use super::compression::Compression;
use super::config::Config;
use super::error::{ProtocolError, SendError};
use super::frame::{DecoderLimits, FrameDecoder, FrameHeader, OpCode};
use super::mask::{apply_mask, extend_payload};
use super::message::{Message, MessageKind, Utf8Bytes};
use super::prepared::PreparedMessage;
use super::rng::Rng;
use super::utf8::Utf8Validator;

/// Something that happened on the connection, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A complete data message.
    Message(Message),
    /// Part of a data message, in [`Config::streaming`] mode. Text chunks may split a code
    /// point; the message as a whole is validated as it arrives.
    MessageChunk {
        /// Text or binary, the same for every chunk of one message.
        kind: MessageKind,
        /// The next bytes of the message.
        data: Bytes,
        /// True on the message's final chunk.
        last: bool,
    },
    /// The peer sent a ping; the pong is already queued.
    Ping(Bytes),
    /// The peer sent a pong.
    Pong(Bytes),
    /// The closing handshake completed; holds the peer's close frame (`None` if it was empty).
    /// Arrives once, and nothing follows it.
    Closed(Option<CloseFrame>),
}

/// Bytes to write to the transport, or the instruction to shut its write side down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transmit {
    /// Write these bytes, in order.
    Data(Bytes),
    /// Everything is written: shut the transport's write side down (TCP FIN).
    Shutdown,
}

/// One WebSocket connection after the handshake, without any I/O.
///
/// The connection owns its read buffer, the message being assembled and the bytes waiting to be
/// written; the driver owns the transport and the clock.
///
/// ```
/// use wsio::proto::{Config, Connection, Event, Message, Transmit};
/// let mut server = Connection::server(Config::default());
/// server.receive(&[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]);
/// let Some(Ok(Event::Message(message))) = server.poll_event() else { panic!() };
/// assert_eq!(message.as_text(), Some("Hello"));
/// server.send(message)?;
/// assert_eq!(server.poll_transmit(), Some(Transmit::Data(b"\x81\x05Hello"[..].into())));
/// # Ok::<(), wsio::proto::SendError>(())
/// ```
#[derive(Debug)]
pub struct Connection {
    role: Role,
    config: Config,
    /// A client's masking-key generator; boxed because it is large (a ChaCha block) and a
    /// server, which needs none, would otherwise carry its room in every connection.
    rng: Option<Box<Rng>>,
    read_buf: BytesMut,
    decoder: FrameDecoder,
    incoming: Option<Incoming>,
    events: VecDeque<Result<Event, ProtocolError>>,
    /// The text of whole text messages decoded by the current `receive`, end to end, and the
    /// length of each: one allocation for all of them, shared by their `Utf8Bytes`. Turned
    /// into events before any other event and when `receive` returns.
    text_arena: String,
    text_lens: Vec<usize>,
    /// Payloads queued as they are, each after some bytes of `out_tail`; what `out_tail` holds
    /// beyond them goes out last.
    out_queue: VecDeque<QueuedPayload>,
    /// Headers and copied frames, in the order they go out with the queued payloads.
    out_tail: BytesMut,
    /// The bytes at the front of `out_tail` that go out before queued payloads: the sum of
    /// their `before`.
    out_tail_queued: usize,
    buffered: usize,
    /// Pongs owed, oldest first; bounded so a ping flood cannot grow memory.
    pending_pongs: VecDeque<Bytes>,
    /// Reading has ended with a failure or the peer's close frame, which takes effect once the
    /// events before it have been taken.
    reading_stopped: bool,
    sending_fragmented: Option<MessageKind>,
    compression: Compression,
    state: State,
    shutdown: Shutdown,
    eof: bool,
    timers: Timers,
    /// Room left after the bytes of a read in the read buffer: the length of the last frame
    /// found unfinished at the end of a read (up to [`LARGE_FRAME`]), so that the next one of
    /// its size can be completed where it began instead of being moved to make room.
    read_slack: usize,
}

/// A payload written from its own buffer, not copied into `out_tail`.
#[derive(Debug)]
struct QueuedPayload {
    /// How many bytes at the front of `out_tail` (after those of the payloads before this one)
    /// go out before this payload: its header, and any frames copied since the last payload.
    before: usize,
    payload: Bytes,
}

/// A data message being received.
#[derive(Debug)]
struct Incoming {
    kind: MessageKind,
    /// RSV1 was set on the first frame: the payload is DEFLATE data (RFC 7692).
    compressed: bool,
    /// Binary fragments, or inflated bytes not yet validated.
    data: BytesMut,
    /// The text of a text message, copied out of the read buffer as it is validated: each
    /// byte is checked once and the `String` becomes the message without a second check.
    text: String,
    len: u64,
    fragments: usize,
    utf8: Utf8Validator,
}

impl Incoming {
    /// Appends payload bytes still masked with `key` (from `offset` into the frame): text
    /// through [`append_text`], binary unmasked onto `data`.
    fn append_masked(
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

    /// Makes room for a frame's text up front (up to [`MAX_UP_FRONT`]), so the copy out of
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
fn append_text(
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

/// The payload of the frame whose header (`len` bytes long) starts `data`, if all of it is there.
fn frame_payload<'a>(header: &FrameHeader, len: usize, data: &'a [u8]) -> Option<&'a [u8]> {
    let end = usize::try_from(header.payload_len).ok()?.checked_add(len)?;
    data.get(len..end)
}

/// Binary frames at least this long that arrive in pieces are assembled on the message rather
/// than in the read buffer, growing as the frame arrives (see [`MAX_UP_FRONT`]).
const LARGE_FRAME: u64 = 64 << 10;

/// The most reserved from a peer-declared length before the bytes arrive: a peer that declares
/// a large frame and stalls must not make us hold its size; beyond this, buffers grow (by
/// doubling, or by several times what arrived: [`room_ahead`]) as the payload comes in.
const MAX_UP_FRONT: u64 = 256 << 10;

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
fn room_ahead(held: usize, remaining: u64, wanted: usize) -> usize {
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
fn up_front(declared: u64) -> usize {
    declared.min(MAX_UP_FRONT) as usize
}

/// The most a read reserves up front for its whole text messages (they grow past it if need be).
const TEXT_ARENA_RESERVE: usize = 64 << 10;

/// Text is unmasked and validated in blocks of this many bytes (see [`append_text`]), small
/// enough to stay in the L1 cache until they are copied onto the text.
const TEXT_BLOCK: usize = 4 << 10;

/// Whole binary messages at least this long that arrive with their frame are unmasked as they
/// are copied to the read buffer (`take_whole_from`), one pass over the payload instead of two;
/// shorter ones go through the read buffer with their header, where a read's frames are copied
/// together in one call, which is faster per message for a few hundred bytes.
const UNMASK_IN_COPY: u64 = 256;

/// Text frames shorter than this are validated by `std` in place when they arrive whole: below
/// 64 bytes `simdutf8` falls back to `std` anyway, and sharing the read buffer saves the copy.
const SHORT_TEXT: u64 = 64;

/// A whole text message in one frame, too short for SIMD validation to pay.
fn is_short_text(header: &FrameHeader) -> bool {
    header.fin && header.opcode == OpCode::Text && header.payload_len < SHORT_TEXT
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    /// Our close frame is queued; the peer's is awaited.
    CloseSent,
    /// The closing handshake completed, or the connection failed: nothing is read or sent.
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shutdown {
    NotYet,
    Queued,
    Done,
}

#[derive(Debug, Default)]
struct Timers {
    keepalive: Option<Instant>,
    awaiting_pong: bool,
    traffic_seen: bool,
    close: Option<Instant>,
    close_wanted: bool,
}

/// Server payloads at least this long are queued as their own chunk instead of being copied,
/// so a driver writing vectored sends them straight from the caller's buffer. Below it, the
/// copy costs less than a chunk of its own (`benches/`: 1.4 times the messages/s at 1 KiB,
/// 0.5 times at 16 KiB), and a burst of messages leaves as one contiguous buffer.
const COPY_THRESHOLD: usize = 4096;

/// The least the outbound buffer grows by when it is full.
const OUT_TAIL_BLOCK: usize = 4096;

/// Pongs kept owed when pings pile up faster than they are answered; older ones are dropped
/// (answering the latest ping is enough, §5.5.3).
const MAX_PENDING_PONGS: usize = 16;

impl Connection {
    /// Creates the server side of an upgraded connection.
    pub fn server(config: Config) -> Self {
        Self::new(Role::Server, config, None)
    }

    /// Creates the client side of an upgraded connection; `rng` makes the masking keys.
    pub fn client(config: Config, rng: Rng) -> Self {
        Self::new(Role::Client, config, Some(Box::new(rng)))
    }

    fn new(role: Role, config: Config, rng: Option<Box<Rng>>) -> Self {
        let limits = DecoderLimits {
            max_frame_size: config.max_frame_size,
            allow_rsv1: false,
        };
        Self {
            role,
            rng,
            read_buf: BytesMut::new(),
            decoder: FrameDecoder::new(role, limits),
            incoming: None,
            events: VecDeque::new(),
            text_arena: String::new(),
            text_lens: Vec::new(),
            out_queue: VecDeque::new(),
            out_tail: BytesMut::new(),
            out_tail_queued: 0,
            buffered: 0,
            pending_pongs: VecDeque::new(),
            reading_stopped: false,
            sending_fragmented: None,
            compression: Compression::default(),
            state: State::Open,
            shutdown: Shutdown::NotYet,
            eof: false,
            timers: Timers::default(),
            read_slack: 0,
            config,
        }
    }

    /// Turns on permessage-deflate with the parameters the handshake negotiated.
    ///
    /// Call before the first `receive`. Data messages at least
    /// [`threshold`](super::deflate::DeflateConfig::threshold) bytes long are then sent
    /// compressed (see [`send_uncompressed`](Self::send_uncompressed)), and the peer may send
    /// compressed ones, whose inflated size counts against `max_message_size`.
    #[cfg(feature = "deflate")]
    pub fn with_deflate(mut self, params: super::deflate::DeflateParams) -> Self {
        self.compression = Compression::deflate(params, self.role);
        self.decoder.set_limits(DecoderLimits {
            max_frame_size: self.config.max_frame_size,
            allow_rsv1: true,
        });
        self
    }

    /// The permessage-deflate parameters in force, if it was negotiated.
    #[cfg(feature = "deflate")]
    pub fn deflate_params(&self) -> Option<&super::deflate::DeflateParams> {
        self.compression.params()
    }

    /// Which end of the connection this is.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The limits and timers in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Feeds bytes read from the transport. Call `poll_transmit` and `poll_event` afterwards.
    pub fn receive(&mut self, data: &[u8]) {
        if self.state == State::Closed || self.reading_stopped {
            return;
        }
        self.timers.traffic_seen = true;
        let completing = self.complete_buffered_frame(data);
        let rest = match self.receive_direct(&data[completing..]) {
            Ok(rest) => rest,
            Err(error) => return self.fail(error),
        };
        // Even with nothing left, a header taken from `data` may start a frame that is already
        // complete (an empty ping) or in the read buffer's hands.
        if !rest.is_empty() && self.read_buf.is_empty() {
            self.read_buf.reserve(rest.len() + self.read_slack);
        }
        let rest = self.begin_cut_frame(rest);
        self.read_buf.extend_from_slice(rest);
        self.process();
        self.flush_texts();
    }

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
        self.read_buf.reserve(room.max(1));
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
        }
        result
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
        match after_frame {
            // The message went out: the bytes after it can share its allocation.
            Some(after_frame) if delivered => self.read_buf = after_frame,
            // Sharing would make the message copy itself when it grows again.
            Some(after_frame) => self.read_buf.extend_from_slice(&after_frame),
            None => {}
        }
        self.process();
        self.flush_texts();
    }

    /// When the read buffer ends with a frame begun in an earlier read, appends only the bytes
    /// that frame still needs, in the room left for it (`read_slack`), and decodes it; the rest
    /// of `data` then starts between frames, often with an empty buffer. Returns how many bytes
    /// of `data` it took.
    fn complete_buffered_frame(&mut self, data: &[u8]) -> usize {
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
    fn begin_cut_frame<'a>(&mut self, rest: &'a [u8]) -> &'a [u8] {
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

    /// Queues an event, after the text messages decoded before it.
    fn push_event(&mut self, event: Result<Event, ProtocolError>) {
        self.flush_texts();
        self.events.push_back(event);
    }

    /// Adds a whole text message, already validated, to the messages sharing one allocation;
    /// `room` bounds the text still to come in this `receive`.
    fn push_text(&mut self, text: &str, room: usize) {
        self.reserve_text_arena(text.len(), room);
        self.text_arena.push_str(text);
        self.text_lens.push(text.len());
    }

    /// Makes room for a text of `len` bytes in the arena; `room` bounds the text still to come
    /// in this `receive`.
    fn reserve_text_arena(&mut self, len: usize, room: usize) {
        if self.text_arena.is_empty() {
            // One allocation for every text of this read, within reason.
            self.text_arena
                .reserve(room.min(TEXT_ARENA_RESERVE).max(len));
        }
    }

    /// Turns the texts gathered by `push_text` into message events, in order.
    #[inline(always)]
    fn flush_texts(&mut self) {
        // Inline down to this check: every event and every `receive` asks, few find texts.
        if !self.text_lens.is_empty() {
            self.hand_out_texts();
        }
    }

    #[inline(never)]
    fn hand_out_texts(&mut self) {
        let mut arena = std::mem::take(&mut self.text_arena);
        if arena.capacity() > 2 * arena.len() {
            // Reserved for more text than came: give the rest back (glibc shrinks in place),
            // since any message kept alive keeps the whole allocation.
            arena.shrink_to_fit();
        }
        let all = ByteString::from(arena);
        let mut start = 0;
        for len in self.text_lens.drain(..) {
            let text = all.slice_ref(&all[start..start + len]);
            start += len;
            let message = Message::Text(Utf8Bytes::from_shared(text));
            self.events.push_back(Ok(Event::Message(message)));
        }
    }

    /// While nothing is buffered, decodes frames straight from `data` as long as their payload
    /// goes onto the message anyway (text, large binary): text is then copied once, not
    /// through the read buffer too. Returns the bytes left for the read buffer.
    fn receive_direct<'a>(&mut self, mut data: &'a [u8]) -> Result<&'a [u8], ProtocolError> {
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
                self.reserve_direct_binary(&header);
            }
            match self.receive_payload(data)? {
                Some(taken) => data = &data[taken..],
                None => break,
            }
        }
        Ok(data)
    }

    /// Makes room up front for a large binary frame's payload on its message (up to
    /// [`MAX_UP_FRONT`]), so the payload is not copied again as the message grows: the rest
    /// of a frame cut by a read is read straight onto the message into that room.
    fn reserve_direct_binary(&mut self, header: &FrameHeader) {
        if let Some(incoming) = self.incoming.as_mut()
            && incoming.kind == MessageKind::Binary
        {
            incoming.data.reserve(up_front(header.payload_len));
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
        let start = self.text_arena.len();
        self.reserve_text_arena(payload.len(), data.len() - len);
        let mut utf8 = Utf8Validator::default();
        let appended = append_text(
            &mut self.text_arena,
            &mut utf8,
            payload,
            header.mask,
            0,
            &mut scratch,
        )
        .and_then(|()| utf8.finish().map_err(|_| ProtocolError::InvalidUtf8));
        self.read_buf = scratch;
        match appended {
            Ok(()) => {
                self.text_lens.push(self.text_arena.len() - start);
                Ok(true)
            }
            Err(error) => {
                self.text_arena.truncate(start);
                Err(error)
            }
        }
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

    /// Reports that the transport reached end of file.
    ///
    /// Before the closing handshake completed, that fails the connection with
    /// [`ProtocolError::UnexpectedEof`] (close code 1006).
    pub fn receive_eof(&mut self) {
        if self.eof {
            return;
        }
        self.eof = true;
        if self.reading_stopped && self.state != State::Closed {
            return;
        }
        match self.state {
            State::Open | State::CloseSent => self.fail(ProtocolError::UnexpectedEof),
            State::Closed => self.queue_shutdown(),
        }
    }

    /// Returns the next event, or the error the connection failed with, or `None` when nothing
    /// is pending. Call until it returns `None` after every `receive`.
    ///
    /// A failure or the peer's close takes effect (close frame, shutdown) only when it is
    /// returned here, so messages that arrived before it can still be answered.
    pub fn poll_event(&mut self) -> Option<Result<Event, ProtocolError>> {
        let event = self.events.pop_front()?;
        match &event {
            Err(error) => self.fail_now(error.close_code()),
            Ok(Event::Closed(frame)) => self.finish_close(frame.as_ref().map(|frame| frame.code)),
            Ok(_) => {}
        }
        Some(event)
    }

    /// Returns true when `poll_event` has something to hand out: a driver may answer it before
    /// writing, so the replies to a burst of messages leave together.
    pub fn has_event(&self) -> bool {
        !self.events.is_empty()
    }

    /// Whether anything is waiting to be written: queued bytes, or pongs owed (queued by the
    /// next `poll_transmit` or `transmit_chunk`). The shutdown is not counted.
    #[cfg(feature = "tokio")]
    #[inline]
    pub(crate) fn has_transmit(&self) -> bool {
        self.buffered > 0 || !self.pending_pongs.is_empty()
    }

    /// Returns the next bytes to write to the peer.
    ///
    /// Call after every `receive`, `receive_eof`, `send`, `close` and `handle_timeout`; control
    /// replies (pongs, the close echo) are queued here even when the application sent nothing.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        if !self.pending_pongs.is_empty() {
            self.flush_pong();
        }
        let data = match self.out_queue.front_mut() {
            Some(front) if front.before > 0 => {
                let before = std::mem::take(&mut front.before);
                self.out_tail_queued -= before;
                self.out_tail.split_to(before).freeze()
            }
            Some(_) => self.out_queue.pop_front().expect("a front").payload,
            None if !self.out_tail.is_empty() => self.out_tail.split().freeze(),
            None if self.shutdown == Shutdown::Queued => {
                self.shutdown = Shutdown::Done;
                return Some(Transmit::Shutdown);
            }
            None => return None,
        };
        self.buffered -= data.len();
        Some(Transmit::Data(data))
    }

    /// The next bytes to write, borrowed and left queued (empty when none): write them, then
    /// call [`advance_transmit`](Self::advance_transmit) with how many were written. The
    /// alternative to [`poll_transmit`](Self::poll_transmit) for drivers that write from a
    /// borrowed slice (a partial write then needs no bookkeeping of its own); the two may be
    /// mixed. Once nothing is left, `poll_transmit` reports a pending shutdown.
    pub fn transmit_chunk(&mut self) -> &[u8] {
        if !self.pending_pongs.is_empty() {
            self.flush_pong();
        }
        match self.out_queue.front() {
            Some(front) if front.before > 0 => &self.out_tail[..front.before],
            Some(front) => &front.payload,
            None => &self.out_tail,
        }
    }

    /// Fills `slices` with the bytes waiting to be written, in order, borrowed and left queued,
    /// and returns how many slices it filled: for one vectored write of everything queued.
    /// Call [`advance_transmit`](Self::advance_transmit) with how many bytes were written.
    ///
    /// ```
    /// use std::io::{IoSlice, Write};
    /// use wsio::proto::{Config, Connection, Message};
    /// let mut server = Connection::server(Config::default());
    /// server.send(Message::binary(vec![7; 2000]))?;
    /// server.send_text("bye")?;
    /// let mut socket = Vec::new();
    /// let mut slices = [IoSlice::new(&[]); 8];
    /// let filled = server.transmit_slices(&mut slices);
    /// let written = socket.write_vectored(&slices[..filled])?;
    /// server.advance_transmit(written);
    /// assert_eq!(socket.len(), 4 + 2000 + 2 + 3);
    /// assert_eq!(server.buffered_amount(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn transmit_slices<'a>(&'a mut self, slices: &mut [std::io::IoSlice<'a>]) -> usize {
        if !self.pending_pongs.is_empty() {
            self.flush_pong();
        }
        let mut filled = 0;
        let mut put = |data: &'a [u8]| match slices.get_mut(filled) {
            _ if data.is_empty() => true,
            Some(slot) => {
                *slot = std::io::IoSlice::new(data);
                filled += 1;
                true
            }
            None => false,
        };
        let mut tail: &'a [u8] = &self.out_tail;
        for queued in &self.out_queue {
            let (before, rest) = tail.split_at(queued.before);
            tail = rest;
            if !put(before) || !put(&queued.payload) {
                return filled;
            }
        }
        put(tail);
        filled
    }

    /// Marks the first `written` bytes of those waiting to be written as written (see
    /// [`transmit_chunk`](Self::transmit_chunk) and [`transmit_slices`](Self::transmit_slices)).
    ///
    /// # Panics
    ///
    /// If `written` is more than [`buffered_amount`](Self::buffered_amount): the driver claims to
    /// have written bytes it was never given.
    #[inline]
    pub fn advance_transmit(&mut self, written: usize) {
        if written == self.buffered && written > 0 {
            // Everything went out (the usual case): keep the buffer's room for the next frames,
            // where they start over.
            self.buffered = 0;
            if !self.out_queue.is_empty() {
                self.out_queue.clear();
            }
            self.out_tail.clear();
            self.out_tail_queued = 0;
            return;
        }
        self.advance_transmit_partly(written);
    }

    // Out of line: the usual write takes everything, and this loop would make every call heavier.
    #[inline(never)]
    fn advance_transmit_partly(&mut self, written: usize) {
        assert!(
            written <= self.buffered,
            "advance_transmit({written}) with only {} bytes queued",
            self.buffered
        );
        self.buffered -= written;
        let mut left = written;
        while left > 0 {
            let Some(front) = self.out_queue.front_mut() else {
                if left == self.out_tail.len() {
                    // Keeps the buffer's room for the next frames, where they start over.
                    self.out_tail.clear();
                } else {
                    bytes::Buf::advance(&mut self.out_tail, left);
                }
                return;
            };
            if front.before > 0 {
                let taken = left.min(front.before);
                front.before -= taken;
                self.out_tail_queued -= taken;
                bytes::Buf::advance(&mut self.out_tail, taken);
                left -= taken;
            } else if left < front.payload.len() {
                bytes::Buf::advance(&mut front.payload, left);
                return;
            } else {
                left -= front.payload.len();
                self.out_queue.pop_front();
            }
        }
    }

    /// Gives back the capacity of buffers that hold nothing: the read buffer, the event and
    /// output queues and the spare room of the output buffer. Call it when the transport has
    /// nothing more to read for now, so that an idle connection holds no buffer memory; the
    /// next message allocates again. Cheap when there is nothing to free.
    pub fn release_idle_memory(&mut self) {
        // An empty `BytesMut` may still share the allocation of the chunks split off it (even
        // with no spare capacity left): replacing it is the way to let go.
        if self.read_buf.is_empty() {
            self.read_buf = BytesMut::new();
        }
        if self.out_tail.is_empty() {
            self.out_tail = BytesMut::new();
        }
        if self.text_arena.is_empty() && self.text_arena.capacity() > 0 {
            self.text_arena = String::new();
            self.text_lens = Vec::new();
        }
        if self.events.is_empty() && self.events.capacity() > 0 {
            self.events = VecDeque::new();
        }
        if self.out_queue.is_empty() && self.out_queue.capacity() > 0 {
            self.out_queue = VecDeque::new();
        }
    }

    /// The number of bytes queued for the transport and not yet handed out by `poll_transmit`.
    pub fn buffered_amount(&self) -> usize {
        self.buffered
    }

    /// Returns true while messages may be sent: the closing handshake has not started.
    pub fn is_open(&self) -> bool {
        self.state == State::Open
    }

    /// Returns true once the connection is over and every byte and the shutdown were handed
    /// out: the driver may drop the transport.
    pub fn is_terminated(&self) -> bool {
        self.state == State::Closed
            && self.out_queue.is_empty()
            && self.out_tail.is_empty()
            && (self.eof || self.shutdown == Shutdown::Done)
    }

    /// Sends a whole data message, compressed when permessage-deflate is on and the message is
    /// long enough to gain from it.
    pub fn send(&mut self, message: Message) -> Result<(), SendError> {
        let (opcode, payload) = self.start_message(message)?;
        match self.compression.compress(&payload) {
            Some(compressed) => self.queue_frame_with(true, true, opcode, compressed),
            None => self.queue_frame(true, opcode, payload),
        }
        Ok(())
    }

    /// Sends a whole data message without compressing it, even when permessage-deflate is on
    /// (for data that is already compressed, or a broadcast encoded once for many peers).
    pub fn send_uncompressed(&mut self, message: Message) -> Result<(), SendError> {
        let (opcode, payload) = self.start_message(message)?;
        self.queue_frame(true, opcode, payload);
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
            Some(compressed) => self.queue_frame_with(true, true, opcode, compressed),
            None => self.queue_frame_copied(true, false, opcode, payload),
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
            Some(compressed) => self.queue_frame_with(true, true, message.opcode(), compressed),
            None => self.queue_frame(true, message.opcode(), message.payload().clone()),
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
        self.queue_frame(last, opcode, data.into());
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

    /// Starts the closing handshake. `None` sends a close frame without a code.
    ///
    /// Messages keep arriving until the peer's close frame; then `Event::Closed` reports it.
    pub fn close(&mut self, frame: Option<CloseFrame>) -> Result<(), SendError> {
        if self.state != State::Open {
            return Err(SendError::Closed);
        }
        let payload = match &frame {
            Some(frame) if !frame.code.is_sendable() => {
                return Err(SendError::InvalidCloseCode(frame.code.0));
            }
            Some(frame) if frame.reason.len() > 123 => {
                return Err(SendError::ControlPayloadTooLong(frame.reason.len() + 2));
            }
            Some(frame) => frame.encode(),
            None => Bytes::new(),
        };
        self.queue_close(payload);
        self.state = State::CloseSent;
        self.timers.close_wanted = true;
        Ok(())
    }

    /// Returns the next instant at which `handle_timeout` must be called, arming timers that
    /// became due since the last call from `now`.
    pub fn poll_timeout(&mut self, now: Instant) -> Option<Instant> {
        if self.state == State::Open && self.timers.keepalive.is_none() {
            self.timers.keepalive = self
                .config
                .keepalive_interval
                .map(|interval| now + interval);
        }
        if self.timers.close_wanted && self.timers.close.is_none() {
            self.timers.close = self.config.close_timeout.map(|timeout| now + timeout);
        }
        let keepalive = self
            .timers
            .keepalive
            .filter(|_| self.state != State::Closed);
        let close = self.timers.close.filter(|_| !self.is_terminated());
        match (keepalive, close) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Runs the timers that are due at `now`: keepalive pings, the dead-peer check and the
    /// close timeout.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.reading_stopped && self.state != State::Closed {
            // A failure or close is waiting in the event queue; it decides what happens next.
            return;
        }
        if self.timers.close.is_some_and(|deadline| deadline <= now) {
            self.timers.close = None;
            self.timers.close_wanted = false;
            match self.state {
                State::CloseSent => self.fail(ProtocolError::CloseTimeout),
                State::Closed | State::Open => self.queue_shutdown(),
            }
        }
        // The close timeout above may just have failed the connection: one failure is enough.
        let keepalive_due = self
            .timers
            .keepalive
            .is_some_and(|deadline| deadline <= now);
        if keepalive_due && !self.reading_stopped {
            self.run_keepalive(now);
        }
    }

    fn run_keepalive(&mut self, now: Instant) {
        self.timers.keepalive = None;
        if self.state == State::Closed {
            return;
        }
        let seen = std::mem::take(&mut self.timers.traffic_seen);
        if self.timers.awaiting_pong && !seen {
            self.fail(ProtocolError::KeepaliveTimeout);
            return;
        }
        self.timers.awaiting_pong = false;
        let Some(interval) = self.config.keepalive_interval else {
            return;
        };
        if seen || self.state != State::Open {
            self.timers.keepalive = Some(now + interval);
            return;
        }
        self.queue_frame(true, OpCode::Ping, Bytes::new());
        self.timers.awaiting_pong = self.config.keepalive_timeout.is_some();
        self.timers.keepalive = Some(now + self.config.keepalive_timeout.unwrap_or(interval));
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
        if self.buffered > self.config.max_buffered {
            return Err(SendError::BufferFull {
                buffered: self.buffered,
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
        self.queue_frame(true, opcode, payload);
        Ok(())
    }

    fn queue_frame(&mut self, fin: bool, opcode: OpCode, payload: Bytes) {
        self.queue_frame_with(fin, false, opcode, payload);
    }

    fn queue_frame_with(&mut self, fin: bool, rsv1: bool, opcode: OpCode, payload: Bytes) {
        if self.rng.is_some() || payload.len() < COPY_THRESHOLD {
            return self.queue_frame_copied(fin, rsv1, opcode, &payload);
        }
        // A long server payload goes out as its own chunk, after the header: a driver writing
        // vectored sends it straight from the caller's buffer.
        self.queue_header(fin, rsv1, opcode, None, payload.len(), 0);
        self.buffered += payload.len();
        let before = self.out_tail.len() - self.out_tail_queued;
        self.out_tail_queued += before;
        self.out_queue.push_back(QueuedPayload { before, payload });
    }

    /// Queues a frame whose payload is copied (and masked, for a client) into the outgoing
    /// buffer right after its header.
    #[inline]
    fn queue_frame_copied(&mut self, fin: bool, rsv1: bool, opcode: OpCode, payload: &[u8]) {
        let mask = self.rng.as_deref_mut().map(Rng::mask);
        self.queue_header(fin, rsv1, opcode, mask, payload.len(), payload.len());
        self.buffered += payload.len();
        let start = self.out_tail.len();
        self.out_tail.extend_from_slice(payload);
        if let Some(key) = mask {
            apply_mask(&mut self.out_tail[start..], key, 0);
        }
    }

    /// Appends a frame header to the outgoing buffer, with room for `room` more bytes.
    #[inline(always)]
    fn queue_header(
        &mut self,
        fin: bool,
        rsv1: bool,
        opcode: OpCode,
        mask: Option<[u8; 4]>,
        payload_len: usize,
        room: usize,
    ) {
        let header = FrameHeader {
            fin,
            rsv1,
            opcode,
            mask,
            payload_len: payload_len as u64,
        };
        let (head, head_len) = header.to_bytes();
        let needed = head_len + room;
        if self.out_tail.capacity() - self.out_tail.len() < needed {
            // Room for many small frames at once: the chunks handed out share this buffer, so
            // growing it for every frame would go through `reserve` (and maybe allocate) each
            // time.
            self.out_tail.reserve(needed.max(OUT_TAIL_BLOCK));
        }
        self.out_tail.extend_from_slice(&head[..head_len]);
        self.buffered += head_len;
    }

    // Out of line: pongs are rare, and inlined they would make every `poll_transmit` heavier.
    #[inline(never)]
    fn flush_pong(&mut self) {
        while let Some(payload) = self.pending_pongs.pop_front() {
            self.queue_frame(true, OpCode::Pong, payload);
        }
    }

    fn queue_close(&mut self, payload: Bytes) {
        self.flush_pong();
        self.queue_frame(true, OpCode::Close, payload);
    }

    fn queue_shutdown(&mut self) {
        if self.shutdown == Shutdown::NotYet {
            self.shutdown = Shutdown::Queued;
        }
    }

    /// Fails the connection (§7.1.7): reading stops now; the error is reported after the
    /// events before it, and then the close frame and shutdown go out.
    fn fail(&mut self, error: ProtocolError) {
        self.reading_stopped = true;
        self.incoming = None;
        self.read_buf = BytesMut::new();
        self.push_event(Err(error));
    }

    /// Sends the close frame for a failure, if one may still be sent, and the shutdown.
    fn fail_now(&mut self, code: CloseCode) {
        if self.state == State::Open && code.is_sendable() && !self.eof {
            self.pending_pongs.clear();
            self.queue_frame(true, OpCode::Close, CloseFrame::new(code, "").encode());
        }
        self.state = State::Closed;
        self.queue_shutdown();
    }

    fn process(&mut self) {
        while self.state != State::Closed && !self.reading_stopped {
            match self.step() {
                Ok(true) => {}
                Ok(false) => break,
                Err(error) => self.fail(error),
            }
        }
    }

    /// Makes progress on the frame at the front of the read buffer; false when more bytes are
    /// needed.
    fn step(&mut self) -> Result<bool, ProtocolError> {
        if let Some(header) = self.decoder.decode_header(&mut self.read_buf)? {
            if self.take_whole_message(&header)? {
                return Ok(true);
            }
            self.start_frame(&header)?;
        }
        let Some(&header) = self.decoder.current_header() else {
            return Ok(false);
        };
        let (available, fresh) = self.decoder.unmask_arrived(&mut self.read_buf);
        if header.opcode.is_control() {
            return match self.decoder.take_frame(&mut self.read_buf) {
                Some((header, payload)) => self.on_control(header.opcode, payload).map(|()| true),
                None => Ok(false),
            };
        }
        let incoming = self.incoming.as_mut().expect("data frame has a message");
        if incoming.kind == MessageKind::Text && !incoming.compressed {
            let arrived = &self.read_buf[available - fresh..available];
            if self.config.streaming {
                incoming
                    .utf8
                    .feed(arrived)
                    .map_err(|_| ProtocolError::InvalidUtf8)?;
            } else {
                return self.take_text(&header, available, fresh);
            }
        }
        if self.config.streaming {
            return self.take_chunk(available);
        }
        let (_, remaining) = self
            .decoder
            .payload_remaining()
            .expect("a frame in progress");
        if header.payload_len >= LARGE_FRAME && !incoming.compressed && remaining > available as u64
        {
            if available == 0 {
                // Nothing to move, and the message's room is `receive_with`'s to size: a
                // reserve here would reallocate it (copying it) as it grows.
                return Ok(false);
            }
            // The rest of a large frame will come straight from `receive`: move what arrived
            // onto the message, which has room for the whole frame.
            incoming.data.reserve(up_front(remaining));
            incoming.data.extend_from_slice(&self.read_buf[..available]);
            self.decoder.skip_unmasked(&mut self.read_buf);
            return Ok(false);
        }
        match self.decoder.take_frame(&mut self.read_buf) {
            Some((header, payload)) => self.end_data_frame(header.fin, payload).map(|()| true),
            None => Ok(false),
        }
    }

    /// Validates the text bytes that arrived and copies them onto the message, so the read
    /// buffer keeps no text and every byte is checked exactly once (whole frames in one call).
    fn take_text(
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
    fn take_whole_message(&mut self, header: &FrameHeader) -> Result<bool, ProtocolError> {
        if !self.is_whole_message(header) {
            return Ok(false);
        }
        check_message_size(header.payload_len, self.config.max_message_size)?;
        let Some(payload) = self.decoder.take_whole(&mut self.read_buf) else {
            return Ok(false);
        };
        self.deliver_whole(header, payload)?;
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

    /// Delivers the unmasked payload of a whole message (see `is_whole_message`).
    // Inlined in `step`, the path of every short message (a call there costs them 20 %).
    #[inline(always)]
    fn deliver_whole(&mut self, header: &FrameHeader, payload: Bytes) -> Result<(), ProtocolError> {
        let message = if header.opcode == OpCode::Binary {
            Message::Binary(payload)
        } else if is_short_text(header) {
            Message::Text(Utf8Bytes::try_from(payload).map_err(|_| ProtocolError::InvalidUtf8)?)
        } else {
            // Checked once with SIMD; the copy is what lets the `String` skip `std`'s check.
            let text =
                simdutf8::basic::from_utf8(&payload).map_err(|_| ProtocolError::InvalidUtf8)?;
            self.push_text(text, payload.len() + self.read_buf.len());
            return Ok(());
        };
        self.push_event(Ok(Event::Message(message)));
        Ok(())
    }

    /// Checks a new frame's place in the message sequence and its size against the limits,
    /// before any of its payload is buffered.
    fn start_frame(&mut self, header: &FrameHeader) -> Result<(), ProtocolError> {
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

    fn take_chunk(&mut self, available: usize) -> Result<bool, ProtocolError> {
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

    fn end_data_frame(&mut self, fin: bool, payload: Bytes) -> Result<(), ProtocolError> {
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
    fn deliver(&mut self, mut incoming: Incoming, payload: Bytes) -> Result<(), ProtocolError> {
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

    fn on_control(&mut self, opcode: OpCode, payload: Bytes) -> Result<(), ProtocolError> {
        match opcode {
            OpCode::Ping => {
                if self.state == State::Open {
                    if self.pending_pongs.len() == MAX_PENDING_PONGS {
                        self.pending_pongs.pop_front();
                    }
                    self.pending_pongs.push_back(payload.clone());
                }
                self.push_event(Ok(Event::Ping(payload)));
            }
            OpCode::Pong => self.push_event(Ok(Event::Pong(payload))),
            OpCode::Close => self.on_close(payload)?,
            OpCode::Continuation | OpCode::Text | OpCode::Binary => unreachable!("data opcode"),
        }
        Ok(())
    }

    fn on_close(&mut self, payload: Bytes) -> Result<(), ProtocolError> {
        let frame = parse_close(payload)?;
        self.reading_stopped = true;
        self.incoming = None;
        self.read_buf = BytesMut::new();
        self.push_event(Ok(Event::Closed(frame)));
        Ok(())
    }

    /// Completes the closing handshake once the application has seen the peer's close.
    fn finish_close(&mut self, code: Option<CloseCode>) {
        if self.state == State::Open {
            let echo = code.map_or_else(Bytes::new, |code| CloseFrame::new(code, "").encode());
            self.queue_close(echo);
        }
        self.state = State::Closed;
        self.timers.close = None;
        match self.role {
            // The server closes the TCP connection first (§7.1.1) ...
            Role::Server => self.queue_shutdown(),
            // ... and the client waits for it, but not forever.
            Role::Client if self.eof => self.queue_shutdown(),
            Role::Client => self.timers.close_wanted = true,
        }
    }
}

fn check_message_size(len: u64, limit: usize) -> Result<(), ProtocolError> {
    if len > limit as u64 {
        return Err(ProtocolError::MessageTooBig { size: len, limit });
    }
    Ok(())
}

/// Parses and checks a received close payload (§5.5.1, §7.4).
fn parse_close(payload: Bytes) -> Result<Option<CloseFrame>, ProtocolError> {
    match payload.len() {
        0 => Ok(None),
        1 => Err(ProtocolError::CloseFrameTooShort),
        _ => {
            let code = CloseCode(u16::from_be_bytes([payload[0], payload[1]]));
            if !code.is_sendable() {
                return Err(ProtocolError::InvalidCloseCode(code.0));
            }
            let reason = Utf8Bytes::try_from(payload.slice(2..))
                .map_err(|_| ProtocolError::InvalidCloseReason)?;
            Ok(Some(CloseFrame { code, reason }))
        }
    }
}
