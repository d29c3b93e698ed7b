//! TLS for the tokio adapter: the stream `connect_async` returns, and the TLS handshakes of
//! both roles with tokio-rustls.

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
#[cfg(feature = "rustls-manual-roots")]
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::Options;
use crate::error::Error;
use crate::proto::handshake::ClientRequest;
#[cfg(feature = "rustls-manual-roots")]
use crate::proto::handshake::{Accept, Reject, Request};
#[cfg(feature = "rustls-manual-roots")]
use crate::tls::TlsError;
#[cfg(feature = "rustls-manual-roots")]
use crate::tokio::WebSocketStream;

/// The stream of a connection opened by [`connect_async`](crate::tokio::connect_async): plain
/// TCP for `ws://`, TLS over TCP for `wss://` (feature `rustls`).
///
/// It reads and writes (vectored too) like the stream it holds, and derefs to the `TcpStream`
/// underneath.
#[derive(Debug)]
#[non_exhaustive]
pub enum MaybeTlsStream {
    /// A `ws://` connection.
    Plain(TcpStream),
    /// A `wss://` connection (boxed: a TLS session takes a few KiB).
    #[cfg(feature = "rustls-manual-roots")]
    Rustls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
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
            Self::Rustls(stream) => stream.get_ref().0,
        }
    }
}

/// A TLS stream that ends without `close_notify` reads as a plain end of stream, as
/// [`crate::tls`] explains under "Ends of stream": the WebSocket closing handshake tells a
/// finished connection from a truncated one.
impl AsyncRead for MaybeTlsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            #[cfg(feature = "rustls-manual-roots")]
            Self::Rustls(stream) => eof_as_end(Pin::new(stream.as_mut()).poll_read(cx, buf)),
        }
    }
}

/// A read that failed because the peer ended the TCP stream without `close_notify`, as a plain
/// end of stream.
#[cfg(feature = "rustls-manual-roots")]
fn eof_as_end(poll: Poll<io::Result<()>>) -> Poll<io::Result<()>> {
    match poll {
        Poll::Ready(Err(error)) if error.kind() == io::ErrorKind::UnexpectedEof => {
            Poll::Ready(Ok(()))
        }
        poll => poll,
    }
}

impl AsyncWrite for MaybeTlsStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            #[cfg(feature = "rustls-manual-roots")]
            Self::Rustls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            #[cfg(feature = "rustls-manual-roots")]
            Self::Rustls(stream) => Pin::new(stream.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(stream) => stream.is_write_vectored(),
            #[cfg(feature = "rustls-manual-roots")]
            Self::Rustls(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(stream) => Pin::new(stream).poll_flush(cx),
            #[cfg(feature = "rustls-manual-roots")]
            Self::Rustls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            #[cfg(feature = "rustls-manual-roots")]
            Self::Rustls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The stream of a connection accepted by
/// [`Acceptor::accept_async`](crate::tls::Acceptor::accept_async) over a stream `S`.
///
/// It reads and writes like the tokio-rustls stream it holds, except that a peer ending the
/// stream without `close_notify` reads as a plain end of stream (see [`crate::tls`], "Ends of
/// stream"). Shutting it down sends `close_notify`, then shuts `S` down.
#[cfg(feature = "rustls-manual-roots")]
#[derive(Debug)]
pub struct AsyncServerStream<S> {
    inner: tokio_rustls::server::TlsStream<S>,
}

#[cfg(feature = "rustls-manual-roots")]
impl<S> AsyncServerStream<S> {
    /// The stream underneath and the TLS session (the client's SNI name, the ALPN protocol,
    /// its certificates).
    pub fn get_ref(&self) -> (&S, &rustls::ServerConnection) {
        self.inner.get_ref()
    }

    /// The tokio-rustls stream this wraps.
    pub fn into_inner(self) -> tokio_rustls::server::TlsStream<S> {
        self.inner
    }
}

#[cfg(feature = "rustls-manual-roots")]
impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for AsyncServerStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        eof_as_end(Pin::new(&mut self.get_mut().inner).poll_read(cx, buf))
    }
}

