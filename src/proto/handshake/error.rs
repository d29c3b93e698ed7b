//! Why an opening handshake failed, and what a server answers (RFC 6455 §4.2.1, §4.4).

use bytes::Bytes;

use super::headers::Headers;
use super::server::Reject;

/// Why the opening handshake failed.
///
/// One enum serves both roles; each variant says whose fault it is:
///
/// - *request*: the client's request broke §4.2.1 or HTTP/1.1, found by
///   [`RequestParser`](super::RequestParser). [`status`](Self::status) and
///   [`response`](Self::response) give the answer to send before closing.
/// - *response*: the server's answer broke §4.1, found by
///   [`ResponseParser`](super::ResponseParser); [`Rejected`](Self::Rejected) is a well-formed
///   refusal. The head-syntax variants (marked *request or response*) come from either parser.
/// - *misuse*: a builder or parser was used wrongly, by us.
///
/// Only request errors have a meaningful HTTP answer: the others map to 500 (misuse) or 502
/// (a bad response, as a gateway would report it), and a client has nobody to send them to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// Request: the request line is not `method SP target SP version`.
    #[error("malformed request line")]
    MalformedRequestLine,
    /// Request: the request line is longer than
    /// [`max_request_line`](super::HandshakeLimits::max_request_line).
    #[error("request line too long")]
    RequestLineTooLong,
    /// Request: the version is not exactly `HTTP/1.1`.
    #[error("http version is not HTTP/1.1")]
    UnsupportedHttpVersion,
    /// Request: the method is not `GET`.
    #[error("method is not GET")]
    MethodNotAllowed,
    /// Request or response: a line ends in a bare LF, or a CR is not followed by LF.
    #[error("line not terminated by crlf")]
    InvalidLineEnding,
    /// Request or response: a header line starts with a space or tab (obsolete line folding).
    #[error("obsolete line folding in header section")]
    ObsoleteLineFolding,
    /// Request or response: a header line has no colon.
    #[error("header line without a colon")]
    MissingColon,
    /// Request or response: whitespace between a header name and its colon.
    #[error("whitespace between header name and colon")]
    WhitespaceBeforeColon,
    /// Request or response: a header name is empty or not a token.
    #[error("invalid header name")]
    InvalidHeaderName,
    /// Request or response: a header value holds a control character other than tab (such as NUL,
    /// ESC or DEL). Bytes 0x80 to 0xFF (obs-text, RFC 9110 §5.5) are allowed and need not be
    /// UTF-8.
    #[error("invalid value in header {name:?}")]
    InvalidHeaderValue {
        /// The header's name, as sent (a token, so safe to show).
        name: String,
    },
    /// Request or response: more than [`max_headers`](super::HandshakeLimits::max_headers)
    /// header fields.
    #[error("too many header fields")]
    TooManyHeaders,
    /// Request or response: a header section longer than
    /// [`max_header_bytes`](super::HandshakeLimits::max_header_bytes).
    #[error("header section too large")]
    HeadersTooLarge,
    /// Request: no `Host` header.
    #[error("missing host header")]
    MissingHost,
    /// Request: more than one `Host` header.
    #[error("more than one host header")]
    DuplicateHost,
    /// Request or response: no `Upgrade` header lists `websocket`.
    #[error("upgrade header does not list websocket")]
    MissingUpgrade,
    /// Request or response: no `Connection` header lists `upgrade`.
    #[error("connection header does not list upgrade")]
    MissingConnectionUpgrade,
    /// Request: no `Sec-WebSocket-Key` header.
    #[error("missing sec-websocket-key header")]
    MissingKey,
    /// Request: more than one `Sec-WebSocket-Key` header.
    #[error("more than one sec-websocket-key header")]
    DuplicateKey,
    /// Request: `Sec-WebSocket-Key` is not the base64 encoding of 16 bytes.
    #[error("sec-websocket-key is not 16 base64-encoded bytes")]
    InvalidKey,
    /// Request: `Sec-WebSocket-Version` is missing, repeated or not `13`; answered with 426.
    #[error("sec-websocket-version is not 13")]
    UnsupportedVersion,
    /// Request: a `Content-Length` other than 0, or any `Transfer-Encoding`.
    #[error("handshake request has a body")]
    UnexpectedBody,
    /// Request: a `Sec-WebSocket-Protocol` element is not a token.
    #[error("malformed sec-websocket-protocol header")]
    MalformedSubprotocols,
    /// Request or response: `Sec-WebSocket-Extensions` does not follow the §9.1 grammar.
    #[error("malformed sec-websocket-extensions header")]
    MalformedExtensions,
    /// Response: the status line is not `HTTP/1.x <code> [reason]`.
    #[error("malformed status line")]
    MalformedStatusLine,
    /// Response: the status line is longer than
    /// [`max_request_line`](super::HandshakeLimits::max_request_line).
    #[error("status line too long")]
    StatusLineTooLong,
    /// Response: the server answered with a status other than 101.
    ///
    /// `body` holds up to [`max_body`](super::HandshakeLimits::max_body) bytes: `Content-Length`
    /// bytes when it is given, otherwise what arrived before the end of the stream (a
    /// `Transfer-Encoding` body is left encoded). Compare with `Content-Length` in `headers` to
    /// tell whether it was cut short.
    #[error("server refused the handshake with status {status}")]
    Rejected {
        /// The response's status code, such as 302 or 403.
        status: u16,
        /// The response's header fields, such as `Location` on a redirect.
        headers: Headers,
        /// The start of the response body.
        body: Bytes,
    },
    /// Response: `Sec-WebSocket-Accept` is missing, repeated or does not match our key.
    #[error("sec-websocket-accept is missing or does not match the key")]
    InvalidAccept,
    /// Response: the server chose a subprotocol we did not offer.
    #[error("server chose subprotocol {name:?}, which was not offered")]
    UnexpectedSubprotocol {
        /// The subprotocol the server named.
        name: String,
    },
    /// Response: the server named more than one subprotocol.
    #[error("server chose more than one subprotocol")]
    MultipleSubprotocols,
    /// Response: the server accepted an extension we did not offer.
    #[error("server chose extension {name:?}, which was not offered")]
    UnexpectedExtension {
        /// The extension the server named.
        name: String,
    },
    /// Response: the stream ended before the response head was complete.
    #[error("stream ended before the handshake response")]
    UnexpectedEof,
    /// Misuse: the server accepted with a subprotocol the client did not offer.
    #[error("subprotocol {name:?} was not offered by the client")]
    SubprotocolNotOffered {
        /// The subprotocol passed to [`Accept::subprotocol`](super::Accept::subprotocol).
        name: String,
    },
    /// Misuse: an outgoing header name that is not a token, or a value with a control character
    /// other than tab, such as CR, LF or NUL.
    #[error("header {name:?} has an invalid name or value")]
    InvalidOutgoingHeader {
        /// The header's name.
        name: String,
    },
    /// Misuse: an outgoing header that the handshake writes itself.
    #[error("header {name:?} is written by the handshake itself")]
    ReservedHeader {
        /// The header's name.
        name: String,
    },
    /// Misuse: a client subprotocol that is not a token or is already offered.
    #[error("subprotocol {name:?} is not a token or is already offered")]
    InvalidSubprotocol {
        /// The subprotocol passed to [`ClientRequest::subprotocol`](super::ClientRequest::subprotocol).
        name: String,
    },
    /// Misuse: a client extension offer that does not follow the §9.1 grammar.
    #[error("malformed extension offer {offer:?}")]
    InvalidExtensionOffer {
        /// The offer passed to [`ClientRequest::extension`](super::ClientRequest::extension).
        offer: String,
    },
    /// Misuse: the URI given to [`ClientRequest::new`](super::ClientRequest::new) is not a
    /// WebSocket URI.
    #[error("invalid websocket uri: {0}")]
    InvalidUri(UriError),
    /// Misuse: `receive` was called again after the parser returned a result or an error.
    #[error("handshake parser already finished")]
    Finished,
}

