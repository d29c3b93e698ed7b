//! TLS for the blocking adapter: the stream `connect` returns, and the TLS handshakes of both
//! roles over a `TcpStream` whose read timeout ticks the handshake deadline.

use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::net::TcpStream;
#[cfg(feature = "rustls-manual-roots")]
use std::time::Instant;

use crate::Options;
use crate::error::Error;
use crate::proto::handshake::ClientRequest;
#[cfg(feature = "rustls-manual-roots")]
use crate::proto::handshake::{Accept, Reject, Request};
#[cfg(feature = "rustls-manual-roots")]
use crate::sync::WebSocket;

/// The stream of a connection opened by [`connect`](crate::sync::connect): plain TCP for
/// `ws://`, TLS over TCP for `wss://` (feature `rustls`).
///
/// It reads and writes like the stream it holds, and derefs to the `TcpStream` underneath (for
/// its address or timeouts).
#[derive(Debug)]
#[non_exhaustive]
pub enum MaybeTlsStream {
    /// A `ws://` connection.
    Plain(TcpStream),
    /// A `wss://` connection (boxed: a TLS session takes a few KiB).
    #[cfg(feature = "rustls-manual-roots")]
    Rustls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

/// The TCP stream's own methods (`local_addr`, `set_read_timeout`, `nodelay`…) apply to the
/// stream underneath either way.
impl std::ops::Deref for MaybeTlsStream {
    type Target = TcpStream;

    fn deref(&self) -> &TcpStream {
        self.get_ref()
    }
}

impl MaybeTlsStream {
    /// The TCP stream underneath.
    pub fn get_ref(&self) -> &TcpStream {
        match self {
            Self::Plain(stream) => stream,
            #[cfg(feature = "rustls-manual-roots")]
            Self::Rustls(stream) => stream.get_ref(),
        }
    }

    /// Ends the write side when the connection asks for it: `close_notify` first over TLS,
    /// then the TCP write side. Best effort: a peer that already went away is not told.
    pub(crate) fn shutdown_write(&mut self) {
        match self {
            Self::Plain(stream) => shutdown_tcp(stream),
            #[cfg(feature = "rustls-manual-roots")]
            Self::Rustls(stream) => close_tls(&mut stream.conn, &mut stream.sock),
        }
    }
}

/// Shuts a TCP stream's write side down; already shut or reset, there is nothing left to tell
/// the peer.
fn shutdown_tcp(stream: &mut TcpStream) {
    let _ = stream.shutdown(std::net::Shutdown::Write);
}

/// Sends `close_notify` and shuts the TCP write side down, each within the socket's write
/// timeout.
#[cfg(feature = "rustls-manual-roots")]
fn close_tls<C, Data>(conn: &mut C, sock: &mut TcpStream)
where
    C: std::ops::DerefMut<Target = rustls::ConnectionCommon<Data>>,
{
    conn.send_close_notify();
    while conn.wants_write() {
        match conn.write_tls(sock) {
            Ok(0) => break,
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            // Gone, reset, or not reading within the write timeout: stop telling it.
            Err(_) => break,
        }
    }
    shutdown_tcp(sock);
}

/// A TLS stream that ends without `close_notify` reads as a plain end of stream, as
/// [`crate::tls`] explains under "Ends of stream": the WebSocket closing handshake tells a
/// finished connection from a truncated one.
impl Read for MaybeTlsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Plain(stream) => stream.read(buf),
            #[cfg(feature = "rustls-manual-roots")]
            Self::Rustls(stream) => eof_as_end(stream.read(buf)),
        }
    }

    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        match self {
            Self::Plain(stream) => stream.read_vectored(bufs),
            #[cfg(feature = "rustls-manual-roots")]
            Self::Rustls(stream) => eof_as_end(stream.read_vectored(bufs)),
        }
    }
}

#[cfg(feature = "rustls-manual-roots")]
fn eof_as_end(read: io::Result<usize>) -> io::Result<usize> {
    match read {
        Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
        read => read,
    }
}

impl Write for MaybeTlsStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Plain(stream) => stream.write(buf),
            #[cfg(feature = "rustls-manual-roots")]
            Self::Rustls(stream) => stream.write(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Self::Plain(stream) => stream.write_vectored(bufs),
            #[cfg(feature = "rustls-manual-roots")]
            Self::Rustls(stream) => stream.write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Plain(stream) => stream.flush(),
            #[cfg(feature = "rustls-manual-roots")]
            Self::Rustls(stream) => stream.flush(),
        }
    }
}

/// The stream of a connection accepted by [`Acceptor::accept`](crate::tls::Acceptor::accept):
/// TLS over a `TcpStream`.
///
/// It reads and writes like the rustls stream it holds, except that a peer ending the TCP
/// stream without `close_notify` reads as a plain end of stream (see [`crate::tls`], "Ends of
/// stream"). When the WebSocket connection ends its write side, this sends `close_notify` and
/// shuts the TCP write side down. It derefs to the `TcpStream` underneath.
#[cfg(feature = "rustls-manual-roots")]
#[derive(Debug)]
pub struct ServerStream {
    inner: rustls::StreamOwned<rustls::ServerConnection, TcpStream>,
}

#[cfg(feature = "rustls-manual-roots")]
impl ServerStream {
    /// The TCP stream underneath.
    pub fn get_ref(&self) -> &TcpStream {
        self.inner.get_ref()
    }

    /// The TLS session: the client's SNI name, the ALPN protocol, its certificates.
    pub fn conn(&self) -> &rustls::ServerConnection {
        &self.inner.conn
    }

