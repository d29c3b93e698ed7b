//! The blocking adapter: a WebSocket over any `Read + Write` stream.
//!
//! Timers (handshake timeout, keepalive, close timeout) run whenever a read returns
//! `WouldBlock` or `TimedOut`, so give the stream a read timeout to act as the clock's tick, and
//! a write timeout so a peer that never reads cannot block a writer forever: [`connect`] does
//! both, and a server calls [`configure_tcp`] on each accepted `TcpStream`.

use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown as NetShutdown, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::Options;
use crate::error::Error;
use crate::proto::handshake::{Accept, ClientRequest, Reject, Request, RequestParser, Response};
use crate::proto::{CloseFrame, Connection, Event, Message, PreparedMessage, Rng, Transmit};
pub use crate::tls::sync_io::MaybeTlsStream;
use crate::upgrade;

/// How often a stream opened by this module wakes up to run timers when idle.
const TICK: Duration = Duration::from_millis(250);

/// A WebSocket connection over a blocking stream.
///
/// It owns the stream and the protocol [`Connection`]; every call is a short loop that writes
/// what the connection queued and reads what it needs.
#[derive(Debug)]
pub struct WebSocket<S> {
    stream: S,
    conn: Connection,
    read_buf: Vec<u8>,
    peer_close: Option<CloseFrame>,
    finished: bool,
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
    let mut parser = RequestParser::new(options.handshake.clone());
    let mut buf = vec![0; 4096];
    let request = loop {
        let n = read_before(&mut stream, &mut buf, deadline)?;
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
                let _ = stream
                    .write_all(&error.response().encode())
                    .and_then(|()| stream.flush());
                return Err(error.into());
            }
        }
    };
    let response = match decide(&request) {
        Ok(accept) => upgrade::server(options, &request, accept),
        Err(reject) => {
            stream.write_all(&reject.encode())?;
            stream.flush()?;
            return Err(Error::Rejected(reject.status()));
        }
    };
    let (response, conn) = match response {
        Ok(accepted) => accepted,
        Err(error) => {
            let _ = stream
                .write_all(&error.response().encode())
                .and_then(|()| stream.flush());
            return Err(error.into());
        }
    };
    stream.write_all(&response)?;
    stream.flush()?;
    let mut ws = WebSocket::from_connection(stream, conn, options);
    ws.conn.receive(request.leftover());
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
    client(stream, &request, &options)
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
    let mut rng = Rng::from_os();
    let (bytes, mut parser) = upgrade::client_request(options, request)?.encode(&mut rng);
    stream.write_all(&bytes)?;
    stream.flush()?;
    let mut buf = vec![0; 4096];
    let response = loop {
        let n = read_before(&mut stream, &mut buf, deadline)?;
        let parsed = if n == 0 {
            return Err(parser.receive_eof().into());
        } else {
            parser.receive(&buf[..n])?
        };
        if let Some(response) = parsed {
            break response;
        }
    };
    let conn = upgrade::client(options, &response, rng)?;
    let mut ws = WebSocket::from_connection(stream, conn, options);
    ws.conn.receive(response.leftover());
    Ok((ws, response))
}

impl<S: Read + Write> WebSocket<S> {
    /// Wraps a stream whose handshake is already done; `conn` must have been given the bytes
    /// read past the handshake.
    pub fn from_connection(stream: S, conn: Connection, options: &Options) -> Self {
        Self {
            stream,
            conn,
            read_buf: vec![0; options.read_chunk.max(1)],
            peer_close: None,
            finished: false,
        }
    }

    /// Reads the next data message, answering pings on the way. Returns `Ok(None)` once the
    /// closing handshake has completed; [`WebSocket::close_frame`] then tells the peer's code.
    pub fn read(&mut self) -> Result<Option<Message>, Error> {
        next_message(|| self.read_event())
    }

    /// Reads the next event of any kind (messages, chunks in streaming mode, pings, pongs, the
    /// close). Returns `Ok(None)` after the close has been reported.
    pub fn read_event(&mut self) -> Result<Option<Event>, Error> {
        loop {
            flush_transmits(&mut self.conn, &mut self.stream)?;
            match self.conn.poll_event() {
                Some(Ok(Event::Closed(frame))) => {
                    self.peer_close.clone_from(&frame);
                    self.finish()?;
                    return Ok(Some(Event::Closed(frame)));
                }
                Some(Ok(event)) => return Ok(Some(event)),
                Some(Err(error)) => {
                    self.finished = true;
                    let _ = flush_transmits(&mut self.conn, &mut self.stream);
                    return Err(error.into());
                }
                None if self.finished || self.conn.is_terminated() => return Ok(None),
                None => fill(&mut self.conn, &mut self.stream, &mut self.read_buf)?,
            }
        }
    }

