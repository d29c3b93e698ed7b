//! The state one connection owns, driven by non-blocking polls.

use super::*;

/// Everything one connection owns, driven by non-blocking polls only, so that the halves of a
/// split connection can share it behind a plain mutex.
#[derive(Debug)]
pub(super) struct Core<S> {
    pub(super) stream: S,
    pub(super) conn: Connection,
    /// The large read buffer, allocated only while data keeps coming: reads go to a small stack
    /// buffer first, and this one is released as soon as a read finds nothing more, so an idle
    /// connection holds no read buffer at all.
    pub(super) read_buf: Vec<u8>,
    /// The last poll that read anything read more than the small buffer holds: the next one
    /// starts with the large buffer rather than with a small read that would only fill up, a
    /// read more per poll (with 1 000 connections echoing 64 KiB messages 16 at a time: 1.5
    /// reads per message instead of 1.0). Polls that read nothing (woken to write) keep it.
    pub(super) large_reads: bool,
    pub(super) read_chunk: usize,
    /// A read error met after some input was read in the same poll; reported by the next read,
    /// once the events before it have been handed out.
    pub(super) read_error: Option<io::Error>,
    pub(super) read_eof: bool,
    pub(super) phase: Phase,
    pub(super) peer_close: Option<CloseFrame>,
    /// Events taken out of the connection by `poll_close`, which has to take them for the close
    /// or failure to take effect; the read side reports them before newer ones.
    pub(super) held: VecDeque<Result<Event, ProtocolError>>,
    /// A write that failed on the read path, reported once the events before it are read.
    pub(super) write_error: Option<io::Error>,
    pub(super) out: Output,
    /// The core's next deadline (keepalive, close timeout); created on first use.
    pub(super) timer: Option<Pin<Box<Sleep>>>,
    /// Set when the connection is split; until then the stream and the timers are polled with
    /// the caller's own waker, as there is only one task to wake.
    pub(super) split: Option<SplitWakers>,
    /// Whether the current poll changed anything the other side may be waiting for.
    pub(super) progressed: bool,
}

/// How far the read side has got in reporting the end of the connection.
#[derive(Debug)]
pub(super) enum Phase {
    Open,
    /// The peer's close frame arrived: the echo is written (and a client waits for the
    /// server's end of stream) before `Event::Closed` is reported.
    Closing(Option<CloseFrame>),
    /// The connection failed: its close frame is written before the error is reported.
    Failing(ProtocolError),
    /// The end was reported: nothing more is read, written or returned.
    Done,
}

/// The state of the write side; the bytes to write stay queued in the connection until written.
#[derive(Debug)]
pub(super) struct Output {
    /// Small chunks copied together for a stream without vectored writes; empty otherwise.
    pub(super) coalesced: BytesMut,
    pub(super) flush_needed: bool,
    pub(super) shutdown: WriteEnd,
    /// A write failed: the transport takes nothing more.
    pub(super) broken: bool,
    pub(super) timeout: Option<Duration>,
    pub(super) timer: Option<Pin<Box<Sleep>>>,
    pub(super) timer_armed: bool,
    /// A `send` left its bytes queued because the peer's next event had already arrived: the
    /// read that hands out that event leaves them queued too, so the replies to a burst of
    /// messages leave in one write once the burst is answered.
    pub(super) deferred: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum WriteEnd {
    Open,
    Pending,
    Done,
}

/// Which half of the application polls: the reader or the writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    Read,
    Write,
}

impl Side {
    pub(super) fn index(self) -> usize {
        match self {
            Self::Read => 0,
            Self::Write => 1,
        }
    }

    pub(super) fn other(self) -> Self {
        match self {
            Self::Read => Self::Write,
            Self::Write => Self::Read,
        }
    }
}

/// The wakers of a split connection: the tasks of both halves, and the waker that wakes them both.
#[derive(Debug)]
pub(super) struct SplitWakers {
    pub(super) wakers: Arc<Wakers>,
    /// Wakes every task waiting on this connection; given to the stream and the timers.
    pub(super) waker: Waker,
}

