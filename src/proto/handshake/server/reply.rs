//! The server's answers to a handshake request: accept with a 101, or refuse (RFC 6455 §4.2.2).

use bytes::Bytes;

use crate::proto::handshake::error::HandshakeError;
use crate::proto::handshake::headers::{Headers, check_outgoing, write_header};

/// The server's decision to accept a [`Request`](super::Request): the subprotocol and any extra
/// headers.
///
/// Plain data, built before or after looking at the request and passed to
/// [`Request::accept`](super::Request::accept). An accepted extension goes in as a
/// `Sec-WebSocket-Extensions` header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accept {
    pub(super) subprotocol: Option<String>,
    pub(super) headers: Headers,
}

/// Headers that [`Request::accept`](super::Request::accept) writes itself.
const ACCEPT_RESERVED: &[&str] = &[
    "Upgrade",
    "Connection",
    "Sec-WebSocket-Accept",
    "Sec-WebSocket-Protocol",
];

impl Accept {
    /// Returns a decision with no subprotocol and no extra headers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Chooses `name`, which must be one of
    /// [`Request::subprotocols`](super::Request::subprotocols), as the subprotocol.
    pub fn subprotocol(mut self, name: impl Into<String>) -> Self {
        self.subprotocol = Some(name.into());
        self
    }

    /// Adds a header to the 101 response, such as `Sec-WebSocket-Extensions` or `Set-Cookie`.
    ///
    /// Fails if the name is not a token or the value holds a control character other than tab,
    /// such as CR, LF or NUL ([`InvalidOutgoingHeader`](HandshakeError::InvalidOutgoingHeader)),
    /// or if the handshake writes that header itself
    /// ([`ReservedHeader`](HandshakeError::ReservedHeader)).
    pub fn header(self, name: &str, value: &str) -> Result<Self, HandshakeError> {
        self.header_bytes(name, value.as_bytes())
    }

    /// Adds a header whose value is bytes, such as a cookie holding Latin-1 obs-text (RFC 9110
    /// §5.5); it fails like [`header`](Self::header).
    pub fn header_bytes(mut self, name: &str, value: &[u8]) -> Result<Self, HandshakeError> {
        check_outgoing(name, value, ACCEPT_RESERVED)?;
        self.headers.push(name.to_owned(), value.to_vec());
        Ok(self)
    }
}

/// A response that refuses the handshake, such as a 403 for an unknown origin or a redirect.
///
/// [`encode`](Self::encode) adds `Content-Length` and `Connection: close`: after a refusal the
/// server writes these bytes and closes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    status: u16,
    headers: Headers,
    body: Bytes,
}

/// Headers that [`Reject::encode`] writes itself.
const REJECT_RESERVED: &[&str] = &["Content-Length", "Connection", "Transfer-Encoding"];

impl Reject {
    /// Returns an empty response with `status`.
    ///
    /// # Panics
    ///
    /// Panics unless `status` is in `200..=599`: informational codes such as 101 do not refuse.
    pub fn new(status: u16) -> Self {
        assert!(
            (200..=599).contains(&status),
            "status {status} cannot refuse a handshake"
        );
        Self {
            status,
            headers: Headers::default(),
            body: Bytes::new(),
        }
    }

    /// Adds a header, such as `Location` or `WWW-Authenticate`.
    ///
    /// Fails like [`Accept::header`]; `Content-Length`, `Connection` and `Transfer-Encoding` are
    /// written by [`encode`](Self::encode).
    pub fn header(self, name: &str, value: &str) -> Result<Self, HandshakeError> {
        self.header_bytes(name, value.as_bytes())
    }

    /// Adds a header whose value is bytes, which may hold obs-text (RFC 9110 §5.5); it fails like
    /// [`header`](Self::header).
    pub fn header_bytes(mut self, name: &str, value: &[u8]) -> Result<Self, HandshakeError> {
        check_outgoing(name, value, REJECT_RESERVED)?;
        self.headers.push(name.to_owned(), value.to_vec());
        Ok(self)
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// Returns the status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// Returns the bytes to write before closing the connection.
    pub fn encode(&self) -> Bytes {
        let mut out = Vec::with_capacity(128 + self.body.len());
        let status_line = format!(
            "HTTP/1.1 {} {}\r\n",
            self.status,
            reason_phrase(self.status)
        );
        out.extend_from_slice(status_line.as_bytes());
        for (name, value) in self.headers.iter_bytes() {
            write_header(&mut out, name, value);
        }
        write_header(&mut out, "Content-Length", self.body.len().to_string());
        write_header(&mut out, "Connection", "close");
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        Bytes::from(out)
    }

    /// Adds a header known to be valid, for [`HandshakeError::response`].
    pub(crate) fn push_header(&mut self, name: &str, value: &str) {
        self.headers
            .push(name.to_owned(), value.as_bytes().to_vec());
    }
}

/// Returns the reason phrase for the statuses a WebSocket or Socket.IO server answers with: the
/// one table every response this crate writes takes its phrase from.
///
/// The phrase is optional in HTTP/1.1 (RFC 9112 §4), so other codes get none.
///
/// ```
/// use wsio::proto::handshake::reason_phrase;
/// assert_eq!(reason_phrase(426), "Upgrade Required");
/// assert_eq!(reason_phrase(299), "");
/// ```
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::handshake::server::tests::{parse, sample_with};

