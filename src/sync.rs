//! The blocking adapter: a WebSocket over any `Read + Write` stream.
//!
//! Timers (handshake timeout, keepalive, close timeout) run whenever a read returns
//! `WouldBlock` or `TimedOut`, so give the stream a read timeout to act as the clock's tick, and
//! a write timeout so a peer that never reads cannot block a writer forever: [`connect`] does
//! both, and a server calls [`configure_tcp`] on each accepted `TcpStream`.
//!
//! # Streaming
//!
//! A message too large to hold at once goes out in pieces with
//! [`WebSocket::send_fragment`] (or [`Writer::send_fragment`]); pings and the close may go
//! out between the pieces. To receive in pieces, set [`Config::streaming`] in
//! [`Options::connection`] and read with [`read_event`](WebSocket::read_event): data arrives
//! as [`Event::MessageChunk`]s (`last` marks a message's end) instead of whole messages, which
//! [`read`](WebSocket::read) would skip.
//!
//! ```no_run
//! use wsio::proto::Event;
//! let mut options = wsio::Options::default();
//! options.connection.streaming = true;
//! let request = wsio::proto::handshake::ClientRequest::new("ws://127.0.0.1:9002/upload")?;
//! let (mut ws, _) = wsio::sync::connect_with(request, &options)?;
//! while let Some(event) = ws.read_event()? {
//!     if let Event::MessageChunk { data, last, .. } = event {
//!         println!("{} bytes{}", data.len(), if last { ", end of message" } else { "" });
//!     }
//! }
//! # Ok::<(), wsio::Error>(())
//! ```
//!
//! [`Config::streaming`]: crate::proto::Config::streaming

use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown as NetShutdown, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::Options;
use crate::error::Error;
use crate::lock::lock;
use crate::proto::handshake::{Accept, ClientRequest, Reject, Request, Response};
use bytes::Bytes;

use crate::proto::{
    CloseFrame, CloseState, Connection, Event, Message, MessageKind, PreparedMessage, Transmit,
};
pub use crate::tls::sync_io::MaybeTlsStream;
use crate::upgrade::{self, ClientHandshake, HANDSHAKE_CHUNK, Refusal, ServerHandshake};

/// How often a stream opened by this module wakes up to run timers when idle.
const TICK: Duration = Duration::from_millis(250);

/// A WebSocket connection over a blocking stream.
///
/// It owns the stream and the protocol [`Connection`]; every call is a short loop that writes
/// what the connection queued and reads what it needs.
#[derive(Debug)]
pub struct WebSocket<S> {
    end: Endpoint<S>,
    read_buf: Vec<u8>,
}

/// Accepts a WebSocket handshake on `stream` with default options, taking any subprotocol
/// offer as declined.
///
/// For timers and the write timeout to work, prepare a `TcpStream` with [`configure_tcp`]:
///
/// ```no_run
/// use std::net::TcpListener;
/// let listener = TcpListener::bind("127.0.0.1:9002")?;
/// let (stream, _) = listener.accept()?;
/// wsio::sync::configure_tcp(&stream, &wsio::Options::default())?;
/// let mut ws = wsio::sync::accept(stream)?;
/// while let Some(message) = ws.read()? {
///     ws.send(message)?;
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn accept<S: Read + Write>(stream: S) -> Result<WebSocket<S>, Error> {
    accept_with(stream, &Options::default(), |_| Ok(Accept::new()))
}

/// Prepares a TCP stream for a [`WebSocket`]: no Nagle delay, a short read timeout as the
/// timers' tick, and [`Options::write_timeout`] on writes.
pub fn configure_tcp(stream: &TcpStream, options: &Options) -> io::Result<()> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(TICK))?;
    stream.set_write_timeout(options.write_timeout)
}

