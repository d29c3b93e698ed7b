//! A scripted driver for a whole `Connection`, and the invariants it checks after every step.
//!
//! The script (built with `arbitrary`) interleaves bytes from the peer, commands, the end of
//! the stream, a synthetic clock, and polls. The driver checks:
//!
//! - every command returns `Ok` or the one `SendError` the documented rules predict;
//! - events: at most one `Err`, nothing after it or after `Event::Closed`, only errors that can
//!   happen to this role and configuration, sizes within the limits;
//! - the bytes written, through the independent [`WireChecker`](crate::wire::WireChecker): valid
//!   frames for the role, nothing after a close frame but control frames, nothing at all after
//!   `Transmit::Shutdown`; and the data frames on the wire are exactly the messages sent;
//! - once drained, `buffered_amount` is 0, a close we started went out, the peer's close was
//!   answered, and a failed or closed connection shut its write side down (a client only after
//!   the end of the stream).

use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
use wsio::proto::{
    CloseCode, CloseFrame, Config, Connection, Event, Message, MessageKind, ProtocolError, Rng,
    Role, SendError, Transmit,
};

use crate::wire::{WireChecker, WireFrame};

/// Runs the script encoded in `data` against a connection of `role`.
pub fn run(role: Role, data: &[u8]) {
    let Ok(script) = Script::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let mut driver = Driver::new(role, &script.settings, None);
    for op in &script.ops {
        driver.step(op);
    }
    driver.finish();
}

/// Runs a script against a connection with `Config::message_timeout`, whose expiry the driver
/// predicts from its own model of where the peer's messages begin and end ([`MessageModel`]).
///
/// `data` starts with a flag byte (bit 0: client) and the timeout in milliseconds (two bytes,
/// little-endian); the script follows. The driver polls every event before it runs the
/// timers, as an application's loop does, so that it knows whether the connection is still
/// reading. Peer frames form one stream cut anywhere, so that one read may end a message and
/// begin the next. Then:
///
/// - when the timeout the model predicts is due, `handle_timeout` ends the open connection;
/// - with keepalive off (the only other timer that can end an open connection), it ends the
///   connection only when the model's timeout is due;
/// - the close frame that follows on the wire is 1008 with the reason `message timeout`.
pub fn run_with_message_timeout(data: &[u8]) {
    let [flags, low, high, rest @ ..] = data else {
        return;
    };
    let role = if flags & 1 == 0 {
        Role::Server
    } else {
        Role::Client
    };
    let timeout = Duration::from_millis(u64::from(u16::from_le_bytes([*low, *high])));
    let Ok(script) = Script::arbitrary_take_rest(Unstructured::new(rest)) else {
        return;
    };
    let mut driver = Driver::new(role, &script.settings, Some(timeout));
    for op in &script.ops {
        driver.step(op);
    }
    driver.finish();
}

/// Connection settings and what happens to the connection, in order.
#[derive(Debug, Arbitrary)]
pub struct Script {
    settings: Settings,
    ops: Vec<Op>,
}

/// The `Config` fields, small enough that the limits are reached; `None` turns a timer off.
#[derive(Debug, Arbitrary)]
struct Settings {
    streaming: bool,
    max_frame_size: Option<u16>,
    max_message_size: Option<u16>,
    max_fragments: Option<u8>,
    keepalive_interval_secs: Option<u8>,
    keepalive_timeout_secs: Option<u8>,
    close_timeout_secs: Option<u8>,
    max_buffered: Option<u16>,
    seed: [u8; 32],
}

