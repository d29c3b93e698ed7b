//! Conversions between the handshake types and the `http` crate's (RFC 6455 §4, RFC 9110).
//!
//! - Client: build a [`ClientRequest`] from an `http::Request<()>` (its `Uri`, method and
//!   headers) or an `http::Uri`, then connect with it as usual; or turn a `ClientRequest` into
//!   the `http::Request<()>` it sends, with the [`ResponseParser`] for the reply
//!   ([`encode_request`]).
//! - Server: check a request another HTTP server already parsed ([`check_request`]) with the
//!   same rules, limits and typed errors as the sans-IO [`RequestParser`], and read a checked
//!   [`Request`] back as an `http::Request<()>`.
//! - Both: [`Headers`] to and from `http::HeaderMap`, and a client's [`Response`] as an
//!   `http::Response<()>`.
//!
//! ```
//! use wsio::proto::handshake::ClientRequest;
//!
//! let request = http::Request::get("ws://127.0.0.1:9002/chat?room=1")
//!     .header("Sec-WebSocket-Protocol", "chat")
//!     .header("Authorization", "Bearer abc")
//!     .body(())?;
//! let request = ClientRequest::try_from(&request)?;
//! assert_eq!(request.resource(), "/chat?room=1");
//! // Then: wsio::tokio::connect_async_with(request, &options).await
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt::Write as _;

use ::http::header::{HeaderMap, HeaderName, HeaderValue};
use ::http::{Method, Uri, Version};

use crate::proto::Rng;
use crate::proto::handshake::{
    ClientRequest, HandshakeError, HandshakeLimits, Headers, Request, RequestParser, Response,
    ResponseParser,
};

/// Why a value cannot be converted between the handshake types and the `http` crate's.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConversionError {
    /// The handshake's own rules refuse the value, such as a URI that is not `ws://` or `wss://`
    /// or a header the handshake writes itself.
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    /// A client request whose method is not `GET`.
    #[error("a websocket handshake request uses GET, not {0}")]
    Method(Method),
    /// A header value that is not text, or a name or value that the `http` crate refuses.
    #[error("header {name:?} cannot be converted")]
    Header {
        /// The header's name.
        name: String,
    },
    /// A `Host` header that names another authority than the URI: the handshake sends the
    /// URI's.
    #[error("host header {host:?} differs from the uri's authority")]
    Host {
        /// The `Host` header's value.
        host: String,
    },
    /// The `http` crate refused to build the request or response, such as a target it cannot
    /// read as a `Uri`.
    #[error("cannot build the http value: {0}")]
    Http(#[from] ::http::Error),
}

/// Checks a request that another HTTP server (hyper, axum) has already parsed, with exactly
/// the rules, `limits` and errors of the sans-IO [`RequestParser`].
///
/// The request head is written out as HTTP/1.1 and fed to a `RequestParser`, so there is one
/// set of rules: the method, the version (`HTTP/1.1` only), `Host`, `Upgrade`, `Connection`,
/// `Sec-WebSocket-Version` (426 with `Sec-WebSocket-Version: 13`), `Sec-WebSocket-Key`, no
/// body, and the subprotocol and extension lists. On an error, answer with
/// [`HandshakeError::response`]. The body of `request` is not looked at.
///
/// ```
/// use wsio::proto::handshake::{HandshakeError, HandshakeLimits};
///
/// let request = http::Request::get("/chat")
///     .header("Host", "example.com")
///     .header("Upgrade", "websocket")
///     .header("Connection", "Upgrade")
///     .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
///     .header("Sec-WebSocket-Version", "8")
///     .body(())?;
/// let error = wsio::http::check_request(&request, &HandshakeLimits::default()).unwrap_err();
/// assert_eq!(error, HandshakeError::UnsupportedVersion);
/// assert_eq!(error.status(), 426);
/// # Ok::<(), http::Error>(())
/// ```
pub fn check_request<B>(
    request: &::http::Request<B>,
    limits: &HandshakeLimits,
) -> Result<Request, HandshakeError> {
    check_head(
        request.method(),
        request.uri(),
        request.version(),
        request.headers(),
        limits,
    )
}

