//! The HTTP side of a connection: routing the request before the WebSocket handshake, and the
//! plain responses for everything that is not a Socket.IO WebSocket request.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use crate::proto::handshake::{is_control, is_token, trim_ows};

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
        // A pair is `name=value`, or `name` alone for an empty value.
        self.query.split('&').find_map(|pair| {
            let rest = pair.strip_prefix(name)?;
            match rest.as_bytes().first() {
                None => Some(""),
                Some(b'=') => Some(&rest[1..]),
                Some(_) => None,
            }
        })
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
        let RequestHead {
            method,
            target,
            version,
            headers,
        } = parse_head(&self.buf[..end]).ok_or_else(bad)?;
        let connection = headers
            .iter()
            .find(|(name, _)| name == "connection")
            .map(|(_, value)| value.to_ascii_lowercase())
            .unwrap_or_default();
        let keep_alive = match version {
            HttpVersion::Http10 => connection.contains("keep-alive"),
            HttpVersion::Http11 => !connection.contains("close"),
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

/// The HTTP version of a request.
enum HttpVersion {
    Http10,
    Http11,
}

/// The request line and header fields of a head.
struct RequestHead<'a> {
    method: &'a str,
    target: &'a str,
    version: HttpVersion,
    /// Names in lower case, in the order sent.
    headers: Vec<(String, String)>,
}

/// The request line and header fields of a head (without its blank line), under the rules the
/// WebSocket handshake applies: a token method, a target without spaces or controls,
/// HTTP/1.0 or 1.1, token field names and values without control characters (obs-text bytes
/// are kept, read as UTF-8 with replacement). `None` when the head breaks one of them.
fn parse_head(head: &[u8]) -> Option<RequestHead<'_>> {
    // Lines end in CRLF (a bare LF is taken as a line end too, as RFC 9112 §2.2 allows); a
    // CR left inside a line is a control character, refused below.
    let mut lines = head
        .split(|&byte| byte == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line));
    let request_line = std::str::from_utf8(lines.next()?).ok()?;
    let mut parts = request_line.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some()
        || !is_token(method)
        || target.is_empty()
        || target.bytes().any(|byte| is_control(byte) || byte == b'\t')
    {
        return None;
    }
    let version = match version {
        "HTTP/1.1" => HttpVersion::Http11,
        "HTTP/1.0" => HttpVersion::Http10,
        _ => return None,
    };
    let mut headers = Vec::new();
    for line in lines {
        let colon = line.iter().position(|&byte| byte == b':')?;
        let (name, value) = (&line[..colon], trim_ows(&line[colon + 1..]));
        if !is_token(name) || value.iter().any(|&byte| is_control(byte)) {
            return None;
        }
        let name = String::from_utf8_lossy(name).to_ascii_lowercase();
        headers.push((name, String::from_utf8_lossy(value).into_owned()));
    }
    Some(RequestHead {
        method,
        target,
        version,
        headers,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(head: &[u8]) -> Option<Vec<(String, String)>> {
        parse_head(head).map(|head| head.headers)
    }

    #[test]
    fn a_query_parameter_is_its_first_exact_name() {
        let head = Head {
            method: "GET".into(),
            path: "/socket.io/".into(),
            query: "EIOx=3&EIO=4&sid&t=a=b&EIO=5".into(),
            headers: Vec::new(),
            keep_alive: true,
            len: 0,
        };
        assert_eq!(head.param("EIO"), Some("4"));
        assert_eq!(head.param("sid"), Some(""));
        assert_eq!(head.param("t"), Some("a=b"));
        assert_eq!(head.param("EI"), None);
        assert_eq!(head.param("transport"), None);
    }

    #[test]
    fn a_head_keeps_its_fields_in_order_with_lower_case_names() {
        let head = parse_head(b"POST /socket.io/?EIO=4 HTTP/1.1\r\nHost: a\r\nX-One:  1 ").unwrap();
        assert_eq!((head.method, head.target), ("POST", "/socket.io/?EIO=4"));
        assert!(matches!(head.version, HttpVersion::Http11));
        let expected = [("host", "a"), ("x-one", "1")].map(|(n, v)| (n.to_owned(), v.to_owned()));
        assert_eq!(head.headers, expected);
    }

    #[test]
    fn obs_text_is_kept_and_controls_are_refused() {
        let cookie = headers(b"GET / HTTP/1.1\r\nCookie: name=caf\xe9").unwrap();
        assert_eq!(cookie[0].1, "name=caf\u{fffd}");
        // A control character would be reflected into a response (CORS echoes a preflight's
        // requested headers): refused, as the handshake refuses it.
        for value in [&b"\x01"[..], b"a\x7fb", b"a\rb", b"a\0"] {
            let mut head = b"OPTIONS / HTTP/1.1\r\nAccess-Control-Request-Headers: ".to_vec();
            head.extend_from_slice(value);
            assert!(headers(&head).is_none(), "{value:?}");
        }
    }

    #[test]
    fn malformed_lines_are_refused() {
        for head in [
            &b"GET / HTTP/1.1\r\nno colon here"[..],
            b"GET / HTTP/1.1\r\nbad name: x",
            b"GET / HTTP/1.1\r\n: empty name",
            b"GET / HTTP/2.0",
            b"GET /a b HTTP/1.1",
            b"G\x01T / HTTP/1.1",
            b"GET  HTTP/1.1",
            b"GET /\x01 HTTP/1.1",
        ] {
            assert!(
                parse_head(head).is_none(),
                "{:?}",
                String::from_utf8_lossy(head)
            );
        }
        assert!(matches!(
            parse_head(b"GET / HTTP/1.0").unwrap().version,
            HttpVersion::Http10
        ));
    }
}
