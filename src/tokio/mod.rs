//! The tokio adapter: a WebSocket `Stream` + `Sink` over any `AsyncRead + AsyncWrite`.
//!
//! [`WebSocketStream`] owns the transport and the protocol [`Connection`]. Every poll is a short
//! loop: write what the connection queued (pongs and close echoes included), hand out the next
//! event, run due timers, read. Keepalive pings and the close timeout run on a tokio timer polled
//! by the read path, so they fire while the application awaits the next message: keep a read
//! pending, or [`split`](WebSocketStream::split) the connection and read in a task of its own.
//!
//! ```no_run
//! # async fn run() -> Result<(), wsio::Error> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9002").await?;
//! let (stream, _) = listener.accept().await?;
//! let mut ws = wsio::tokio::accept(stream).await?;
//! while let Some(message) = ws.read().await? {
//!     ws.send(message).await?;
//! }
//! # Ok(()) }
//! ```
//!
//! With `futures-util`, the same loop reads `while let Some(message) = ws.next().await` and
//! writes with `SinkExt::send`; `SinkExt::feed` followed by one `flush` sends many messages in
//! as few writes as the transport allows.
//!
//! # Timers
//!
//! The timeouts of [`Options`] (handshake, write, keepalive, close) run on tokio's timer, so
//! with any of them on (the default) the runtime needs its time driver:
//! `Builder::enable_all()` or `enable_time()`, as `#[tokio::main]` does. On a runtime built
//! with `enable_io()` alone, pass [`Options::without_timeouts`]: the adapter then never touches
//! the timer. Tokio cannot be asked whether a runtime has the time driver, so a timeout on such a
//! runtime panics in tokio; called outside any tokio runtime, `accept*`, `client_async` and
//! `connect_async*` fail with [`Error::NoTimer`] instead.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let runtime = tokio::runtime::Builder::new_current_thread().enable_io().build()?;
//! runtime.block_on(async {
//!     let request = wsio::proto::handshake::ClientRequest::new("ws://127.0.0.1:9002")?;
//!     let options = wsio::Options::default().without_timeouts();
//!     let (mut ws, _) = wsio::tokio::connect_async_with(request, &options).await?;
//!     ws.send("hello".into()).await?;
//!     Ok::<(), wsio::Error>(())
//! })?;
//! # Ok(()) }
//! ```
//!
//! # Streaming
//!
//! A message too large to hold at once goes out in pieces with
//! [`WebSocketStream::send_fragment`] (or [`WriteHalf::send_fragment`]); pings and the close
//! may go out between the pieces. To receive in pieces, set [`Config::streaming`] in
//! [`Options::connection`] and read with [`read_event`](WebSocketStream::read_event): data
//! arrives as [`Event::MessageChunk`]s (`last` marks a message's end) instead of whole
//! messages, which [`read`](WebSocketStream::read) and the [`Stream`] skip.
//!
//! ```no_run
//! use wsio::proto::Event;
//! # async fn run(stream: tokio::net::TcpStream) -> Result<(), wsio::Error> {
//! let mut options = wsio::Options::default();
//! options.connection.streaming = true;
//! let request = wsio::proto::handshake::ClientRequest::new("ws://127.0.0.1:9002/upload")?;
//! let (mut ws, _) = wsio::tokio::client_async(stream, &request, &options).await?;
//! while let Some(event) = ws.read_event().await? {
//!     if let Event::MessageChunk { data, last, .. } = event {
//!         println!("{} bytes{}", data.len(), if last { ", end of message" } else { "" });
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! [`Config::streaming`]: crate::proto::Config::streaming

mod core;
mod handshake;
mod read;
mod split;
#[cfg(test)]
mod tests;
mod waker;
mod write;

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use futures_sink::Sink;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use crate::Options;
use crate::error::Error;
use crate::proto::handshake::{Accept, ClientRequest, Reject, Request, Response};
use crate::proto::{CloseFrame, Connection, Event, Message, MessageKind, PreparedMessage};
use crate::upgrade::Connected;

