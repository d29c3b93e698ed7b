//! The server side of the opening handshake (RFC 6455 §4.2).
//!
//! This file reads and validates the client's request; `reply` holds the server's answers to it,
//! [`Accept`] and [`Reject`].

mod reply;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;

pub use self::reply::{Accept, Reject, reason_phrase};
use super::accept::accept_key;
use super::error::HandshakeError;
use super::headers::{
    ExtensionOffer, Headers, first_two, is_token, parse_extensions, write_header,
};
use super::http::{HandshakeLimits, Head, HeadParser};

/// Reads a client's opening handshake from the first bytes of a connection.
///
/// Feed it whatever the socket gives, in chunks of any size, until it returns the
/// [`Request`]; then decide, and write either [`Request::accept`]'s bytes or a [`Reject`].
/// On an error, write [`HandshakeError::response`] and close. The parser keeps only the
/// unfinished line, checks every [`HandshakeLimits`] bound as soon as it is passed, and looks
/// at each byte once.
///
/// ```
/// use wsio::proto::handshake::{Accept, HandshakeLimits, RequestParser};
///
/// let mut parser = RequestParser::new(HandshakeLimits::default());
/// let request = b"GET /chat HTTP/1.1\r\n\
///     Host: server.example.com\r\n\
///     Upgrade: websocket\r\n\
///     Connection: Upgrade\r\n\
///     Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
///     Sec-WebSocket-Protocol: chat, superchat\r\n\
///     Sec-WebSocket-Version: 13\r\n\
///     \r\n";
/// assert!(parser.receive(&request[..10])?.is_none());
/// let request = parser.receive(&request[10..])?.expect("the head is complete");
/// assert_eq!(request.target(), "/chat");
///
/// let reply = request.accept(&Accept::new().subprotocol("chat"))?;
/// assert!(reply.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
/// # Ok::<(), wsio::proto::handshake::HandshakeError>(())
/// ```
#[derive(Debug)]
pub struct RequestParser {
    /// `None` once the parser has returned a request or an error.
    head: Option<HeadParser<String>>,
}

impl RequestParser {
    /// Returns a parser that enforces `limits`.
    pub fn new(limits: HandshakeLimits) -> Self {
        Self {
            head: Some(HeadParser::request(limits)),
        }
    }

    /// Feeds the next bytes read from the connection.
    ///
    /// Returns `Ok(None)` while the head is incomplete, and the validated request once the blank
    /// line has arrived; bytes after it are kept as [`Request::leftover`]. Call it again after
    /// either result, or after an error, and it fails with [`HandshakeError::Finished`].
    pub fn receive(&mut self, data: &[u8]) -> Result<Option<Request>, HandshakeError> {
        let Some(parser) = self.head.as_mut() else {
            return Err(HandshakeError::Finished);
        };
        match parser.receive(data) {
            Ok(None) => Ok(None),
            Ok(Some((head, consumed))) => {
                self.head = None;
                Request::validate(head, Bytes::copy_from_slice(&data[consumed..])).map(Some)
            }
            Err(error) => {
                self.head = None;
                Err(error)
            }
        }
    }
}

impl Default for RequestParser {
    fn default() -> Self {
        Self::new(HandshakeLimits::default())
    }
}

/// A valid WebSocket upgrade request (§4.2.1), waiting for the server's decision.
///
/// The method is `GET` and the version `HTTP/1.1` by construction. It owns the bytes that
/// followed the head, which are the start of the WebSocket connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    target: String,
    headers: Headers,
    key: String,
    subprotocols: Vec<String>,
    extensions: Vec<ExtensionOffer>,
    leftover: Bytes,
}

impl Request {
    /// Returns the method: always `GET`, since any other fails with
    /// [`HandshakeError::MethodNotAllowed`].
    pub fn method(&self) -> &str {
        "GET"
    }

    /// Returns the request target as sent: usually the path and query, such as `/chat?room=1`.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Returns every header field of the request.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// Returns the `Sec-WebSocket-Key` value, already checked to be 16 bytes in base64.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Returns the offered subprotocols in the client's order of preference.
    pub fn subprotocols(&self) -> &[String] {
        &self.subprotocols
    }