/// Why a string is not a WebSocket URI (RFC 6455 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UriError {
    /// The scheme is not `ws` or `wss`.
    #[error("scheme is not ws or wss")]
    UnsupportedScheme,
    /// The host is empty or absent.
    #[error("missing host")]
    MissingHost,
    /// The host is neither a name, an IPv4 address nor a bracketed IPv6 address, or has user
    /// information.
    #[error("invalid host")]
    InvalidHost,
    /// The port is empty, not a number, 0 or above 65535.
    #[error("invalid port")]
    InvalidPort,
    /// The URI has a `#` fragment, which §3 forbids.
    #[error("fragment in websocket uri")]
    Fragment,
    /// The path or query holds a space, a control or a non-ASCII character.
    #[error("invalid character in path or query")]
    InvalidResource,
}

impl HandshakeError {
    /// Returns the status code a server answers this error with.
    ///
    /// Meaningful for request errors; misuse maps to 500 and response errors to 502.
    pub fn status(&self) -> u16 {
        match self {
            Self::MalformedRequestLine
            | Self::UnsupportedHttpVersion
            | Self::InvalidLineEnding
            | Self::ObsoleteLineFolding
            | Self::MissingColon
            | Self::WhitespaceBeforeColon
            | Self::InvalidHeaderName
            | Self::InvalidHeaderValue { .. }
            | Self::MissingHost
            | Self::DuplicateHost
            | Self::MissingUpgrade
            | Self::MissingConnectionUpgrade
            | Self::MissingKey
            | Self::DuplicateKey
            | Self::InvalidKey
            | Self::UnexpectedBody
            | Self::MalformedSubprotocols
            | Self::MalformedExtensions => 400,
            Self::MethodNotAllowed => 405,
            Self::RequestLineTooLong => 414,
            Self::UnsupportedVersion => 426,
            Self::TooManyHeaders | Self::HeadersTooLarge => 431,
            Self::SubprotocolNotOffered { .. }
            | Self::InvalidOutgoingHeader { .. }
            | Self::ReservedHeader { .. }
            | Self::InvalidSubprotocol { .. }
            | Self::InvalidExtensionOffer { .. }
            | Self::InvalidUri(_)
            | Self::Finished => 500,
            Self::MalformedStatusLine
            | Self::StatusLineTooLong
            | Self::Rejected { .. }
            | Self::InvalidAccept
            | Self::UnexpectedSubprotocol { .. }
            | Self::MultipleSubprotocols
            | Self::UnexpectedExtension { .. }
            | Self::UnexpectedEof => 502,
        }
    }

