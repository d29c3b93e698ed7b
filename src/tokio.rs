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

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Wake, Waker, ready};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures_core::Stream;
use futures_sink::Sink;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use crate::Options;
use crate::error::Error;
use crate::proto::handshake::{Accept, ClientRequest, Reject, Request, RequestParser, Response};
use crate::proto::{
    CloseCode, CloseFrame, Connection, Event, Message, ProtocolError, Rng, Transmit,
};
use crate::upgrade;

/// Above this many queued bytes, `poll_ready` writes everything out before taking a message.
const HIGH_WATER_MARK: usize = 64 << 10;
/// The most chunks gathered into one vectored write.
const MAX_CHUNKS: usize = 64;
/// Without vectored writes, neighbouring chunks are copied together up to this size.
const COALESCE_LIMIT: usize = 16 << 10;
/// How many bytes one read asks for during the opening handshake.
const HANDSHAKE_CHUNK: usize = 4096;

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
    let (conn, leftover) = within(
        options.handshake_timeout,
        server_handshake(&mut stream, options, decide),
    )
    .await?;
    let mut ws = WebSocketStream::from_connection(stream, conn, options);
    ws.core.conn.receive(&leftover);
    Ok(ws)
}

/// Connects to a `ws://` URL over TCP and performs the client handshake with default options.
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
pub async fn connect_async(url: &str) -> Result<(WebSocketStream<TcpStream>, Response), Error> {
    connect_async_with(ClientRequest::new(url)?, &Options::default()).await
}

/// Connects over TCP (with `TCP_NODELAY`) with a prepared request (subprotocols, headers) and
/// options.
///
/// [`Options::handshake_timeout`] bounds the TCP connect and the handshake together. A `wss://`
/// request fails with [`Error::UnsupportedUrl`]: open the TLS stream yourself and use
/// [`client_async`] over it.
pub async fn connect_async_with(
    request: ClientRequest,
    options: &Options,
) -> Result<(WebSocketStream<TcpStream>, Response), Error> {
    if request.is_secure() {
        return Err(Error::UnsupportedUrl(
            "wss:// needs a TLS stream: use `client_async` over it".into(),
        ));
    }
    let connect = async {
        let stream = TcpStream::connect((request.host(), request.port())).await?;
        stream.set_nodelay(true)?;
        client_handshake(stream, &request, options).await
    };
    within(options.handshake_timeout, connect).await
}