impl SplitWakers {
    pub(super) fn new() -> Self {
        let wakers = Arc::new(Wakers::default());
        Self {
            waker: Waker::from(Arc::clone(&wakers)),
            wakers,
        }
    }
}

/// The tasks waiting on one connection, one per side.
///
/// Both sides may poll the same stream and timers, which keep only the last waker they were
/// given; they are given this one instead, which wakes both sides, so neither loses its wakeup
/// to the other.
#[derive(Debug, Default)]
pub(super) struct Wakers {
    pub(super) slots: Mutex<[Option<Waker>; 2]>,
}

impl Wakers {
    pub(super) fn register(&self, side: Side, waker: &Waker) {
        let mut slots = lock(&self.slots);
        let slot = &mut slots[side.index()];
        if !slot
            .as_ref()
            .is_some_and(|current| current.will_wake(waker))
        {
            *slot = Some(waker.clone());
        }
    }

    pub(super) fn wake_side(&self, side: Side) {
        let waker = lock(&self.slots)[side.index()].take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl Wake for Wakers {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let taken = {
            let mut slots = lock(&self.slots);
            [slots[0].take(), slots[1].take()]
        };
        for waker in taken.into_iter().flatten() {
            waker.wake();
        }
    }
}

/// The waker the stream and the timers get: the shared one once split, else the caller's.
fn io_waker<'a>(split: &'a Option<SplitWakers>, cx: &'a Context<'_>) -> &'a Waker {
    split.as_ref().map_or(cx.waker(), |split| &split.waker)
}

impl<S: AsyncRead + AsyncWrite + Unpin> Core<S> {
    pub(super) fn new(stream: S, conn: Connection, options: &Options) -> Self {
        Self {
            stream,
            conn,
            read_buf: Vec::new(),
            large_reads: false,
            read_chunk: options.read_chunk.max(1),
            read_error: None,
            read_eof: false,
            phase: Phase::Open,
            peer_close: None,
            held: VecDeque::new(),
            write_error: None,
            out: Output {
                coalesced: BytesMut::new(),
                flush_needed: false,
                shutdown: WriteEnd::Open,
                broken: false,
                timeout: options.write_timeout,
                timer: None,
                timer_armed: false,
                deferred: false,
            },
            timer: None,
            split: None,
            progressed: false,
        }
    }

    /// Starts a poll on behalf of `side`; pair it with `leave`.
    pub(super) fn enter(&mut self, side: Side, cx: &Context<'_>) {
        if let Some(split) = &self.split {
            split.wakers.register(side, cx.waker());
        }
        self.progressed = false;
    }

    /// Ends a poll: the other side may be waiting for what this one did.
    pub(super) fn leave<T>(&mut self, side: Side, result: T) -> T {
        if let Some(split) = self.split.as_ref().filter(|_| self.progressed) {
            split.wakers.wake_side(side.other());
        }
        result
    }

    /// Switches to shared wakers before the halves of a split go to two tasks.
    pub(super) fn prepare_split(&mut self) {
        self.split.get_or_insert_with(SplitWakers::new);
    }

    pub(super) fn poll_message(
        &mut self,
        side: Side,
        cx: &Context<'_>,
    ) -> Poll<Result<Option<Message>, Error>> {
        self.enter(side, cx);
        let result = loop {
            match self.poll_next_event(cx) {
                Poll::Ready(Some(Ok(Event::Message(message)))) => {
                    break Poll::Ready(Ok(Some(message)));
                }
                Poll::Ready(Some(Ok(Event::Closed(_))) | None) => break Poll::Ready(Ok(None)),
                Poll::Ready(Some(Ok(_))) => {}
                Poll::Ready(Some(Err(error))) => break Poll::Ready(Err(error)),
                Poll::Pending => break Poll::Pending,
            }
        };
        self.leave(side, result)
    }