/// Accepts a WebSocket handshake after `decide` has seen the request: `Ok(Accept)` sends the
/// 101 response (with the chosen subprotocol and headers), `Err(Reject)` sends that HTTP
/// response instead and returns [`Error::Rejected`].
///
/// A malformed request gets its HTTP error response (400, 405, 414, 426, 431) and
/// [`Error::Handshake`].
pub fn accept_with<S, F>(mut stream: S, options: &Options, decide: F) -> Result<WebSocket<S>, Error>
where
    S: Read + Write,
    F: FnOnce(&Request) -> Result<Accept, Reject>,
{
    let deadline = options
        .handshake_timeout
        .map(|timeout| Instant::now() + timeout);
    let mut handshake = ServerHandshake::new(options);
    let mut buf = vec![0; HANDSHAKE_CHUNK];
    let pending = loop {
        let received = match read_before(&mut stream, &mut buf, deadline)? {
            0 => return Err(handshake.receive_eof()),
            n => handshake.receive(&buf[..n]),
        };
        match received {
            Ok(Some(pending)) => break pending,
            Ok(None) => {}
            Err(refusal) => return Err(refuse(&mut stream, refusal)),
        }
    };
    let answer = decide(pending.request());
    let accepted = match pending.decide(answer) {
        Ok(accepted) => accepted,
        Err(refusal) => return Err(refuse(&mut stream, refusal)),
    };
    stream.write_all(&accepted.response)?;
    stream.flush()?;
    let mut ws = WebSocket::from_connection(stream, accepted.connection, options);
    ws.end.conn.receive(&accepted.leftover);
    Ok(ws)
}

/// Connects to a `ws://` or `wss://` URL and performs the client handshake with default
/// options. `wss://` needs the feature `rustls` (see [`crate::tls`]).
///
/// ```no_run
/// let (mut ws, _response) = wsio::sync::connect("ws://127.0.0.1:9002/chat")?;
/// ws.send("hello".into())?;
/// let reply = ws.read()?;
/// ws.close(None)?;
/// # Ok::<(), wsio::Error>(())
/// ```
pub fn connect(url: &str) -> Result<(WebSocket<MaybeTlsStream>, Response), Error> {
    connect_with(ClientRequest::new(url)?, &Options::default())
}

/// Connects over TCP, and TLS for `wss://`, with a prepared request (subprotocols, headers) and
/// options; [`Options::handshake_timeout`] bounds the TLS and WebSocket handshakes together.
///
/// Without the feature `rustls`, a `wss://` request fails with [`Error::UnsupportedUrl`].
pub fn connect_with(
    request: ClientRequest,
    options: &Options,
) -> Result<(WebSocket<MaybeTlsStream>, Response), Error> {
    let (stream, options) = crate::tls::sync_io::open(&request, options)?;
    let (ws, response) = client(stream, &request, &options)?;
    Ok((ws.with_shutdown(MaybeTlsStream::shutdown_write), response))
}

/// Performs the client handshake over an already connected stream (TCP, TLS, anything).
///
/// A non-101 answer is returned as [`Error::Handshake`] holding the status, headers and body.
pub fn client<S: Read + Write>(
    mut stream: S,
    request: &ClientRequest,
    options: &Options,
) -> Result<(WebSocket<S>, Response), Error> {
    let deadline = options
        .handshake_timeout
        .map(|timeout| Instant::now() + timeout);
    let mut handshake = ClientHandshake::new(request, options)?;
    while let Some(bytes) = handshake.poll_transmit() {
        stream.write_all(&bytes)?;
    }
    stream.flush()?;
    let mut buf = vec![0; HANDSHAKE_CHUNK];
    let connected = loop {
        let received = match read_before(&mut stream, &mut buf, deadline)? {
            0 => return Err(handshake.receive_eof()),
            n => handshake.receive(&buf[..n])?,
        };
        if let Some(connected) = received {
            break connected;
        }
    };
    let mut ws = WebSocket::from_connection(stream, connected.connection, options);
    ws.end.conn.receive(&connected.leftover);
    Ok((ws, connected.response))
}

impl<S: Read + Write> WebSocket<S> {
    /// Wraps a stream whose handshake is already done; `conn` must have been given the bytes
    /// read past the handshake.
    pub fn from_connection(stream: S, conn: Connection, options: &Options) -> Self {
        Self {
            end: Endpoint::new(conn, stream, |_| {}),
            read_buf: vec![0; options.read_chunk.max(1)],
        }
    }

    /// Ends the write side with `shutdown` when the connection asks for it, for a stream type
    /// this crate knows how to shut (a TLS stream sends `close_notify` first).
    pub(crate) fn with_shutdown(mut self, shutdown: fn(&mut S)) -> Self {
        self.end.shutdown = shutdown;
        self
    }

    /// Reads the next data message, answering pings on the way. Returns `Ok(None)` once the
    /// closing handshake has completed; [`WebSocket::close_frame`] then tells the peer's code.
    pub fn read(&mut self) -> Result<Option<Message>, Error> {
        next_message(|| self.read_event())
    }