    /// The rustls stream this wraps.
    pub fn into_inner(self) -> rustls::StreamOwned<rustls::ServerConnection, TcpStream> {
        self.inner
    }

    /// Sends `close_notify` and shuts the TCP write side down.
    pub(crate) fn shutdown_write(&mut self) {
        close_tls(&mut self.inner.conn, &mut self.inner.sock);
    }
}

/// The TCP stream's own methods apply to the stream underneath.
#[cfg(feature = "rustls-manual-roots")]
impl std::ops::Deref for ServerStream {
    type Target = TcpStream;

    fn deref(&self) -> &TcpStream {
        self.get_ref()
    }
}

#[cfg(feature = "rustls-manual-roots")]
impl Read for ServerStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        eof_as_end(self.inner.read(buf))
    }

    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        eof_as_end(self.inner.read_vectored(bufs))
    }
}

#[cfg(feature = "rustls-manual-roots")]
impl Write for ServerStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.inner.write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Opens the transport for `request`: TCP, configured for the blocking adapter, and the TLS
/// handshake for `wss://`. Returns the options left for the WebSocket handshake (the TLS
/// handshake spends part of the timeout).
pub(crate) fn open(
    request: &ClientRequest,
    options: &Options,
) -> Result<(MaybeTlsStream, Options), Error> {
    #[cfg(feature = "rustls-manual-roots")]
    let started = Instant::now();
    #[cfg(feature = "rustls-manual-roots")]
    let connector = match request.is_secure() {
        true => Some(crate::tls::connector(options)?),
        false => None,
    };
    #[cfg(not(feature = "rustls-manual-roots"))]
    crate::upgrade::refuse_secure(request)?;
    let stream = TcpStream::connect((request.host(), request.port()))?;
    crate::sync::configure_tcp(&stream, options)?;
    #[cfg(feature = "rustls-manual-roots")]
    if let Some(connector) = connector {
        let mut conn = connector.client_connection(request.host())?;
        let mut stream = stream;
        handshake(&mut conn, &mut stream, options, started)?;
        let stream = MaybeTlsStream::Rustls(Box::new(rustls::StreamOwned::new(conn, stream)));
        return Ok((stream, crate::tls::remaining(options, started)));
    }
    Ok((MaybeTlsStream::Plain(stream), options.clone()))
}

#[cfg(feature = "rustls-manual-roots")]
impl crate::tls::Acceptor {
    /// Runs the TLS handshake and then the WebSocket handshake on an accepted TCP stream,
    /// taking any subprotocol offer as declined; see [`accept_with`](Self::accept_with).
    pub fn accept(
        &self,
        stream: TcpStream,
        options: &Options,
    ) -> Result<WebSocket<ServerStream>, Error> {
        self.accept_with(stream, options, |_| Ok(Accept::new()))
    }

    /// Runs the TLS handshake and then [`sync::accept_with`](crate::sync::accept_with) on an
    /// accepted TCP stream, which this prepares with
    /// [`configure_tcp`](crate::sync::configure_tcp).
    ///
    /// Both handshakes together are bounded by [`Options::handshake_timeout`]; a stalled TLS
    /// handshake fails with [`TlsError::HandshakeTimeout`](crate::tls::TlsError::HandshakeTimeout),
    /// a failed one with the [`Error::Tls`] that says why.
    ///
    /// ```no_run
    /// # fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let acceptor = wsio::tls::Acceptor::from_pem_files("cert.pem", "key.pem")?;
    /// let listener = std::net::TcpListener::bind("0.0.0.0:443")?;
    /// for stream in listener.incoming() {
    ///     let (acceptor, stream) = (acceptor.clone(), stream?);
    ///     std::thread::spawn(move || {
    ///         let mut ws = acceptor.accept(stream, &wsio::Options::default())?;
    ///         while let Some(message) = ws.read()? {
    ///             ws.send(message)?;
    ///         }
    ///         Ok::<(), wsio::Error>(())
    ///     });
    /// }
    /// # Ok(()) }
    /// ```
    pub fn accept_with<F>(
        &self,
        mut stream: TcpStream,
        options: &Options,
        decide: F,
    ) -> Result<WebSocket<ServerStream>, Error>
    where
        F: FnOnce(&Request) -> Result<Accept, Reject>,
    {
        let started = Instant::now();
        crate::sync::configure_tcp(&stream, options)?;
        let mut conn = rustls::ServerConnection::new(std::sync::Arc::clone(self.config()))
            .map_err(|error| Error::Tls(crate::tls::TlsError::Other(error)))?;
        handshake(&mut conn, &mut stream, options, started)?;
        let stream = ServerStream {
            inner: rustls::StreamOwned::new(conn, stream),
        };
        let ws =
            crate::sync::accept_with(stream, &crate::tls::remaining(options, started), decide)?;
        Ok(ws.with_shutdown(ServerStream::shutdown_write))
    }
}

/// Drives a TLS handshake to its end, checking the handshake deadline on every read timeout.
#[cfg(feature = "rustls-manual-roots")]
fn handshake<C, Data>(
    conn: &mut C,
    stream: &mut TcpStream,
    options: &Options,
    started: Instant,
) -> Result<(), Error>
where
    C: std::ops::DerefMut<Target = rustls::ConnectionCommon<Data>>,
{
    while conn.is_handshaking() {
        if options
            .handshake_timeout
            .is_some_and(|timeout| started.elapsed() >= timeout)
        {
            return Err(Error::Tls(crate::tls::TlsError::HandshakeTimeout));
        }
        match conn.complete_io(stream) {
            Ok(_) => {}
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(error) => return Err(crate::tls::handshake_error(error)),
        }
    }
    Ok(())
}