#[cfg(feature = "rustls-manual-roots")]
impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for AsyncServerStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    /// Sends `close_notify`, then shuts the stream underneath down.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Opens the transport for `request`: TCP with `TCP_NODELAY`, and the TLS handshake for
/// `wss://`, both before `deadline`. A TLS handshake still running then fails with
/// [`TlsError::HandshakeTimeout`](crate::tls::TlsError::HandshakeTimeout).
pub(crate) async fn open(
    request: &ClientRequest,
    options: &Options,
    deadline: Option<Instant>,
) -> Result<MaybeTlsStream, Error> {
    #[cfg(feature = "rustls-manual-roots")]
    let connector = match request.is_secure() {
        true => Some(crate::tls::connector(options)?),
        false => None,
    };
    #[cfg(not(feature = "rustls-manual-roots"))]
    {
        let _ = options;
        crate::upgrade::refuse_secure(request)?;
    }
    let connect = TcpStream::connect((request.host(), request.port()));
    let stream = before(deadline, connect)
        .await
        .ok_or(Error::HandshakeTimeout)??;
    stream.set_nodelay(true)?;
    #[cfg(feature = "rustls-manual-roots")]
    if let Some(connector) = connector {
        let name = crate::tls::server_name(request.host())?;
        let connect =
            tokio_rustls::TlsConnector::from(Arc::clone(connector.config())).connect(name, stream);
        let stream = before(deadline, connect)
            .await
            .ok_or(Error::Tls(TlsError::HandshakeTimeout))?
            .map_err(crate::tls::handshake_error)?;
        return Ok(MaybeTlsStream::Rustls(Box::new(stream)));
    }
    Ok(MaybeTlsStream::Plain(stream))
}

#[cfg(feature = "rustls-manual-roots")]
impl crate::tls::Acceptor {
    /// Runs the TLS handshake and then the WebSocket handshake on an accepted stream, taking
    /// any subprotocol offer as declined; see [`accept_async_with`](Self::accept_async_with).
    pub async fn accept_async<S>(
        &self,
        stream: S,
        options: &Options,
    ) -> Result<WebSocketStream<AsyncServerStream<S>>, Error>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        self.accept_async_with(stream, options, async |_: &Request| Ok(Accept::new()))
            .await
    }

    /// Runs the TLS handshake and then [`tokio::accept_with`](crate::tokio::accept_with) on an
    /// accepted stream (set `TCP_NODELAY` on a `TcpStream` first).
    ///
    /// Both handshakes together are bounded by [`Options::handshake_timeout`]; a stalled TLS
    /// handshake fails with [`TlsError::HandshakeTimeout`], a failed one with the
    /// [`Error::Tls`] that says why.
    pub async fn accept_async_with<S, F>(
        &self,
        stream: S,
        options: &Options,
        decide: F,
    ) -> Result<WebSocketStream<AsyncServerStream<S>>, Error>
    where
        S: AsyncRead + AsyncWrite + Unpin,
        F: AsyncFnOnce(&Request) -> Result<Accept, Reject>,
    {
        let started = std::time::Instant::now();
        let stream = self.handshake_async(stream, options).await?;
        crate::tokio::accept_with(stream, &crate::tls::remaining(options, started), decide).await
    }

    /// Runs only the TLS handshake, within [`Options::handshake_timeout`]: for servers that
    /// read the HTTP request themselves before upgrading (as the Socket.IO server does).
    pub async fn handshake_async<S>(
        &self,
        stream: S,
        options: &Options,
    ) -> Result<AsyncServerStream<S>, Error>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let deadline = options
            .handshake_timeout
            .map(|timeout| Instant::now() + timeout);
        let accept = tokio_rustls::TlsAcceptor::from(Arc::clone(self.config())).accept(stream);
        let inner = before(deadline, accept)
            .await
            .ok_or(Error::Tls(TlsError::HandshakeTimeout))?
            .map_err(crate::tls::handshake_error)?;
        Ok(AsyncServerStream { inner })
    }
}

/// Runs `future` until `deadline`; `None` when the deadline came first.
async fn before<F: Future>(deadline: Option<Instant>, future: F) -> Option<F::Output> {
    match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline, future).await.ok(),
        None => Some(future.await),
    }
}