    /// Reads the next event of any kind (messages, chunks in streaming mode, pings, pongs, the
    /// close). Returns `Ok(None)` after the close has been reported.
    ///
    /// The close is reported once the closing handshake is complete: the echo is written and,
    /// for a client, the server has ended the transport (or the close timeout has passed), as
    /// for [`Reader::read_event`].
    pub fn read_event(&mut self) -> Result<Option<Event>, Error> {
        read_event(self)
    }

    /// Sends a message and writes it out.
    pub fn send(&mut self, message: Message) -> Result<(), Error> {
        self.write(message)?;
        self.flush()
    }

    /// Queues a message without writing it; [`WebSocket::flush`] writes everything queued in as
    /// few writes as possible.
    pub fn write(&mut self, message: Message) -> Result<(), Error> {
        self.end.queue(|conn| conn.send(message))
    }

    /// Sends a binary message copied from `data` and writes it out: the fastest way to send a
    /// short message the caller holds as a slice (see [`Connection::send_binary`]).
    pub fn send_binary(&mut self, data: &[u8]) -> Result<(), Error> {
        self.end.queue(|conn| conn.send_binary(data))?;
        self.flush()
    }

    /// Sends a text message copied from `text` and writes it out; see
    /// [`send_binary`](Self::send_binary).
    pub fn send_text(&mut self, text: &str) -> Result<(), Error> {
        self.end.queue(|conn| conn.send_text(text))?;
        self.flush()
    }

    /// Sends a message prepared once for many connections (see [`PreparedMessage`]) and writes
    /// it out.
    pub fn send_prepared(&mut self, message: &PreparedMessage) -> Result<(), Error> {
        self.write_prepared(message)?;
        self.flush()
    }

    /// Queues a prepared message without writing it, like [`write`](Self::write).
    pub fn write_prepared(&mut self, message: &PreparedMessage) -> Result<(), Error> {
        self.end.queue(|conn| conn.send_prepared(message))
    }

    /// Sends one fragment of a message streamed out piece by piece, and writes it out; `last`
    /// ends the message. Pings and the close may go out between fragments; other messages
    /// wait until the last one. Text fragments must make valid UTF-8 together.
    ///
    /// ```no_run
    /// use wsio::proto::MessageKind;
    /// let (mut ws, _) = wsio::sync::connect("ws://127.0.0.1:9002")?;
    /// ws.send_fragment(MessageKind::Text, "hello, ", false)?;
    /// ws.ping("still there?")?;
    /// ws.send_fragment(MessageKind::Text, "world", true)?;
    /// # Ok::<(), wsio::Error>(())
    /// ```
    pub fn send_fragment(
        &mut self,
        kind: MessageKind,
        data: impl Into<Bytes>,
        last: bool,
    ) -> Result<(), Error> {
        self.end
            .queue(|conn| conn.send_fragment(kind, data, last))?;
        self.flush()
    }

    /// Writes everything queued.
    pub fn flush(&mut self) -> Result<(), Error> {
        self.end.flush()
    }

    /// Sends a ping.
    pub fn ping(&mut self, data: impl Into<bytes::Bytes>) -> Result<(), Error> {
        self.end.conn.ping(data)?;
        self.flush()
    }

    /// Starts the closing handshake; keep calling [`WebSocket::read`] until it returns
    /// `Ok(None)` to complete it. Does nothing if the closing handshake already started.
    pub fn close(&mut self, frame: Option<CloseFrame>) -> Result<(), Error> {
        self.end.close(frame)
    }

    /// The peer's close frame, once the closing handshake has completed.
    pub fn close_frame(&self) -> Option<&CloseFrame> {
        self.end.conn.peer_close_frame().flatten()
    }

    /// The protocol state machine.
    pub fn connection(&self) -> &Connection {
        &self.end.conn
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &S {
        &self.end.stream
    }

    /// The underlying stream; reading or writing it directly corrupts the connection.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.end.stream
    }

    /// Gives the stream back.
    pub fn into_inner(self) -> S {
        self.end.stream
    }
}

impl WebSocket<TcpStream> {
    /// Splits the connection into a reader and a writer for two threads.
    ///
    /// The reader blocks in `read` without holding any lock; both halves write through the same
    /// locked connection, so pongs and the close echo owed by the reader still go out while the
    /// writer is idle.
    pub fn split(self) -> io::Result<(Reader, Writer)> {
        let stream = self.end.stream.try_clone()?;
        let end = Endpoint {
            shutdown: shutdown_tcp,
            ..self.end
        };
        let shared = Arc::new(Mutex::new(end));
        let reader = Reader {
            stream,
            shared: Arc::clone(&shared),
            read_buf: self.read_buf,
        };
        Ok((reader, Writer { shared }))
    }
}