    /// Returns the offered extensions in the client's order of preference.
    pub fn extensions(&self) -> &[ExtensionOffer] {
        &self.extensions
    }

    /// Returns the `Origin` header, which browsers always send (§4.2.2 lets servers check it).
    ///
    /// Like [`Headers::get`], `None` also when the value is not UTF-8 (an origin is ASCII).
    pub fn origin(&self) -> Option<&str> {
        self.headers.get("origin")
    }

    /// Returns the bytes that arrived after the head: the first WebSocket frames, if any.
    pub fn leftover(&self) -> &Bytes {
        &self.leftover
    }

    /// Returns the bytes that arrived after the head, to hand to the connection.
    pub fn into_leftover(self) -> Bytes {
        self.leftover
    }

    /// Returns the `101 Switching Protocols` response that completes the handshake.
    ///
    /// Fails with [`HandshakeError::SubprotocolNotOffered`] if `accept` names a subprotocol the
    /// client did not offer.
    pub fn accept(&self, accept: &Accept) -> Result<Bytes, HandshakeError> {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(b"HTTP/1.1 101 Switching Protocols\r\n");
        write_header(&mut out, "Upgrade", "websocket");
        write_header(&mut out, "Connection", "Upgrade");
        write_header(
            &mut out,
            "Sec-WebSocket-Accept",
            accept_key(self.key.as_bytes()),
        );
        if let Some(name) = &accept.subprotocol {
            if !self.subprotocols.contains(name) {
                return Err(HandshakeError::SubprotocolNotOffered { name: name.clone() });
            }
            write_header(&mut out, "Sec-WebSocket-Protocol", name);
        }
        for (name, value) in accept.headers.iter_bytes() {
            write_header(&mut out, name, value);
        }
        out.extend_from_slice(b"\r\n");
        Ok(Bytes::from(out))
    }

    fn validate(head: Head<String>, leftover: Bytes) -> Result<Self, HandshakeError> {
        let Head {
            start: target,
            headers,
        } = head;
        // Every check counts and reads fields as bytes: a value that is not UTF-8 must neither
        // hide a duplicate nor pass for a missing header.
        match headers.get_all_bytes("host").count() {
            0 => return Err(HandshakeError::MissingHost),
            1 => {}
            _ => return Err(HandshakeError::DuplicateHost),
        }
        if !headers.contains_token("upgrade", "websocket") {
            return Err(HandshakeError::MissingUpgrade);
        }
        if !headers.contains_token("connection", "upgrade") {
            return Err(HandshakeError::MissingConnectionUpgrade);
        }
        // The version comes before the key so that clients of older drafts, which send other
        // key headers, learn from the 426 which version to retry with (§4.4).
        if first_two(headers.get_all_bytes("sec-websocket-version")) != (Some(&b"13"[..]), None) {
            return Err(HandshakeError::UnsupportedVersion);
        }
        let key = match first_two(headers.get_all_bytes("sec-websocket-key")) {
            (None, _) => return Err(HandshakeError::MissingKey),
            (Some(key), None) => key,
            (Some(_), Some(_)) => return Err(HandshakeError::DuplicateKey),
        };
        if STANDARD.decode(key).map_or(true, |nonce| nonce.len() != 16) {
            return Err(HandshakeError::InvalidKey);
        }
        // Valid base64 is ASCII.
        let key = String::from_utf8_lossy(key).into_owned();
        let has_body = headers.get_bytes("transfer-encoding").is_some()
            || headers
                .list_bytes("content-length")
                .any(|length| length.iter().any(|&digit| digit != b'0'));
        if has_body {
            return Err(HandshakeError::UnexpectedBody);
        }
        let mut subprotocols = Vec::new();
        for name in headers.list_bytes("sec-websocket-protocol") {
            if !is_token(name) {
                return Err(HandshakeError::MalformedSubprotocols);
            }
            // A token is ASCII.
            subprotocols.push(String::from_utf8_lossy(name).into_owned());
        }
        let mut extensions = Vec::new();
        for value in headers.get_all_bytes("sec-websocket-extensions") {
            extensions.extend(parse_extensions(value).ok_or(HandshakeError::MalformedExtensions)?);
        }
        Ok(Self {
            target,
            headers,
            key,
            subprotocols,
            extensions,
            leftover,
        })
    }
}