use self::core::Core;
use self::handshake::{client_handshake, server_handshake, within};
pub use self::split::{ReadHalf, WriteHalf};
use self::waker::Side;
pub use crate::tls::tokio_io::MaybeTlsStream;

/// A WebSocket connection over an async stream: a [`Stream`] of messages and a [`Sink`] for
/// them, plus inherent async methods for code without `futures-util`.
///
/// It owns the stream, the protocol [`Connection`], its read buffer and its timers. Pings are
/// answered and close frames echoed by whichever read or write call runs next. The stream of
/// messages ends with `None` once the closing handshake has completed ([`close_frame`] then
/// holds the peer's close frame) and after an error.
///
/// [`close_frame`]: WebSocketStream::close_frame
#[derive(Debug)]
pub struct WebSocketStream<S> {
    core: Core<S>,
}

/// Accepts a WebSocket handshake on `stream` with default options, taking any subprotocol
/// offer as declined.
///
/// ```no_run
/// # async fn run() -> Result<(), wsio::Error> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:9002").await?;
/// loop {
///     let (stream, _) = listener.accept().await?;
///     tokio::spawn(async move {
///         let mut ws = wsio::tokio::accept(stream).await?;
///         while let Some(message) = ws.read().await? {
///             ws.send(message).await?;
///         }
///         Ok::<(), wsio::Error>(())
///     });
/// }
/// # }
/// ```
pub async fn accept<S>(stream: S) -> Result<WebSocketStream<S>, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    accept_with(stream, &Options::default(), async |_: &Request| {
        Ok(Accept::new())
    })
    .await
}

/// Accepts a WebSocket handshake after `decide` has seen the request: `Ok(Accept)` sends the
/// 101 response (with the chosen subprotocol and headers), `Err(Reject)` sends that HTTP
/// response instead, shuts the stream down and returns [`Error::Rejected`].
///
/// `decide` is an async closure that borrows the request for as long as it runs, so it can
/// await a database or an authentication service before the 101 goes out. A plain closure that
/// returns a future also works, as long as the future owns what it needs from the request:
///
/// ```no_run
/// use wsio::proto::handshake::{Accept, Reject, Request};
/// # async fn is_allowed(_: Option<&str>) -> bool { true }
/// # async fn run(stream: tokio::net::TcpStream) -> Result<(), wsio::Error> {
/// let options = wsio::Options::default();
/// let ws = wsio::tokio::accept_with(stream, &options, async |request: &Request| {
///     if !is_allowed(request.headers().get("authorization")).await {
///         return Err(Reject::new(401));
///     }
///     match request.subprotocols().iter().any(|name| name == "chat") {
///         true => Ok(Accept::new().subprotocol("chat")),
///         false => Ok(Accept::new()),
///     }
/// })
/// .await?;
/// # Ok(()) }
/// ```
///
/// A malformed request gets its HTTP error response (400, 405, 414, 426, 431) and
/// [`Error::Handshake`]. The whole handshake, `decide` included, is bounded by
/// [`Options::handshake_timeout`]; past it, the stream is dropped and [`Error::HandshakeTimeout`]
/// returned.
pub async fn accept_with<S, F>(
    mut stream: S,
    options: &Options,
    decide: F,
) -> Result<WebSocketStream<S>, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: AsyncFnOnce(&Request) -> Result<Accept, Reject>,
{
    check_timer(options)?;
    let accepted = within(
        options.handshake_timeout,
        server_handshake(&mut stream, options, decide),
    )
    .await?;
    let mut ws = WebSocketStream::from_connection(stream, accepted.connection, options);
    ws.core.conn.receive(&accepted.leftover);
    Ok(ws)
}

/// Connects to a `ws://` or `wss://` URL and performs the client handshake with default
/// options. `wss://` needs the feature `rustls` (see [`crate::tls`]).
///
/// ```no_run
/// # async fn run() -> Result<(), wsio::Error> {
/// let (mut ws, _response) = wsio::tokio::connect_async("ws://127.0.0.1:9002/chat").await?;
/// ws.send("hello".into()).await?;
/// let reply = ws.read().await?;
/// ws.close(None).await?;
/// while ws.read().await?.is_some() {}
/// # Ok(()) }
/// ```
pub async fn connect_async(
    url: &str,
) -> Result<(WebSocketStream<MaybeTlsStream>, Response), Error> {
    connect_async_with(ClientRequest::new(url)?, &Options::default()).await
}

