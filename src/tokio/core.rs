//! The state one connection owns, driven by non-blocking polls.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, Sleep};

use crate::Options;
use crate::error::Error;
use crate::proto::{
    CloseCode, CloseFrame, Connection, Event, Message, PreparedMessage, ProtocolError,
};
use crate::upgrade;

use super::waker::{Side, SplitWakers, io_waker};
use super::write::{Output, WriteEnd};

/// Everything one connection owns, driven by non-blocking polls only, so that the halves of a
/// split connection can share it behind a plain mutex.
#[derive(Debug)]
pub(super) struct Core<S> {
    pub(super) stream: S,
    pub(super) conn: Connection,
    /// Reads go straight into the connection's buffer, in `read_chunk` pieces, rather than to a
    /// small stack buffer first: set while data keeps coming, cleared (and the connection's
    /// buffer released if empty) as soon as a read finds nothing more, so an idle connection
    /// holds no read buffer at all.
    pub(super) large_buffer: bool,
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
    /// The end of the connection was reported to the application (the close, an error, also
    /// one of the transport's): nothing more is read, written or returned.
    pub(super) reported: bool,
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
    /// Whether the current poll wrote bytes. That matters to the other side only while it
    /// waits for the output ([`Output::blocked`], or a closing connection): a writer's every
    /// message would otherwise wake the reader for nothing.
    pub(super) wrote: bool,
    /// [`Output::blocked`] when the current poll started.
    pub(super) was_blocked: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Core<S> {
    pub(super) fn new(stream: S, conn: Connection, options: &Options) -> Self {
        Self {
            stream,
            conn,
            large_buffer: false,
            large_reads: false,
            read_chunk: options.read_chunk.max(1),
            read_error: None,
            read_eof: false,
            reported: false,
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
                blocked: false,
            },
            timer: None,
            split: None,
            progressed: false,
            wrote: false,
            was_blocked: false,
        }
    }

    /// Starts a poll on behalf of `side`; pair it with `leave`.
    pub(super) fn enter(&mut self, side: Side, cx: &Context<'_>) {
        if let Some(split) = &self.split {
            split.wakers.register(side, cx.waker());
        }
        self.progressed = false;
        self.wrote = false;
        self.was_blocked = self.out.blocked;
    }