    #[test]
    fn accept_answers_the_sample_from_rfc_1_3() {
        let request = parse(&sample_with(&["Sec-WebSocket-Protocol: chat, superchat"])).unwrap();
        let accept = Accept::new()
            .subprotocol("chat")
            .header("Sec-WebSocket-Extensions", "permessage-deflate")
            .unwrap();
        assert_eq!(
            &request.accept(&accept).unwrap()[..],
            b"HTTP/1.1 101 Switching Protocols\r\n\
              Upgrade: websocket\r\n\
              Connection: Upgrade\r\n\
              Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
              Sec-WebSocket-Protocol: chat\r\n\
              Sec-WebSocket-Extensions: permessage-deflate\r\n\
              \r\n"
        );
        assert_eq!(
            request.accept(&Accept::new().subprotocol("superduperchat")),
            Err(HandshakeError::SubprotocolNotOffered {
                name: "superduperchat".into()
            })
        );
    }

    #[test]
    fn accept_headers_are_checked() {
        assert_eq!(
            Accept::new().header("X-Evil", "a\r\nSet-Cookie: b"),
            Err(HandshakeError::InvalidOutgoingHeader {
                name: "X-Evil".into()
            })
        );
        assert_eq!(
            Accept::new().header("X Evil", "a"),
            Err(HandshakeError::InvalidOutgoingHeader {
                name: "X Evil".into()
            })
        );
        assert_eq!(
            Accept::new().header("sec-websocket-accept", "a"),
            Err(HandshakeError::ReservedHeader {
                name: "sec-websocket-accept".into()
            })
        );
    }

    #[test]
    fn obs_text_goes_out_as_given() {
        let request = parse(&sample_with(&[])).unwrap();
        let accept = Accept::new()
            .header_bytes("Set-Cookie", b"name=caf\xe9")
            .unwrap()
            .header("X-Utf8", "caf\u{e9}")
            .unwrap();
        let reply = request.accept(&accept).unwrap();
        assert!(
            reply.ends_with(b"\r\nSet-Cookie: name=caf\xe9\r\nX-Utf8: caf\xc3\xa9\r\n\r\n"),
            "{reply:?}"
        );
        let reject = Reject::new(403)
            .header_bytes("X-Reason", b"\xabnon\xbb")
            .unwrap();
        assert!(
            reject
                .encode()
                .starts_with(b"HTTP/1.1 403 Forbidden\r\nX-Reason: \xabnon\xbb\r\n"),
            "{:?}",
            reject.encode()
        );
        for value in [&b"a\x7f"[..], b"\xe9\r\nX: y", b"\x01"] {
            assert_eq!(
                Accept::new().header_bytes("X", value),
                Err(HandshakeError::InvalidOutgoingHeader { name: "X".into() })
            );
            assert_eq!(
                Reject::new(400).header_bytes("X", value),
                Err(HandshakeError::InvalidOutgoingHeader { name: "X".into() })
            );
        }
    }

    #[test]
    fn reject_encoding() {
        let reject = Reject::new(302)
            .header("Location", "/elsewhere")
            .unwrap()
            .body("moved");
        assert_eq!(reject.status(), 302);
        assert_eq!(
            &reject.encode()[..],
            b"HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 5\r\nConnection: close\r\n\r\nmoved"
        );
        assert_eq!(
            &Reject::new(499).encode()[..],
            b"HTTP/1.1 499 \r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        assert!(matches!(
            Reject::new(403).header("Connection", "keep-alive"),
            Err(HandshakeError::ReservedHeader { .. })
        ));
        assert!(matches!(
            Reject::new(403).header("X", "\0"),
            Err(HandshakeError::InvalidOutgoingHeader { .. })
        ));
    }

    #[test]
    #[should_panic(expected = "cannot refuse")]
    fn reject_needs_a_refusing_status() {
        let _ = Reject::new(101);
    }
}
