//! The connection state machine: data framing, message assembly, control frames and the
//! closing handshake (RFC 6455 §5, §7).
//!
//! This file holds the states and their transitions; beside it, each with its own invariants:
//! `receive` (the receive paths and their shortcuts), `incoming` (message assembly),
//! `text_arena` (whole text messages of one read in one allocation), `send` (the commands that
//! queue frames), `output` (the outgoing buffer) and `timers`.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use super::Role;
use super::close::{CloseCode, CloseFrame};
use super::compression::Compression;
use super::config::Config;
use super::error::{ProtocolError, SendError};
use super::frame::{DecoderLimits, FrameDecoder, OpCode};
use super::message::{Message, MessageKind, Utf8Bytes};
use super::rng::Rng;

mod incoming;
mod output;
mod receive;
mod send;
mod text_arena;
mod timers;

use incoming::Incoming;
use output::Outgoing;
use receive::{LARGE_FRAME, room_ahead};
use text_arena::TextArena;
use timers::{Timer, Timers};

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

/// How far a connection has got in closing, from the driver's side: what it still owes the
/// transport. See [`Connection::close_state`].
///
/// The states follow each other in this order (any may be skipped): `Open`, `CloseSent`,
/// `Flushing`, `AwaitingPeerEof`, `Terminated`. A driver needs no closing state of its own:
/// it reads while the state asks for input, writes while bytes are queued, and reports the end
/// to the application from [`Connection::peer_close_frame`] or [`Connection::failure`] once
/// it has written what it owes (or at once; the core does not mind).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseState {
    /// No close frame sent or handed out: messages flow both ways. Read, write, run timers.
    Open,
    /// Our close frame is queued (by [`Connection::close`], or by the message timeout); the
    /// peer's is awaited, bounded by the close timeout. Events keep arriving; nothing more
    /// may be sent. Read, write, run timers.
    CloseSent,
    /// [`Connection::poll_event`] has handed out its last event (`Event::Closed` or the
    /// failure): nothing more is reported or taken from input. The close echo or the
    /// failure's close frame, or the shutdown, are still to be written: write them.
    Flushing,
    /// Everything is written, and the client waits for the server to close the transport
    /// first (RFC 6455 §7.1.1): read until end of file (what is read is dropped) and run
    /// timers; the close timeout bounds the wait, after which a shutdown is queued
    /// (`Flushing` again).
    AwaitingPeerEof,
    /// Nothing more to read or write: drop the transport ([`Connection::is_terminated`]).
    Terminated,
}