impl WebSocket<MaybeTlsStream> {
    /// Splits a connection made by [`connect`] into a reader and a writer for two threads, like
    /// [`WebSocket::<TcpStream>::split`]. A TLS connection cannot be split: it returns an
    /// [`io::ErrorKind::Unsupported`] error.
    pub fn split(self) -> io::Result<(Reader, Writer)> {
        let Endpoint {
            conn,
            stream,
            reported,
            ..
        } = self.end;
        match stream {
            MaybeTlsStream::Plain(stream) => WebSocket {
                end: Endpoint {
                    conn,
                    stream,
                    reported,
                    shutdown: shutdown_tcp,
                },
                read_buf: self.read_buf,
            }
            .split(),
            #[cfg(feature = "rustls-manual-roots")]
            MaybeTlsStream::Rustls(_) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "a TLS connection cannot be split across threads",
            )),
        }
    }
}

/// The reading half of a split [`WebSocket`].
#[derive(Debug)]
pub struct Reader {
    stream: TcpStream,
    shared: Arc<Mutex<Endpoint<TcpStream>>>,
    read_buf: Vec<u8>,
}

/// The writing half of a split [`WebSocket`].
#[derive(Debug, Clone)]
pub struct Writer {
    shared: Arc<Mutex<Endpoint<TcpStream>>>,
}

impl Reader {
    /// Reads the next data message; `Ok(None)` once the closing handshake completed.
    pub fn read(&mut self) -> Result<Option<Message>, Error> {
        next_message(|| self.read_event())
    }

