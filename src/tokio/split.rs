//! The two halves of a split connection, sharing its core behind a mutex.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use futures_sink::Sink;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::error::Error;
use crate::proto::{CloseFrame, Event, Message, MessageKind, PreparedMessage};

#[cfg(doc)]
use super::WebSocketStream;
use super::core::Core;
use super::waker::Side;
use crate::lock::lock;

/// The reading half of a split [`WebSocketStream`]: a [`Stream`] of messages.
///
/// It runs the connection's timers and answers pings, writing the pongs itself; keep it polled
/// for keepalive to work.
#[derive(Debug)]
pub struct ReadHalf<S> {
    pub(super) shared: Arc<Mutex<Core<S>>>,
}

/// The writing half of a split [`WebSocketStream`]: a [`Sink`] for messages.
#[derive(Debug)]
pub struct WriteHalf<S> {
    pub(super) shared: Arc<Mutex<Core<S>>>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> ReadHalf<S> {
    /// Reads the next data message; `Ok(None)` once the closing handshake completed or after
    /// an error. Cancel safe, like [`WebSocketStream::read`].
    pub async fn read(&mut self) -> Result<Option<Message>, Error> {
        poll_fn(|cx| lock(&self.shared).poll_message(Side::Read, cx)).await
    }

    /// Reads the next event of any kind; `Ok(None)` after the close has been reported. Cancel
    /// safe, like [`WebSocketStream::read`].
    pub async fn read_event(&mut self) -> Result<Option<Event>, Error> {
        poll_fn(|cx| lock(&self.shared).poll_event(Side::Read, cx)).await
    }

    /// The peer's close frame, once the closing handshake has completed.
    pub fn close_frame(&self) -> Option<CloseFrame> {
        lock(&self.shared)
            .conn
            .peer_close_frame()
            .flatten()
            .cloned()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for ReadHalf<S> {
    type Item = Result<Message, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        lock(&self.shared)
            .poll_message(Side::Read, cx)
            .map(Result::transpose)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WriteHalf<S> {
    /// Sends a message and writes it out. Cancel safety as [`WebSocketStream::send`].
    pub async fn send(&mut self, message: Message) -> Result<(), Error> {
        self.write(message).await?;
        self.flush().await
    }

    /// Queues a message, waiting for room first. Cancel safe, like [`WebSocketStream::write`].
    pub async fn write(&mut self, message: Message) -> Result<(), Error> {
        poll_fn(|cx| lock(&self.shared).poll_ready(Side::Write, cx)).await?;
        lock(&self.shared).start_send(message)
    }

    /// Sends a prepared message and writes it out. Cancel safety as [`WebSocketStream::send`].
    pub async fn send_prepared(&mut self, message: &PreparedMessage) -> Result<(), Error> {
        self.write_prepared(message).await?;
        self.flush().await
    }

    /// Queues a prepared message, waiting for room first. Cancel safe, like
    /// [`WebSocketStream::write`].
    pub async fn write_prepared(&mut self, message: &PreparedMessage) -> Result<(), Error> {
        poll_fn(|cx| lock(&self.shared).poll_ready(Side::Write, cx)).await?;
        lock(&self.shared).start_send_prepared(message)
    }

    /// Sends one fragment of a streamed message and writes it out, waiting for room first, like
    /// [`WebSocketStream::send_fragment`]. Cancel safety as [`WebSocketStream::send`].
    pub async fn send_fragment(
        &mut self,
        kind: MessageKind,
        data: impl Into<Bytes>,
        last: bool,
    ) -> Result<(), Error> {
        poll_fn(|cx| lock(&self.shared).poll_ready(Side::Write, cx)).await?;
        lock(&self.shared).start_send_with(|conn| conn.send_fragment(kind, data, last))?;
        self.flush().await
    }

    /// Writes everything queued. Cancel safe, like [`WebSocketStream::flush`].
    pub async fn flush(&mut self) -> Result<(), Error> {
        poll_fn(|cx| lock(&self.shared).poll_flush(Side::Write, cx)).await
    }

    /// Sends a ping. Cancel safety as [`WebSocketStream::ping`].
    pub async fn ping(&mut self, data: impl Into<Bytes>) -> Result<(), Error> {
        {
            let mut core = lock(&self.shared);
            core.check_open()?;
            core.conn.ping(data)?;
        }
        self.flush().await
    }

    /// Starts the closing handshake and writes the close frame; the [`ReadHalf`] sees
    /// `Ok(None)` once the handshake completes. Cancel safety as [`WebSocketStream::close`].
    pub async fn close(&mut self, frame: Option<CloseFrame>) -> Result<(), Error> {
        lock(&self.shared).start_close(frame)?;
        self.flush().await
    }
}

/// As for [`WebSocketStream`]; `poll_close` reads too, so it completes even when the
/// [`ReadHalf`] is idle or dropped, and leaves the messages it reads to the `ReadHalf`.
impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Message> for WriteHalf<S> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        lock(&self.shared).poll_ready(Side::Write, cx)
    }

    fn start_send(self: Pin<&mut Self>, message: Message) -> Result<(), Error> {
        lock(&self.shared).start_send(message)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        lock(&self.shared).poll_flush(Side::Write, cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        lock(&self.shared).poll_close(Side::Write, cx)
    }
}