impl CloseState {
    /// Whether `poll_event` has handed out its last event: the application has been told how
    /// the connection ended, and nothing more may be sent.
    pub fn events_ended(self) -> bool {
        matches!(
            self,
            Self::Flushing | Self::AwaitingPeerEof | Self::Terminated
        )
    }
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
///
/// # Driving a connection
///
/// A driver repeats four steps, in this order, until [`is_terminated`](Self::is_terminated):
///
/// 1. **Input.** Hand every byte read to [`receive`](Self::receive) (or read through
///    [`receive_with`](Self::receive_with)), in order, and end of file to
///    [`receive_eof`](Self::receive_eof). Input decodes frames into events, owes pongs and may
///    start or stop the message timeout; it never writes and never fails: a protocol error
///    is queued as an event, and reading stops there.
/// 2. **Events.** Call [`poll_event`](Self::poll_event) until it returns `None`. A failure or
///    the peer's close takes effect only when it is handed out here: then the close frame
///    (the echo, or the failure's code) and the shutdown are queued, and the connection
///    leaves [`CloseState::Open`]. The application's commands
///    ([`send`](Self::send) and its kin, [`ping`](Self::ping), [`close`](Self::close)) may
///    come at any point between steps; they only queue frames.
/// 3. **Output.** Write what is queued: [`poll_transmit`](Self::poll_transmit) hands out owned
///    chunks and, last, [`Transmit::Shutdown`]; [`transmit_slices`](Self::transmit_slices) or
///    [`transmit_chunk`](Self::transmit_chunk) lend the bytes in place and
///    [`advance_transmit`](Self::advance_transmit) lets go of as many as were written.
///    [`has_transmit`](Self::has_transmit) says whether there is anything to write.
/// 4. **Timers.** Sleep until [`poll_timeout`](Self::poll_timeout) (or until input arrives),
///    and when that instant has passed call [`handle_timeout`](Self::handle_timeout), then
///    go back to step 2: a timeout may queue a ping, a close frame, a failure or a shutdown.
///
/// What changes what: `receive*` adds events, owed pongs and timer starts; `poll_event` may
/// queue a close frame and the shutdown; commands queue frames; `handle_timeout` may queue
/// frames, events or the shutdown; `poll_timeout`, `has_event`, `has_transmit`,
/// `close_state` and the other getters change nothing.
///
/// **Partial writes and cancellation.** Bytes handed out by `poll_transmit` are the driver's:
/// it writes all of them, in order, before any later bytes (resuming after a partial write),
/// or drops the transport. Bytes lent by `transmit_slices`/`transmit_chunk` stay queued until
/// `advance_transmit`, so a write that is cancelled or fails part way loses nothing: the next
/// write starts at the first byte not advanced over. Every call returns at once, so there
/// is nothing to cancel inside the core; a driver that stops calling it leaves the connection
/// as it was. Once the transport fails, no later call can repair it: drop the connection.
///
/// **Closing.** [`close_state`](Self::close_state) tells the driver what it still owes the
/// transport: keep reading while the peer's close frame or end of file is awaited, write what
/// is queued, and drop the transport once terminated. The server shuts its write side down
/// as soon as its close frame is written; the client waits for the server's end of file first
/// (§7.1.1), bounded by the close timeout.
#[derive(Debug)]
pub struct Connection {
    role: Role,
    config: Config,
    read_buf: BytesMut,
    decoder: FrameDecoder,
    incoming: Option<Incoming>,
    events: VecDeque<Result<Event, ProtocolError>>,
    /// Whole text messages decoded by the current `receive`; turned into events before any
    /// other event and when `receive` returns.
    texts: TextArena,
    /// The frames queued for the transport, and the pongs owed.
    out: Outgoing,
    /// Reading has ended with a failure or the peer's close frame, which takes effect once the
    /// events before it have been taken.
    reading_stopped: bool,
    sending_fragmented: Option<MessageKind>,
    compression: Compression,
    state: State,
    shutdown: Shutdown,
    eof: bool,
    timers: Timers,
    /// How the connection ended, once `poll_event` has handed out its last event.
    end: Option<Result<Option<CloseFrame>, ProtocolError>>,
    /// Room left after the bytes of a read in the read buffer: the length of the last frame
    /// found unfinished at the end of a read (up to [`LARGE_FRAME`]), so that the next one of
    /// its size can be completed where it began instead of being moved to make room.
    read_slack: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    /// Our close frame is queued; the peer's is awaited.
    CloseSent,
    /// The closing handshake completed, or the connection failed: `poll_event` handed out the
    /// last event, and nothing is read or sent.
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shutdown {
    NotYet,
    Queued,
    Done,
}

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
            read_buf: BytesMut::new(),
            decoder: FrameDecoder::new(role, limits),
            incoming: None,
            events: VecDeque::new(),
            texts: TextArena::default(),
            out: Outgoing::new(rng),
            reading_stopped: false,
            sending_fragmented: None,
            compression: Compression::default(),
            state: State::Open,
            shutdown: Shutdown::NotYet,
            eof: false,
            timers: Timers {
                keepalive: Timer::start(config.keepalive_interval),
                ..Timers::default()
            },
            end: None,
            read_slack: 0,
            config,
        }
    }

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

    /// Feeds bytes read from the transport. Call `poll_event` and `poll_transmit` afterwards.
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
        self.track_message_timer();
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
    /// returned here, so messages that arrived before it can still be answered. It is the last
    /// event: afterwards [`close_state`](Self::close_state) reports that the events ended.
    pub fn poll_event(&mut self) -> Option<Result<Event, ProtocolError>> {
        let event = self.events.pop_front()?;
        if matches!(event, Err(_) | Ok(Event::Closed(_))) {
            self.end(&event);
        }
        Some(event)
    }

    /// `poll_event` when its next event is a whole message: the message, taken out; otherwise
    /// `None` and nothing taken. For a driver's hot path: the message goes straight to the
    /// caller, not through the larger `Option<Result<Event, ProtocolError>>`.
    #[cfg(feature = "tokio")]
    #[inline]
    pub(crate) fn poll_message(&mut self) -> Option<Message> {
        if !matches!(self.events.front(), Some(Ok(Event::Message(_)))) {
            return None;
        }
        match self.events.pop_front() {
            Some(Ok(Event::Message(message))) => Some(message),
            _ => None,
        }
    }

    /// The last event is being handed out: the failure or the peer's close takes effect.
    #[inline(never)]
    fn end(&mut self, event: &Result<Event, ProtocolError>) {
        match event {
            Err(error) => {
                self.fail_now(error.close_code());
                self.end = Some(Err(error.clone()));
            }
            Ok(Event::Closed(frame)) => {
                self.finish_close(frame.as_ref());
                self.end = Some(Ok(frame.clone()));
            }
            Ok(_) => {}
        }
    }

    /// Returns true when `poll_event` has something to hand out: a driver may answer it before
    /// writing, so the replies to a burst of messages leave together.
    #[inline]
    pub fn has_event(&self) -> bool {
        !self.events.is_empty()
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
        self.out.release_idle_memory();
        self.texts.release_idle_memory();
        if self.events.is_empty() && self.events.capacity() > 0 {
            self.events = VecDeque::new();
        }
    }

    /// Gives back the room of the output buffer once everything queued was written, as
    /// [`release_idle_memory`](Self::release_idle_memory) does for it: for a driver whose
    /// writing side idles on its own (the writer of a split connection), without touching
    /// what the reading side holds. Cheap when there is nothing to free.
    #[inline]
    pub fn release_idle_output(&mut self) {
        self.out.release_idle_tail();
    }

    /// Returns true while messages may be sent: the closing handshake has not started.
    #[inline]
    pub fn is_open(&self) -> bool {
        self.state == State::Open
    }

    /// Returns true once the connection is over and every byte and the shutdown were handed
    /// out (or the peer's end of file arrived): the driver may drop the transport.
    pub fn is_terminated(&self) -> bool {
        self.state == State::Closed
            && self.out.is_empty()
            && (self.eof || self.shutdown == Shutdown::Done)
    }

    /// How far the connection has got in closing; see [`CloseState`]. Changes nothing.
    ///
    /// ```
    /// use wsio::proto::{CloseState, Config, Connection, Event};
    /// let mut server = Connection::server(Config::default());
    /// // A masked close frame with code 1000.
    /// server.receive(&[0x88, 0x82, 1, 2, 3, 4, 0x03 ^ 1, 0xe8 ^ 2]);
    /// assert_eq!(server.close_state(), CloseState::Open);
    /// let Some(Ok(Event::Closed(_))) = server.poll_event() else { panic!() };
    /// assert_eq!(server.close_state(), CloseState::Flushing);
    /// while server.poll_transmit().is_some() {} // the echo, then the shutdown
    /// assert_eq!(server.close_state(), CloseState::Terminated);
    /// ```
    #[inline]
    pub fn close_state(&self) -> CloseState {
        match self.state {
            State::Open => CloseState::Open,
            State::CloseSent => CloseState::CloseSent,
            State::Closed if self.is_terminated() => CloseState::Terminated,
            State::Closed if self.out.is_empty() && self.shutdown == Shutdown::NotYet => {
                CloseState::AwaitingPeerEof
            }
            State::Closed => CloseState::Flushing,
        }
    }

    /// The peer's close frame, once `poll_event` has handed out [`Event::Closed`] (the outer
    /// `None` before that, or when the connection failed instead; the inner one for an empty
    /// close frame).
    pub fn peer_close_frame(&self) -> Option<Option<&CloseFrame>> {
        match &self.end {
            Some(Ok(frame)) => Some(frame.as_ref()),
            Some(Err(_)) | None => None,
        }
    }

    /// The error the connection failed with, once `poll_event` has handed it out.
    pub fn failure(&self) -> Option<&ProtocolError> {
        match &self.end {
            Some(Err(error)) => Some(error),
            Some(Ok(_)) | None => None,
        }
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
        self.out.queue_close(payload);
        self.state = State::CloseSent;
        self.timers.close = Timer::start(self.config.close_timeout);
        self.timers.message = Timer::Off;
        Ok(())
    }

    /// Queues an event, after the text messages decoded before it.
    fn push_event(&mut self, event: Result<Event, ProtocolError>) {
        self.flush_texts();
        // Outside a data message, an event ends a message (or a control frame, or reading).
        if self.incoming.is_none() {
            self.timers.message_ended = true;
        }
        self.events.push_back(event);
    }

    /// Turns the texts gathered in the arena into message events, in order.
    #[inline(always)]
    fn flush_texts(&mut self) {
        // Inline down to this check: every event and every `receive` asks, few find texts.
        if self.texts.has_texts() {
            self.texts.hand_out(&mut self.events);
        }
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
            self.out.clear_pongs();
            let payload = CloseFrame::new(code, "").encode();
            self.out.queue_frame(true, OpCode::Close, payload);
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
            let room = self.read_buf.capacity() - self.read_buf.len();
            if remaining - available as u64 <= room as u64 {
                // The buffer has room for the rest: the frame completes there and its payload
                // is shared, not copied onto the message.
                return Ok(false);
            }
            // The rest of a large frame will come straight from `receive`: move what arrived
            // onto the message, with room for as much of the frame as `receive_with` would
            // make for it (the whole frame, unless it is many times longer than what arrived),
            // so that the message does not move again when the rest is read onto it.
            incoming.data.reserve(room_ahead(available, remaining, 0));
            incoming.data.extend_from_slice(&self.read_buf[..available]);
            self.decoder.skip_unmasked(&mut self.read_buf);
            return Ok(false);
        }
        match self.decoder.take_frame(&mut self.read_buf) {
            Some((header, payload)) => self.end_data_frame(header.fin, payload).map(|()| true),
            None => Ok(false),
        }
    }

    fn on_control(&mut self, opcode: OpCode, payload: Bytes) -> Result<(), ProtocolError> {
        match opcode {
            OpCode::Ping => {
                if self.state == State::Open {
                    self.out.owe_pong(payload.clone());
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

    /// Completes the closing handshake once the application has seen the peer's close: the
    /// echo repeats the peer's code and reason (§5.5.1).
    fn finish_close(&mut self, frame: Option<&CloseFrame>) {
        if self.state == State::Open {
            let echo = frame.map_or_else(Bytes::new, CloseFrame::encode);
            self.out.queue_close(echo);
        }
        self.state = State::Closed;
        self.timers.message = Timer::Off;
        self.timers.close = match self.role {
            // The server closes the TCP connection first (§7.1.1) ...
            Role::Server => {
                self.queue_shutdown();
                Timer::Off
            }
            Role::Client if self.eof => {
                self.queue_shutdown();
                Timer::Off
            }
            // ... and the client waits for it, but not forever.
            Role::Client => Timer::start(self.config.close_timeout),
        };
    }
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