    /// Reads the next event of any kind; `Ok(None)` after the close has been reported.
    ///
    /// Reports the close at the same point as [`WebSocket::read_event`]. The blocking read
    /// holds no lock, so the [`Writer`] is never stuck behind it.
    pub fn read_event(&mut self) -> Result<Option<Event>, Error> {
        read_event(self)
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

impl Writer {
    /// Sends a message and writes it out.
    pub fn send(&self, message: Message) -> Result<(), Error> {
        let mut end = lock(&self.shared);
        end.queue(|conn| conn.send(message))?;
        end.flush()
    }

    /// Sends a message prepared once for many connections and writes it out.
    pub fn send_prepared(&self, message: &PreparedMessage) -> Result<(), Error> {
        let mut end = lock(&self.shared);
        end.queue(|conn| conn.send_prepared(message))?;
        end.flush()
    }

    /// Sends one fragment of a streamed message and writes it out, like
    /// [`WebSocket::send_fragment`]. Messages sent from other threads meanwhile fail until the
    /// last fragment is sent.
    pub fn send_fragment(
        &self,
        kind: MessageKind,
        data: impl Into<Bytes>,
        last: bool,
    ) -> Result<(), Error> {
        let mut end = lock(&self.shared);
        end.queue(|conn| conn.send_fragment(kind, data, last))?;
        end.flush()
    }

    /// Sends a ping.
    pub fn ping(&self, data: impl Into<bytes::Bytes>) -> Result<(), Error> {
        let mut end = lock(&self.shared);
        end.conn.ping(data)?;
        end.flush()
    }

    /// Starts the closing handshake; the reader sees `Ok(None)` once it completes. Does nothing
    /// if the closing handshake already started.
    pub fn close(&self, frame: Option<CloseFrame>) -> Result<(), Error> {
        lock(&self.shared).close(frame)
    }
}

/// The connection and the stream it writes to: owned by a [`WebSocket`], shared behind a mutex
/// by a [`Reader`] and [`Writer`].
///
/// The connection's [`close_state`](Connection::close_state) says what is still owed to the
/// stream; the peer's close is reported once it is `Terminated`.
#[derive(Debug)]
struct Endpoint<W> {
    conn: Connection,
    stream: W,
    /// The end of the connection (the close, an error) was reported: nothing more is read or
    /// sent.
    reported: bool,
    /// Shuts the stream's write side down when the connection asks for it: the streams
    /// [`connect`] opens, those a [`tls::Acceptor`](crate::tls::Acceptor) accepts (TLS sends
    /// `close_notify` first) and a split `TcpStream` are shut; a generic stream cannot be, and
    /// closes when dropped.
    shutdown: fn(&mut W),
}

/// What the read loop does next.
enum Next {
    /// Hand this out.
    Report(Option<Event>),
    /// Read from the transport.
    Read,
}

/// A side that reads events: a whole [`WebSocket`] or a [`Reader`]. Both run [`read_event`],
/// so they report the same events at the same points.
trait ReadSide {
    type Stream: Write;

    /// Runs `f` on the endpoint, under the lock when it is shared.
    fn with_endpoint<R>(&mut self, f: impl FnOnce(&mut Endpoint<Self::Stream>) -> R) -> R;

    /// Reads once from the transport, holding no lock while it blocks, and hands what it read
    /// to the connection.
    fn read_once(&mut self) -> Result<(), Error>;
}

impl<S: Read + Write> ReadSide for WebSocket<S> {
    type Stream = S;

    fn with_endpoint<R>(&mut self, f: impl FnOnce(&mut Endpoint<S>) -> R) -> R {
        f(&mut self.end)
    }

    fn read_once(&mut self) -> Result<(), Error> {
        let input = read_input(&mut self.end.stream, &mut self.read_buf);
        apply_input(&mut self.end.conn, &self.read_buf, input)
    }
}

impl ReadSide for Reader {
    type Stream = TcpStream;

    fn with_endpoint<R>(&mut self, f: impl FnOnce(&mut Endpoint<TcpStream>) -> R) -> R {
        f(&mut lock(&self.shared))
    }

    fn read_once(&mut self) -> Result<(), Error> {
        let input = read_input(&mut self.stream, &mut self.read_buf);
        apply_input(&mut lock(&self.shared).conn, &self.read_buf, input)
    }
}

/// The read loop of both sides: write what is queued, report the next event, run due timers,
/// read.
fn read_event<R: ReadSide>(side: &mut R) -> Result<Option<Event>, Error> {
    loop {
        if let Next::Report(event) = side.with_endpoint(Endpoint::next)? {
            return Ok(event);
        }
        if let Err(error) = side.read_once() {
            return side.with_endpoint(|end| end.read_failed(error));
        }
    }
}

impl<W: Write> Endpoint<W> {
    fn new(conn: Connection, stream: W, shutdown: fn(&mut W)) -> Self {
        Self {
            conn,
            stream,
            reported: false,
            shutdown,
        }
    }

    /// Queues through `send` unless the read side has taken the connection's last event.
    fn queue(
        &mut self,
        send: impl FnOnce(&mut Connection) -> Result<(), crate::proto::SendError>,
    ) -> Result<(), Error> {
        let ended = self.reported || self.conn.close_state().events_ended();
        upgrade::queue(&mut self.conn, ended, send)
    }

    fn close(&mut self, frame: Option<CloseFrame>) -> Result<(), Error> {
        if self.conn.is_open() {
            upgrade::close(&mut self.conn, frame)?;
        }
        self.flush()
    }

    /// Writes what is queued and says what the read loop does next: report an event, or read
    /// (after running the timers that are due).
    fn next(&mut self) -> Result<Next, Error> {
        loop {
            self.flush()?;
            if self.reported {
                return Ok(Next::Report(None));
            }
            // Once the last event is out, `poll_event` has nothing more: the close waits below.
            match self.conn.poll_event() {
                // Reported once the echo is written and, for a client, the server has ended the
                // transport (bounded by the close timeout).
                Some(Ok(Event::Closed(_frame))) => {
                    #[cfg(feature = "tracing")]
                    crate::trace::close_received(self.conn.role(), _frame.as_ref());
                    continue;
                }
                Some(Ok(event)) => return Ok(Next::Report(Some(event))),
                Some(Err(error)) => {
                    #[cfg(feature = "tracing")]
                    crate::trace::failed(self.conn.role(), &error);
                    self.reported = true;
                    let _ = self.flush();
                    return Err(error.into());
                }
                None => {}
            }
            if self.conn.close_state() == CloseState::Terminated {
                return Ok(Next::Report(self.report_close()));
            }
            let now = Instant::now();
            if self
                .conn
                .poll_timeout(now)
                .is_some_and(|deadline| deadline <= now)
            {
                self.conn.handle_timeout(now);
                continue;
            }
            return Ok(Next::Read);
        }
    }

    /// A read failed. Once the peer's close has arrived, that is the end of the closing
    /// handshake (the connection lost nothing it can use); before, it is the error.
    fn read_failed(&mut self, error: Error) -> Result<Option<Event>, Error> {
        if !self.reported && self.conn.peer_close_frame().is_some() {
            return Ok(self.report_close());
        }
        self.reported = true;
        Err(error)
    }

    /// Reports the end: the peer's close, once the connection has handed it out.
    fn report_close(&mut self) -> Option<Event> {
        self.reported = true;
        let frame = self.conn.peer_close_frame()?;
        Some(Event::Closed(frame.cloned()))
    }

    /// Writes every queued transmit, in one vectored write when the stream supports it; what a
    /// write does not take stays queued in the connection. Shuts the stream down when asked.
    fn flush(&mut self) -> Result<(), Error> {
        let (conn, stream) = (&mut self.conn, &mut self.stream);
        let mut wrote = false;
        loop {
            const SLICES: usize = 8;
            let mut slices = [IoSlice::new(&[]); SLICES];
            let filled = conn.transmit_slices(&mut slices);
            let queued: usize = slices[..filled].iter().map(|slice| slice.len()).sum();
            let result = match filled {
                0 => break,
                1 => stream.write(&slices[0]),
                _ => stream.write_vectored(&slices[..filled]),
            };
            match result {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero).into()),
                Ok(written) => {
                    conn.advance_transmit(written);
                    wrote = true;
                    if written == queued && filled < SLICES {
                        // That was everything.
                        break;
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => {
                    // A socket's write timeout: `WouldBlock` on Unix, `TimedOut` on Windows.
                    #[cfg(feature = "tracing")]
                    if matches!(
                        error.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) {
                        crate::trace::write_timeout(conn.role());
                    }
                    return Err(error.into());
                }
            }
        }
        if let Some(Transmit::Shutdown) = conn.poll_transmit() {
            stream.flush()?;
            (self.shutdown)(stream);
            return Ok(());
        }
        if wrote {
            stream.flush()?;
        }
        Ok(())
    }
}

fn shutdown_tcp(stream: &mut TcpStream) {
    // Already shut or reset: nothing left to tell the peer.
    let _ = stream.shutdown(NetShutdown::Write);
}

/// Skips events until a message or the end of the connection.
fn next_message(
    mut read_event: impl FnMut() -> Result<Option<Event>, Error>,
) -> Result<Option<Message>, Error> {
    loop {
        match read_event()? {
            Some(Event::Message(message)) => return Ok(Some(message)),
            Some(Event::Closed(_)) | None => return Ok(None),
            Some(_) => {}
        }
    }
}

/// What one read from the transport gave.
enum Input {
    Data(usize),
    Eof,
    /// The read timed out: a tick for the timers.
    Tick,
}

fn read_input<S: Read>(stream: &mut S, buf: &mut [u8]) -> io::Result<Input> {
    loop {
        return match stream.read(buf) {
            Ok(0) => Ok(Input::Eof),
            Ok(n) => Ok(Input::Data(n)),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Ok(Input::Tick)
            }
            Err(error) => Err(error),
        };
    }
}

fn apply_input(conn: &mut Connection, buf: &[u8], input: io::Result<Input>) -> Result<(), Error> {
    match input {
        Ok(Input::Data(n)) => conn.receive(&buf[..n]),
        Ok(Input::Eof) => conn.receive_eof(),
        // A read that timed out found nothing: the connection is idle.
        Ok(Input::Tick) => conn.release_idle_memory(),
        Err(error) if upgrade::is_end_of_stream(&error) => conn.receive_eof(),
        Err(error) => return Err(error.into()),
    }
    let now = Instant::now();
    if conn
        .poll_timeout(now)
        .is_some_and(|deadline| deadline <= now)
    {
        conn.handle_timeout(now);
    }
    Ok(())
}

/// Reads during the handshake, honouring its deadline on every tick.
fn read_before<S: Read>(
    stream: &mut S,
    buf: &mut [u8],
    deadline: Option<Instant>,
) -> Result<usize, Error> {
    loop {
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            #[cfg(feature = "tracing")]
            crate::trace::handshake_timeout();
            return Err(Error::HandshakeTimeout);
        }
        match read_input(stream, buf)? {
            Input::Data(n) => return Ok(n),
            Input::Eof => return Ok(0),
            Input::Tick => {}
        }
    }
}

/// Writes a refusal's response, best effort (the peer may already be gone), and returns its
/// error.
fn refuse<S: Write>(stream: &mut S, refusal: Refusal) -> Error {
    let _ = stream
        .write_all(&refusal.response())
        .and_then(|()| stream.flush());
    refusal.into()
}