    pub(super) fn poll_event(
        &mut self,
        side: Side,
        cx: &Context<'_>,
    ) -> Poll<Result<Option<Event>, Error>> {
        self.enter(side, cx);
        let result = self.poll_next_event(cx).map(Option::transpose);
        self.leave(side, result)
    }

    /// Whether more is queued than a new message may wait behind: `poll_ready` writes it out
    /// first, and `send` does not leave it for a later read.
    pub(super) fn over_high_water(&self) -> bool {
        self.conn.buffered_amount() > HIGH_WATER_MARK
    }

    pub(super) fn poll_ready(&mut self, side: Side, cx: &Context<'_>) -> Poll<Result<(), Error>> {
        self.enter(side, cx);
        let result = match self.check_open() {
            Err(error) => Poll::Ready(Err(error)),
            Ok(()) if self.over_high_water() => {
                self.poll_output(cx).map_err(|error| self.fail_write(error))
            }
            Ok(()) => Poll::Ready(Ok(())),
        };
        self.leave(side, result)
    }

    pub(super) fn start_send(&mut self, message: Message) -> Result<(), Error> {
        self.start_send_with(|conn| conn.send(message))
    }

    /// Queues a message through `send` (`Connection::send`, `send_binary`, ...) unless the
    /// connection is over.
    pub(super) fn start_send_with(
        &mut self,
        send: impl FnOnce(&mut Connection) -> Result<(), crate::proto::SendError>,
    ) -> Result<(), Error> {
        self.check_open()?;
        send(&mut self.conn)?;
        Ok(())
    }

    pub(super) fn start_send_prepared(&mut self, message: &PreparedMessage) -> Result<(), Error> {
        self.start_send_with(|conn| conn.send_prepared(message))
    }

    pub(super) fn poll_flush(&mut self, side: Side, cx: &Context<'_>) -> Poll<Result<(), Error>> {
        self.enter(side, cx);
        let result = self.poll_output(cx).map_err(|error| self.fail_write(error));
        self.leave(side, result)
    }

    pub(super) fn start_close(&mut self, frame: Option<CloseFrame>) -> Result<(), Error> {
        self.check_open()?;
        self.conn.close(frame)?;
        // The reader's timer has to learn about the close timeout.
        if let Some(split) = &self.split {
            split.wakers.wake_side(Side::Read);
        }
        Ok(())
    }