#[derive(Debug, Arbitrary)]
enum Op {
    /// Raw bytes from the peer.
    Receive(Vec<u8>),
    /// Raw bytes from the peer, read straight into the connection (`receive_with`) in reads
    /// that take at most the room given, or `room` bytes.
    ReceiveInto {
        data: Vec<u8>,
        room: u16,
    },
    /// A frame from the peer, encoded here and delivered in two pieces; with a message timeout,
    /// appended to the frames not yet read, of which the first `cut` bytes are read.
    ReceiveFrame(PeerFrame),
    ReceiveEof,
    Send {
        text: bool,
        data: Vec<u8>,
        /// Through `send_text`/`send_binary` instead of `send`.
        borrowed: bool,
    },
    SendFragment {
        text: bool,
        data: Vec<u8>,
        last: bool,
    },
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<(u16, String)>),
    /// Moves the clock forward by this many 16 ms steps, then runs the timers if one is due.
    Advance(u16),
    /// Moves the clock to the next deadline and runs the timers.
    NextTimeout,
    PollEvents(u8),
    PollTransmits(u8),
    /// Writes through the borrowed transmit API, at most `limit` bytes per write, vectored or
    /// not, `count` times.
    WriteSome {
        count: u8,
        limit: u16,
        vectored: bool,
    },
}

/// A frame the peer sends, mostly well-formed.
#[derive(Debug, Arbitrary)]
struct PeerFrame {
    fin: bool,
    opcode: PeerOpCode,
    /// RSV1 to RSV3, in the low three bits.
    reserved: Option<u8>,
    /// Masked when the peer must not mask, or the other way round.
    wrong_mask: bool,
    key: [u8; 4],
    length: LengthForm,
    /// Where to cut the encoded frame between two `receive` calls.
    cut: u16,
}