/// Checks the head of a request another HTTP server has parsed, like [`check_request`]; for
/// code that holds the request's `Parts`, such as an extractor.
pub fn check_parts(
    parts: &::http::request::Parts,
    limits: &HandshakeLimits,
) -> Result<Request, HandshakeError> {
    check_head(
        &parts.method,
        &parts.uri,
        parts.version,
        &parts.headers,
        limits,
    )
}

/// Returns the request a [`ClientRequest`] sends, with a fresh key from `rng`, and the parser
/// that checks the server's reply against that key and the offers.
///
/// The request's URI is the full `ws://` or `wss://` URI; its headers are exactly those
/// [`ClientRequest::encode`] writes. Feed the reply's head to the parser (see
/// [`encode_response_head`]).
pub fn encode_request(
    request: &ClientRequest,
    rng: &mut Rng,
) -> Result<(::http::Request<()>, ResponseParser), ConversionError> {
    let (bytes, parser) = request.encode(rng);
    // Our own bytes, read back by the server-side parser: one writer of the request head.
    let limits = HandshakeLimits {
        max_request_line: usize::MAX,
        max_headers: usize::MAX,
        max_header_bytes: usize::MAX,
        ..HandshakeLimits::default()
    };
    let sent = RequestParser::new(limits)
        .receive(&bytes)?
        .ok_or(HandshakeError::UnexpectedEof)?;
    let uri = Uri::try_from(client_uri(request)).map_err(::http::Error::from)?;
    let mut http = to_http_request(&sent, uri)?;
    *http.version_mut() = Version::HTTP_11;
    Ok((http, parser))
}

/// Writes the head of a response another HTTP client has parsed as HTTP/1.1 bytes, to feed to
/// the [`ResponseParser`] from [`encode_request`].
pub fn encode_response_head<B>(response: &::http::Response<B>) -> Vec<u8> {
    let mut head = Vec::with_capacity(256);
    let status = response.status();
    head.extend_from_slice(b"HTTP/1.1 ");
    head.extend_from_slice(status.as_str().as_bytes());
    head.push(b' ');
    head.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    head.extend_from_slice(b"\r\n");
    write_fields(&mut head, response.headers());
    head.extend_from_slice(b"\r\n");
    head
}

impl<B> TryFrom<&::http::Request<B>> for ClientRequest {
    type Error = ConversionError;

    /// Reads a client request from an `http::Request`: its URI (`ws://` or `wss://`), its
    /// `Sec-WebSocket-Protocol` offers in order, its `Sec-WebSocket-Extensions` offers, and every
    /// other header as [`ClientRequest::header`].
    ///
    /// `Upgrade`, `Connection`, `Sec-WebSocket-Key` and `Sec-WebSocket-Version` are left out: the
    /// handshake writes its own, with a fresh key for every connection. A `Host` header is left
    /// out when it names the URI's authority and refused otherwise. The body is not looked at.
    fn try_from(request: &::http::Request<B>) -> Result<Self, Self::Error> {
        if request.method() != Method::GET {
            return Err(ConversionError::Method(request.method().clone()));
        }
        let mut client = ClientRequest::try_from(request.uri())?;
        let default_port = if client.is_secure() { 443 } else { 80 };
        let authority = request
            .uri()
            .authority()
            .map(|authority| without_port(authority.as_str(), default_port));
        for (name, value) in request.headers() {
            // The handshake's own headers are read as text; any other value goes out as bytes.
            let text = || {
                value.to_str().map_err(|_| ConversionError::Header {
                    name: name.as_str().to_owned(),
                })
            };
            match name.as_str() {
                "upgrade" | "connection" | "sec-websocket-key" | "sec-websocket-version" => {}
                "host" => {
                    let host = text()?;
                    let same = authority.is_some_and(|authority| {
                        authority.eq_ignore_ascii_case(without_port(host, default_port))
                    });
                    if !same {
                        return Err(ConversionError::Host {
                            host: host.to_owned(),
                        });
                    }
                }
                "sec-websocket-protocol" => {
                    for protocol in text()?.split(',') {
                        let protocol = protocol.trim_matches([' ', '\t']);
                        if !protocol.is_empty() {
                            client = client.subprotocol(protocol)?;
                        }
                    }
                }
                "sec-websocket-extensions" => client = client.extension(text()?)?,
                other => client = client.header_bytes(other, value.as_bytes())?,
            }
        }
        Ok(client)
    }
}