    /// Sends a message and writes it out.
    pub fn send(&mut self, message: Message) -> Result<(), Error> {
        self.write(message)?;
        self.flush()
    }

    /// Queues a message without writing it; [`WebSocket::flush`] writes everything queued in as
    /// few writes as possible.
    pub fn write(&mut self, message: Message) -> Result<(), Error> {
        self.queue(|conn| conn.send(message))
    }

    /// Queues through `send` unless the connection is over.
    fn queue(
        &mut self,
        send: impl FnOnce(&mut Connection) -> Result<(), crate::proto::SendError>,
    ) -> Result<(), Error> {
        if self.finished {
            return Err(Error::AlreadyClosed);
        }
        send(&mut self.conn)?;
        Ok(())
    }

    /// Sends a binary message copied from `data` and writes it out: the fastest way to send a
    /// short message the caller holds as a slice (see [`Connection::send_binary`]).
    pub fn send_binary(&mut self, data: &[u8]) -> Result<(), Error> {
        self.queue(|conn| conn.send_binary(data))?;
        self.flush()
    }

    /// Sends a text message copied from `text` and writes it out; see
    /// [`send_binary`](Self::send_binary).
    pub fn send_text(&mut self, text: &str) -> Result<(), Error> {
        self.queue(|conn| conn.send_text(text))?;
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
        self.queue(|conn| conn.send_prepared(message))
    }

    /// Writes everything queued.
    pub fn flush(&mut self) -> Result<(), Error> {
        flush_transmits(&mut self.conn, &mut self.stream)
    }

    /// Sends a ping.
    pub fn ping(&mut self, data: impl Into<bytes::Bytes>) -> Result<(), Error> {
        self.conn.ping(data)?;
        self.flush()
    }

    /// Starts the closing handshake; keep calling [`WebSocket::read`] until it returns
    /// `Ok(None)` to complete it. Does nothing if the closing handshake already started.
    pub fn close(&mut self, frame: Option<CloseFrame>) -> Result<(), Error> {
        if self.conn.is_open() {
            self.conn.close(frame)?;
        }
        self.flush()
    }

    /// The peer's close frame, once the closing handshake has completed.
    pub fn close_frame(&self) -> Option<&CloseFrame> {
        self.peer_close.as_ref()
    }

    /// The protocol state machine.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// The underlying stream; reading or writing it directly corrupts the connection.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    /// Gives the stream back.
    pub fn into_inner(self) -> S {
        self.stream
    }

    /// Completes the end of the connection: writes the close echo and, for a client, waits
    /// (bounded by the close timeout) for the server to close the transport first.
    fn finish(&mut self) -> Result<(), Error> {
        self.finished = true;
        while !self.conn.is_terminated() {
            flush_transmits(&mut self.conn, &mut self.stream)?;
            if self.conn.is_terminated() {
                break;
            }
            match fill(&mut self.conn, &mut self.stream, &mut self.read_buf) {
                Ok(()) => {}
                // The connection is already over; a reset now loses nothing.
                Err(_) => break,
            }
        }
        Ok(())
    }
}

