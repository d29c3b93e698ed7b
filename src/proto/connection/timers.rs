//! The timers: keepalive pings and the dead-peer check, the close timeout and the message
//! timeout. The core has no clock: deadlines are set from the instants the driver passes to
//! `handle_timeout`.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{Connection, State};
use crate::proto::close::{CloseCode, CloseFrame};
use crate::proto::error::ProtocolError;
use crate::proto::frame::OpCode;

/// One timer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) enum Timer {
    /// Not running.
    #[default]
    Off,
    /// Started by a call that had no clock (`receive`, `close`, creating the connection): runs
    /// for this long from the instant of the next `handle_timeout`, which `poll_timeout`
    /// asks for at once.
    Starting(Duration),
    /// Due at this instant.
    At(Instant),
}

impl Timer {
    /// A timer started for `duration`, or off when there is none.
    pub(super) fn start(duration: Option<Duration>) -> Self {
        duration.map_or(Self::Off, Self::Starting)
    }

    /// When the driver must call `handle_timeout` for this timer: its deadline, or `now` if it
    /// still needs one.
    fn deadline(self, now: Instant) -> Option<Instant> {
        match self {
            Self::Off => None,
            Self::Starting(_) => Some(now),
            Self::At(deadline) => Some(deadline),
        }
    }

    /// Sets the deadline of a timer started since the last `handle_timeout`.
    fn anchor(&mut self, now: Instant) {
        if let Self::Starting(duration) = *self {
            *self = Self::At(now + duration);
        }
    }

    /// Whether the timer is due at `now`.
    fn is_due(self, now: Instant) -> bool {
        matches!(self, Self::At(deadline) if deadline <= now)
    }
}

/// The state of the timers.
///
/// Invariants: `keepalive` runs (is not `Off`) while the connection is open and a keepalive
/// interval is configured; `message` runs only while the connection is open and part of a
/// message or frame has arrived; `close` runs from our close frame (or, on a client, from the
/// peer's) until the transport is over.
#[derive(Debug, Default)]
pub(super) struct Timers {
    pub(super) keepalive: Timer,
    /// A keepalive ping is out and nothing has arrived since.
    pub(super) awaiting_pong: bool,
    /// Something arrived since the last keepalive deadline.
    pub(super) traffic_seen: bool,
    pub(super) close: Timer,
    pub(super) message: Timer,
    /// A message or a control frame outside a message completed since the message timer was
    /// last tracked: what is arriving now began after it and gets a limit of its own.
    pub(super) message_ended: bool,
}

/// The reason sent with the close frame when the message timeout expires.
const MESSAGE_TIMEOUT_REASON: &str = "message timeout";

impl Connection {
    /// Returns the instant at which [`handle_timeout`](Self::handle_timeout) must next be
    /// called, or `None` when no timer runs. Changes nothing.
    ///
    /// The core has no clock: a timer started by a call without an instant (creating the
    /// connection, `receive`, `close`) gets its deadline from the next `handle_timeout`, and
    /// until then this returns `now`, so a driver that sleeps until the instant returned
    /// calls `handle_timeout` at once. Call it after every call that may start or stop a
    /// timer: `receive*`, `send*`, `close`, `poll_event` and `handle_timeout`.
    pub fn poll_timeout(&self, now: Instant) -> Option<Instant> {
        let keepalive = match self.state {
            State::Open => self.timers.keepalive.deadline(now),
            // A ping sent before our close still waits for its answer.
            State::CloseSent => match self.timers.keepalive {
                Timer::At(deadline) => Some(deadline),
                Timer::Off | Timer::Starting(_) => None,
            },
            State::Closed => None,
        };
        let close = if self.is_terminated() {
            None
        } else {
            self.timers.close.deadline(now)
        };
        let message = if self.state == State::Open && !self.reading_stopped {
            self.timers.message.deadline(now)
        } else {
            None
        };
        [keepalive, close, message].into_iter().flatten().min()
    }