#[cfg(test)]
pub(super) mod tests {
    use proptest::prelude::*;

    use super::*;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    /// The §1.3 sample request without its blank line, one field per element.
    const SAMPLE: &[&str] = &[
        "GET /chat HTTP/1.1",
        "Host: server.example.com",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
    ];

    /// A head with request line `start`, the sample's fields except those named in `drop`, and
    /// the raw `extra` lines.
    pub(super) fn request(start: &str, drop: &[&str], extra: &[&str]) -> Vec<u8> {
        let mut head = format!("{start}\r\n");
        for line in &SAMPLE[1..] {
            let name = line.split(':').next().unwrap();
            if !drop
                .iter()
                .any(|dropped| dropped.eq_ignore_ascii_case(name))
            {
                head.push_str(line);
                head.push_str("\r\n");
            }
        }
        for line in extra {
            head.push_str(line);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        head.into_bytes()
    }

    pub(super) fn sample_with(extra: &[&str]) -> Vec<u8> {
        request(SAMPLE[0], &[], extra)
    }

    /// The sample request with request line `start` and the raw `extra` lines, which may hold
    /// any bytes.
    fn request_with_bytes(start: &str, extra: &[&[u8]]) -> Vec<u8> {
        let mut head = request(start, &[], &[]);
        head.truncate(head.len() - 2);
        for line in extra {
            head.extend_from_slice(line);
            head.extend_from_slice(b"\r\n");
        }
        head.extend_from_slice(b"\r\n");
        head
    }

    fn sample_with_bytes(extra: &[&[u8]]) -> Vec<u8> {
        request_with_bytes(SAMPLE[0], extra)
    }

    /// Feeds `data` in chunks of `size`; returns the request and everything after the head that
    /// the connection would get: the leftover, then the chunks never fed.
    pub(super) fn feed(data: &[u8], size: usize) -> Result<(Request, Vec<u8>), HandshakeError> {
        let mut parser = RequestParser::default();
        let mut chunks = data.chunks(size);
        for chunk in chunks.by_ref() {
            if let Some(request) = parser.receive(chunk)? {
                let mut rest = request.leftover().to_vec();
                rest.extend(chunks.flatten());
                return Ok((request, rest));
            }
        }
        panic!("incomplete head");
    }

    pub(super) fn parse(data: &[u8]) -> Result<Request, HandshakeError> {
        feed(data, data.len().max(1)).map(|(request, _)| request)
    }

    #[test]
    fn sample_request_from_rfc_1_3() {
        let request = parse(&sample_with(&[
            "Origin: http://example.com",
            "Sec-WebSocket-Protocol: chat, superchat",
        ]))
        .unwrap();
        assert_eq!((request.method(), request.target()), ("GET", "/chat"));
        assert_eq!(request.key(), KEY);
        assert_eq!(request.origin(), Some("http://example.com"));
        assert_eq!(request.subprotocols(), ["chat", "superchat"]);
        assert!(request.extensions().is_empty());
        assert_eq!(request.headers().get("host"), Some("server.example.com"));
        assert!(request.leftover().is_empty());
    }

    #[test]
    fn browser_requests_parse() {
        let chrome = "GET /chat?room=1 HTTP/1.1\r\n\
            Host: localhost:9002\r\n\
            Connection: Upgrade\r\n\
            Pragma: no-cache\r\n\
            Cache-Control: no-cache\r\n\
            User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36\r\n\
            Upgrade: websocket\r\n\
            Origin: http://localhost:8000\r\n\
            Sec-WebSocket-Version: 13\r\n\
            Accept-Encoding: gzip, deflate, br\r\n\
            Accept-Language: en-US,en;q=0.9\r\n\
            Cookie: session=abc; theme=dark\r\n\
            Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n\
            Sec-WebSocket-Protocol: chat, superchat\r\n\
            Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\
            \r\n";
        let firefox = "GET /socket HTTP/1.1\r\n\
            Host: example.org\r\n\
            User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0\r\n\
            Accept: */*\r\n\
            Sec-WebSocket-Version: 13\r\n\
            Origin: https://example.org\r\n\
            Sec-WebSocket-Extensions: permessage-deflate\r\n\
            Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
            Connection: keep-alive, Upgrade\r\n\
            Sec-Fetch-Mode: websocket\r\n\
            Upgrade: websocket\r\n\
            \r\n";
        let request = parse(chrome.as_bytes()).unwrap();
        assert_eq!(request.target(), "/chat?room=1");
        assert_eq!(request.key(), "x3JJHMbDL1EzLkh9GBhXDw==");
        assert_eq!(request.origin(), Some("http://localhost:8000"));
        assert_eq!(request.subprotocols(), ["chat", "superchat"]);
        let [deflate] = request.extensions() else {
            panic!("one extension")
        };
        assert_eq!(deflate.name(), "permessage-deflate");
        assert_eq!(
            deflate.params().collect::<Vec<_>>(),
            [("client_max_window_bits", None)]
        );
        assert_eq!(
            request.headers().get("cookie"),
            Some("session=abc; theme=dark")
        );
        assert_eq!(request.headers().len(), 14);

        let request = parse(firefox.as_bytes()).unwrap();
        assert_eq!(request.target(), "/socket");
        assert_eq!(request.extensions()[0].name(), "permessage-deflate");
        assert!(request.subprotocols().is_empty());
    }

    #[test]
    fn leftover_survives_every_chunking() {
        let head = sample_with(&[]);
        let frames = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let data = [head.as_slice(), &frames].concat();
        let whole = parse(&head).unwrap();
        for size in [1, 2, 3, 7, 64, data.len()] {
            let (request, rest) = feed(&data, size).unwrap();
            assert_eq!(rest, frames, "chunks of {size}");
            assert_eq!(
                (request.target(), request.headers()),
                (whole.target(), whole.headers())
            );
        }
        let (request, _) = feed(&data, data.len()).unwrap();
        assert_eq!(&request.into_leftover()[..], frames);
        // One byte at a time, the head ends exactly at a chunk boundary.
        let (request, _) = feed(&data, 1).unwrap();
        assert!(request.leftover().is_empty());
    }

    #[test]
    fn every_rejection_has_its_status() {
        use HandshakeError::*;
        let sample = SAMPLE[0];
        let cases: Vec<(Vec<u8>, HandshakeError, u16)> = vec![
            (
                request("POST /chat HTTP/1.1", &[], &[]),
                MethodNotAllowed,
                405,
            ),
            (
                request("get /chat HTTP/1.1", &[], &[]),
                MethodNotAllowed,
                405,
            ),
            (
                request("GET /chat HTTP/1.0", &[], &[]),
                UnsupportedHttpVersion,
                400,
            ),
            (
                request("GET /chat HTTP/2.0", &[], &[]),
                UnsupportedHttpVersion,
                400,
            ),
            (request("GET /chat", &[], &[]), MalformedRequestLine, 400),
            (
                request("GET  /chat HTTP/1.1", &[], &[]),
                MalformedRequestLine,
                400,
            ),
            (
                request("GET /chat HTTP/1.1 ", &[], &[]),
                MalformedRequestLine,
                400,
            ),
            (
                request("GET /chat http/1.1", &[], &[]),
                MalformedRequestLine,
                400,
            ),
            (
                request("GET /ch\x01at HTTP/1.1", &[], &[]),
                MalformedRequestLine,
                400,
            ),
            (
                request("G(T /chat HTTP/1.1", &[], &[]),
                MalformedRequestLine,
                400,
            ),
            (request("", &[], &[]), MalformedRequestLine, 400),
            (request(sample, &["Host"], &[]), MissingHost, 400),
            (
                request(sample, &[], &["Host: other.example.com"]),
                DuplicateHost,
                400,
            ),
            (request(sample, &["Upgrade"], &[]), MissingUpgrade, 400),
            (
                request(sample, &["Upgrade"], &["Upgrade: h2c"]),
                MissingUpgrade,
                400,
            ),
            (
                request(sample, &["Connection"], &[]),
                MissingConnectionUpgrade,
                400,
            ),
            (
                request(sample, &["Connection"], &["Connection: keep-alive"]),
                MissingConnectionUpgrade,
                400,
            ),
            (
                request(sample, &["Sec-WebSocket-Key"], &[]),
                MissingKey,
                400,
            ),
            (
                request(
                    sample,
                    &[],
                    &["Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw=="],
                ),
                DuplicateKey,
                400,
            ),
            (
                request(sample, &["Sec-WebSocket-Key"], &["Sec-WebSocket-Key: abc"]),
                InvalidKey,
                400,
            ),
            (
                request(
                    sample,
                    &["Sec-WebSocket-Key"],
                    &["Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAA"],
                ),
                InvalidKey,
                400,
            ),
            (
                request(
                    sample,
                    &["Sec-WebSocket-Key"],
                    &["Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAA="],
                ),
                InvalidKey,
                400,
            ),
            (
                request(
                    sample,
                    &["Sec-WebSocket-Key"],
                    &["Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ"],
                ),
                InvalidKey,
                400,
            ),
            (
                request(sample, &["Sec-WebSocket-Key"], &["Sec-WebSocket-Key:"]),
                InvalidKey,
                400,
            ),
            (
                request(sample, &["Sec-WebSocket-Version"], &[]),
                UnsupportedVersion,
                426,
            ),
            (
                request(
                    sample,
                    &["Sec-WebSocket-Version"],
                    &["Sec-WebSocket-Version: 8"],
                ),
                UnsupportedVersion,
                426,
            ),
            (
                request(
                    sample,
                    &["Sec-WebSocket-Version"],
                    &["Sec-WebSocket-Version: 13, 8"],
                ),
                UnsupportedVersion,
                426,
            ),
            (
                request(sample, &[], &["Sec-WebSocket-Version: 13"]),
                UnsupportedVersion,
                426,
            ),
            (sample_with(&["Content-Length: 5"]), UnexpectedBody, 400),
            (
                sample_with(&["Transfer-Encoding: chunked"]),
                UnexpectedBody,
                400,
            ),
            (
                sample_with(&["X-Folded: a", " b"]),
                ObsoleteLineFolding,
                400,
            ),
            (sample_with(&["\tX-Indented: a"]), ObsoleteLineFolding, 400),
            (
                request(sample, &["Host"], &["Host : server.example.com"]),
                WhitespaceBeforeColon,
                400,
            ),
            (sample_with(&["X-Tab\t: a"]), WhitespaceBeforeColon, 400),
            (sample_with(&["X(A): b"]), InvalidHeaderName, 400),
            (sample_with(&[": b"]), InvalidHeaderName, 400),
            (
                sample_with(&["X-Nul: a\0b"]),
                InvalidHeaderValue {
                    name: "X-Nul".into(),
                },
                400,
            ),
            (
                sample_with(&["X-Del: a\x7fb"]),
                InvalidHeaderValue {
                    name: "X-Del".into(),
                },
                400,
            ),
            (sample_with(&["X-Cr: a\rb"]), InvalidLineEnding, 400),
            (sample_with(&["X-Lf: a\nb"]), InvalidLineEnding, 400),
            (sample_with(&["No colon here"]), MissingColon, 400),
            (
                sample_with(&["Sec-WebSocket-Protocol: chat, super chat"]),
                MalformedSubprotocols,
                400,
            ),
            (
                sample_with(&["Sec-WebSocket-Protocol: chat;v=1"]),
                MalformedSubprotocols,
                400,
            ),
            (
                sample_with(&["Sec-WebSocket-Extensions: permessage-deflate; =1"]),
                MalformedExtensions,
                400,
            ),
            (
                sample_with(&["Sec-WebSocket-Extensions: a b"]),
                MalformedExtensions,
                400,
            ),
            (
                b"GET /chat HTTP/1.1\nHost: a\r\n\r\n".to_vec(),
                InvalidLineEnding,
                400,
            ),
            (
                b"GET /chat HTTP/1.1\r\nHost: a\r\n\n".to_vec(),
                InvalidLineEnding,
                400,
            ),
            (
                b"GET /chat HTTP/1.1\r\nHost: a\r\r\n".to_vec(),
                InvalidLineEnding,
                400,
            ),
            (
                sample_with_bytes(&[b"X-Latin1: caf\xe9\x7f"]),
                InvalidHeaderValue {
                    name: "X-Latin1".into(),
                },
                400,
            ),
            // obs-text is legal in a field value, but not in the handshake's own grammars, and a
            // field that is not UTF-8 still counts.
            (
                sample_with_bytes(&[b"Host: caf\xe9.example"]),
                DuplicateHost,
                400,
            ),
            (
                sample_with_bytes(&[b"Sec-WebSocket-Version: 13\xa0"]),
                UnsupportedVersion,
                426,
            ),
            (
                sample_with_bytes(&[b"Sec-WebSocket-Key: \xe9"]),
                DuplicateKey,
                400,
            ),
            (
                sample_with_bytes(&[b"Sec-WebSocket-Protocol: chat, caf\xe9"]),
                MalformedSubprotocols,
                400,
            ),
            (
                sample_with_bytes(&[b"Sec-WebSocket-Extensions: permessage-deflate; x=\xe9"]),
                MalformedExtensions,
                400,
            ),
            (
                sample_with_bytes(&[b"Content-Length: \xe9"]),
                UnexpectedBody,
                400,
            ),
        ];
        for (data, expected, status) in cases {
            let shown = String::from_utf8_lossy(&data).into_owned();
            for size in [1, data.len()] {
                let mut parser = RequestParser::default();
                let error = data
                    .chunks(size)
                    .find_map(|chunk| parser.receive(chunk).err());
                assert_eq!(
                    error.as_ref(),
                    Some(&expected),
                    "{shown:?} in chunks of {size}"
                );
            }
            assert_eq!(expected.status(), status, "{shown:?}");
            assert_eq!(expected.response().status(), status, "{shown:?}");
        }
    }

    #[test]
    fn lenient_where_http_allows() {
        let request = request(
            SAMPLE[0],
            &["Upgrade", "Connection", "Sec-WebSocket-Key"],
            &[
                "upgrade: h2c, WebSocket",
                "connection: keep-alive",
                "CONNECTION:\t upgrade \t",
                "sec-websocket-key:   dGhlIHNhbXBsZSBub25jZQ==  ",
                "Content-Length: 0",
                "Sec-WebSocket-Protocol: chat,,",
                "Sec-WebSocket-Protocol: superchat",
                "Sec-WebSocket-Extensions: a; x=\"1\", b",
                "Sec-WebSocket-Extensions: c",
                "X-Empty:",
            ],
        );
        let request = parse(&request).unwrap();
        assert_eq!(request.key(), KEY);
        assert_eq!(request.subprotocols(), ["chat", "superchat"]);
        let names: Vec<_> = request
            .extensions()
            .iter()
            .map(ExtensionOffer::name)
            .collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(
            request.extensions()[0].params().collect::<Vec<_>>(),
            [("x", Some("1"))]
        );
        assert_eq!(request.headers().get("x-empty"), Some(""));
    }

    #[test]
    fn obs_text_values_are_kept_byte_for_byte() {
        let data = sample_with_bytes(&[
            b"Cookie: name=caf\xe9; theme=dark",
            b"X-Utf8: caf\xc3\xa9",
            b"Upgrade: \xe9, websocket",
            b"Origin: http://caf\xe9.example",
        ]);
        for size in [1, data.len()] {
            let (request, _) = feed(&data, size).unwrap();
            let headers = request.headers();
            assert_eq!(
                headers.get_bytes("cookie"),
                Some(&b"name=caf\xe9; theme=dark"[..])
            );
            assert_eq!(headers.get("cookie"), None);
            assert_eq!(headers.get("x-utf8"), Some("caf\u{e9}"));
            assert_eq!(request.origin(), None);
            assert_eq!(headers.len(), 9);
            assert_eq!(headers.iter().count(), 6);
        }
    }

    #[test]
    fn error_responses_carry_their_headers() {
        let error = parse(&request(SAMPLE[0], &["Sec-WebSocket-Version"], &[])).unwrap_err();
        let reply = String::from_utf8(error.response().encode().to_vec()).unwrap();
        assert!(
            reply.starts_with("HTTP/1.1 426 Upgrade Required\r\n"),
            "{reply}"
        );
        assert!(
            reply.contains("\r\nSec-WebSocket-Version: 13\r\n"),
            "{reply}"
        );
        assert!(reply.contains("\r\nConnection: close\r\n"), "{reply}");

        let error = parse(&request("PUT /chat HTTP/1.1", &[], &[])).unwrap_err();
        let reply = String::from_utf8(error.response().encode().to_vec()).unwrap();
        assert!(
            reply.starts_with("HTTP/1.1 405 Method Not Allowed\r\nAllow: GET\r\n"),
            "{reply}"
        );
    }

    #[test]
    fn header_count_limit() {
        let fields: Vec<String> = (0..95).map(|n| format!("X-Field-{n}: {n}")).collect();
        let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
        let request = parse(&sample_with(&fields)).unwrap();
        assert_eq!(request.headers().len(), 100);

        let mut fields = fields;
        fields.push("X-One-Too-Many: 1");
        let error = parse(&sample_with(&fields)).unwrap_err();
        assert_eq!(error, HandshakeError::TooManyHeaders);
        assert_eq!(error.status(), 431);
    }

    /// Feeds `prefix` and then `filler` forever in chunks of 100 bytes; returns the error and how
    /// many bytes went in before it.
    fn flood(prefix: &[u8], filler: u8) -> (HandshakeError, usize) {
        let mut parser = RequestParser::default();
        parser.receive(prefix).unwrap();
        let chunk = [filler; 100];
        let mut fed = prefix.len();
        for _ in 0..(1 << 20) / chunk.len() {
            fed += chunk.len();
            if let Err(error) = parser.receive(&chunk) {
                return (error, fed);
            }
        }
        panic!("a 1 MiB line was accepted");
    }

    #[test]
    fn huge_target_fails_as_soon_as_the_limit_is_passed() {
        let (error, fed) = flood(b"GET /", b'a');
        assert_eq!(error, HandshakeError::RequestLineTooLong);
        assert_eq!(error.status(), 414);
        assert!(fed <= 8 * 1024 + 100, "{fed}");
    }

    #[test]
    fn huge_header_section_fails_as_soon_as_the_limit_is_passed() {
        let prefix = b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: ";
        let (error, fed) = flood(prefix, b'a');
        assert_eq!(error, HandshakeError::HeadersTooLarge);
        assert_eq!(error.status(), 431);
        assert!(fed <= 16 * 1024 + 100 + 16, "{fed}");
    }

    #[test]
    fn near_limit_head_one_byte_at_a_time() {
        let padding = "p".repeat(240);
        let fields: Vec<String> = (0..62)
            .map(|n| format!("X-Pad-{n:02}: {padding}"))
            .collect();
        let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
        let data = sample_with(&fields);
        assert!(
            data.len() > 15 * 1024 && data.len() < 16 * 1024,
            "{}",
            data.len()
        );
        let (request, rest) = feed(&data, 1).unwrap();
        assert_eq!(request.headers().len(), 67);
        assert!(rest.is_empty());
    }

    #[test]
    fn receive_after_the_end_is_misuse() {
        let mut parser = RequestParser::default();
        assert!(parser.receive(&sample_with(&[])).unwrap().is_some());
        assert_eq!(parser.receive(b"GET"), Err(HandshakeError::Finished));

        let mut parser = RequestParser::default();
        assert!(parser.receive(b"POST / HTTP/1.1\r\n").is_err());
        assert_eq!(
            parser.receive(b"Host: a\r\n"),
            Err(HandshakeError::Finished)
        );
    }

    /// A valid request with random target, extra fields (whose values may hold obs-text, UTF-8
    /// or not), subprotocols and optional whitespace, and the bytes after its head.
    fn valid_request() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
        let value_byte = prop_oneof![
            4 => 0x21u8..=0x7e,
            2 => 0x80u8..=0xff,
            1 => Just(b' '),
            1 => Just(b'\t'),
        ];
        let value = proptest::collection::vec(value_byte, 0..32)
            .prop_map(|value| super::super::headers::trim_ows(&value).to_vec());
        let field = ("X-[A-Za-z0-9-]{1,12}", "[ \t]{0,2}", value, "[ \t]{0,2}");
        (
            "/[A-Za-z0-9._~%/-]{0,40}(\\?[A-Za-z0-9=&]{0,20})?",
            proptest::collection::vec(field, 0..8),
            proptest::collection::vec("[a-z][a-z0-9.]{0,8}", 0..4),
            proptest::collection::vec(any::<u8>(), 0..64),
        )
            .prop_map(|(target, fields, protocols, tail)| {
                let mut extra: Vec<Vec<u8>> = fields
                    .into_iter()
                    .map(|(name, pre, value, post)| {
                        [format!("{name}:{pre}").as_bytes(), &value, post.as_bytes()].concat()
                    })
                    .collect();
                if !protocols.is_empty() {
                    extra.push(
                        format!("Sec-WebSocket-Protocol: {}", protocols.join(", ")).into_bytes(),
                    );
                }
                let extra: Vec<&[u8]> = extra.iter().map(Vec::as_slice).collect();
                (
                    request_with_bytes(&format!("GET {target} HTTP/1.1"), &extra),
                    tail,
                )
            })
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(
            data in proptest::collection::vec(any::<u8>(), 0..600),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
            small in any::<bool>(),
        ) {
            let limits = if small {
                HandshakeLimits { max_request_line: 16, max_headers: 3, max_header_bytes: 64, max_body: 8 }
            } else {
                HandshakeLimits::default()
            };
            let mut parser = RequestParser::new(limits);
            let mut cuts: Vec<usize> = cuts.iter().map(|cut| cut.index(data.len() + 1)).collect();
            cuts.sort_unstable();
            let mut start = 0;
            for end in cuts.into_iter().chain([data.len()]) {
                if parser.receive(&data[start..end]).is_err() {
                    break;
                }
                start = end;
            }
        }

        #[test]
        fn mutated_requests_never_panic(
            (head, _) in valid_request(),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        ) {
            let mut data = head;
            for (at, byte) in edits {
                let at = at.index(data.len());
                data[at] = byte;
            }
            let mut parser = RequestParser::default();
            for chunk in data.chunks(3) {
                match parser.receive(chunk) {
                    Ok(None) => {}
                    Ok(Some(_)) | Err(_) => break,
                }
            }
        }

        #[test]
        fn splitting_does_not_change_the_result(
            (head, tail) in valid_request(),
            cut in any::<prop::sample::Index>(),
            size in 1..40usize,
        ) {
            let data = [head.as_slice(), &tail].concat();
            let (whole, rest) = feed(&data, data.len()).unwrap();
            prop_assert_eq!(&rest, &tail);
            let cut = cut.index(data.len() + 1);
            let mut parser = RequestParser::default();
            let request = match parser.receive(&data[..cut]).unwrap() {
                Some(request) => request,
                None => parser.receive(&data[cut..]).unwrap().unwrap(),
            };
            // Bytes past the cut were never fed when the first part already held the head.
            let end = if cut >= head.len() { cut } else { data.len() };
            prop_assert_eq!(&request.leftover()[..], &data[head.len()..end]);
            let (chunked, rest) = feed(&data, size).unwrap();
            prop_assert_eq!(&rest, &tail);
            for other in [request, chunked] {
                prop_assert_eq!(other.target(), whole.target());
                prop_assert_eq!(other.headers(), whole.headers());
                prop_assert_eq!(other.key(), whole.key());
                prop_assert_eq!(other.subprotocols(), whole.subprotocols());
                prop_assert_eq!(other.extensions(), whole.extensions());
            }
        }

        #[test]
        fn agrees_with_httparse((head, tail) in valid_request()) {
            let data = [head.as_slice(), &tail].concat();
            let request = parse(&data).unwrap();
            let mut fields = [httparse::EMPTY_HEADER; 32];
            let mut reference = httparse::Request::new(&mut fields);
            let httparse::Status::Complete(head_len) = reference.parse(&data).unwrap() else {
                panic!("httparse wants more");
            };
            prop_assert_eq!(head_len, head.len());
            prop_assert_eq!(&request.leftover()[..], &data[head_len..]);
            prop_assert_eq!(reference.method, Some(request.method()));
            prop_assert_eq!(reference.path, Some(request.target()));
            let expected: Vec<(&str, &[u8])> = reference.headers.iter().map(|field| (field.name, field.value)).collect();
            let ours: Vec<(&str, &[u8])> = request.headers().iter_bytes().collect();
            prop_assert_eq!(ours, expected);
        }
    }
}