/// Connects over TCP (with `TCP_NODELAY`), and TLS for `wss://`, with a prepared request
/// (subprotocols, headers) and options.
///
/// [`Options::handshake_timeout`] bounds the TCP connect, the TLS handshake and the WebSocket
/// handshake together. Without the feature `rustls`, a `wss://` request fails with
/// [`Error::UnsupportedUrl`]: open the TLS stream yourself and use [`client_async`] over it.
pub async fn connect_async_with(
    request: ClientRequest,
    options: &Options,
) -> Result<(WebSocketStream<MaybeTlsStream>, Response), Error> {
    check_timer(options)?;
    let deadline = options
        .handshake_timeout
        .map(|timeout| Instant::now() + timeout);
    // Boxed like the handshake: a TLS handshake's state is a few KiB.
    let mut stream = Box::pin(crate::tls::tokio_io::open(&request, options, deadline)).await?;
    let remaining = deadline.map(|deadline| deadline.saturating_duration_since(Instant::now()));
    let connected = within(remaining, client_handshake(&mut stream, &request, options)).await?;
    Ok(WebSocketStream::connected(stream, connected, options))
}

/// Performs the client handshake over an already connected stream (TCP, TLS, anything),
/// bounded by [`Options::handshake_timeout`].
///
/// A non-101 answer is returned as [`Error::Handshake`] holding the status, headers and body.
/// Masking keys come from [`Rng::from_os`](crate::proto::Rng::from_os).
pub async fn client_async<S>(
    mut stream: S,
    request: &ClientRequest,
    options: &Options,
) -> Result<(WebSocketStream<S>, Response), Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    check_timer(options)?;
    let connected = within(
        options.handshake_timeout,
        client_handshake(&mut stream, request, options),
    )
    .await?;
    Ok(WebSocketStream::connected(stream, connected, options))
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocketStream<S> {
    /// Wraps a stream whose handshake is already done; `conn` must have been given the bytes
    /// read past the handshake.
    pub fn from_connection(stream: S, conn: Connection, options: &Options) -> Self {
        Self {
            core: Core::new(stream, conn, options),
        }
    }

    /// The connection a client handshake built, with the bytes read past the response.
    fn connected(stream: S, connected: Connected, options: &Options) -> (Self, Response) {
        let mut ws = Self::from_connection(stream, connected.connection, options);
        ws.core.conn.receive(&connected.leftover);
        (ws, connected.response)
    }

    /// Reads the next data message, answering pings on the way. Returns `Ok(None)` once the
    /// closing handshake has completed ([`close_frame`](Self::close_frame) then tells the
    /// peer's code), and after an error has been returned. In [`Config::streaming`] mode, read
    /// with [`read_event`](Self::read_event) instead: this method skips message chunks.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: input read so far stays in the connection, and a message is only taken out
    /// of it when this call returns it.
    ///
    /// [`Config::streaming`]: crate::proto::Config::streaming
    pub async fn read(&mut self) -> Result<Option<Message>, Error> {
        poll_fn(|cx| self.core.poll_message(Side::Read, cx)).await
    }

    /// Reads the next event of any kind: messages, chunks in streaming mode, pings (already
    /// answered), pongs and the close. Returns `Ok(None)` after the close has been reported.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, like [`read`](Self::read).
    pub async fn read_event(&mut self) -> Result<Option<Event>, Error> {
        poll_fn(|cx| self.core.poll_event(Side::Read, cx)).await
    }

    /// Sends a message and writes it out, with anything queued before it.
    ///
    /// One exception makes a read-reply loop answer a burst of messages in one write: when the
    /// peer's next event has already been read (so the next [`read`](Self::read) returns at
    /// once), the bytes stay queued, up to 256 KiB, and the first `read`, `flush` or `close`
    /// that finds no such event writes them all. The [`Sink`] and [`flush`](Self::flush)
    /// always write.
    ///
    /// # Cancel safety
    ///
    /// The message is either not queued at all (cancelled while waiting for room) or queued
    /// whole; once queued it is never lost or duplicated, and the next `flush`, `send` or read
    /// writes whatever part of it is still waiting.
    pub async fn send(&mut self, message: Message) -> Result<(), Error> {
        self.send_with(|conn| conn.send(message)).await
    }

    /// Queues a message without writing it, like `SinkExt::feed`: when more than 256 KiB are
    /// already queued it first writes them out. [`flush`](Self::flush) then writes everything
    /// in as few writes as possible.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if cancelled, the message was not queued.
    pub async fn write(&mut self, message: Message) -> Result<(), Error> {
        poll_fn(|cx| self.core.poll_ready(Side::Write, cx)).await?;
        self.core.start_send(message)
    }

    /// Sends a binary message copied from `data` and writes it out: the fastest way to send a
    /// short message the caller holds as a slice (see
    /// [`Connection::send_binary`](crate::proto::Connection::send_binary)).
    ///
    /// # Cancel safety
    ///
    /// As [`send`](Self::send).
    pub async fn send_binary(&mut self, data: &[u8]) -> Result<(), Error> {
        self.send_with(|conn| conn.send_binary(data)).await
    }

    /// Sends a text message copied from `text` and writes it out; see
    /// [`send_binary`](Self::send_binary).
    ///
    /// # Cancel safety
    ///
    /// As [`send`](Self::send).
    pub async fn send_text(&mut self, text: &str) -> Result<(), Error> {
        self.send_with(|conn| conn.send_text(text)).await
    }

    /// The steps of every `send*`: write out what is queued if that is over the high-water
    /// mark (as `poll_ready` would; below it there is nothing to wait for), queue the message
    /// through `send`, and write it out unless replies are being gathered.
    async fn send_with(
        &mut self,
        send: impl FnOnce(&mut Connection) -> Result<(), crate::proto::SendError>,
    ) -> Result<(), Error> {
        if self.core.over_high_water() {
            poll_fn(|cx| self.core.poll_ready(Side::Write, cx)).await?;
        }
        self.core.start_send_with(send)?;
        match poll_fn(|cx| self.core.poll_send_flush(Side::Write, cx)).await {
            Ok(()) => Ok(()),
            Err(error) => Err(self.core.fail_write(error)),
        }
    }

    /// Sends a message prepared once for many connections (see [`PreparedMessage`]) and writes
    /// it out.
    ///
    /// # Cancel safety
    ///
    /// As [`send`](Self::send).
    pub async fn send_prepared(&mut self, message: &PreparedMessage) -> Result<(), Error> {
        self.write_prepared(message).await?;
        self.flush().await
    }

    /// Queues a prepared message without writing it, like [`write`](Self::write).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if cancelled, the message was not queued.
    pub async fn write_prepared(&mut self, message: &PreparedMessage) -> Result<(), Error> {
        poll_fn(|cx| self.core.poll_ready(Side::Write, cx)).await?;
        self.core.start_send_prepared(message)
    }

    /// Sends one fragment of a message streamed out piece by piece, and writes it out; `last`
    /// ends the message. Pings and the close may go out between fragments; other messages
    /// fail with [`SendError`](crate::proto::SendError) until the last one. Text fragments
    /// must make valid UTF-8 together.
    ///
    /// ```no_run
    /// use wsio::proto::MessageKind;
    /// # async fn run() -> Result<(), wsio::Error> {
    /// let (mut ws, _) = wsio::tokio::connect_async("ws://127.0.0.1:9002").await?;
    /// ws.send_fragment(MessageKind::Binary, vec![0; 1 << 20], false).await?;
    /// ws.ping("still there?").await?;
    /// ws.send_fragment(MessageKind::Binary, vec![1; 1 << 20], true).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// As [`send`](Self::send).
    pub async fn send_fragment(
        &mut self,
        kind: MessageKind,
        data: impl Into<Bytes>,
        last: bool,
    ) -> Result<(), Error> {
        self.send_with(|conn| conn.send_fragment(kind, data, last))
            .await
    }

    /// Writes everything queued and flushes the stream.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: what was written stays written, the rest stays queued.
    pub async fn flush(&mut self) -> Result<(), Error> {
        poll_fn(|cx| self.core.poll_flush(Side::Write, cx)).await
    }

    /// Sends a ping with up to 125 bytes of payload; the pong arrives as an [`Event::Pong`].
    ///
    /// # Cancel safety
    ///
    /// Like [`send`](Self::send): the ping is queued before the first await.
    pub async fn ping(&mut self, data: impl Into<Bytes>) -> Result<(), Error> {
        self.core.check_open()?;
        self.core.conn.ping(data)?;
        self.flush().await
    }

    /// Starts the closing handshake and writes the close frame. Keep calling
    /// [`read`](Self::read) until it returns `Ok(None)` to complete it; messages the peer sent
    /// before its close frame arrive first.
    ///
    /// `SinkExt::close` is the other way out: it sends a 1000 close frame and waits for the
    /// handshake to complete, leaving any messages that arrive meanwhile to be read.
    ///
    /// # Cancel safety
    ///
    /// The close frame is queued before the first await; if cancelled, the next `flush` or
    /// read writes it.
    pub async fn close(&mut self, frame: Option<CloseFrame>) -> Result<(), Error> {
        self.core.start_close(frame)?;
        self.flush().await
    }

    /// Splits the connection into a [`ReadHalf`] and a [`WriteHalf`] for two tasks.
    ///
    /// Both halves share this connection behind a mutex that is held only for one non-blocking
    /// poll, never across an await. Either half writes whatever the connection has queued, so
    /// the pongs and the close echo owed by the reader go out even while the writer is idle.
    pub fn split(mut self) -> (ReadHalf<S>, WriteHalf<S>) {
        self.core.prepare_split();
        let shared = Arc::new(Mutex::new(self.core));
        (
            ReadHalf {
                shared: Arc::clone(&shared),
            },
            WriteHalf { shared },
        )
    }
}