impl TryFrom<&Uri> for ClientRequest {
    type Error = ConversionError;

    /// Reads a `ws://` or `wss://` URI, as [`ClientRequest::new`] does.
    fn try_from(uri: &Uri) -> Result<Self, Self::Error> {
        Ok(ClientRequest::new(&uri.to_string())?)
    }
}

impl TryFrom<Uri> for ClientRequest {
    type Error = ConversionError;

    /// Reads a `ws://` or `wss://` URI, as [`ClientRequest::new`] does.
    fn try_from(uri: Uri) -> Result<Self, Self::Error> {
        ClientRequest::try_from(&uri)
    }
}

impl<B> TryFrom<&::http::Request<B>> for Request {
    type Error = HandshakeError;

    /// Checks the request with [`check_request`] and the default [`HandshakeLimits`].
    fn try_from(request: &::http::Request<B>) -> Result<Self, Self::Error> {
        check_request(request, &HandshakeLimits::default())
    }
}

impl TryFrom<&Request> for ::http::Request<()> {
    type Error = ConversionError;

    /// Returns the checked request as an `http::Request`: `GET`, HTTP/1.1, its target as the
    /// URI (usually a path and query) and every header in arrival order.
    fn try_from(request: &Request) -> Result<Self, Self::Error> {
        let uri = Uri::try_from(request.target()).map_err(::http::Error::from)?;
        to_http_request(request, uri)
    }
}

impl TryFrom<&Response> for ::http::Response<()> {
    type Error = ConversionError;

    /// Returns the server's `101 Switching Protocols` with every header in arrival order.
    fn try_from(response: &Response) -> Result<Self, Self::Error> {
        let mut http = ::http::Response::builder()
            .status(response.status())
            .version(Version::HTTP_11)
            .body(())?;
        *http.headers_mut() = HeaderMap::try_from(response.headers())?;
        Ok(http)
    }
}

impl TryFrom<&Headers> for HeaderMap {
    type Error = ConversionError;

    /// Copies every field, keeping repeated names and their order. Names become lower case.
    fn try_from(headers: &Headers) -> Result<Self, Self::Error> {
        let mut map = HeaderMap::with_capacity(headers.len());
        // As bytes: `iter` would skip the values that are not UTF-8 (obs-text).
        for (name, value) in headers.iter_bytes() {
            let invalid = || ConversionError::Header {
                name: name.to_owned(),
            };
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid())?;
            let value = HeaderValue::from_bytes(value).map_err(|_| invalid())?;
            map.append(name, value);
        }
        Ok(map)
    }
}

impl TryFrom<&HeaderMap> for Headers {
    type Error = ConversionError;

    /// Copies every field in the map's order (repeated names together, in their order).
    /// Values are copied as bytes, obs-text included; a value with a control byte (which
    /// `http::HeaderValue` can hold but a WebSocket handshake refuses) fails with
    /// [`ConversionError::Header`].
    fn try_from(map: &HeaderMap) -> Result<Self, Self::Error> {
        let mut headers = Headers::default();
        for (name, value) in map {
            headers
                .append(name.as_str(), value.as_bytes())
                .map_err(|_| ConversionError::Header {
                    name: name.as_str().to_owned(),
                })?;
        }
        Ok(headers)
    }
}