    /// Sends a 1000 close frame if none was sent, then writes and reads until the connection
    /// is over. The events read meanwhile are held for the read side.
    pub(super) fn poll_close(&mut self, side: Side, cx: &Context<'_>) -> Poll<Result<(), Error>> {
        self.enter(side, cx);
        if matches!(self.phase, Phase::Open) && self.conn.is_open() {
            if let Err(error) = self
                .conn
                .close(Some(CloseFrame::new(CloseCode::NORMAL, "")))
            {
                return self.leave(side, Poll::Ready(Err(error.into())));
            }
            self.progressed = true;
        }
        let result = loop {
            while let Some(event) = self.conn.poll_event() {
                if let Ok(Event::Closed(frame)) = &event {
                    self.peer_close.clone_from(frame);
                }
                self.held.push_back(event);
                self.progressed = true;
            }
            if let Poll::Ready(Err(error)) = self.poll_output(cx) {
                break Poll::Ready(Err(self.fail_write(error)));
            }
            if self.is_terminated() || matches!(self.phase, Phase::Done) {
                break Poll::Ready(Ok(()));
            }
            if self.poll_timers(cx) {
                continue;
            }
            match self.poll_input(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(error)) => {
                    self.phase = Phase::Done;
                    break Poll::Ready(Err(error.into()));
                }
                Poll::Pending => break Poll::Pending,
            }
        };
        self.leave(side, result)
    }

    pub(super) fn check_open(&self) -> Result<(), Error> {
        match self.phase {
            Phase::Open => Ok(()),
            Phase::Closing(_) | Phase::Failing(_) | Phase::Done => Err(Error::AlreadyClosed),
        }
    }

    /// The driver loop of the read side: write, report, run timers, read.
    pub(super) fn poll_next_event(
        &mut self,
        cx: &Context<'_>,
    ) -> Poll<Option<Result<Event, Error>>> {
        loop {
            let keep_deferred = self.out.deferred
                && matches!(self.phase, Phase::Open)
                && (!self.held.is_empty() || self.conn.has_event());
            // The replies a `send` deferred stay queued while the events of the same burst are
            // handed out; they are written before this read waits for anything.
            let written = !keep_deferred
                && match self.poll_output_if_any(cx) {
                    Poll::Ready(Ok(())) => true,
                    Poll::Ready(Err(error)) => {
                        // Events that arrived before the failure are still reported first.
                        if matches!(self.phase, Phase::Open) && self.write_error.is_none() {
                            self.write_error = Some(error);
                        }
                        true
                    }
                    Poll::Pending => false,
                };
            match &self.phase {
                Phase::Done => return Poll::Ready(None),
                Phase::Failing(_) if !written => return Poll::Pending,
                Phase::Failing(_) => {
                    let Phase::Failing(error) = std::mem::replace(&mut self.phase, Phase::Done)
                    else {
                        unreachable!("matched above");
                    };
                    self.progressed = true;
                    return Poll::Ready(Some(Err(error.into())));
                }
                Phase::Closing(_) if self.is_terminated() => {
                    let Phase::Closing(frame) = std::mem::replace(&mut self.phase, Phase::Done)
                    else {
                        unreachable!("matched above");
                    };
                    self.progressed = true;
                    return Poll::Ready(Some(Ok(Event::Closed(frame))));
                }
                Phase::Closing(_) => {}
                Phase::Open => match self.held.pop_front().or_else(|| self.conn.poll_event()) {
                    Some(Ok(Event::Closed(frame))) => {
                        self.peer_close.clone_from(&frame);
                        self.phase = Phase::Closing(frame);
                        continue;
                    }
                    Some(Ok(event)) => return Poll::Ready(Some(Ok(event))),
                    Some(Err(error)) => {
                        self.phase = Phase::Failing(error);
                        continue;
                    }
                    None => {
                        if let Some(error) = self.write_error.take() {
                            self.phase = Phase::Done;
                            self.progressed = true;
                            return Poll::Ready(Some(Err(error.into())));
                        }
                    }
                },
            }
            if self.poll_timers(cx) {
                continue;
            }
            match self.poll_input(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(error)) => {
                    self.phase = Phase::Done;
                    self.progressed = true;
                    return Poll::Ready(Some(Err(error.into())));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// True once the connection is over and everything, the shutdown included, was written.
    pub(super) fn is_terminated(&self) -> bool {
        self.out.broken
            || (self.conn.is_terminated()
                && !self.out.flush_needed
                && self.out.shutdown != WriteEnd::Pending)
    }

    /// Runs the core's timers if one is due; otherwise arms the sleep for the next deadline.
    pub(super) fn poll_timers(&mut self, cx: &Context<'_>) -> bool {
        let now = Instant::now();
        let Some(deadline) = self.conn.poll_timeout(now.into_std()) else {
            return false;
        };
        let deadline = Instant::from_std(deadline);
        if deadline > now {
            let timer = self
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            if timer.deadline() != deadline {
                timer.as_mut().reset(deadline);
            }
            let waker = io_waker(&self.split, cx);
            if timer
                .as_mut()
                .poll(&mut Context::from_waker(waker))
                .is_pending()
            {
                return false;
            }
        }
        self.conn
            .handle_timeout(Instant::now().max(deadline).into_std());
        self.progressed = true;
        true
    }

    /// Reads everything the stream has ready (up to `MAX_READ_PER_POLL` bytes) into the
    /// connection, so that a burst of messages is decoded before any reply is written. Ready
    /// when anything was read (or the stream ended), pending when nothing was.
    pub(super) fn poll_input(&mut self, cx: &Context<'_>) -> Poll<io::Result<()>> {
        if let Some(error) = self.read_error.take() {
            return Poll::Ready(Err(error));
        }
        let (mut total, mut read) = (0, false);
        while !self.read_eof && total < MAX_READ_PER_POLL {
            match self.read_once(cx) {
                Poll::Pending => {
                    // Nothing more for now: an idle connection keeps no read buffer, and no
                    // room for write chunks once they are written.
                    if total > 0 {
                        self.large_reads = total > SMALL_READ;
                    }
                    self.read_buf = Vec::new();
                    self.out.coalesced = BytesMut::new();
                    self.conn.release_idle_memory();
                    break;
                }
                Poll::Ready(Ok(n)) => {
                    total += n;
                    read = true;
                }
                Poll::Ready(Err(error)) if total == 0 => return Poll::Ready(Err(error)),
                Poll::Ready(Err(error)) => {
                    self.read_error = Some(error);
                    break;
                }
            }
        }
        if !read {
            return Poll::Pending;
        }
        self.progressed = true;
        Poll::Ready(Ok(()))
    }

    /// Reads once into the connection: into a small stack buffer while reads come in small
    /// pieces, into the large heap buffer once one filled the small buffer (or the last poll
    /// read more than it holds), and straight onto the message when the rest of a large binary
    /// frame is coming. Returns the bytes read (0 at end of stream or after an interrupted
    /// read).
    fn read_once(&mut self, cx: &Context<'_>) -> Poll<io::Result<usize>> {
        let mut io_cx = Context::from_waker(io_waker(&self.split, cx));
        let read_chunk = self.read_chunk as u64;
        if self
            .conn
            .direct_read_len()
            .is_some_and(|len| len >= read_chunk)
        {
            // At least a read's worth of a large frame is still to come: read it onto its
            // message rather than copy it there from a buffer of our own.
            let stream = &mut self.stream;
            let polled = self.conn.receive_with(self.read_chunk, |buf| {
                std::pin::pin!(stream.read_buf(buf)).poll(&mut io_cx)
            });
            return match polled {
                Poll::Ready(Ok(0)) => {
                    self.receive_eof();
                    Poll::Ready(Ok(0))
                }
                Poll::Ready(Err(error)) => self.read_failed(error),
                other => other,
            };
        }
        if self.large_reads && self.read_buf.capacity() == 0 && self.read_chunk > SMALL_READ {
            self.read_buf = Vec::with_capacity(self.read_chunk);
        }
        let mut small = [MaybeUninit::<u8>::uninit(); SMALL_READ];
        let large = self.read_buf.capacity() > 0;
        let mut buf = if large {
            ReadBuf::uninit(self.read_buf.spare_capacity_mut())
        } else {
            let len = SMALL_READ.min(self.read_chunk);
            ReadBuf::uninit(&mut small[..len])
        };
        let polled = Pin::new(&mut self.stream).poll_read(&mut io_cx, &mut buf);
        let (filled, full) = (buf.filled().len(), buf.remaining() == 0);
        match polled {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Ok(())) if filled > 0 => self.conn.receive(buf.filled()),
            Poll::Ready(Ok(())) => self.receive_eof(),
            Poll::Ready(Err(error)) => return self.read_failed(error),
        }
        if full && !large && self.read_chunk > SMALL_READ {
            // The small buffer filled up: more is probably waiting, read it in large pieces.
            self.read_buf = Vec::with_capacity(self.read_chunk);
        }
        Poll::Ready(Ok(filled))
    }

    /// What a failed read means: nothing (interrupted), the end of the stream (a reset after,
    /// or instead of, the peer's close loses nothing the core can use), or an error.
    fn read_failed(&mut self, error: io::Error) -> Poll<io::Result<usize>> {
        match error.kind() {
            io::ErrorKind::Interrupted => {}
            io::ErrorKind::ConnectionReset => self.receive_eof(),
            _ => return Poll::Ready(Err(error)),
        }
        Poll::Ready(Ok(0))
    }

    pub(super) fn receive_eof(&mut self) {
        self.read_eof = true;
        self.conn.receive_eof();
    }

    /// `poll_output` for the read loop, inline down to "nothing to write, flush or shut down":
    /// what every read of a connection that sends nothing finds, once per message.
    #[inline]
    fn poll_output_if_any(&mut self, cx: &Context<'_>) -> Poll<io::Result<()>> {
        let idle = self.conn.is_open()
            && !self.conn.has_transmit()
            && !self.out.flush_needed
            && self.out.shutdown == WriteEnd::Open
            && !self.out.broken;
        if idle {
            return self.output_done();
        }
        self.poll_output(cx)
    }

    /// Everything is written and flushed: no write is waiting for its timeout, and nothing a
    /// `send` deferred is left.
    fn output_done(&mut self) -> Poll<io::Result<()>> {
        self.out.timer_armed = false;
        self.out.deferred = false;
        Poll::Ready(Ok(()))
    }

    /// Writes every queued transmit, then flushes the stream and performs a queued shutdown.
    pub(super) fn poll_output(&mut self, cx: &Context<'_>) -> Poll<io::Result<()>> {
        if self.out.broken {
            // Nothing can be written any more; keep the connection's queue from growing.
            while self.conn.poll_transmit().is_some() {}
            return Poll::Ready(Ok(()));
        }
        loop {
            // Once every byte is out (pongs owed included), the connection may ask for the
            // transport's write side to be shut down.
            if self.out.shutdown == WriteEnd::Open
                && !self.conn.is_open()
                && self.conn.transmit_chunk().is_empty()
                && let Some(Transmit::Shutdown) = self.conn.poll_transmit()
            {
                self.out.shutdown = WriteEnd::Pending;
            }
            // Checked before anything is set up for the stream: nothing to do is what every
            // read of a reader that sends nothing finds, and how every write ends.
            let queued = !self.conn.transmit_chunk().is_empty();
            if !queued && !self.out.flush_needed && self.out.shutdown != WriteEnd::Pending {
                return self.output_done();
            }
            let mut io_cx = Context::from_waker(io_waker(&self.split, cx));
            let polled = if queued {
                match write_queued(&mut self.conn, &mut self.stream, &mut self.out, &mut io_cx) {
                    // All of it went out (the usual case): flush in the same turn.
                    Poll::Ready(Ok(written)) if self.conn.buffered_amount() == 0 => {
                        self.out.timer_armed = false;
                        self.progressed |= written > 0;
                        flush_stream(&mut self.stream, &mut self.out, &mut io_cx)
                    }
                    other => other,
                }
            } else if self.out.flush_needed {
                flush_stream(&mut self.stream, &mut self.out, &mut io_cx)
            } else {
                // Nothing to write or flush (checked above): the shutdown is what is left.
                let out = &mut self.out;
                Pin::new(&mut self.stream)
                    .poll_shutdown(&mut io_cx)
                    .map_ok(|()| {
                        out.shutdown = WriteEnd::Done;
                        0
                    })
            };
            match polled {
                Poll::Ready(Ok(written)) => {
                    self.out.timer_armed = false;
                    if written > 0 {
                        self.progressed = true;
                    }
                }
                Poll::Ready(Err(error)) if error.kind() == io::ErrorKind::Interrupted => {}
                Poll::Ready(Err(error)) => return Poll::Ready(Err(self.break_output(error))),
                Poll::Pending => return self.poll_write_timeout(cx),
            }
        }
    }

    /// Like `poll_flush`, for `send`: when the peer's next event has already arrived, the
    /// bytes stay queued (up to `HIGH_WATER_MARK`) for the read that hands it out, which writes
    /// them before it waits for input; otherwise everything is written now.
    pub(super) fn poll_send_flush(
        &mut self,
        side: Side,
        cx: &Context<'_>,
    ) -> Poll<Result<(), Error>> {
        let defer = matches!(self.phase, Phase::Open)
            && !self.out.broken
            && (!self.held.is_empty() || self.conn.has_event())
            && !self.over_high_water();
        if defer {
            self.out.deferred = true;
            return Poll::Ready(Ok(()));
        }
        self.poll_flush(side, cx)
    }

    /// A write is pending: fails it once it has waited longer than the write timeout.
    pub(super) fn poll_write_timeout(&mut self, cx: &Context<'_>) -> Poll<io::Result<()>> {
        let Some(timeout) = self.out.timeout else {
            return Poll::Pending;
        };
        let deadline = Instant::now() + timeout;
        let timer = self
            .out
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if !self.out.timer_armed {
            timer.as_mut().reset(deadline);
            self.out.timer_armed = true;
        }
        let waker = io_waker(&self.split, cx);
        ready!(timer.as_mut().poll(&mut Context::from_waker(waker)));
        let error = io::Error::new(io::ErrorKind::TimedOut, "write timed out");
        Poll::Ready(Err(self.break_output(error)))
    }

    pub(super) fn break_output(&mut self, error: io::Error) -> io::Error {
        self.out.broken = true;
        self.out.coalesced = BytesMut::new();
        while self.conn.poll_transmit().is_some() {}
        self.out.flush_needed = false;
        self.out.timer_armed = false;
        self.progressed = true;
        error
    }

    /// A write failed on the write side: the connection is over.
    pub(super) fn fail_write(&mut self, error: io::Error) -> Error {
        self.phase = Phase::Done;
        self.progressed = true;
        error.into()
    }
}

/// Writes what the connection has queued (something is), straight from its buffers: in one
/// vectored write when the stream supports it, else the first chunk, with small neighbours
/// copied together first. Returns how many bytes went out, which the connection then lets go
/// of (a partial write leaves the rest queued there).
pub(super) fn write_queued<S: AsyncWrite + Unpin>(
    conn: &mut Connection,
    stream: &mut S,
    out: &mut Output,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    let polled = {
        let queued = conn.buffered_amount();
        let first = conn.transmit_chunk();
        let stream = Pin::new(&mut *stream);
        if first.len() == queued {
            // One chunk (many small frames end to end, typically): no gathering to do.
            stream.poll_write(cx, first)
        } else {
            write_gathered(conn, stream, out, cx)
        }
    };
    match polled {
        Poll::Ready(Ok(0)) => Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
        Poll::Ready(Ok(written)) => {
            conn.advance_transmit(written);
            out.flush_needed = true;
            Poll::Ready(Ok(written))
        }
        other => other,
    }
}

/// Flushes the stream; once flushed, nothing written is waiting in it.
fn flush_stream<S: AsyncWrite + Unpin>(
    stream: &mut S,
    out: &mut Output,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    Pin::new(stream).poll_flush(cx).map_ok(|()| {
        out.flush_needed = false;
        0
    })
}

/// Writes several queued chunks at once: vectored when the stream supports it, else the
/// small ones at the front copied together.
fn write_gathered<S: AsyncWrite>(
    conn: &mut Connection,
    stream: Pin<&mut S>,
    out: &mut Output,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    let mut slices = [IoSlice::new(&[]); MAX_CHUNKS];
    let filled = conn.transmit_slices(&mut slices);
    match filled {
        0 => Poll::Ready(Ok(0)),
        1 => stream.poll_write(cx, &slices[0]),
        _ if stream.is_write_vectored() => stream.poll_write_vectored(cx, &slices[..filled]),
        _ => {
            // The bytes copied are a prefix of what is queued: however much of them is
            // written, the connection lets go of that much.
            out.coalesced.clear();
            for slice in &slices[..filled] {
                if !out.coalesced.is_empty() && out.coalesced.len() + slice.len() > COALESCE_LIMIT {
                    break;
                }
                out.coalesced.extend_from_slice(slice);
            }
            stream.poll_write(cx, &out.coalesced)
        }
    }
}
