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

    /// The bytes to write, announcing whether the connection stays open for another request,
    /// with `extra` headers.
    pub(crate) fn encode(&self, keep_alive: bool, extra: &[(String, String)]) -> Vec<u8> {
        let reason = crate::proto::handshake::reason_phrase(self.status);
        let connection = match keep_alive {
            true => "keep-alive",
            false => "close",
        };
        let mut head = format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: {connection}\r\n",
            self.status,
            self.content_type,
            self.body.len()
        );
        for (name, value) in extra {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

/// A request head, parsed.
pub(crate) struct Head {
    /// The method, as sent.
    pub(crate) method: String,
    /// The path of the request target, without the query.
    pub(crate) path: String,
    /// The query string, without `?`.
    pub(crate) query: String,
    /// Header names in lower case, values trimmed.
    pub(crate) headers: Vec<(String, String)>,
    /// Whether the client lets the connection carry another request after this one.
    pub(crate) keep_alive: bool,
    /// The length of the head, blank line included.
    pub(crate) len: usize,
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

    /// The first value of header `name` (lower case).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// Why no head could be read.
pub(crate) enum HeadError {
    Io(io::Error),
    /// Too long or not HTTP: answered with this response.
    Bad(HttpResponse),
}

/// The HTTP/1.1 side of one connection: reads request heads and bodies, writes responses, and
/// keeps what it read past the current request for the next one (or the WebSocket).
pub(crate) struct HttpConn<S> {
    stream: S,
    buf: BytesMut,
}

impl<S: AsyncRead + AsyncWrite + Unpin> HttpConn<S> {
    pub(crate) fn new(stream: S) -> Self {
        Self {
            stream,
            buf: BytesMut::with_capacity(1024),
        }
    }

    /// Reads the next request head, leaving it in the buffer; `None` when the client closed
    /// the connection between requests.
    pub(crate) async fn read_head(&mut self) -> Result<Option<Head>, HeadError> {
        let end = loop {
            if let Some(end) = self.buf.windows(4).position(|window| window == b"\r\n\r\n") {
                break end;
            }
            if self.buf.len() > MAX_HEAD {
                let body = "request head too large";
                return Err(HeadError::Bad(HttpResponse::new(431, "text/plain", body)));
            }
            if self
                .stream
                .read_buf(&mut self.buf)
                .await
                .map_err(HeadError::Io)?
                == 0
            {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                let eof = io::Error::new(io::ErrorKind::UnexpectedEof, "eof in the request head");
                return Err(HeadError::Io(eof));
            }
        };
        let bad = || HeadError::Bad(HttpResponse::new(400, "text/plain", "bad request"));
        let text = std::str::from_utf8(&self.buf[..end]).map_err(|_| bad())?;
        let mut lines = text.split("\r\n");
        let mut request_line = lines.next().unwrap_or_default().split(' ');
        let (Some(method), Some(target), Some(version)) = (
            request_line.next(),
            request_line.next(),
            request_line.next(),
        ) else {
            return Err(bad());
        };
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
            .collect();
        let connection = headers
            .iter()
            .find(|(name, _)| name == "connection")
            .map(|(_, value)| value.to_ascii_lowercase())
            .unwrap_or_default();
        let keep_alive = match version {
            "HTTP/1.0" => connection.contains("keep-alive"),
            _ => !connection.contains("close"),
        };
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        Ok(Some(Head {
            method: method.to_owned(),
            path: path.to_owned(),
            query: query.to_owned(),
            headers,
            keep_alive,
            len: end + 4,
        }))
    }

    /// The bytes of the head just read.
    pub(crate) fn head_bytes(&self, head: &Head) -> &[u8] {
        &self.buf[..head.len.min(self.buf.len())]
    }

    /// Reads the body of `head` (its `Content-Length` bytes, at most `limit`) and drops the
    /// request from the buffer. `Err(response)` for a body too large or a length missing.
    pub(crate) async fn read_body(
        &mut self,
        head: &Head,
        limit: usize,
    ) -> Result<Result<Bytes, HttpResponse>, io::Error> {
        let length = match head.header("content-length").map(str::parse::<usize>) {
            Some(Ok(length)) => length,
            None if head.header("transfer-encoding").is_none() => 0,
            _ => {
                let response = HttpResponse::new(411, "text/plain", "content-length required");
                return Ok(Err(response));
            }
        };
        if length > limit {
            return Ok(Err(HttpResponse::new(
                413,
                "text/plain",
                "payload too large",
            )));
        }
        while self.buf.len() < head.len + length {
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "eof in the request body",
                ));
            }
        }
        self.buf.advance(head.len);
        Ok(Ok(self.buf.split_to(length).freeze()))
    }

    /// Drops a request without a body from the buffer.
    pub(crate) fn consume(&mut self, head: &Head) {
        self.buf.advance(head.len.min(self.buf.len()));
    }

    /// Waits until the client closes the connection (or it fails), keeping what it sends in
    /// the meantime for the next request, up to a bound past which it stops reading.
    pub(crate) async fn closed(&mut self) {
        loop {
            if self.buf.len() > MAX_HEAD * 4 {
                return std::future::pending().await;
            }
            match self.stream.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    }

    /// Writes `response`; with `keep_alive`, the connection stays open for the next request.
    pub(crate) async fn respond(
        &mut self,
        response: &HttpResponse,
        keep_alive: bool,
        extra: &[(String, String)],
    ) -> io::Result<()> {
        self.stream
            .write_all(&response.encode(keep_alive, extra))
            .await?;
        match keep_alive {
            true => self.stream.flush().await,
            false => self.stream.shutdown().await,
        }
    }

    /// The stream, replaying what was read of it from the current request on.
    pub(crate) fn into_replay(self) -> Replay<S> {
        Replay::new(self.buf.freeze(), self.stream)
    }
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
            if !this.prefix.has_remaining() {
                // Frees the read buffer, which would otherwise last as long as the stream.
                this.prefix = Bytes::new();
            }
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