    /// Runs the timers due at `now`: keepalive pings, the dead-peer check, the close timeout
    /// and the message timeout; gives timers started since the last call their deadlines,
    /// counted from `now`.
    ///
    /// Call when the instant [`poll_timeout`](Self::poll_timeout) returned has passed, then
    /// `poll_event` and `poll_transmit`: a timeout may queue a ping, a close frame, a failure
    /// or a shutdown. Calling it early, or more often, does no harm.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == State::Open {
            self.timers.keepalive.anchor(now);
            self.timers.message.anchor(now);
        }
        self.timers.close.anchor(now);
        if self.reading_stopped && self.state != State::Closed {
            // A failure or close is waiting in the event queue; it decides what happens next.
            return;
        }
        if self.timers.close.is_due(now) {
            self.timers.close = Timer::Off;
            match self.state {
                State::CloseSent => self.fail(ProtocolError::CloseTimeout),
                State::Closed | State::Open => self.queue_shutdown(),
            }
        }
        if self.state == State::Open && !self.reading_stopped && self.timers.message.is_due(now) {
            self.expire_message(now);
        }
        // The close timeout above may just have failed the connection: one failure is enough.
        if self.timers.keepalive.is_due(now) && !self.reading_stopped {
            self.run_keepalive(now);
        }
    }

    /// Starts or stops the message timeout after bytes were received: it runs while part of
    /// a message (or of a frame) has arrived and the rest has not.
    #[inline(always)]
    pub(super) fn track_message_timer(&mut self) {
        if self.config.message_timeout.is_some() {
            self.track_message_timer_slow();
        }
    }

    #[inline(never)]
    fn track_message_timer_slow(&mut self) {
        let arriving = self.state == State::Open
            && !self.reading_stopped
            && (self.incoming.is_some()
                || !self.read_buf.is_empty()
                || self.decoder.current_header().is_some());
        let ended = std::mem::take(&mut self.timers.message_ended);
        match (arriving, self.timers.message) {
            (true, Timer::Off) => self.timers.message = Timer::start(self.config.message_timeout),
            // One read ended a message and began the next: its time starts now.
            (true, _) if ended => self.timers.message = Timer::start(self.config.message_timeout),
            (true, _) => {}
            (false, _) => self.timers.message = Timer::Off,
        }
    }

    /// The message timeout expired: starts the closing handshake with 1008 (policy
    /// violation); the close timeout then bounds how long the peer has to answer.
    fn expire_message(&mut self, now: Instant) {
        self.timers.message = Timer::Off;
        let frame = CloseFrame::new(CloseCode::POLICY_VIOLATION, MESSAGE_TIMEOUT_REASON);
        self.out.queue_close(frame.encode());
        self.state = State::CloseSent;
        self.timers.close = Timer::start(self.config.close_timeout);
        self.timers.close.anchor(now);
    }

    fn run_keepalive(&mut self, now: Instant) {
        self.timers.keepalive = Timer::Off;
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
            self.timers.keepalive = Timer::At(now + interval);
            return;
        }
        self.out.queue_frame(true, OpCode::Ping, Bytes::new());
        self.timers.awaiting_pong = self.config.keepalive_timeout.is_some();
        let wait = self.config.keepalive_timeout.unwrap_or(interval);
        self.timers.keepalive = Timer::At(now + wait);
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use crate::proto::{
        CloseCode, CloseFrame, Config, Connection, Event, Frame, FrameDecoder, OpCode,
        ProtocolError, Role, Transmit,
    };
    use bytes::BytesMut;

    const LIMIT: Duration = Duration::from_secs(1);
    const CLOSE: Duration = Duration::from_secs(3);

    /// A server with only the message timeout (and the close timeout) running.
    fn server() -> Connection {
        Connection::server(Config {
            keepalive_interval: None,
            close_timeout: Some(CLOSE),
            message_timeout: Some(LIMIT),
            ..Config::default()
        })
    }

    /// A masked client frame.
    fn frame(fin: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
        let mut wire = BytesMut::new();
        Frame {
            fin,
            rsv1: false,
            opcode,
            payload: payload.to_vec().into(),
        }
        .encode(Some([1, 2, 3, 4]), &mut wire);
        wire.to_vec()
    }

    /// The frames the connection wrote, decoded, and whether it shut the transport.
    fn sent(conn: &mut Connection) -> (Vec<Frame>, bool) {
        let mut wire = BytesMut::new();
        let mut shutdown = false;
        while let Some(transmit) = conn.poll_transmit() {
            match transmit {
                Transmit::Data(data) => wire.extend_from_slice(&data),
                Transmit::Shutdown => shutdown = true,
            }
        }
        let mut decoder = FrameDecoder::new(
            Role::Client,
            crate::proto::DecoderLimits {
                max_frame_size: 1 << 20,
                allow_rsv1: false,
            },
        );
        let mut frames = Vec::new();
        while let Some(frame) = decoder.decode(&mut wire).unwrap() {
            frames.push(frame);
        }
        (frames, shutdown)
    }

    /// Feeds `bytes` at `now` the way a driver does: receive, then run the timers.
    fn feed(conn: &mut Connection, bytes: &[u8], now: Instant) {
        conn.receive(bytes);
        if conn.poll_timeout(now).is_some_and(|due| due <= now) {
            conn.handle_timeout(now);
        }
    }

    #[test]
    fn off_by_default() {
        assert_eq!(Config::default().message_timeout, None);
        let mut conn = Connection::server(Config {
            keepalive_interval: None,
            ..Config::default()
        });
        conn.receive(&frame(true, OpCode::Binary, b"abc")[..3]);
        assert_eq!(conn.poll_timeout(Instant::now()), None);
    }

    #[test]
    fn whole_messages_start_no_timer() {
        let mut conn = server();
        let start = Instant::now();
        feed(&mut conn, &frame(true, OpCode::Text, b"hello"), start);
        assert_eq!(conn.poll_timeout(start), None);
        assert!(matches!(conn.poll_event(), Some(Ok(Event::Message(_)))));
    }

    #[test]
    fn a_trickled_frame_is_closed_with_1008() {
        let mut conn = server();
        let start = Instant::now();
        let wire = frame(true, OpCode::Binary, &[7; 20]);
        feed(&mut conn, &wire[..1], start);
        assert_eq!(conn.poll_timeout(start), Some(start + LIMIT));
        // A byte every 100 ms: never idle, never finished.
        for (i, byte) in wire[1..10].iter().enumerate() {
            let now = start + Duration::from_millis(100 * (i as u64 + 1));
            feed(&mut conn, &[*byte], now);
            assert_eq!(conn.poll_timeout(now), Some(start + LIMIT), "not restarted");
        }
        assert_eq!(sent(&mut conn), (vec![], false));
        conn.handle_timeout(start + LIMIT);
        let (frames, shutdown) = sent(&mut conn);
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].opcode, OpCode::Close);
        assert_eq!(&frames[0].payload[..], b"\x03\xf0message timeout");
        assert!(!shutdown, "the peer may still answer");
        assert!(!conn.is_open());
        assert_eq!(
            conn.poll_timeout(start + LIMIT),
            Some(start + LIMIT + CLOSE)
        );
        // The peer finishes its frame and answers the close.
        conn.receive(&wire[10..]);
        conn.receive(&frame(true, OpCode::Close, b"\x03\xf0"));
        assert!(matches!(conn.poll_event(), Some(Ok(Event::Message(_)))));
        let expected = CloseFrame::new(CloseCode::POLICY_VIOLATION, "");
        assert_eq!(conn.poll_event(), Some(Ok(Event::Closed(Some(expected)))));
        let (frames, shutdown) = sent(&mut conn);
        assert!(
            frames.is_empty() && shutdown,
            "no second close; the server shuts down"
        );
    }

    #[test]
    fn an_unanswered_close_after_the_timeout_shuts_the_transport() {
        let mut conn = server();
        let start = Instant::now();
        feed(
            &mut conn,
            &frame(true, OpCode::Binary, &[7; 20])[..5],
            start,
        );
        conn.handle_timeout(start + LIMIT);
        sent(&mut conn);
        conn.handle_timeout(start + LIMIT + CLOSE);
        assert_eq!(conn.poll_event(), Some(Err(ProtocolError::CloseTimeout)));
        assert_eq!(sent(&mut conn), (vec![], true));
        assert!(conn.is_terminated());
    }

    #[test]
    fn the_timer_spans_the_fragments_of_one_message() {
        let mut conn = server();
        let start = Instant::now();
        feed(&mut conn, &frame(false, OpCode::Text, b"he"), start);
        let later = start + Duration::from_millis(800);
        feed(&mut conn, &frame(false, OpCode::Continuation, b"ll"), later);
        assert_eq!(conn.poll_timeout(later), Some(start + LIMIT));
        conn.handle_timeout(start + LIMIT);
        assert!(!conn.is_open(), "closed: the message took too long");
    }

    #[test]
    fn a_message_that_completes_in_time_stops_the_timer_and_the_next_starts_afresh() {
        let mut conn = server();
        let start = Instant::now();
        let wire = frame(true, OpCode::Binary, &[7; 20]);
        feed(&mut conn, &wire[..4], start);
        let done = start + Duration::from_millis(900);
        feed(&mut conn, &wire[4..], done);
        assert_eq!(conn.poll_timeout(done), None);
        feed(&mut conn, &wire[..4], done);
        assert_eq!(conn.poll_timeout(done), Some(done + LIMIT));
        conn.handle_timeout(start + LIMIT);
        assert!(
            conn.is_open(),
            "the first message's deadline no longer counts"
        );
    }

    #[test]
    fn a_message_begun_in_the_read_that_ends_another_gets_its_own_limit() {
        // Found by the `message_timeout` fuzz target: a busy peer's reads end inside frames,
        // and each message must not inherit the deadline of the one before it.
        let mut conn = server();
        let start = Instant::now();
        let wire = frame(true, OpCode::Binary, b"ab");
        feed(&mut conn, &wire[..4], start);
        let mut read = wire[4..].to_vec();
        read.extend_from_slice(&wire[..3]);
        let next = start + Duration::from_millis(900);
        feed(&mut conn, &read, next);
        assert!(matches!(conn.poll_event(), Some(Ok(Event::Message(_)))));
        assert_eq!(conn.poll_timeout(next), Some(next + LIMIT));
        conn.handle_timeout(start + LIMIT);
        assert!(
            conn.is_open(),
            "the first message's deadline no longer counts"
        );
        assert_eq!(sent(&mut conn), (vec![], false));
        conn.handle_timeout(next + LIMIT);
        assert!(!conn.is_open(), "the second message took too long");
    }

    #[test]
    fn a_control_frame_inside_a_fragmented_message_does_not_restart_it() {
        let mut conn = server();
        let start = Instant::now();
        feed(&mut conn, &frame(false, OpCode::Text, b"he"), start);
        let mut read = frame(true, OpCode::Ping, b"");
        read.extend_from_slice(&frame(true, OpCode::Continuation, b"llo")[..3]);
        let later = start + Duration::from_millis(900);
        feed(&mut conn, &read, later);
        assert!(matches!(conn.poll_event(), Some(Ok(Event::Ping(_)))));
        assert_eq!(conn.poll_timeout(later), Some(start + LIMIT));
        conn.handle_timeout(start + LIMIT);
        assert!(!conn.is_open(), "the message took too long");
    }

    #[test]
    fn reads_into_the_connection_start_it_too() {
        use bytes::BufMut;
        let mut conn = server();
        let start = Instant::now();
        let wire = frame(true, OpCode::Binary, &[7; 20]);
        conn.receive_with(64, |buf| buf.put_slice(&wire[..3]));
        conn.handle_timeout(start);
        assert_eq!(conn.poll_timeout(start), Some(start + LIMIT));
        conn.receive_with(64, |buf| buf.put_slice(&wire[3..]));
        assert_eq!(conn.poll_timeout(start), None, "the message arrived");
    }

    #[test]
    fn a_trickled_control_frame_counts_too() {
        let mut conn = server();
        let start = Instant::now();
        feed(
            &mut conn,
            &frame(true, OpCode::Ping, b"are you there")[..3],
            start,
        );
        assert_eq!(conn.poll_timeout(start), Some(start + LIMIT));
    }

    #[test]
    fn our_close_stops_the_timer() {
        let mut conn = server();
        let start = Instant::now();
        feed(
            &mut conn,
            &frame(true, OpCode::Binary, &[7; 20])[..5],
            start,
        );
        conn.close(None).unwrap();
        conn.handle_timeout(start);
        assert_eq!(conn.poll_timeout(start), Some(start + CLOSE));
    }
}
