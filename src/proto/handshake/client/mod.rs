//! The client side of the opening handshake (RFC 6455 §4.1).
//!
//! This file builds and encodes the request; `response` reads and checks the server's reply, and
//! `uri` splits the `ws://` URI the request starts from.

mod response;
mod uri;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;

pub use self::response::{Response, ResponseParser};
use self::uri::{default_port, parse_uri};
use super::accept::accept_key;
use super::error::HandshakeError;
use super::headers::{
    ExtensionOffer, Headers, check_outgoing, is_token, parse_extensions, write_header,
};
use super::http::HandshakeLimits;
use crate::proto::Rng;

/// A client's opening handshake: where to connect and what to offer.
///
/// Built from a `ws://` or `wss://` URI; the driver connects to [`host`](Self::host) and
/// [`port`](Self::port) (with TLS when [`is_secure`](Self::is_secure)), writes the bytes from
/// [`encode`](Self::encode) and feeds the reply to the [`ResponseParser`] it returned.
///
/// ```
/// use wsio::proto::Rng;
/// use wsio::proto::handshake::{Accept, ClientRequest, RequestParser};
///
/// let request = ClientRequest::new("ws://example.com:8080/chat?room=1")?.subprotocol("chat")?;
/// assert_eq!((request.host(), request.port(), request.resource()), ("example.com", 8080, "/chat?room=1"));
/// let (bytes, mut parser) = request.encode(&mut Rng::from_seed([7; 32]));
///
/// // A server in the same process stands in for the network.
/// let offer = RequestParser::default().receive(&bytes)?.expect("a complete request");
/// let reply = offer.accept(&Accept::new().subprotocol("chat"))?;
///
/// let response = parser.receive(&reply)?.expect("a complete response");
/// assert_eq!(response.subprotocol(), Some("chat"));
/// # Ok::<(), wsio::proto::handshake::HandshakeError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRequest {
    secure: bool,
    host: String,
    port: u16,
    resource: String,
    subprotocols: Vec<String>,
    /// Raw offers, as given to `extension`.
    extensions: Vec<String>,
    /// The names in `extensions`, which a response may accept.
    extension_names: Vec<String>,
    headers: Headers,
    limits: HandshakeLimits,
}

/// Headers that [`ClientRequest::encode`] writes itself.
const CLIENT_RESERVED: &[&str] = &[
    "Host",
    "Upgrade",
    "Connection",
    "Sec-WebSocket-Key",
    "Sec-WebSocket-Version",
    "Sec-WebSocket-Protocol",
    "Sec-WebSocket-Extensions",
];

impl ClientRequest {
    /// Parses a WebSocket URI (§3): `ws://host[:port][/path][?query]` or `wss://…`.
    ///
    /// The host may be a name, an IPv4 address or a bracketed IPv6 address; the port defaults
    /// to 80 for `ws` and 443 for `wss`; the resource name defaults to `/`. Fragments, user
    /// information and other schemes are refused with [`HandshakeError::InvalidUri`].
    pub fn new(uri: &str) -> Result<Self, HandshakeError> {
        let (secure, host, port, resource) = parse_uri(uri).map_err(HandshakeError::InvalidUri)?;
        Ok(Self {
            secure,
            host,
            port,
            resource,
            subprotocols: Vec::new(),
            extensions: Vec::new(),
            extension_names: Vec::new(),
            headers: Headers::default(),
            limits: HandshakeLimits::default(),
        })
    }

    /// Returns the host to connect to, without the brackets of an IPv6 address.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Returns the port to connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Returns whether the URI was `wss`, so the connection must use TLS.
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// Returns the resource name sent in the request line: the path and query.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// Offers a subprotocol; offers go out in the order they were added.
    ///
    /// Fails with [`HandshakeError::InvalidSubprotocol`] unless `name` is a token not yet offered.
    pub fn subprotocol(mut self, name: &str) -> Result<Self, HandshakeError> {
        if !is_token(name) || self.subprotocols.iter().any(|offered| offered == name) {
            return Err(HandshakeError::InvalidSubprotocol {
                name: name.to_owned(),
            });
        }
        self.subprotocols.push(name.to_owned());
        Ok(self)
    }

    /// Offers one or more extensions, written as in `Sec-WebSocket-Extensions`, such as
    /// `permessage-deflate; client_max_window_bits`.
    ///
    /// Fails with [`HandshakeError::InvalidExtensionOffer`] unless `offer` follows §9.1. A
    /// response may then accept any extension named here.
    pub fn extension(mut self, offer: &str) -> Result<Self, HandshakeError> {
        let invalid = || HandshakeError::InvalidExtensionOffer {
            offer: offer.to_owned(),
        };
        let offers = parse_extensions(offer.as_bytes())
            .filter(|offers| !offers.is_empty())
            .ok_or_else(invalid)?;
        self.extension_names
            .extend(offers.iter().map(|offer| offer.name().to_owned()));
        self.extensions.push(
            offers
                .iter()
                .map(ExtensionOffer::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        );
        Ok(self)
    }

    /// Adds a header to the request, such as `Origin`, `Authorization` or `Cookie`.
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
        check_outgoing(name, value, CLIENT_RESERVED)?;
        self.headers.push(name.to_owned(), value.to_vec());
        Ok(self)
    }