    /// Returns the response a server sends for this error before closing the connection.
    ///
    /// It has [`status`](Self::status), the error message as a plain-text body and
    /// `Connection: close`; a 405 adds `Allow: GET`, and a 426 adds `Upgrade: websocket` and
    /// `Sec-WebSocket-Version: 13` (§4.4) so the client can retry with a version we speak.
    ///
    /// ```
    /// use wsio::proto::handshake::{HandshakeLimits, RequestParser};
    ///
    /// let mut parser = RequestParser::new(HandshakeLimits::default());
    /// let error = parser.receive(b"POST / HTTP/1.1\r\n").unwrap_err();
    /// let reply = error.response().encode();
    /// assert!(reply.starts_with(b"HTTP/1.1 405 Method Not Allowed\r\nAllow: GET\r\n"));
    /// ```
    pub fn response(&self) -> Reject {
        let mut reject = Reject::new(self.status());
        match self {
            Self::MethodNotAllowed => reject.push_header("Allow", "GET"),
            Self::UnsupportedVersion => {
                reject.push_header("Upgrade", "websocket");
                reject.push_header("Sec-WebSocket-Version", "13");
            }
            _ => {}
        }
        reject.push_header("Content-Type", "text/plain; charset=utf-8");
        reject.body(format!("{self}\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_response_tells_the_client_what_we_speak() {
        let reply = HandshakeError::UnsupportedVersion.response().encode();
        assert_eq!(
            &reply[..],
            b"HTTP/1.1 426 Upgrade Required\r\n\
              Upgrade: websocket\r\n\
              Sec-WebSocket-Version: 13\r\n\
              Content-Type: text/plain; charset=utf-8\r\n\
              Content-Length: 32\r\n\
              Connection: close\r\n\
              \r\n\
              sec-websocket-version is not 13\n"
        );
    }

    #[test]
    fn every_request_error_has_a_client_error_status() {
        for (error, status) in [
            (HandshakeError::MalformedRequestLine, 400),
            (HandshakeError::MethodNotAllowed, 405),
            (HandshakeError::RequestLineTooLong, 414),
            (HandshakeError::UnsupportedVersion, 426),
            (HandshakeError::TooManyHeaders, 431),
            (HandshakeError::HeadersTooLarge, 431),
            (HandshakeError::Finished, 500),
            (HandshakeError::InvalidAccept, 502),
        ] {
            assert_eq!(error.status(), status, "{error}");
            assert_eq!(error.response().status(), status, "{error}");
        }
    }
}
