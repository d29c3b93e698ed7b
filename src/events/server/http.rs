//! The HTTP side of a connection: routing the request before the WebSocket handshake, and the
//! plain responses for everything that is not a Socket.IO WebSocket request.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

/// The largest request head read before routing.
const MAX_HEAD: usize = 16 << 10;

/// A plain HTTP response, for requests outside the Socket.IO path (see
/// [`Server::http_fallback`](super::Server::http_fallback)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The `Content-Type` header.
    pub content_type: String,
    /// The body.
    pub body: Bytes,
}

impl HttpResponse {
    /// A response with `status`, `content_type` and `body`.
    pub fn new(status: u16, content_type: impl Into<String>, body: impl Into<Bytes>) -> Self {
        Self {
            status,
            content_type: content_type.into(),
            body: body.into(),
        }
    }

    /// A `400 Bad Request` with Socket.IO's JSON error body `{"code":…,"message":…}`.
    pub(crate) fn socketio_error(code: u8, message: &str) -> Self {
        let body = serde_json::json!({ "code": code, "message": message }).to_string();
        Self::new(400, "application/json", body)
    }

    /// The bytes to write before closing the connection.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let reason = match self.status {
            200 => "OK",
            400 => "Bad Request",
            404 => "Not Found",
            431 => "Request Header Fields Too Large",
            _ => "",
        };
        let mut out = format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.status,
            self.content_type,
            self.body.len()
        )
        .into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

/// The request head as read so far, and the parts routing needs.
pub(crate) struct Head {
    /// Everything read, the head and possibly more; replayed to the WebSocket handshake.
    pub(crate) bytes: Bytes,
    /// The path of the request target, without the query.
    pub(crate) path: String,
    /// The query string, without `?`.
    pub(crate) query: String,
    /// The length of the head in `bytes`, up to the blank line that ends it.
    pub(crate) head_len: usize,
}

impl Head {
    /// The first value of query parameter `name`.
    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.query
            .split('&')
            .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value)
    }
}

/// Why no head could be read.
pub(crate) enum HeadError {
    Io(io::Error),
    /// Too long or not HTTP: answered with this response.
    Bad(HttpResponse),
}

/// Reads up to the end of the request head.
pub(crate) async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Head, HeadError> {
    let mut buf = BytesMut::with_capacity(1024);
    let end = loop {
        if let Some(end) = buf.windows(4).position(|window| window == b"\r\n\r\n") {
            break end;
        }
        if buf.len() > MAX_HEAD {
            let body = "request head too large";
            return Err(HeadError::Bad(HttpResponse::new(431, "text/plain", body)));
        }
        if stream.read_buf(&mut buf).await.map_err(HeadError::Io)? == 0 {
            let eof = io::Error::new(io::ErrorKind::UnexpectedEof, "eof in the request head");
            return Err(HeadError::Io(eof));
        }
    };
    let line = buf[..end]
        .split(|&byte| byte == b'\r')
        .next()
        .unwrap_or(&[]);
    let target = std::str::from_utf8(line)
        .ok()
        .and_then(|line| line.split(' ').nth(1))
        .ok_or_else(|| HeadError::Bad(HttpResponse::new(400, "text/plain", "bad request")))?;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    Ok(Head {
        path: path.to_owned(),
        query: query.to_owned(),
        head_len: end,
        bytes: buf.freeze(),
    })
}

/// Writes `response` and shuts the stream down.
pub(crate) async fn respond<S: AsyncWrite + Unpin>(
    stream: &mut S,
    response: &HttpResponse,
) -> io::Result<()> {
    stream.write_all(&response.encode()).await?;
    stream.shutdown().await
}

/// A stream that first replays bytes already read from it.
#[derive(Debug)]
pub(crate) struct Replay<S> {
    prefix: Bytes,
    inner: S,
}

impl<S> Replay<S> {
    pub(crate) fn new(prefix: Bytes, inner: S) -> Self {
        Self { prefix, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Replay<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.prefix.has_remaining() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix[..n]);
            this.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Replay<S> {
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
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
