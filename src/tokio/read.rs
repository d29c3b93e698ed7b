//! The read side: from the transport into the connection.

use std::future::Future;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

use crate::upgrade;

use super::core::Core;
use super::waker::io_waker;

/// Reads go to a stack buffer of this size until one fills it; then to the connection's buffer.
pub(super) const SMALL_READ: usize = 4 << 10;
/// The most bytes one poll reads before handing out what it decoded.
const MAX_READ_PER_POLL: usize = 256 << 10;

impl<S: AsyncRead + AsyncWrite + Unpin> Core<S> {
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
                    // Nothing more for now: an idle connection keeps no empty read buffer,
                    // and no room for write chunks once they are written.
                    if total > 0 {
                        self.large_reads = total > SMALL_READ;
                    }
                    self.large_buffer = false;
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
    /// pieces, and otherwise straight into the connection's own buffer (or, for the rest of a
    /// large binary frame, onto the message) with `Connection::receive_with`, so that a large
    /// read is copied once, by the transport. Large reads start once one filled the small
    /// buffer (or the last poll read more than it holds), or when at least a read's worth of a
    /// large frame is still to come. Returns the bytes read (0 at end of stream or after an
    /// interrupted read).
    fn read_once(&mut self, cx: &Context<'_>) -> Poll<io::Result<usize>> {
        let mut io_cx = Context::from_waker(io_waker(&self.split, cx));
        if self.large_reads && self.read_chunk > SMALL_READ {
            self.large_buffer = true;
        }
        if self.large_buffer
            || self
                .conn
                .direct_read_len()
                .is_some_and(|len| len >= self.read_chunk as u64)
        {
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
        let mut small = [MaybeUninit::<u8>::uninit(); SMALL_READ];
        let len = SMALL_READ.min(self.read_chunk);
        let mut buf = ReadBuf::uninit(&mut small[..len]);
        let polled = Pin::new(&mut self.stream).poll_read(&mut io_cx, &mut buf);
        let (filled, full) = (buf.filled().len(), buf.remaining() == 0);
        match polled {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Ok(())) if filled > 0 => self.conn.receive(buf.filled()),
            Poll::Ready(Ok(())) => self.receive_eof(),
            Poll::Ready(Err(error)) => return self.read_failed(error),
        }
        if full && self.read_chunk > SMALL_READ {
            // The small buffer filled up: more is probably waiting, read it in large pieces.
            self.large_buffer = true;
        }
        Poll::Ready(Ok(filled))
    }

    /// What a failed read means: nothing (interrupted), the end of the stream (a reset after,
    /// or instead of, the peer's close loses nothing the core can use), or an error.
    fn read_failed(&mut self, error: io::Error) -> Poll<io::Result<usize>> {
        match error.kind() {
            io::ErrorKind::Interrupted => {}
            _ if upgrade::is_end_of_stream(&error) => self.receive_eof(),
            _ => return Poll::Ready(Err(error)),
        }
        Poll::Ready(Ok(0))
    }

    pub(super) fn receive_eof(&mut self) {
        self.read_eof = true;
        self.conn.receive_eof();
    }
}