/// Writes the head as HTTP/1.1 bytes and runs the sans-IO parser over it.
fn check_head(
    method: &Method,
    uri: &Uri,
    version: Version,
    headers: &HeaderMap,
    limits: &HandshakeLimits,
) -> Result<Request, HandshakeError> {
    let mut head = Vec::with_capacity(512);
    head.extend_from_slice(method.as_str().as_bytes());
    head.push(b' ');
    // The origin form as sent; an absolute-form or authority-form target is written whole.
    match uri.scheme() {
        None if uri.authority().is_none() => head.extend_from_slice(
            uri.path_and_query()
                .map_or("/", |target| target.as_str())
                .as_bytes(),
        ),
        _ => {
            let _ = write!(ByteWriter(&mut head), "{uri}");
        }
    }
    head.push(b' ');
    head.extend_from_slice(version_text(version).as_bytes());
    head.extend_from_slice(b"\r\n");
    write_fields(&mut head, headers);
    head.extend_from_slice(b"\r\n");
    match RequestParser::new(limits.clone()).receive(&head)? {
        Some(request) => Ok(request),
        // The head ends in a blank line, so the parser has it whole; this is unreachable.
        None => Err(HandshakeError::MalformedRequestLine),
    }
}

/// Writes `name: value\r\n` for every field, values as raw bytes.
///
/// A value holding CR or LF cannot come from the `http` crate, which refuses them, so a field
/// never spills into another line here.
fn write_fields(out: &mut Vec<u8>, headers: &HeaderMap) {
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

/// The version as written in a request line; anything but `HTTP/1.1` is then refused by the
/// parser with [`HandshakeError::UnsupportedHttpVersion`].
fn version_text(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_11 => "HTTP/1.1",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/?",
    }
}

/// Builds `GET uri HTTP/1.1` with the request's headers.
fn to_http_request(request: &Request, uri: Uri) -> Result<::http::Request<()>, ConversionError> {
    let mut http = ::http::Request::builder()
        .method(Method::GET)
        .uri(uri)
        .version(Version::HTTP_11)
        .body(())?;
    *http.headers_mut() = HeaderMap::try_from(request.headers())?;
    Ok(http)
}

/// The full URI a client request connects to.
fn client_uri(request: &ClientRequest) -> String {
    let scheme = if request.is_secure() { "wss" } else { "ws" };
    let host = if request.host().contains(':') {
        format!("[{}]", request.host())
    } else {
        request.host().to_owned()
    };
    let default_port = if request.is_secure() { 443 } else { 80 };
    if request.port() == default_port {
        format!("{scheme}://{host}{}", request.resource())
    } else {
        format!("{scheme}://{host}:{}{}", request.port(), request.resource())
    }
}

/// Returns an authority without its port when that is the scheme's default.
fn without_port(authority: &str, default_port: u16) -> &str {
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(':') && port.parse() == Ok(default_port) => host,
        _ => authority,
    }
}

/// Lets `write!` append to a byte vector.
struct ByteWriter<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for ByteWriter<'_> {
    fn write_str(&mut self, text: &str) -> std::fmt::Result {
        self.0.extend_from_slice(text.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_that_are_not_utf8_convert_to_a_header_map_too() {
        // Found by the `http_request` fuzz target: the conversion read the `&str` view and
        // dropped a `Host: \xff\xff` field without a word.
        let mut headers = Headers::default();
        headers.append("Host", b"a.example").unwrap();
        headers.append("Host", b"\xff\xff").unwrap();
        headers.append("X-Name", b"caf\xe9").unwrap();
        let map = HeaderMap::try_from(&headers).unwrap();
        assert_eq!(map.len(), 3);
        let hosts: Vec<&[u8]> = map.get_all("host").iter().map(|v| v.as_bytes()).collect();
        assert_eq!(hosts, [&b"a.example"[..], &b"\xff\xff"[..]]);
        assert_eq!(map["x-name"].as_bytes(), b"caf\xe9");
        assert_eq!(Headers::try_from(&map).unwrap(), headers_lower(&headers));
    }

    /// `headers` with names in lower case, as a `HeaderMap` gives them back.
    fn headers_lower(headers: &Headers) -> Headers {
        let mut lower = Headers::default();
        for (name, value) in headers.iter_bytes() {
            lower.append(&name.to_ascii_lowercase(), value).unwrap();
        }
        lower
    }
}