impl WebSocket<TcpStream> {
    /// Splits the connection into a reader and a writer for two threads.
    ///
    /// The reader blocks in `read` without holding any lock; both halves write through the same
    /// locked connection, so pongs and the close echo owed by the reader still go out while the
    /// writer is idle.
    pub fn split(self) -> io::Result<(Reader, Writer)> {
        let read_stream = self.stream.try_clone()?;
        let shared = Arc::new(Mutex::new(Shared {
            conn: self.conn,
            stream: self.stream,
            peer_close: self.peer_close,
            finished: self.finished,
        }));
        let reader = Reader {
            stream: read_stream,
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
        match self.stream {
            MaybeTlsStream::Plain(stream) => WebSocket {
                stream,
                conn: self.conn,
                read_buf: self.read_buf,
                peer_close: self.peer_close,
                finished: self.finished,
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
    shared: Arc<Mutex<Shared>>,
    read_buf: Vec<u8>,
}

/// The writing half of a split [`WebSocket`].
#[derive(Debug, Clone)]
pub struct Writer {
    shared: Arc<Mutex<Shared>>,
}

#[derive(Debug)]
struct Shared {
    conn: Connection,
    stream: TcpStream,
    peer_close: Option<CloseFrame>,
    finished: bool,
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    // A panic elsewhere while holding the lock leaves the connection usable: every operation
    // on it is a complete state transition.
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Reader {
    /// Reads the next data message; `Ok(None)` once the closing handshake completed.
    pub fn read(&mut self) -> Result<Option<Message>, Error> {
        next_message(|| self.read_event())
    }

    /// Reads the next event of any kind; `Ok(None)` after the close has been reported.
    pub fn read_event(&mut self) -> Result<Option<Event>, Error> {
        loop {
            {
                let mut guard = lock(&self.shared);
                let shared = &mut *guard;
                flush_tcp(&mut shared.conn, &mut shared.stream)?;
                match shared.conn.poll_event() {
                    Some(Ok(Event::Closed(frame))) => {
                        shared.peer_close.clone_from(&frame);
                        shared.finished = true;
                        flush_tcp(&mut shared.conn, &mut shared.stream)?;
                        return Ok(Some(Event::Closed(frame)));
                    }
                    Some(Ok(event)) => return Ok(Some(event)),
                    Some(Err(error)) => {
                        shared.finished = true;
                        let _ = flush_tcp(&mut shared.conn, &mut shared.stream);
                        return Err(error.into());
                    }
                    None if shared.finished || shared.conn.is_terminated() => return Ok(None),
                    None => {}
                }
            }
            // Blocking read without the lock, so the writer is never stuck behind it.
            let input = read_input(&mut self.stream, &mut self.read_buf);
            let mut guard = lock(&self.shared);
            apply_input(&mut guard.conn, &self.read_buf, input)?;
        }
    }

    /// The peer's close frame, once the closing handshake has completed.
    pub fn close_frame(&self) -> Option<CloseFrame> {
        lock(&self.shared).peer_close.clone()
    }
}

impl Writer {
    /// Sends a message and writes it out.
    pub fn send(&self, message: Message) -> Result<(), Error> {
        let mut guard = lock(&self.shared);
        let shared = &mut *guard;
        if shared.finished {
            return Err(Error::AlreadyClosed);
        }
        shared.conn.send(message)?;
        flush_tcp(&mut shared.conn, &mut shared.stream)
    }

    /// Sends a message prepared once for many connections and writes it out.
    pub fn send_prepared(&self, message: &PreparedMessage) -> Result<(), Error> {
        let mut guard = lock(&self.shared);
        let shared = &mut *guard;
        if shared.finished {
            return Err(Error::AlreadyClosed);
        }
        shared.conn.send_prepared(message)?;
        flush_tcp(&mut shared.conn, &mut shared.stream)
    }

    /// Sends a ping.
    pub fn ping(&self, data: impl Into<bytes::Bytes>) -> Result<(), Error> {
        let mut guard = lock(&self.shared);
        let shared = &mut *guard;
        shared.conn.ping(data)?;
        flush_tcp(&mut shared.conn, &mut shared.stream)
    }

    /// Starts the closing handshake; the reader sees `Ok(None)` once it completes. Does nothing
    /// if the closing handshake already started.
    pub fn close(&self, frame: Option<CloseFrame>) -> Result<(), Error> {
        let mut guard = lock(&self.shared);
        let shared = &mut *guard;
        if shared.conn.is_open() {
            shared.conn.close(frame)?;
        }
        flush_tcp(&mut shared.conn, &mut shared.stream)
    }
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
        Err(error) if error.kind() == io::ErrorKind::ConnectionReset => conn.receive_eof(),
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

/// Reads once from the transport into the connection and runs due timers.
fn fill<S: Read>(conn: &mut Connection, stream: &mut S, buf: &mut [u8]) -> Result<(), Error> {
    let now = Instant::now();
    if conn
        .poll_timeout(now)
        .is_some_and(|deadline| deadline <= now)
    {
        conn.handle_timeout(now);
        return Ok(());
    }
    let input = read_input(stream, buf);
    apply_input(conn, buf, input)
}

/// Writes every queued transmit. A shutdown cannot be expressed on a generic stream: the
/// transport closes when the `WebSocket` is dropped.
fn flush_transmits<S: Write>(conn: &mut Connection, stream: &mut S) -> Result<(), Error> {
    flush_then(conn, stream, |_| {})
}

/// Writes every queued transmit, shutting a TCP stream's write side down when asked.
fn flush_tcp(conn: &mut Connection, stream: &mut TcpStream) -> Result<(), Error> {
    flush_then(conn, stream, |stream| {
        // Already shut or reset: nothing left to tell the peer.
        let _ = stream.shutdown(NetShutdown::Write);
    })
}

fn flush_then<S: Write>(
    conn: &mut Connection,
    stream: &mut S,
    shutdown: impl FnOnce(&mut S),
) -> Result<(), Error> {
    let mut wrote = false;
    // Everything queued in one vectored write when the stream supports it; what a write does
    // not take stays queued in the connection.
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
            Err(error) => return Err(error.into()),
        }
    }
    if let Some(Transmit::Shutdown) = conn.poll_transmit() {
        stream.flush()?;
        shutdown(stream);
        return Ok(());
    }
    if wrote {
        stream.flush()?;
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
            return Err(Error::HandshakeTimeout);
        }
        match read_input(stream, buf)? {
            Input::Data(n) => return Ok(n),
            Input::Eof => return Ok(0),
            Input::Tick => {}
        }
    }
}
