//! The write side: from the connection's queue to the transport, with its flush, shutdown
//! and write timeout.

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, Sleep};

use crate::error::Error;
use crate::proto::{Connection, Transmit};

use super::core::Core;
use super::waker::{Side, io_waker};

/// Above this many queued bytes, `poll_ready` writes everything out before taking a message.
/// Four 64 KiB replies fit below it, so an echo of large messages writes several per call
/// (1.5 times as many messages per second at 64 KiB with 16 in flight as with 64 KiB here).
const HIGH_WATER_MARK: usize = 256 << 10;
/// The most chunks gathered into one vectored write.
const MAX_CHUNKS: usize = 16;
/// Without vectored writes, neighbouring chunks are copied together up to this size.
const COALESCE_LIMIT: usize = 16 << 10;

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
    /// The last write waited for the transport (pending): the side that wrote waits for the
    /// output to drain, and the other side's writes wake it.
    pub(super) blocked: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum WriteEnd {
    Open,
    Pending,
    Done,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Core<S> {
    /// Whether more is queued than a new message may wait behind: `poll_ready` writes it out
    /// first, and `send` does not leave it for a later read.
    pub(super) fn over_high_water(&self) -> bool {
        self.conn.buffered_amount() > HIGH_WATER_MARK
    }

    /// `poll_output` for the read loop, inline down to "nothing to write, flush or shut down":
    /// what every read of a connection that sends nothing finds, once per message.
    #[inline]
    pub(super) fn poll_output_if_any(&mut self, cx: &Context<'_>) -> Poll<io::Result<()>> {
        if self.output_idle() {
            return self.output_done();
        }
        self.poll_output(cx)
    }

    /// Nothing to write, flush or shut down, and the connection is open.
    #[inline]
    pub(super) fn output_idle(&self) -> bool {
        self.conn.is_open()
            && !self.conn.has_transmit()
            && !self.out.flush_needed
            && self.out.shutdown == WriteEnd::Open
            && !self.out.broken
    }

    /// Everything is written and flushed: no write is waiting for its timeout, and nothing a
    /// `send` deferred is left.
    pub(super) fn output_done(&mut self) -> Poll<io::Result<()>> {
        self.out.timer_armed = false;
        self.out.deferred = false;
        self.out.blocked = false;
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
            // read of a reader that sends nothing finds, and how every write ends. (Something
            // is queued exactly when the next chunk to write is not empty.)
            let queued = self.conn.has_transmit();
            if !queued && !self.out.flush_needed && self.out.shutdown != WriteEnd::Pending {
                return self.output_done();
            }
            let mut io_cx = Context::from_waker(io_waker(&self.split, cx));
            let polled = if queued {
                match write_queued(&mut self.conn, &mut self.stream, &mut self.out, &mut io_cx) {
                    // All of it went out (the usual case): flush in the same turn.
                    Poll::Ready(Ok(written)) if self.conn.buffered_amount() == 0 => {
                        self.out.timer_armed = false;
                        self.wrote |= written > 0;
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
                    self.wrote |= written > 0;
                }
                Poll::Ready(Err(error)) if error.kind() == io::ErrorKind::Interrupted => {}
                Poll::Ready(Err(error)) => return Poll::Ready(Err(self.break_output(error))),
                Poll::Pending => {
                    self.out.blocked = true;
                    return self.poll_write_timeout(cx);
                }
            }
        }
    }

    /// Like `poll_flush`, for `send`: when the peer's next event has already arrived, the
    /// bytes stay queued (up to `HIGH_WATER_MARK`) for the read that hands it out, which writes
    /// them before it waits for input; otherwise everything is written now.
    ///
    /// A failed write is returned as it is, for the caller to pass to `fail_write`: a
    /// `Poll<io::Result<()>>` comes back in registers, where the driver's `Error` would be
    /// copied through memory at every `await` between here and the application, on every send.
    pub(super) fn poll_send_flush(&mut self, side: Side, cx: &Context<'_>) -> Poll<io::Result<()>> {
        let defer = !self.out.broken
            && (!self.held.is_empty() || self.conn.has_event())
            && !self.ended()
            && !self.over_high_water();
        if defer {
            self.out.deferred = true;
            return Poll::Ready(Ok(()));
        }
        if self.split.is_none()
            && let Some(done) = self.write_at_once(cx)
        {
            return done;
        }
        self.enter(side, cx);
        let result = self.poll_output(cx);
        self.leave(side, result)
    }

    /// `poll_flush` for the usual send on a connection that is not split: what is queued is
    /// one chunk (the message just queued) and nothing waits to be flushed or shut down. Writes
    /// and flushes it as `poll_output` would, without its loop; `None` when that is not the
    /// case, or the stream did not take it all at once (what it did take is then recorded, and
    /// `poll_output` goes on from there).
    #[inline]
    fn write_at_once(&mut self, cx: &Context<'_>) -> Option<Poll<io::Result<()>>> {
        if self.out.broken
            || self.out.flush_needed
            || self.out.shutdown != WriteEnd::Open
            || !self.conn.is_open()
        {
            return None;
        }
        let queued = self.conn.buffered_amount();
        let chunk = self.conn.transmit_chunk();
        if queued == 0 || chunk.len() != queued {
            return None;
        }
        // Not split: the stream is polled with the caller's waker, as `io_waker` would.
        let mut io_cx = Context::from_waker(cx.waker());
        let stream = Pin::new(&mut self.stream);
        let io_result = match stream.poll_write(&mut io_cx, chunk) {
            Poll::Ready(Ok(written)) if written > 0 => {
                self.conn.advance_transmit(written);
                self.out.flush_needed = true;
                self.out.timer_armed = false;
                if written < queued {
                    return None;
                }
                let stream = Pin::new(&mut self.stream);
                match stream.poll_flush(&mut io_cx) {
                    Poll::Ready(Ok(())) => {
                        self.out.flush_needed = false;
                        return Some(self.output_done());
                    }
                    other => other,
                }
            }
            Poll::Ready(Ok(_)) => return None,
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => Poll::Pending,
        };
        Some(match io_result {
            Poll::Ready(Ok(())) => return None,
            Poll::Ready(Err(error)) if error.kind() == io::ErrorKind::Interrupted => return None,
            Poll::Ready(Err(error)) => Poll::Ready(Err(self.break_output(error))),
            Poll::Pending => {
                self.out.blocked = true;
                self.poll_write_timeout(cx)
            }
        })
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
        #[cfg(feature = "tracing")]
        crate::trace::write_timeout(self.conn.role());
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
    #[cold]
    pub(super) fn fail_write(&mut self, error: io::Error) -> Error {
        self.reported = true;
        self.progressed = true;
        error.into()
    }
}

/// Writes what the connection has queued (something is), straight from its buffers: in one
/// vectored write when the stream supports it, else the first chunk, with small neighbours
/// copied together first. Returns how many bytes went out, which the connection then lets go
/// of (a partial write leaves the rest queued there).
#[inline]
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