#[derive(Debug, Arbitrary)]
enum PeerOpCode {
    Continuation(Vec<u8>),
    Text(String),
    InvalidText(Vec<u8>),
    Binary(Vec<u8>),
    Close(u16, String),
    RawClose(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Reserved(u8, Vec<u8>),
    /// A long text or binary payload cheap to describe: `len` ASCII letters (up to 8 KiB), one
    /// of them maybe replaced by any byte (for text, often breaking its UTF-8).
    Long {
        text: bool,
        len: u16,
        odd: Option<(u16, u8)>,
    },
}

#[derive(Debug, Arbitrary)]
enum LengthForm {
    Minimal,
    Bits16,
    Bits64,
}

impl PeerFrame {
    fn encode(&self, peer: Role) -> Vec<u8> {
        let (opcode, payload): (u8, Vec<u8>) = match &self.opcode {
            PeerOpCode::Continuation(data) => (0x0, data.clone()),
            PeerOpCode::Text(text) => (0x1, text.clone().into_bytes()),
            PeerOpCode::InvalidText(data) => (0x1, data.clone()),
            PeerOpCode::Binary(data) => (0x2, data.clone()),
            PeerOpCode::Close(code, reason) => {
                let mut payload = code.to_be_bytes().to_vec();
                payload.extend_from_slice(reason.as_bytes());
                (0x8, payload)
            }
            PeerOpCode::RawClose(data) => (0x8, data.clone()),
            PeerOpCode::Ping(data) => (0x9, data.clone()),
            PeerOpCode::Pong(data) => (0xA, data.clone()),
            PeerOpCode::Reserved(opcode, data) => (opcode & 0x0F, data.clone()),
            PeerOpCode::Long { text, len, odd } => {
                let mut payload = vec![b'a'; usize::from(*len) % (8 << 10)];
                if let (Some((at, byte)), false) = (odd, payload.is_empty()) {
                    let at = usize::from(*at) % payload.len();
                    payload[at] = *byte;
                }
                (if *text { 0x1 } else { 0x2 }, payload)
            }
        };
        let reserved = self.reserved.unwrap_or(0) & 0b111;
        let mut wire = vec![u8::from(self.fin) << 7 | reserved << 4 | opcode];
        let masked = (peer == Role::Client) != self.wrong_mask;
        let mask_bit = if masked { 0b1000_0000 } else { 0 };
        let len = payload.len();
        match self.length {
            LengthForm::Minimal if len <= 125 => wire.push(mask_bit | len as u8),
            LengthForm::Minimal | LengthForm::Bits16 if len <= 0xFFFF => {
                wire.push(mask_bit | 126);
                wire.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                wire.push(mask_bit | 127);
                wire.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        if masked {
            wire.extend_from_slice(&self.key);
            wire.extend(
                payload
                    .iter()
                    .enumerate()
                    .map(|(i, byte)| byte ^ self.key[i % 4]),
            );
        } else {
            wire.extend_from_slice(&payload);
        }
        wire
    }
}

struct Driver {
    conn: Connection,
    role: Role,
    config: Config,
    wire: WireChecker,
    /// The data frames the application sent, in order, to find on the wire.
    sent: Vec<WireFrame>,
    /// How many of `wire.frames()` were matched against `sent`, and how many of `sent` found.
    frames_seen: usize,
    sent_found: usize,
    /// The kind of our fragmented message in progress.
    sending_fragmented: Option<MessageKind>,
    close_started: bool,
    /// An error or `Event::Closed` was returned: nothing may follow.
    events_over: bool,
    failed: bool,
    closed: bool,
    eof: bool,
    /// The message being received in chunks (streaming mode): its kind and bytes so far.
    chunked: Option<(MessageKind, Vec<u8>)>,
    now: Instant,
    /// With a message timeout: where the peer's messages begin and end, and the timer.
    model: Option<MessageModel>,
    /// The message timeout ended the connection.
    timed_out: bool,
    /// With a message timeout, the peer's frames not yet read (see `Op::ReceiveFrame`).
    pending: Vec<u8>,
}

impl Driver {
    fn new(role: Role, settings: &Settings, message_timeout: Option<Duration>) -> Self {
        let mut config = Config::default();
        config.streaming = settings.streaming;
        if let Some(size) = settings.max_frame_size {
            config.max_frame_size = size.into();
        }
        if let Some(size) = settings.max_message_size {
            config.max_message_size = size.into();
        }
        if let Some(count) = settings.max_fragments {
            config.max_fragments = count.into();
        }
        let secs = |secs: Option<u8>| secs.map(|secs| Duration::from_secs(secs.into()));
        config.keepalive_interval = secs(settings.keepalive_interval_secs);
        config.keepalive_timeout = secs(settings.keepalive_timeout_secs);
        config.close_timeout = secs(settings.close_timeout_secs);
        if let Some(size) = settings.max_buffered {
            config.max_buffered = size.into();
        }
        config.message_timeout = message_timeout;
        let conn = match role {
            Role::Server => Connection::server(config.clone()),
            Role::Client => Connection::client(config.clone(), Rng::from_seed(settings.seed)),
        };
        assert_eq!(conn.role(), role);
        Self {
            conn,
            role,
            config,
            wire: WireChecker::new(role),
            sent: Vec::new(),
            frames_seen: 0,
            sent_found: 0,
            sending_fragmented: None,
            close_started: false,
            events_over: false,
            failed: false,
            closed: false,
            eof: false,
            chunked: None,
            now: Instant::now(),
            model: message_timeout.map(MessageModel::new),
            timed_out: false,
            pending: Vec::new(),
        }
    }

    fn peer(&self) -> Role {
        match self.role {
            Role::Server => Role::Client,
            Role::Client => Role::Server,
        }
    }

    fn step(&mut self, op: &Op) {
        if matches!(op, Op::Receive(_) | Op::ReceiveInto { .. } | Op::ReceiveEof)
            && !self.pending.is_empty()
        {
            let read = std::mem::take(&mut self.pending);
            self.receive(&read);
        }
        match op {
            Op::Receive(data) => self.receive(data),
            Op::ReceiveInto { data, room } => {
                let mut rest = &data[..];
                let room = usize::from(*room);
                while !rest.is_empty() {
                    let before = rest;
                    self.conn.receive_with(room, |buf| {
                        let spare = buf.capacity() - buf.len();
                        let take = spare.min(rest.len()).max(1);
                        buf.extend_from_slice(&rest[..take]);
                        rest = &rest[take..];
                    });
                    if let Some(model) = &mut self.model {
                        model.read(&before[..before.len() - rest.len()]);
                    }
                }
            }
            Op::ReceiveFrame(frame) if self.model.is_some() => {
                // The peer's frames as one stream, cut anywhere: a read may end one message
                // and begin the next, as a busy peer's reads do.
                self.pending.extend_from_slice(&frame.encode(self.peer()));
                let cut = usize::from(frame.cut) % (self.pending.len() + 1);
                let read: Vec<u8> = self.pending.drain(..cut).collect();
                self.receive(&read);
            }
            Op::ReceiveFrame(frame) => {
                let wire = frame.encode(self.peer());
                let (head, tail) = wire.split_at(usize::from(frame.cut) % (wire.len() + 1));
                self.receive(head);
                self.receive(tail);
            }
            Op::ReceiveEof => {
                self.eof = true;
                self.conn.receive_eof();
            }
            Op::Send {
                text,
                data,
                borrowed,
            } => {
                let (message, frame) = if *text {
                    let text = String::from_utf8_lossy(data).into_owned();
                    let frame = WireFrame {
                        fin: true,
                        opcode: 0x1,
                        payload: text.clone().into(),
                    };
                    (Message::text(text), frame)
                } else {
                    let frame = WireFrame {
                        fin: true,
                        opcode: 0x2,
                        payload: data.clone(),
                    };
                    (Message::binary(data.clone()), frame)
                };
                let expected = match self.sending_fragmented {
                    Some(_) => self.can_send().and(Err(SendError::FragmentedMessageOpen)),
                    None => self.can_send(),
                };
                let result = match (&message, borrowed) {
                    (Message::Text(text), true) => self.conn.send_text(text),
                    (Message::Binary(data), true) => self.conn.send_binary(data),
                    (_, false) => self.conn.send(message),
                };
                assert_eq!(result, expected, "send");
                if result.is_ok() {
                    self.sent.push(frame);
                }
            }
            Op::SendFragment { text, data, last } => {
                let kind = if *text {
                    MessageKind::Text
                } else {
                    MessageKind::Binary
                };
                let expected = self
                    .can_send()
                    .and_then(|()| match self.sending_fragmented {
                        Some(open) if open != kind => Err(SendError::FragmentKindMismatch),
                        _ => Ok(()),
                    });
                let result = self.conn.send_fragment(kind, data.clone(), *last);
                assert_eq!(result, expected, "send_fragment");
                if result.is_ok() {
                    let opcode = match (self.sending_fragmented, kind) {
                        (Some(_), _) => 0x0,
                        (None, MessageKind::Text) => 0x1,
                        (None, _) => 0x2,
                    };
                    self.sent.push(WireFrame {
                        fin: *last,
                        opcode,
                        payload: data.clone(),
                    });
                    self.sending_fragmented = (!last).then_some(kind);
                }
            }
            Op::Ping(data) => {
                let expected = self.control_allowed(data.len());
                assert_eq!(self.conn.ping(data.clone()), expected, "ping");
            }
            Op::Pong(data) => {
                let expected = self.control_allowed(data.len());
                assert_eq!(self.conn.pong(data.clone()), expected, "pong");
            }
            Op::Close(frame) => self.close(frame.as_ref()),
            Op::Advance(steps) => {
                self.now += Duration::from_millis(u64::from(*steps) * 16);
                if self
                    .conn
                    .poll_timeout(self.now)
                    .is_some_and(|due| due <= self.now)
                {
                    self.handle_timeout();
                }
            }
            Op::NextTimeout => {
                if let Some(due) = self.conn.poll_timeout(self.now) {
                    self.now = self.now.max(due);
                    self.handle_timeout();
                }
            }
            Op::PollEvents(count) => {
                for _ in 0..*count {
                    if !self.poll_event() {
                        break;
                    }
                }
            }
            Op::PollTransmits(count) => {
                for _ in 0..*count {
                    if !self.poll_transmit() {
                        break;
                    }
                }
            }
            Op::WriteSome {
                count,
                limit,
                vectored,
            } => {
                for _ in 0..*count {
                    if !self.write_some(usize::from(*limit).max(1), *vectored) {
                        break;
                    }
                }
            }
        }
        if self.events_over {
            assert!(!self.conn.is_open(), "open after the last event");
        }
    }

    /// One read from the peer, through `receive`.
    fn receive(&mut self, data: &[u8]) {
        self.conn.receive(data);
        if let Some(model) = &mut self.model {
            model.read(data);
        }
    }

    /// Runs the timers at `now`; with a message timeout, checks what they did against the
    /// model's prediction.
    fn handle_timeout(&mut self) {
        let Some(mut model) = self.model.take() else {
            self.conn.handle_timeout(self.now);
            return;
        };
        // An application polls its events before it runs its timers: a failure or the peer's
        // close among them stops reading, and with it the message timeout.
        while self.poll_event() {}
        let open = self.conn.is_open() && !self.events_over;
        if open {
            model.anchor(self.now);
        }
        self.conn.handle_timeout(self.now);
        if open {
            let due = model.is_due(self.now);
            if due {
                assert!(
                    !self.conn.is_open(),
                    "message timeout due (limit {:?}), connection still open",
                    model.limit
                );
            } else if self.config.keepalive_interval.is_none() {
                assert!(
                    self.conn.is_open(),
                    "connection ended before the message timeout was due: {:?} at {:?}",
                    model.timer,
                    self.now
                );
            }
            if !self.conn.is_open() {
                // Only the message timeout and keepalive end an open connection here; the
                // first is the one that sends a close frame before a failure could.
                self.timed_out |= due;
            }
        }
        self.model = Some(model);
    }

    /// Drains everything, as a driver does before dropping the connection, and checks the end
    /// state.
    fn finish(&mut self) {
        loop {
            let mut progress = false;
            while self.poll_event() {
                progress = true;
            }
            while self.poll_transmit() {
                progress = true;
            }
            if !progress {
                break;
            }
        }
        assert_eq!(
            self.conn.buffered_amount(),
            0,
            "bytes buffered after a full drain"
        );
        assert_eq!(
            self.sent_found,
            self.sent.len(),
            "sent data frames missing from the wire"
        );
        if self.close_started {
            assert!(
                self.wire.close_sent(),
                "close() succeeded but no close frame went out"
            );
        }
        if self.failed {
            assert!(
                self.wire.is_shut_down(),
                "failed connection never shut down"
            );
        }
        if self.closed {
            assert!(self.wire.close_sent(), "peer's close never answered");
            // The server closes the TCP connection first; the client waits for the server's.
            if self.role == Role::Server || self.eof {
                assert!(
                    self.wire.is_shut_down(),
                    "closed connection never shut down"
                );
            }
        }
        if self.timed_out {
            let close = self
                .wire
                .frames()
                .iter()
                .find(|frame| frame.opcode == 0x8)
                .expect("the message timeout sent no close frame");
            assert_eq!(
                close.payload, b"\x03\xf0message timeout",
                "the message timeout's close frame"
            );
        }
        if self.wire.is_shut_down() && self.events_over {
            assert!(
                self.conn.is_terminated(),
                "closed, drained and shut down, not terminated"
            );
        }
    }

    /// The result `send` and `send_fragment` must give before their own checks.
    fn can_send(&self) -> Result<(), SendError> {
        if !self.conn.is_open() {
            return Err(SendError::Closed);
        }
        let buffered = self.conn.buffered_amount();
        if buffered > self.config.max_buffered {
            return Err(SendError::BufferFull {
                buffered,
                limit: self.config.max_buffered,
            });
        }
        Ok(())
    }

    fn control_allowed(&self, len: usize) -> Result<(), SendError> {
        if !self.conn.is_open() {
            Err(SendError::Closed)
        } else if len > 125 {
            Err(SendError::ControlPayloadTooLong(len))
        } else {
            Ok(())
        }
    }

    fn close(&mut self, frame: Option<&(u16, String)>) {
        let frame = frame.map(|(code, reason)| CloseFrame::new(CloseCode(*code), reason.as_str()));
        let expected = match &frame {
            _ if !self.conn.is_open() => Err(SendError::Closed),
            Some(frame) if !frame.code.is_sendable() => {
                Err(SendError::InvalidCloseCode(frame.code.0))
            }
            Some(frame) if frame.reason.len() > 123 => {
                Err(SendError::ControlPayloadTooLong(frame.reason.len() + 2))
            }
            _ => Ok(()),
        };
        let result = self.conn.close(frame);
        assert_eq!(result, expected, "close");
        if result.is_ok() {
            self.close_started = true;
            assert!(!self.conn.is_open(), "open after close()");
        }
    }

    /// Polls one event and checks it; false when there was none.
    fn poll_event(&mut self) -> bool {
        let Some(event) = self.conn.poll_event() else {
            return false;
        };
        assert!(!self.events_over, "event after the last one: {event:?}");
        match event {
            Ok(Event::Message(message)) => {
                assert!(!self.config.streaming, "whole message in streaming mode");
                assert!(
                    message.len() <= self.config.max_message_size,
                    "message over the limit"
                );
            }
            Ok(Event::MessageChunk { kind, data, last }) => {
                assert!(
                    self.config.streaming,
                    "message chunk outside streaming mode"
                );
                let (open_kind, bytes) = self.chunked.get_or_insert_with(|| (kind, Vec::new()));
                assert_eq!(*open_kind, kind, "chunk kind changed inside a message");
                bytes.extend_from_slice(&data);
                assert!(
                    bytes.len() <= self.config.max_message_size,
                    "message over the limit"
                );
                if last {
                    if kind == MessageKind::Text {
                        assert!(
                            std::str::from_utf8(bytes).is_ok(),
                            "streamed text not UTF-8"
                        );
                    }
                    self.chunked = None;
                }
            }
            Ok(Event::Ping(data) | Event::Pong(data)) => {
                assert!(data.len() <= 125, "control payload over 125 bytes");
            }
            Ok(Event::Closed(frame)) => {
                if let Some(frame) = frame {
                    assert!(frame.code.is_sendable(), "peer's close code {}", frame.code);
                    assert!(frame.reason.len() <= 123, "close reason over 123 bytes");
                }
                self.events_over = true;
                self.closed = true;
            }
            Ok(other) => panic!("undocumented event {other:?}"),
            Err(error) => {
                self.check_error(&error);
                self.events_over = true;
                self.failed = true;
            }
        }
        true
    }

    /// Panics unless `error` is one that can happen to this role and configuration.
    fn check_error(&self, error: &ProtocolError) {
        let config = &self.config;
        let possible = match error {
            ProtocolError::UnmaskedClientFrame => self.role == Role::Server,
            ProtocolError::MaskedServerFrame => self.role == Role::Client,
            ProtocolError::FrameTooBig { size, limit } => {
                *limit == config.max_frame_size && *size > *limit as u64
            }
            ProtocolError::MessageTooBig { size, limit } => {
                *limit == config.max_message_size && *size > *limit as u64
            }
            ProtocolError::TooManyFragments { limit } => *limit == config.max_fragments,
            ProtocolError::UnexpectedEof => self.eof,
            ProtocolError::KeepaliveTimeout => config.keepalive_interval.is_some(),
            ProtocolError::CloseTimeout => config.close_timeout.is_some(),
            ProtocolError::ReservedOpCode(opcode) => {
                matches!(opcode, 0x3..=0x7 | 0xB..=0xF)
            }
            ProtocolError::ReservedBits
            | ProtocolError::FragmentedControlFrame
            | ProtocolError::ControlFrameTooLong
            | ProtocolError::NonMinimalLength
            | ProtocolError::LengthMsbSet
            | ProtocolError::UnexpectedContinuation
            | ProtocolError::ExpectedContinuation
            | ProtocolError::InvalidUtf8
            | ProtocolError::CloseFrameTooShort
            | ProtocolError::InvalidCloseReason => true,
            ProtocolError::InvalidCloseCode(code) => !CloseCode(*code).is_sendable(),
            other => panic!("undocumented error {other:?}"),
        };
        assert!(
            possible,
            "impossible error {error:?} for a {:?} with {config:?}",
            self.role
        );
    }

    /// Writes once through the borrowed transmit API and checks the bytes; false when there
    /// was nothing to write.
    fn write_some(&mut self, limit: usize, vectored: bool) -> bool {
        let mut written = Vec::new();
        if vectored {
            let mut slices = [std::io::IoSlice::new(&[]); 4];
            let filled = self.conn.transmit_slices(&mut slices);
            for slice in &slices[..filled] {
                let take = slice.len().min(limit - written.len());
                written.extend_from_slice(&slice[..take]);
            }
        } else {
            let chunk = self.conn.transmit_chunk();
            written.extend_from_slice(&chunk[..chunk.len().min(limit)]);
        }
        if written.is_empty() {
            return false;
        }
        let before = self.conn.buffered_amount();
        self.conn.advance_transmit(written.len());
        assert_eq!(self.conn.buffered_amount(), before - written.len());
        self.wire.data(&written);
        self.match_sent_frames();
        true
    }

    /// Polls one transmit and checks it; false when there was none.
    fn poll_transmit(&mut self) -> bool {
        match self.conn.poll_transmit() {
            Some(Transmit::Data(bytes)) => {
                self.wire.data(&bytes);
                self.match_sent_frames();
                true
            }
            Some(Transmit::Shutdown) => {
                self.wire.shutdown();
                true
            }
            None => {
                assert_eq!(
                    self.conn.buffered_amount(),
                    0,
                    "nothing to transmit, bytes buffered"
                );
                false
            }
        }
    }

    /// Checks the data frames that just appeared on the wire against the messages sent.
    fn match_sent_frames(&mut self) {
        for frame in &self.wire.frames()[self.frames_seen..] {
            if frame.opcode & 0x8 != 0 {
                continue;
            }
            let expected = self.sent.get(self.sent_found);
            assert_eq!(
                Some(frame),
                expected,
                "data frame on the wire is not the one sent"
            );
            self.sent_found += 1;
        }
        self.frames_seen = self.wire.frames().len();
    }
}

/// The message timer as `Config::message_timeout` documents it, from an independent reading of
/// the peer's bytes (RFC 6455 §5.2 frame headers and lengths; nothing else is checked: bytes
/// the connection refuses stop it reading, and then the model no longer matters).
///
/// A message runs from the first byte of its first frame header to the last byte of its final
/// frame, a control frame outside a fragmented message being a message of its own. The timer
/// runs while a message is incomplete; one that begins in a read is timed from the first
/// `handle_timeout` after that read, even when the read also completed the message before it.
struct MessageModel {
    limit: Duration,
    /// The frame header so far, before it is complete.
    header: Vec<u8>,
    /// Payload bytes still to come in the current frame, once its header is complete.
    payload_left: u64,
    /// Whether the current frame (header complete) is a control frame, and final.
    frame: Option<(bool, bool)>,
    /// A data message has had a non-final frame and awaits its final one.
    fragmented: bool,
    /// Which read began the incomplete message, if there is one.
    begun: Option<u64>,
    reads: u64,
    timer: ModelTimer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ModelTimer {
    Off,
    /// Started for the message that read began, to be anchored by the next `handle_timeout`.
    Starting(u64),
    /// Due at this instant, for the message that read began.
    At(u64, Instant),
}

impl MessageModel {
    fn new(limit: Duration) -> Self {
        Self {
            limit,
            header: Vec::new(),
            payload_left: 0,
            frame: None,
            fragmented: false,
            begun: None,
            reads: 0,
            timer: ModelTimer::Off,
        }
    }

    /// The peer's bytes from one read.
    fn read(&mut self, mut data: &[u8]) {
        if data.is_empty() {
            return;
        }
        self.reads += 1;
        while let Some((&byte, rest)) = data.split_first() {
            if self.frame.is_some() {
                let take = usize::try_from(self.payload_left)
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                self.payload_left -= take as u64;
                data = &data[take..];
                if self.payload_left == 0 {
                    self.end_frame();
                }
                continue;
            }
            if self.header.is_empty() && self.begun.is_none() {
                self.begun = Some(self.reads);
            }
            self.header.push(byte);
            data = rest;
            self.try_header();
        }
        self.timer = match (self.begun, self.timer) {
            (None, _) => ModelTimer::Off,
            (Some(read), ModelTimer::Starting(timed) | ModelTimer::At(timed, _))
                if read == timed =>
            {
                self.timer
            }
            (Some(read), _) => ModelTimer::Starting(read),
        };
    }

    /// Completes the header when its last byte has arrived.
    fn try_header(&mut self) {
        let header = &self.header;
        if header.len() < 2 {
            return;
        }
        let masked = header[1] & 0x80 != 0;
        let extended = match header[1] & 0x7F {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let full = 2 + extended + if masked { 4 } else { 0 };
        if header.len() < full {
            return;
        }
        let length = match extended {
            0 => u64::from(header[1] & 0x7F),
            _ => header[2..2 + extended]
                .iter()
                .fold(0, |length, &byte| length << 8 | u64::from(byte)),
        };
        let fin = header[0] & 0x80 != 0;
        let control = header[0] & 0x08 != 0;
        self.header.clear();
        self.frame = Some((control, fin));
        self.payload_left = length;
        if length == 0 {
            self.end_frame();
        }
    }

    fn end_frame(&mut self) {
        let Some((control, fin)) = self.frame.take() else {
            return;
        };
        if control {
            if !self.fragmented {
                self.begun = None;
            }
        } else if fin {
            self.fragmented = false;
            self.begun = None;
        } else {
            self.fragmented = true;
        }
    }

    /// `handle_timeout` runs at `now` on an open connection.
    fn anchor(&mut self, now: Instant) {
        if let ModelTimer::Starting(read) = self.timer {
            self.timer = ModelTimer::At(read, now + self.limit);
        }
    }

    /// Whether the timeout is due at `now`; it fires once.
    fn is_due(&mut self, now: Instant) -> bool {
        let due = matches!(self.timer, ModelTimer::At(_, deadline) if deadline <= now);
        if due {
            self.timer = ModelTimer::Off;
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_secs(1);

    #[test]
    fn the_model_restarts_only_for_a_message_begun_in_the_read() {
        let mut model = MessageModel::new(LIMIT);
        let start = Instant::now();
        // A masked binary frame of 2 bytes, then the first byte of the next frame.
        let frame = [0x82, 0x82, 1, 2, 3, 4, 5, 6];
        model.read(&frame[..4]);
        assert_eq!(model.timer, ModelTimer::Starting(1));
        model.anchor(start);
        let mut read = frame[4..].to_vec();
        read.push(0x82);
        model.read(&read);
        assert_eq!(model.timer, ModelTimer::Starting(2), "a new message began");
        model.anchor(start + LIMIT);
        assert!(!model.is_due(start + LIMIT));
        model.read(&frame[1..]);
        assert_eq!(model.timer, ModelTimer::Off, "the message arrived");
    }

    #[test]
    fn the_model_times_a_fragmented_message_across_its_control_frames() {
        let mut model = MessageModel::new(LIMIT);
        let start = Instant::now();
        // "a" without FIN, an empty ping, then the continuation's first byte (all unmasked).
        model.read(&[0x01, 0x01, b'a']);
        model.anchor(start);
        model.read(&[0x89, 0x00, 0x80]);
        assert_eq!(
            model.timer,
            ModelTimer::At(1, start + LIMIT),
            "the ping is inside the message"
        );
        assert!(model.is_due(start + LIMIT));
        assert_eq!(model.timer, ModelTimer::Off, "it fires once");
        // An empty ping on its own is a whole message: nothing runs.
        let mut model = MessageModel::new(LIMIT);
        model.read(&[0x89, 0x80, 0, 0, 0, 0]);
        assert_eq!(model.timer, ModelTimer::Off);
    }
}