    /// Sets the bounds the [`ResponseParser`] enforces on the server's reply.
    pub fn limits(mut self, limits: HandshakeLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Returns the request to write, with a fresh key from `rng`, and the parser for the reply.
    pub fn encode(&self, rng: &mut Rng) -> (Bytes, ResponseParser) {
        let key = STANDARD.encode(rng.nonce());
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(b"GET ");
        out.extend_from_slice(self.resource.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        write_header(&mut out, "Host", self.host_header());
        write_header(&mut out, "Upgrade", "websocket");
        write_header(&mut out, "Connection", "Upgrade");
        write_header(&mut out, "Sec-WebSocket-Key", &key);
        write_header(&mut out, "Sec-WebSocket-Version", "13");
        if !self.subprotocols.is_empty() {
            write_header(
                &mut out,
                "Sec-WebSocket-Protocol",
                self.subprotocols.join(", "),
            );
        }
        if !self.extensions.is_empty() {
            write_header(
                &mut out,
                "Sec-WebSocket-Extensions",
                self.extensions.join(", "),
            );
        }
        for (name, value) in self.headers.iter_bytes() {
            write_header(&mut out, name, value);
        }
        out.extend_from_slice(b"\r\n");
        let parser = ResponseParser::new(
            accept_key(key.as_bytes()),
            self.subprotocols.clone(),
            self.extension_names.clone(),
            self.limits.clone(),
        );
        (Bytes::from(out), parser)
    }

    /// Returns the `Host` value: the port only when it is not the scheme's default (§4.1).
    fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == default_port(self.secure) {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::handshake::RequestParser;

    const SEED: [u8; 32] = [7; 32];

    #[test]
    fn request_encoding_is_byte_exact() {
        let request = ClientRequest::new("ws://example.com:8080/chat?room=1")
            .unwrap()
            .subprotocol("chat")
            .unwrap()
            .subprotocol("superchat")
            .unwrap()
            .extension("permessage-deflate;client_max_window_bits")
            .unwrap()
            .extension("x-a, x-b; q=\"1\"")
            .unwrap()
            .header("Origin", "http://example.com")
            .unwrap();
        let (bytes, _) = request.encode(&mut Rng::from_seed(SEED));
        let key = STANDARD.encode(Rng::from_seed(SEED).nonce());
        assert_eq!(key.len(), 24);
        let expected = format!(
            "GET /chat?room=1 HTTP/1.1\r\n\
             Host: example.com:8080\r\n\
             Upgrade: websocket\r\n\
             Connection: Upgrade\r\n\
             Sec-WebSocket-Key: {key}\r\n\
             Sec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Protocol: chat, superchat\r\n\
             Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits, x-a, x-b; q=1\r\n\
             Origin: http://example.com\r\n\
             \r\n"
        );
        assert_eq!(std::str::from_utf8(&bytes).unwrap(), expected);
    }

    #[test]
    fn host_header_names_the_port_only_when_needed() {
        for (uri, host) in [
            ("ws://example.com:80/", "example.com"),
            ("wss://example.com:443/", "example.com"),
            ("wss://example.com:80/", "example.com:80"),
            ("ws://[::1]/", "[::1]"),
            ("ws://[::1]:9000/", "[::1]:9000"),
        ] {
            let (bytes, _) = ClientRequest::new(uri)
                .unwrap()
                .encode(&mut Rng::from_seed(SEED));
            let request = RequestParser::default().receive(&bytes).unwrap().unwrap();
            assert_eq!(request.headers().get("host"), Some(host), "{uri}");
        }
    }

    #[test]
    fn keys_differ_between_handshakes() {
        let mut rng = Rng::from_seed(SEED);
        let request = ClientRequest::new("ws://example.com").unwrap();
        assert_ne!(request.encode(&mut rng).0, request.encode(&mut rng).0);
    }

    #[test]
    fn obs_text_request_headers_go_out_as_given() {
        let request = ClientRequest::new("ws://example.com/")
            .unwrap()
            .header_bytes("Cookie", b"name=caf\xe9")
            .unwrap();
        let (bytes, _) = request.encode(&mut Rng::from_seed(SEED));
        assert!(
            bytes.ends_with(b"\r\nCookie: name=caf\xe9\r\n\r\n"),
            "{bytes:?}"
        );
        let received = RequestParser::default().receive(&bytes).unwrap().unwrap();
        assert_eq!(
            received.headers().get_bytes("cookie"),
            Some(&b"name=caf\xe9"[..])
        );
        for value in [&b"\xe9\n"[..], b"\0", b"\x7f"] {
            assert_eq!(
                ClientRequest::new("ws://example.com/")
                    .unwrap()
                    .header_bytes("Cookie", value),
                Err(HandshakeError::InvalidOutgoingHeader {
                    name: "Cookie".into()
                })
            );
        }
    }

    #[test]
    fn builder_misuse_is_refused() {
        let request = || ClientRequest::new("ws://example.com").unwrap();
        assert_eq!(
            request().subprotocol("a b"),
            Err(HandshakeError::InvalidSubprotocol { name: "a b".into() })
        );
        assert_eq!(
            request().subprotocol("chat").unwrap().subprotocol("chat"),
            Err(HandshakeError::InvalidSubprotocol {
                name: "chat".into()
            })
        );
        for offer in ["", " , ", "a; =1", "a\r\nX: y"] {
            assert_eq!(
                request().extension(offer),
                Err(HandshakeError::InvalidExtensionOffer {
                    offer: offer.into()
                })
            );
        }
        assert_eq!(
            request().header("host", "a"),
            Err(HandshakeError::ReservedHeader {
                name: "host".into()
            })
        );
        assert_eq!(
            request().header("X-A", "b\r\nHost: evil"),
            Err(HandshakeError::InvalidOutgoingHeader { name: "X-A".into() })
        );
    }
}