    /// Ends a poll: the other side may be waiting for what this one did. Bytes written wake
    /// it only when a write was waiting for the transport or the connection is closing.
    pub(super) fn leave<T>(&mut self, side: Side, result: T) -> T {
        let wake = self.progressed
            || (self.wrote && (self.was_blocked || self.out.blocked || !self.conn.is_open()));
        if let Some(split) = self.split.as_ref().filter(|_| wake) {
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
        if let Some(message) = self.ready_message() {
            self.leave(side, ());
            return Poll::Ready(Ok(Some(message)));
        }
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

    /// What `poll_next_event` does when a message was already decoded and nothing is held,
    /// queued, deferred or to be flushed (the usual read of a burst): the message, without the
    /// round trips of the general loop's `Event` and `Error` through memory. `None` otherwise,
    /// with nothing changed.
    #[inline]
    fn ready_message(&mut self) -> Option<Message> {
        if self.reported || self.out.deferred || !self.held.is_empty() || !self.output_idle() {
            return None;
        }
        let message = self.conn.poll_message()?;
        let _ = self.output_done();
        Some(message)
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

    pub(super) fn poll_ready(&mut self, side: Side, cx: &Context<'_>) -> Poll<Result<(), Error>> {
        // Ready at once in the usual case: nothing is polled, so the task need not be
        // registered for a wake-up (nor the other side woken).
        self.check_open()?;
        if !self.over_high_water() {
            return Poll::Ready(Ok(()));
        }
        self.enter(side, cx);
        let result = self.poll_output(cx).map_err(|error| self.fail_write(error));
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
        let ended = self.ended();
        upgrade::queue(&mut self.conn, ended, send)
    }

    pub(super) fn start_send_prepared(&mut self, message: &PreparedMessage) -> Result<(), Error> {
        self.start_send_with(|conn| conn.send_prepared(message))
    }

    pub(super) fn poll_flush(&mut self, side: Side, cx: &Context<'_>) -> Poll<Result<(), Error>> {
        self.enter(side, cx);
        let result = self.poll_output(cx).map_err(|error| self.fail_write(error));
        if side == Side::Write && self.split.is_some() && matches!(result, Poll::Ready(Ok(()))) {
            // The writer of a split connection idles here, with no read to free what its
            // messages used (the reader is not woken for them). A connection that is not
            // split frees it when its reads find nothing, as before.
            self.conn.release_idle_output();
        }
        self.leave(side, result)
    }

    pub(super) fn start_close(&mut self, frame: Option<CloseFrame>) -> Result<(), Error> {
        self.check_open()?;
        upgrade::close(&mut self.conn, frame)?;
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
        if !self.reported && self.conn.is_open() {
            let frame = CloseFrame::new(CloseCode::NORMAL, "");
            if let Err(error) = upgrade::close(&mut self.conn, Some(frame)) {
                return self.leave(side, Poll::Ready(Err(error.into())));
            }
            self.progressed = true;
        }
        let result = loop {
            while let Some(event) = self.poll_conn_event() {
                self.held.push_back(event);
                self.progressed = true;
            }
            if let Poll::Ready(Err(error)) = self.poll_output(cx) {
                break Poll::Ready(Err(self.fail_write(error)));
            }
            if self.is_terminated() || self.reported {
                break Poll::Ready(Ok(()));
            }
            if self.poll_timers(cx) {
                continue;
            }
            match self.poll_input(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(error)) => {
                    self.reported = true;
                    break Poll::Ready(Err(error.into()));
                }
                Poll::Pending => break Poll::Pending,
            }
        };
        self.leave(side, result)
    }

    pub(super) fn check_open(&self) -> Result<(), Error> {
        if self.ended() {
            return Err(Error::AlreadyClosed);
        }
        Ok(())
    }

    /// Whether the end was reported, or the read side has taken the connection's last event
    /// (the close or the failure, which then takes effect): nothing more may be sent.
    pub(super) fn ended(&self) -> bool {
        self.reported || (self.conn.close_state().events_ended() && self.held.is_empty())
    }

    /// The driver loop of the read side: write, report, run timers, read.
    pub(super) fn poll_next_event(
        &mut self,
        cx: &Context<'_>,
    ) -> Poll<Option<Result<Event, Error>>> {
        loop {
            let keep_deferred = self.out.deferred
                && !self.ended()
                && (!self.held.is_empty() || self.conn.has_event());
            // The replies a `send` deferred stay queued while the events of the same burst are
            // handed out; they are written before this read waits for anything.
            let written = !keep_deferred
                && match self.poll_output_if_any(cx) {
                    Poll::Ready(Ok(())) => true,
                    Poll::Ready(Err(error)) => {
                        // Events that arrived before the failure are still reported first.
                        if !self.ended() && self.write_error.is_none() {
                            self.write_error = Some(error);
                        }
                        true
                    }
                    Poll::Pending => false,
                };
            if self.reported {
                return Poll::Ready(None);
            }
            match self.held.pop_front().or_else(|| self.poll_conn_event()) {
                // The last event: reported below, from the connection, once its close frame
                // (and, for the close, the rest of the closing handshake) is written.
                Some(Ok(Event::Closed(_)) | Err(_)) => continue,
                Some(Ok(event)) => return Poll::Ready(Some(Ok(event))),
                None => {}
            }
            if self.conn.close_state().events_ended() {
                if let Some(error) = self.conn.failure() {
                    if !written {
                        return Poll::Pending;
                    }
                    let error = error.clone().into();
                    return Poll::Ready(Some(Err(self.report(error))));
                }
                if self.is_terminated() {
                    let frame = self.conn.peer_close_frame().flatten().cloned();
                    return Poll::Ready(Some(Ok(self.report(Event::Closed(frame)))));
                }
            } else if let Some(error) = self.write_error.take() {
                return Poll::Ready(Some(Err(self.report(error.into()))));
            }
            if self.poll_timers(cx) {
                continue;
            }
            match self.poll_input(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(error)) => {
                    return Poll::Ready(Some(Err(self.report(error.into()))));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// Takes the connection's next event, emitting the events of a close or failure: each is
    /// taken here once, whether the read side or `poll_close` takes it.
    #[inline]
    fn poll_conn_event(&mut self) -> Option<Result<Event, ProtocolError>> {
        let event = self.conn.poll_event();
        #[cfg(feature = "tracing")]
        match &event {
            Some(Ok(Event::Closed(frame))) => {
                crate::trace::close_received(self.conn.role(), frame.as_ref());
            }
            Some(Err(error)) => crate::trace::failed(self.conn.role(), error),
            Some(Ok(_)) | None => {}
        }
        event
    }

    /// Marks the end of the connection as reported, with `end` the last thing reported.
    fn report<T>(&mut self, end: T) -> T {
        self.reported = true;
        self.progressed = true;
        end
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
}