/// Performs the client handshake over an already connected stream (TCP, TLS, anything),
/// bounded by [`Options::handshake_timeout`].
///
/// A non-101 answer is returned as [`Error::Handshake`] holding the status, headers and body.
/// Masking keys come from [`Rng::from_os`].
pub async fn client_async<S>(
    stream: S,
    request: &ClientRequest,
    options: &Options,
) -> Result<(WebSocketStream<S>, Response), Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    within(
        options.handshake_timeout,
        client_handshake(stream, request, options),
    )
    .await
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocketStream<S> {
    /// Wraps a stream whose handshake is already done; `conn` must have been given the bytes
    /// read past the handshake.
    pub fn from_connection(stream: S, conn: Connection, options: &Options) -> Self {
        Self {
            core: Core::new(stream, conn, options),
        }
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
    /// # Cancel safety
    ///
    /// The message is either not queued at all (cancelled while waiting for room) or queued
    /// whole; once queued it is never lost or duplicated, and the next `flush`, `send` or read
    /// writes whatever part of it is still waiting.
    pub async fn send(&mut self, message: Message) -> Result<(), Error> {
        self.write(message).await?;
        self.flush().await
    }

    /// Queues a message without writing it, like `SinkExt::feed`: when more than 64 KiB are
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
    pub fn split(self) -> (ReadHalf<S>, WriteHalf<S>) {
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
        self.core.peer_close.as_ref()
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

/// `poll_ready` waits while more than 64 KiB are queued, `start_send` only queues, `poll_flush`
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

/// The reading half of a split [`WebSocketStream`]: a [`Stream`] of messages.
///
/// It runs the connection's timers and answers pings, writing the pongs itself; keep it polled
/// for keepalive to work.
#[derive(Debug)]
pub struct ReadHalf<S> {
    shared: Arc<Mutex<Core<S>>>,
}

/// The writing half of a split [`WebSocketStream`]: a [`Sink`] for messages.
#[derive(Debug)]
pub struct WriteHalf<S> {
    shared: Arc<Mutex<Core<S>>>,
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
        lock(&self.shared).peer_close.clone()
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

/// Everything one connection owns, driven by non-blocking polls only, so that the halves of a
/// split connection can share it behind a plain mutex.
#[derive(Debug)]
struct Core<S> {
    stream: S,
    conn: Connection,
    read_buf: Vec<u8>,
    read_eof: bool,
    phase: Phase,
    peer_close: Option<CloseFrame>,
    /// Events taken out of the connection by `poll_close`, which has to take them for the close
    /// or failure to take effect; the read side reports them before newer ones.
    held: VecDeque<Result<Event, ProtocolError>>,
    /// A write that failed on the read path, reported once the events before it are read.
    write_error: Option<io::Error>,
    out: Output,
    /// The core's next deadline (keepalive, close timeout); created on first use.
    timer: Option<Pin<Box<Sleep>>>,
    wakers: Arc<Wakers>,
    /// Wakes every task waiting on this connection; given to the stream and the timers.
    waker: Waker,
    /// Whether the current poll changed anything the other side may be waiting for.
    progressed: bool,
}

/// How far the read side has got in reporting the end of the connection.
#[derive(Debug)]
enum Phase {
    Open,
    /// The peer's close frame arrived: the echo is written (and a client waits for the
    /// server's end of stream) before `Event::Closed` is reported.
    Closing(Option<CloseFrame>),
    /// The connection failed: its close frame is written before the error is reported.
    Failing(ProtocolError),
    /// The end was reported: nothing more is read, written or returned.
    Done,
}

/// Bytes taken from the connection and not yet written, and the state of the write side.
#[derive(Debug)]
struct Output {
    chunks: VecDeque<Bytes>,
    len: usize,
    flush_needed: bool,
    shutdown: WriteEnd,
    /// A write failed: the transport takes nothing more.
    broken: bool,
    timeout: Option<Duration>,
    timer: Option<Pin<Box<Sleep>>>,
    timer_armed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriteEnd {
    Open,
    Pending,
    Done,
}

/// Which half of the application polls: the reader or the writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Read,
    Write,
}

impl Side {
    fn index(self) -> usize {
        match self {
            Self::Read => 0,
            Self::Write => 1,
        }
    }

    fn other(self) -> Self {
        match self {
            Self::Read => Self::Write,
            Self::Write => Self::Read,
        }
    }
}

/// The tasks waiting on one connection, one per side.
///
/// Both sides may poll the same stream and timers, which keep only the last waker they were
/// given; they are given this one instead, which wakes both sides, so neither loses its wakeup
/// to the other.
#[derive(Debug, Default)]
struct Wakers {
    slots: Mutex<[Option<Waker>; 2]>,
}

impl Wakers {
    fn register(&self, side: Side, waker: &Waker) {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = &mut slots[side.index()];
        if !slot
            .as_ref()
            .is_some_and(|current| current.will_wake(waker))
        {
            *slot = Some(waker.clone());
        }
    }

    fn wake_side(&self, side: Side) {
        let waker = self.slots.lock().unwrap_or_else(PoisonError::into_inner)[side.index()].take();
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
            let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
            [slots[0].take(), slots[1].take()]
        };
        for waker in taken.into_iter().flatten() {
            waker.wake();
        }
    }
}

fn lock<S>(shared: &Mutex<Core<S>>) -> MutexGuard<'_, Core<S>> {
    // A panic elsewhere while holding the lock leaves the connection usable: every poll leaves
    // it in a consistent state.
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<S: AsyncRead + AsyncWrite + Unpin> Core<S> {
    fn new(stream: S, conn: Connection, options: &Options) -> Self {
        let wakers = Arc::new(Wakers::default());
        Self {
            stream,
            conn,
            read_buf: vec![0; options.read_chunk.max(1)],
            read_eof: false,
            phase: Phase::Open,
            peer_close: None,
            held: VecDeque::new(),
            write_error: None,
            out: Output {
                chunks: VecDeque::new(),
                len: 0,
                flush_needed: false,
                shutdown: WriteEnd::Open,
                broken: false,
                timeout: options.write_timeout,
                timer: None,
                timer_armed: false,
            },
            timer: None,
            waker: Waker::from(Arc::clone(&wakers)),
            wakers,
            progressed: false,
        }
    }

    /// Starts a poll on behalf of `side`; pair it with `leave`.
    fn enter(&mut self, side: Side, cx: &Context<'_>) {
        self.wakers.register(side, cx.waker());
        self.progressed = false;
    }

    /// Ends a poll: the other side may be waiting for what this one did.
    fn leave<T>(&mut self, side: Side, result: T) -> T {
        if self.progressed {
            self.wakers.wake_side(side.other());
        }
        result
    }

    fn poll_message(
        &mut self,
        side: Side,
        cx: &Context<'_>,
    ) -> Poll<Result<Option<Message>, Error>> {
        self.enter(side, cx);
        let result = loop {
            match self.poll_next_event() {
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

    fn poll_event(&mut self, side: Side, cx: &Context<'_>) -> Poll<Result<Option<Event>, Error>> {
        self.enter(side, cx);
        let result = self.poll_next_event().map(Option::transpose);
        self.leave(side, result)
    }

    fn poll_ready(&mut self, side: Side, cx: &Context<'_>) -> Poll<Result<(), Error>> {
        self.enter(side, cx);
        let result = match self.check_open() {
            Err(error) => Poll::Ready(Err(error)),
            Ok(()) if self.conn.buffered_amount() + self.out.len > HIGH_WATER_MARK => {
                self.poll_output().map_err(|error| self.fail_write(error))
            }
            Ok(()) => Poll::Ready(Ok(())),
        };
        self.leave(side, result)
    }

    fn start_send(&mut self, message: Message) -> Result<(), Error> {
        self.check_open()?;
        self.conn.send(message)?;
        Ok(())
    }

    fn poll_flush(&mut self, side: Side, cx: &Context<'_>) -> Poll<Result<(), Error>> {
        self.enter(side, cx);
        let result = self.poll_output().map_err(|error| self.fail_write(error));
        self.leave(side, result)
    }

    fn start_close(&mut self, frame: Option<CloseFrame>) -> Result<(), Error> {
        self.check_open()?;
        self.conn.close(frame)?;
        // The reader's timer has to learn about the close timeout.
        self.wakers.wake_side(Side::Read);
        Ok(())
    }

    /// Sends a 1000 close frame if none was sent, then writes and reads until the connection
    /// is over. The events read meanwhile are held for the read side.
    fn poll_close(&mut self, side: Side, cx: &Context<'_>) -> Poll<Result<(), Error>> {
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
            if let Poll::Ready(Err(error)) = self.poll_output() {
                break Poll::Ready(Err(self.fail_write(error)));
            }
            if self.is_terminated() || matches!(self.phase, Phase::Done) {
                break Poll::Ready(Ok(()));
            }
            if self.poll_timers() {
                continue;
            }
            match self.poll_input() {
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

    fn check_open(&self) -> Result<(), Error> {
        match self.phase {
            Phase::Open => Ok(()),
            Phase::Closing(_) | Phase::Failing(_) | Phase::Done => Err(Error::AlreadyClosed),
        }
    }

    /// The driver loop of the read side: write, report, run timers, read.
    fn poll_next_event(&mut self) -> Poll<Option<Result<Event, Error>>> {
        loop {
            let written = match self.poll_output() {
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
            if self.poll_timers() {
                continue;
            }
            match self.poll_input() {
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
    fn is_terminated(&self) -> bool {
        self.out.broken
            || (self.conn.is_terminated()
                && self.out.chunks.is_empty()
                && !self.out.flush_needed
                && self.out.shutdown != WriteEnd::Pending)
    }

    /// Runs the core's timers if one is due; otherwise arms the sleep for the next deadline.
    fn poll_timers(&mut self) -> bool {
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
            if timer
                .as_mut()
                .poll(&mut Context::from_waker(&self.waker))
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

    /// Reads once from the stream into the connection.
    fn poll_input(&mut self) -> Poll<io::Result<()>> {
        if self.read_eof {
            return Poll::Pending;
        }
        let mut buf = ReadBuf::new(&mut self.read_buf);
        let polled =
            Pin::new(&mut self.stream).poll_read(&mut Context::from_waker(&self.waker), &mut buf);
        let filled = buf.filled().len();
        match polled {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Ok(())) if filled > 0 => self.conn.receive(&self.read_buf[..filled]),
            Poll::Ready(Ok(())) => self.receive_eof(),
            Poll::Ready(Err(error)) if error.kind() == io::ErrorKind::Interrupted => {}
            // A reset after (or instead of) the peer's close loses nothing the core can use.
            Poll::Ready(Err(error)) if error.kind() == io::ErrorKind::ConnectionReset => {
                self.receive_eof();
            }
            Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
        }
        self.progressed = true;
        Poll::Ready(Ok(()))
    }

    fn receive_eof(&mut self) {
        self.read_eof = true;
        self.conn.receive_eof();
    }

    /// Writes every queued transmit, then flushes the stream and performs a queued shutdown.
    fn poll_output(&mut self) -> Poll<io::Result<()>> {
        if self.out.broken {
            // Nothing can be written any more; keep the connection's queue from growing.
            while self.conn.poll_transmit().is_some() {}
            return Poll::Ready(Ok(()));
        }
        loop {
            self.refill();
            let mut cx = Context::from_waker(&self.waker);
            let stream = Pin::new(&mut self.stream);
            let out = &mut self.out;
            let polled = if !out.chunks.is_empty() {
                write_chunks(stream, out, &mut cx)
            } else if out.flush_needed {
                stream.poll_flush(&mut cx).map_ok(|()| {
                    out.flush_needed = false;
                    0
                })
            } else if out.shutdown == WriteEnd::Pending {
                stream.poll_shutdown(&mut cx).map_ok(|()| {
                    out.shutdown = WriteEnd::Done;
                    0
                })
            } else {
                out.timer_armed = false;
                return Poll::Ready(Ok(()));
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
                Poll::Pending => return self.poll_write_timeout(),
            }
        }
    }

    /// Takes transmits from the connection, up to `MAX_CHUNKS` chunks.
    fn refill(&mut self) {
        while self.out.chunks.len() < MAX_CHUNKS && self.out.shutdown == WriteEnd::Open {
            match self.conn.poll_transmit() {
                Some(Transmit::Data(data)) if data.is_empty() => {}
                Some(Transmit::Data(data)) => {
                    self.out.len += data.len();
                    self.out.chunks.push_back(data);
                }
                Some(Transmit::Shutdown) => self.out.shutdown = WriteEnd::Pending,
                None => break,
            }
        }
    }

    /// A write is pending: fails it once it has waited longer than the write timeout.
    fn poll_write_timeout(&mut self) -> Poll<io::Result<()>> {
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
        ready!(timer.as_mut().poll(&mut Context::from_waker(&self.waker)));
        let error = io::Error::new(io::ErrorKind::TimedOut, "write timed out");
        Poll::Ready(Err(self.break_output(error)))
    }

    fn break_output(&mut self, error: io::Error) -> io::Error {
        self.out.broken = true;
        self.out.chunks.clear();
        self.out.len = 0;
        self.out.flush_needed = false;
        self.out.timer_armed = false;
        self.progressed = true;
        error
    }

    /// A write failed on the write side: the connection is over.
    fn fail_write(&mut self, error: io::Error) -> Error {
        self.phase = Phase::Done;
        self.progressed = true;
        error.into()
    }
}

/// Writes the queued chunks: gathered into one vectored write when the stream supports it,
/// else the first chunk, with small neighbours copied into it. Returns how many bytes went out.
fn write_chunks<S: AsyncWrite>(
    stream: Pin<&mut S>,
    out: &mut Output,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    let polled = if out.chunks.len() > 1 && stream.is_write_vectored() {
        let mut slices = [IoSlice::new(&[]); MAX_CHUNKS];
        let count = out.chunks.len().min(MAX_CHUNKS);
        for (slice, chunk) in slices.iter_mut().zip(&out.chunks) {
            *slice = IoSlice::new(chunk);
        }
        stream.poll_write_vectored(cx, &slices[..count])
    } else {
        coalesce(&mut out.chunks);
        stream.poll_write(cx, &out.chunks[0])
    };
    let written = ready!(polled)?;
    if written == 0 {
        return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
    }
    out.len -= written;
    out.flush_needed = true;
    let mut left = written;
    while left > 0 {
        let front = &mut out.chunks[0];
        if left < front.len() {
            front.advance(left);
            break;
        }
        left -= front.len();
        out.chunks.pop_front();
    }
    Poll::Ready(Ok(written))
}

/// Copies the small chunks at the front of `chunks` into one, up to `COALESCE_LIMIT` bytes.
fn coalesce(chunks: &mut VecDeque<Bytes>) {
    let mut len = 0;
    let count = chunks
        .iter()
        .take_while(|chunk| {
            len += chunk.len();
            len <= COALESCE_LIMIT
        })
        .count();
    if count < 2 {
        return;
    }
    let mut merged = BytesMut::with_capacity(chunks.iter().take(count).map(Bytes::len).sum());
    for chunk in chunks.drain(..count) {
        merged.extend_from_slice(&chunk);
    }
    chunks.push_front(merged.freeze());
}

/// Runs a handshake step within the handshake timeout.
async fn within<T>(
    timeout: Option<Duration>,
    future: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    match timeout {
        Some(timeout) => tokio::time::timeout(timeout, future)
            .await
            .unwrap_or(Err(Error::HandshakeTimeout)),
        None => future.await,
    }
}

/// Reads the request, lets `decide` answer it and writes the answer; returns the connection and
/// the bytes that followed the request.
async fn server_handshake<S, F>(
    stream: &mut S,
    options: &Options,
    decide: F,
) -> Result<(Connection, Bytes), Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: AsyncFnOnce(&Request) -> Result<Accept, Reject>,
{
    let mut parser = RequestParser::new(options.handshake.clone());
    let mut buf = vec![0; HANDSHAKE_CHUNK];
    let request = loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(
                io::Error::new(io::ErrorKind::UnexpectedEof, "eof during the handshake").into(),
            );
        }
        match parser.receive(&buf[..n]) {
            Ok(Some(request)) => break request,
            Ok(None) => {}
            Err(error) => {
                // Best effort: the peer may already be gone.
                let _ = reply(stream, &error.response().encode()).await;
                return Err(error.into());
            }
        }
    };
    let accept = match decide(&request).await {
        Ok(accept) => accept,
        Err(reject) => {
            reply(stream, &reject.encode()).await?;
            return Err(Error::Rejected(reject.status()));
        }
    };
    let (response, conn) = match upgrade::server(options, &request, accept) {
        Ok(accepted) => accepted,
        Err(error) => {
            let _ = reply(stream, &error.response().encode()).await;
            return Err(error.into());
        }
    };
    stream.write_all(&response).await?;
    stream.flush().await?;
    Ok((conn, request.into_leftover()))
}

/// Writes a refusal and shuts the stream down: the response ends with the connection.
async fn reply<S: AsyncWrite + Unpin>(stream: &mut S, response: &[u8]) -> io::Result<()> {
    stream.write_all(response).await?;
    stream.shutdown().await
}

async fn client_handshake<S>(
    mut stream: S,
    request: &ClientRequest,
    options: &Options,
) -> Result<(WebSocketStream<S>, Response), Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut rng = Rng::from_os();
    let (bytes, mut parser) = upgrade::client_request(options, request)?.encode(&mut rng);
    stream.write_all(&bytes).await?;
    stream.flush().await?;
    let mut buf = vec![0; HANDSHAKE_CHUNK];
    let response = loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(parser.receive_eof().into());
        }
        if let Some(response) = parser.receive(&buf[..n])? {
            break response;
        }
    };
    let conn = upgrade::client(options, &response, rng)?;
    let mut ws = WebSocketStream::from_connection(stream, conn, options);
    ws.core.conn.receive(response.leftover());
    Ok((ws, response))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use futures_util::{SinkExt, StreamExt};
    use tokio::io::DuplexStream;
    use tokio::net::TcpListener;
    use tokio::time::timeout;

    use super::*;
    use crate::proto::handshake::HandshakeError;

    const WAIT: Duration = Duration::from_secs(5);
    const UPGRADE: &[u8] = b"GET /chat HTTP/1.1\r\n\
        Host: localhost\r\n\
        Upgrade: websocket\r\n\
        Connection: Upgrade\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Sec-WebSocket-Version: 13\r\n\
        \r\n";

    fn request() -> ClientRequest {
        ClientRequest::new("ws://localhost/chat").expect("valid url")
    }

    async fn pair_with<S>(
        client_io: S,
        server_io: S,
        client_options: &Options,
        server_options: &Options,
    ) -> (WebSocketStream<S>, WebSocketStream<S>)
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let request = request();
        let (client, server) = tokio::join!(
            client_async(client_io, &request, client_options),
            accept_with(server_io, server_options, async |_: &Request| Ok(
                Accept::new()
            )),
        );
        (
            client.expect("client handshake").0,
            server.expect("server handshake"),
        )
    }

    async fn pair() -> (WebSocketStream<DuplexStream>, WebSocketStream<DuplexStream>) {
        let (client_io, server_io) = tokio::io::duplex(1 << 16);
        pair_with(
            client_io,
            server_io,
            &Options::default(),
            &Options::default(),
        )
        .await
    }

    /// A server whose client is driven by hand: `raw` writes frames and reads what comes back.
    async fn raw_client(options: &Options) -> (DuplexStream, WebSocketStream<DuplexStream>) {
        let (mut raw, server_io) = tokio::io::duplex(1 << 16);
        let accepting = accept_with(server_io, options, async |_: &Request| Ok(Accept::new()));
        let (server, ()) = tokio::join!(accepting, async {
            raw.write_all(UPGRADE).await.expect("write the request");
            let head = read_head(&mut raw).await;
            assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
        });
        (raw, server.expect("server handshake"))
    }

    /// Reads an HTTP head byte by byte, so no frame after it is consumed.
    async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> String {
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            match stream.read_u8().await {
                Ok(byte) => head.push(byte),
                Err(_) => break,
            }
        }
        String::from_utf8(head).expect("ascii head")
    }

    async fn read_to_end<S: AsyncRead + Unpin>(stream: &mut S) -> Vec<u8> {
        let mut data = Vec::new();
        timeout(WAIT, stream.read_to_end(&mut data))
            .await
            .expect("peer closes")
            .expect("read");
        data
    }

    /// A client text frame with an all-zero mask, so the payload goes out as it is.
    fn masked_text(text: &str) -> Vec<u8> {
        let mut frame = vec![0x81, 0x80 | u8::try_from(text.len()).expect("short")];
        frame.extend_from_slice(&[0; 4]);
        frame.extend_from_slice(text.as_bytes());
        frame
    }

    /// Counts the writes that reach the transport.
    struct Counting<S> {
        inner: S,
        writes: Arc<AtomicUsize>,
        vectored: bool,
    }

    impl<S: AsyncRead + Unpin> AsyncRead for Counting<S> {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_read(cx, buf)
        }
    }

    impl<S: AsyncWrite + Unpin> AsyncWrite for Counting<S> {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
            if let Poll::Ready(Ok(_)) = polled {
                self.writes.fetch_add(1, Ordering::Relaxed);
            }
            polled
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
            if let Poll::Ready(Ok(_)) = polled {
                self.writes.fetch_add(1, Ordering::Relaxed);
            }
            polled
        }

        fn is_write_vectored(&self) -> bool {
            self.vectored && self.inner.is_write_vectored()
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_flush(cx)
        }

        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_shutdown(cx)
        }
    }

    fn counting<S>(inner: S, vectored: bool) -> (Counting<S>, Arc<AtomicUsize>) {
        let writes = Arc::new(AtomicUsize::new(0));
        (
            Counting {
                inner,
                writes: Arc::clone(&writes),
                vectored,
            },
            writes,
        )
    }

    async fn echo<S: AsyncRead + AsyncWrite + Unpin>(
        mut ws: WebSocketStream<S>,
    ) -> WebSocketStream<S> {
        while let Some(message) = ws.next().await {
            SinkExt::send(&mut ws, message.expect("message"))
                .await
                .expect("echo");
        }
        ws
    }

    #[tokio::test]
    async fn echo_text_and_binary_through_stream_and_sink() {
        let (mut client, server) = pair().await;
        let server = tokio::spawn(echo(server));
        for message in [
            Message::text("hello"),
            Message::binary(vec![0, 1, 2, 255]),
            Message::text(""),
        ] {
            SinkExt::send(&mut client, message.clone())
                .await
                .expect("send");
            let echoed = timeout(WAIT, client.next()).await.expect("in time");
            assert_eq!(echoed.expect("a message").expect("no error"), message);
        }
        SinkExt::close(&mut client).await.expect("close");
        assert!(client.next().await.is_none());
        let server = server.await.expect("server task");
        assert_eq!(
            server.close_frame().map(|frame| frame.code),
            Some(CloseCode::NORMAL)
        );
        assert_eq!(
            client.close_frame().map(|frame| frame.code),
            Some(CloseCode::NORMAL)
        );
    }

    #[tokio::test]
    async fn echo_over_tcp_with_connect_async() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.expect("accept");
            echo(accept(stream).await.expect("handshake")).await
        });
        let (mut client, _response) = connect_async(&format!("ws://{addr}/echo"))
            .await
            .expect("connect");
        assert!(client.get_ref().nodelay().expect("nodelay"));
        client.send(Message::text("over tcp")).await.expect("send");
        client
            .send(Message::binary(vec![7; 100_000]))
            .await
            .expect("send");
        assert_eq!(
            client.read().await.expect("read"),
            Some(Message::text("over tcp"))
        );
        assert_eq!(
            client.read().await.expect("read"),
            Some(Message::binary(vec![7; 100_000]))
        );
        client
            .close(Some(CloseFrame::new(CloseCode::GOING_AWAY, "bye")))
            .await
            .expect("close");
        assert_eq!(client.read().await.expect("read"), None);
        let server = timeout(WAIT, server)
            .await
            .expect("in time")
            .expect("server task");
        assert_eq!(
            server.close_frame(),
            Some(&CloseFrame::new(CloseCode::GOING_AWAY, "bye"))
        );
    }

    #[tokio::test]
    async fn connect_async_refuses_wss() {
        let error = connect_async("wss://127.0.0.1:1/")
            .await
            .expect_err("no tls");
        assert!(matches!(error, Error::UnsupportedUrl(_)), "{error}");
    }

    #[tokio::test]
    async fn fed_messages_leave_in_one_write_after_flush() {
        let (client_io, server_io) = tokio::io::duplex(1 << 16);
        let (client_io, writes) = counting(client_io, true);
        let (server_io, _) = counting(server_io, true);
        let (mut client, mut server) = pair_with(
            client_io,
            server_io,
            &Options::default(),
            &Options::default(),
        )
        .await;
        writes.store(0, Ordering::Relaxed);
        for i in 0..16 {
            client
                .feed(Message::text(format!("message {i}")))
                .await
                .expect("feed");
        }
        assert_eq!(writes.load(Ordering::Relaxed), 0, "feed only queues");
        client.flush().await.expect("flush");
        assert_eq!(
            writes.load(Ordering::Relaxed),
            1,
            "the client's frames share one chunk"
        );
        for i in 0..16 {
            let message = timeout(WAIT, server.read())
                .await
                .expect("in time")
                .expect("read");
            assert_eq!(message, Some(Message::text(format!("message {i}"))));
        }
    }

    #[tokio::test]
    async fn large_messages_are_gathered_into_vectored_writes() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let (client_io, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let (server_io, writes) = counting(accepted.expect("accept").0, true);
        assert!(server_io.is_write_vectored());
        let (client_io, _) = counting(client_io.expect("connect"), true);
        let (mut client, mut server) = pair_with(
            client_io,
            server_io,
            &Options::default(),
            &Options::default(),
        )
        .await;
        writes.store(0, Ordering::Relaxed);
        for i in 0..16u8 {
            server
                .write(Message::binary(vec![i; 2048]))
                .await
                .expect("write");
        }
        server.flush().await.expect("flush");
        let count = writes.load(Ordering::Relaxed);
        assert!(count < 16, "{count} writes for 16 messages of 32 chunks");
        for i in 0..16u8 {
            let message = timeout(WAIT, client.read())
                .await
                .expect("in time")
                .expect("read");
            assert_eq!(message, Some(Message::binary(vec![i; 2048])));
        }
    }

    #[tokio::test]
    async fn chunks_are_coalesced_without_vectored_writes() {
        let (client_io, server_io) = tokio::io::duplex(1 << 20);
        let (server_io, writes) = counting(server_io, false);
        let (client_io, _) = counting(client_io, false);
        let (mut client, mut server) = pair_with(
            client_io,
            server_io,
            &Options::default(),
            &Options::default(),
        )
        .await;
        writes.store(0, Ordering::Relaxed);
        for i in 0..16u8 {
            server
                .feed(Message::binary(vec![i; 2048]))
                .await
                .expect("feed");
        }
        server.flush().await.expect("flush");
        let count = writes.load(Ordering::Relaxed);
        assert!(count <= 3, "{count} writes for 32 KiB in 32 chunks");
        for i in 0..16u8 {
            let message = timeout(WAIT, client.next()).await.expect("in time");
            assert_eq!(
                message.expect("message").expect("read"),
                Message::binary(vec![i; 2048])
            );
        }
    }

    #[tokio::test]
    async fn server_answers_ping_while_the_app_only_reads() {
        let (mut client, mut server) = pair().await;
        let reading = tokio::spawn(async move { server.read().await });
        client.ping(&b"are you there"[..]).await.expect("ping");
        let event = timeout(WAIT, client.read_event())
            .await
            .expect("in time")
            .expect("read");
        assert_eq!(
            event,
            Some(Event::Pong(Bytes::from_static(b"are you there")))
        );
        assert!(!reading.is_finished());
        reading.abort();
    }

    #[tokio::test]
    async fn peer_close_with_code_4000_ends_the_stream() {
        let (mut client, mut server) = pair().await;
        let closing = async {
            client
                .close(Some(CloseFrame::new(CloseCode(4000), "done")))
                .await
                .expect("close");
            client.read().await.expect("read")
        };
        let (client_end, server_end) = tokio::join!(closing, server.next());
        assert!(client_end.is_none() && server_end.is_none());
        assert_eq!(
            server.close_frame(),
            Some(&CloseFrame::new(CloseCode(4000), "done"))
        );
        assert_eq!(
            client.close_frame().map(|frame| frame.code),
            Some(CloseCode(4000))
        );
        assert!(server.next().await.is_none(), "the stream stays ended");
        assert!(matches!(
            server.send(Message::text("late")).await,
            Err(Error::AlreadyClosed)
        ));
        assert!(client.connection().is_terminated() && server.connection().is_terminated());
    }

    #[tokio::test]
    async fn unmasked_client_frame_fails_with_1002() {
        let (mut raw, mut server) = raw_client(&Options::default()).await;
        raw.write_all(&[0x81, 0x02, b'h', b'i'])
            .await
            .expect("write");
        let error = server
            .next()
            .await
            .expect("an item")
            .expect_err("a protocol error");
        assert!(
            matches!(error, Error::Protocol(ProtocolError::UnmaskedClientFrame)),
            "{error}"
        );
        assert_eq!(error.close_code(), Some(CloseCode::PROTOCOL_ERROR));
        assert!(
            server.next().await.is_none(),
            "the stream ends after an error"
        );
        assert_eq!(read_to_end(&mut raw).await, [0x88, 0x02, 0x03, 0xea]);
    }

    #[tokio::test]
    async fn read_is_cancel_safe_mid_frame() {
        let (mut raw, mut server) = raw_client(&Options::default()).await;
        let frame = masked_text("hello");
        raw.write_all(&frame[..4]).await.expect("write");
        let cancelled = timeout(Duration::from_millis(50), server.read()).await;
        assert!(cancelled.is_err(), "no message yet");
        raw.write_all(&frame[4..]).await.expect("write");
        let message = timeout(WAIT, server.read())
            .await
            .expect("in time")
            .expect("read");
        assert_eq!(message, Some(Message::text("hello")));
    }

    #[tokio::test]
    async fn handshake_times_out_with_a_silent_client() {
        let (_silent, server_io) = tokio::io::duplex(1024);
        let options = Options {
            handshake_timeout: Some(Duration::from_millis(200)),
            ..Options::default()
        };
        let started = Instant::now();
        let result = accept_with(server_io, &options, async |_: &Request| Ok(Accept::new())).await;
        assert!(matches!(result, Err(Error::HandshakeTimeout)), "{result:?}");
        assert!(started.elapsed() >= Duration::from_millis(200));
    }

    #[tokio::test]
    async fn malformed_request_gets_an_error_response() {
        let (mut raw, server_io) = tokio::io::duplex(1024);
        raw.write_all(b"POST /chat HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .expect("write");
        let result = accept(server_io).await;
        assert!(
            matches!(
                result,
                Err(Error::Handshake(HandshakeError::MethodNotAllowed))
            ),
            "{result:?}"
        );
        let reply = read_to_end(&mut raw).await;
        assert!(reply.starts_with(b"HTTP/1.1 405 Method Not Allowed\r\n"));
    }

    #[tokio::test]
    async fn rejection_is_written_and_reported_on_both_sides() {
        let (client_io, server_io) = tokio::io::duplex(1 << 16);
        let options = Options::default();
        let deciding = accept_with(server_io, &options, async |request: &Request| {
            tokio::task::yield_now().await; // stands in for a database lookup
            match request.headers().get("authorization") {
                Some("Bearer letmein") => Ok(Accept::new()),
                _ => Err(Reject::new(403).body("no token")),
            }
        });
        let request = request();
        let (client, server) = tokio::join!(client_async(client_io, &request, &options), deciding);
        assert!(matches!(server, Err(Error::Rejected(403))), "{server:?}");
        let error = client.expect_err("rejected");
        assert!(
            matches!(&error, Error::Handshake(HandshakeError::Rejected { .. })),
            "{error}"
        );
    }

    #[tokio::test]
    async fn decide_can_borrow_the_request_and_choose_a_subprotocol() {
        let (client_io, server_io) = tokio::io::duplex(1 << 16);
        let options = Options::default();
        let request = request().subprotocol("chat").expect("token");
        let server = tokio::spawn(async move {
            let options = Options::default();
            accept_with(server_io, &options, async |request: &Request| {
                tokio::task::yield_now().await;
                let offered = request.subprotocols().first().expect("an offer");
                Ok(Accept::new().subprotocol(offered.as_str()))
            })
            .await
        });
        let (_client, response) = client_async(client_io, &request, &options)
            .await
            .expect("client");
        assert_eq!(response.subprotocol(), Some("chat"));
        server.await.expect("server task").expect("accepted");
    }

    #[tokio::test]
    async fn split_halves_work_from_two_tasks() {
        let (client, server) = pair().await;
        let server = tokio::spawn(echo(server));
        let (mut reader, mut writer) = client.split();
        let reading = tokio::spawn(async move {
            let mut received = Vec::new();
            while let Some(message) = reader.next().await {
                received.push(message.expect("message"));
            }
            (received, reader.close_frame())
        });
        let writing = tokio::spawn(async move {
            for i in 0..100 {
                writer
                    .feed(Message::text(format!("{i}")))
                    .await
                    .expect("feed");
                if i % 10 == 0 {
                    writer.flush().await.expect("flush");
                }
            }
            SinkExt::close(&mut writer).await.expect("close");
        });
        let (received, close) = timeout(WAIT, reading)
            .await
            .expect("in time")
            .expect("reader");
        timeout(WAIT, writing)
            .await
            .expect("in time")
            .expect("writer");
        let expected: Vec<_> = (0..100).map(|i| Message::text(format!("{i}"))).collect();
        assert_eq!(received, expected);
        assert_eq!(close.map(|frame| frame.code), Some(CloseCode::NORMAL));
        server.await.expect("server task");
    }

    #[tokio::test]
    async fn split_reader_sends_its_pongs_while_the_writer_is_idle() {
        let (mut client, server) = pair().await;
        let (mut reader, _writer) = server.split();
        let reading = tokio::spawn(async move { reader.read().await });
        client.ping(&b"ping"[..]).await.expect("ping");
        let event = timeout(WAIT, client.read_event())
            .await
            .expect("in time")
            .expect("read");
        assert_eq!(event, Some(Event::Pong(Bytes::from_static(b"ping"))));
        client.send(Message::text("after")).await.expect("send");
        let message = timeout(WAIT, reading)
            .await
            .expect("in time")
            .expect("reader");
        assert_eq!(message.expect("read"), Some(Message::text("after")));
    }

    #[tokio::test]
    async fn split_writer_close_completes_without_a_reader() {
        let (client, server) = pair().await;
        let server = tokio::spawn(echo(server));
        let (reader, mut writer) = client.split();
        drop(reader);
        writer.send(Message::text("unread")).await.expect("send");
        timeout(WAIT, SinkExt::close(&mut writer))
            .await
            .expect("in time")
            .expect("close");
        let server = server.await.expect("server task");
        assert_eq!(
            server.close_frame().map(|frame| frame.code),
            Some(CloseCode::NORMAL)
        );
    }

    #[tokio::test]
    async fn keepalive_pings_an_idle_peer() {
        let (client_io, server_io) = tokio::io::duplex(1 << 16);
        let mut server_options = Options::default();
        server_options.connection.keepalive_interval = Some(Duration::from_millis(100));
        let (mut client, mut server) =
            pair_with(client_io, server_io, &Options::default(), &server_options).await;
        let reading = tokio::spawn(async move { server.read().await });
        let event = timeout(WAIT, client.read_event())
            .await
            .expect("a ping in time")
            .expect("read");
        assert_eq!(event, Some(Event::Ping(Bytes::new())));
        assert!(!reading.is_finished(), "the pong kept the connection alive");
        reading.abort();
    }

    #[tokio::test]
    async fn keepalive_timeout_fails_a_silent_peer() {
        let mut options = Options::default();
        options.connection.keepalive_interval = Some(Duration::from_millis(50));
        options.connection.keepalive_timeout = Some(Duration::from_millis(50));
        let (mut raw, mut server) = raw_client(&options).await;
        let error = timeout(WAIT, server.read())
            .await
            .expect("in time")
            .expect_err("timeout");
        assert!(
            matches!(error, Error::Protocol(ProtocolError::KeepaliveTimeout)),
            "{error}"
        );
        assert_eq!(
            read_to_end(&mut raw).await,
            [0x89, 0x00, 0x88, 0x02, 0x03, 0xf3]
        );
    }

    #[tokio::test]
    async fn sink_close_is_bounded_by_the_close_timeout() {
        let mut options = Options::default();
        options.connection.close_timeout = Some(Duration::from_millis(100));
        let (mut raw, mut server) = raw_client(&options).await;
        timeout(WAIT, SinkExt::close(&mut server))
            .await
            .expect("in time")
            .expect("close");
        let error = server.read().await.expect_err("the close timed out");
        assert!(
            matches!(error, Error::Protocol(ProtocolError::CloseTimeout)),
            "{error}"
        );
        assert_eq!(read_to_end(&mut raw).await, [0x88, 0x02, 0x03, 0xe8]);
    }

    #[tokio::test]
    async fn messages_arriving_during_sink_close_stay_readable() {
        let (mut raw, mut server) = raw_client(&Options::default()).await;
        let mut input = masked_text("late");
        input.extend_from_slice(&[0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8]);
        raw.write_all(&input).await.expect("write");
        timeout(WAIT, SinkExt::close(&mut server))
            .await
            .expect("in time")
            .expect("close");
        assert_eq!(
            server.read().await.expect("read"),
            Some(Message::text("late"))
        );
        assert_eq!(server.read().await.expect("read"), None);
        assert_eq!(
            server.close_frame().map(|frame| frame.code),
            Some(CloseCode::NORMAL)
        );
    }

    #[tokio::test]
    async fn poll_ready_waits_while_the_peer_does_not_read() {
        let (client_io, server_io) = tokio::io::duplex(1024);
        let (mut client, _server) = pair_with(
            client_io,
            server_io,
            &Options::default(),
            &Options::default(),
        )
        .await;
        client
            .write(Message::binary(vec![0; 100_000]))
            .await
            .expect("room for the first");
        let blocked = timeout(
            Duration::from_millis(100),
            client.write(Message::binary(vec![1])),
        )
        .await;
        assert!(
            blocked.is_err(),
            "over the high-water mark, write waits for the transport"
        );
    }

    #[test]
    fn futures_are_send() {
        fn assert_send<T: Send>(_: T) {}
        let options = Options::default();
        let (_, io) = tokio::io::duplex(1);
        assert_send(accept_with(io, &options, async |request: &Request| {
            tokio::task::yield_now().await;
            Ok(Accept::new().subprotocol(request.target()))
        }));
        let (_, io) = tokio::io::duplex(1);
        assert_send(accept_with(io, &options, |request: &Request| {
            let target = request.target().to_owned();
            async move { Ok(Accept::new().subprotocol(target)) }
        }));
        assert_send(connect_async("ws://localhost"));
    }
}