impl<S> WebSocketStream<S> {
    /// The peer's close frame, once the closing handshake has completed (`None` also when the
    /// peer's close frame was empty).
    pub fn close_frame(&self) -> Option<&CloseFrame> {
        self.core.conn.peer_close_frame().flatten()
    }

    /// The protocol state machine.
    pub fn connection(&self) -> &Connection {
        &self.core.conn
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &S {
        &self.core.stream
    }

    /// The underlying stream; reading or writing it directly corrupts the connection.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.core.stream
    }

    /// Gives the stream back, dropping whatever was queued and not yet written.
    pub fn into_inner(self) -> S {
        self.core.stream
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for WebSocketStream<S> {
    type Item = Result<Message, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut()
            .core
            .poll_message(Side::Read, cx)
            .map(Result::transpose)
    }
}

/// `poll_ready` waits while more than 256 KiB are queued, `start_send` only queues, `poll_flush`
/// writes everything, and `poll_close` sends a 1000 close frame (if none was sent), then reads
/// until the closing handshake completes or the close timeout ends it. Messages that arrive
/// meanwhile stay readable from the [`Stream`] side; errors of the closing handshake (such as
/// the close timeout) are reported there too.
impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Message> for WebSocketStream<S> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().core.poll_ready(Side::Write, cx)
    }

    fn start_send(self: Pin<&mut Self>, message: Message) -> Result<(), Error> {
        self.get_mut().core.start_send(message)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().core.poll_flush(Side::Write, cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().core.poll_close(Side::Write, cx)
    }
}

/// Fails with [`Error::NoTimer`] when a timeout is on and there is no tokio runtime to run it.
///
/// A runtime built without the time driver cannot be told apart without a panic (tokio has no
/// query for it; tokio-rs/tokio#8361 asks for one), so there the timeouts must be turned off by
/// the caller, as the module docs say.
fn check_timer(options: &Options) -> Result<(), Error> {
    if options.has_timeouts() && tokio::runtime::Handle::try_current().is_err() {
        return Err(Error::NoTimer);
    }
    Ok(())
}
