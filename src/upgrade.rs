//! The opening handshake as a sans-IO driver (RFC 6455 §4), shared by every adapter.
//!
//! [`ServerHandshake`] and [`ClientHandshake`] own the parsing, the application's decision,
//! permessage-deflate negotiation and the building of the [`Connection`]; the caller only moves
//! bytes. Both blocking and tokio adapters are short I/O loops over them, and so can be any
//! other driver: a framework integration, a custom event loop, a test feeding bytes by hand.
//!
//! ```text
//! server  receive(bytes)  -> None (read more) | PendingRequest | Refusal (write its response)
//!         PendingRequest::decide(Ok(Accept) | Err(Reject))
//!                         -> Accepted { response to write, connection, leftover } | Refusal
//! client  poll_transmit() -> the request to write
//!         receive(bytes)  -> None (read more) | Connected { connection, response, leftover }
//! ```
//!
//! Both ends in memory, the bytes of each going straight to the other:
//!
//! ```
//! use wsio::Options;
//! use wsio::proto::Event;
//! use wsio::proto::handshake::{Accept, ClientRequest};
//! use wsio::upgrade::{ClientHandshake, ServerHandshake};
//!
//! let options = Options::default();
//! let mut client = ClientHandshake::new(&ClientRequest::new("ws://example.com/chat")?, &options)?;
//! let mut server = ServerHandshake::new(&options);
//!
//! let request = client.poll_transmit().expect("the request is written first");
//! let pending = server.receive(&request)?.expect("the whole request arrived");
//! assert_eq!(pending.request().target(), "/chat");
//! let accepted = pending.decide(Ok(Accept::new()))?;
//!
//! // The 101 response, with the first frame right behind it.
//! let mut conn = accepted.connection;
//! conn.receive(&accepted.leftover);
//! let mut wire = accepted.response.to_vec();
//! conn.send_text("hello")?;
//! while let Some(chunk) = conn.poll_transmit() {
//!     if let wsio::proto::Transmit::Data(bytes) = chunk {
//!         wire.extend_from_slice(&bytes);
//!     }
//! }
//!
//! let connected = client.receive(&wire)?.expect("the whole response arrived");
//! assert_eq!(connected.response.status(), 101);
//! let mut conn = connected.connection;
//! conn.receive(&connected.leftover);
//! assert!(matches!(conn.poll_event(), Some(Ok(Event::Message(m))) if m.as_text() == Some("hello")));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::io;

use bytes::Bytes;

use crate::Options;
use crate::error::Error;
use crate::proto::handshake::{
    Accept, ClientRequest, HandshakeError, Reject, Request, RequestParser, Response, ResponseParser,
};
use crate::proto::{Connection, Rng};
use crate::trace::debug;

/// How many bytes the adapters ask for per read during the opening handshake.
#[cfg(any(feature = "sync", feature = "tokio"))]
pub(crate) const HANDSHAKE_CHUNK: usize = 4096;

/// The server's side of the opening handshake: reads the request, then waits for the
/// application's decision in the [`PendingRequest`] it returns.
///
/// Owns the request parser (bounded by [`Options::handshake`]) and a copy of the options the
/// connection will be built with. Timeouts are the caller's: it owns the clock.
#[derive(Debug)]
pub struct ServerHandshake {
    parser: RequestParser,
    options: Options,
}

/// A complete, valid upgrade request waiting for the application's answer.
///
/// Show [`request`](Self::request) to the application, then pass its answer to
/// [`decide`](Self::decide) (or [`accept`](Self::accept) / [`reject`](Self::reject)).
#[derive(Debug)]
pub struct PendingRequest {
    request: Request,
    options: Options,
}

/// A server handshake that succeeded: write `response`, then drive `connection`, handing it
/// `leftover` (the bytes the client sent after its request) before anything read later.
#[derive(Debug)]
#[non_exhaustive]
pub struct Accepted {
    /// The `101 Switching Protocols` response to write.
    pub response: Bytes,
    /// The server connection, with the negotiated extensions.
    pub connection: Connection,
    /// The bytes that followed the request head: the start of the WebSocket stream.
    pub leftover: Bytes,
}

/// Why a server handshake ends without a connection, and the HTTP response that says so.
///
/// Write [`response`](Self::response), then close the transport. Converts into the adapters'
/// [`Error`]: [`Error::Handshake`] or [`Error::Rejected`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The request is not a valid upgrade, or the application's [`Accept`] could not be
    /// answered with (for example a subprotocol the client did not offer).
    #[error("invalid upgrade request: {0}")]
    Invalid(HandshakeError),
    /// The application rejected the request.
    #[error("upgrade rejected with status {}", .0.status())]
    Rejected(Reject),
}

/// The client's side of the opening handshake: writes the request, then reads and checks the
/// response.
///
/// Owns the encoded request until it is taken, the response parser, the masking-key generator
/// the connection will use and a copy of the options.
#[derive(Debug)]
pub struct ClientHandshake {
    transmit: Option<Bytes>,
    parser: ResponseParser,
    /// Taken when the connection is built.
    rng: Option<Rng>,
    options: Options,
}

/// A client handshake that succeeded: drive `connection`, handing it `leftover` (the bytes the
/// server sent after its response) before anything read later.
#[derive(Debug)]
#[non_exhaustive]
pub struct Connected {
    /// The client connection, with the extensions the server accepted.
    pub connection: Connection,
    /// The server's `101` response (subprotocol, headers).
    pub response: Response,
    /// The bytes that followed the response head: the start of the WebSocket stream.
    pub leftover: Bytes,
}

impl ServerHandshake {
    /// Starts reading a request; the connection will be built with `options`.
    pub fn new(options: &Options) -> Self {
        Self {
            parser: RequestParser::new(options.handshake.clone()),
            options: options.clone(),
        }
    }

    /// Feeds the next bytes read from the transport.
    ///
    /// Returns `Ok(None)` while the request is incomplete, the [`PendingRequest`] once it is
    /// complete and valid, and a [`Refusal`] (400, 405, 414, 426, 431) if it is not. Call it
    /// again after either result and it refuses with [`HandshakeError::Finished`].
    pub fn receive(&mut self, data: &[u8]) -> Result<Option<PendingRequest>, Refusal> {
        match self.parser.receive(data) {
            Ok(Some(request)) => Ok(Some(PendingRequest {
                request,
                options: self.options.clone(),
            })),
            Ok(None) => Ok(None),
            Err(error) => Err(Refusal::Invalid(error).noted()),
        }
    }

    /// Reports that the transport ended before the request did, and returns the error to
    /// report: there is nobody left to answer.
    pub fn receive_eof(&mut self) -> Error {
        let error = io::Error::new(io::ErrorKind::UnexpectedEof, "eof during the handshake");
        debug!(role = "server", error = %error, "handshake failed");
        error.into()
    }
}

impl PendingRequest {
    /// The request, for the application to decide on (path, headers, subprotocols, origin).
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// Completes the handshake with the application's answer.
    pub fn decide(self, answer: Result<Accept, Reject>) -> Result<Accepted, Refusal> {
        match answer {
            Ok(accept) => self.accept(accept),
            Err(reject) => Err(self.reject(reject)),
        }
    }

    /// Accepts the request: negotiates permessage-deflate when [`Options`] enable it, and
    /// returns the 101 response and the connection.
    pub fn accept(self, accept: Accept) -> Result<Accepted, Refusal> {
        let (response, connection) = server(&self.options, &self.request, accept)
            .map_err(|error| Refusal::Invalid(error).noted())?;
        debug!(
            role = "server",
            status = 101,
            deflate = compresses(&connection),
            "handshake accepted"
        );
        Ok(Accepted {
            response,
            connection,
            leftover: self.request.into_leftover(),
        })
    }

    /// Rejects the request with the application's response.
    pub fn reject(self, reject: Reject) -> Refusal {
        Refusal::Rejected(reject).noted()
    }
}

impl Refusal {
    /// The HTTP status of the response.
    pub fn status(&self) -> u16 {
        match self {
            Self::Invalid(error) => error.status(),
            Self::Rejected(reject) => reject.status(),
        }
    }

    /// The HTTP response to write before closing the transport.
    pub fn response(&self) -> Bytes {
        match self {
            Self::Invalid(error) => error.response().encode(),
            Self::Rejected(reject) => reject.encode(),
        }
    }

    /// Emits the refusal's event and returns it.
    fn noted(self) -> Self {
        debug!(role = "server", status = self.status(), error = %self, "handshake refused");
        self
    }
}

impl From<Refusal> for Error {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Invalid(error) => Error::Handshake(error),
            Refusal::Rejected(reject) => Error::Rejected(reject.status()),
        }
    }
}

impl ClientHandshake {
    /// Starts a handshake for `request`, adding the extension offers of `options`; masking
    /// keys come from [`Rng::from_os`].
    pub fn new(request: &ClientRequest, options: &Options) -> Result<Self, Error> {
        Self::with_rng(request, options, Rng::from_os())
    }

    /// Like [`new`](Self::new), with the generator of the request's key and the connection's
    /// masking keys.
    pub fn with_rng(
        request: &ClientRequest,
        options: &Options,
        mut rng: Rng,
    ) -> Result<Self, Error> {
        let (transmit, parser) = client_request(options, request)?.encode(&mut rng);
        Ok(Self {
            transmit: Some(transmit),
            parser,
            rng: Some(rng),
            options: options.clone(),
        })
    }

    /// Returns the request to write, once; `None` afterwards.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.transmit.take()
    }

    /// Feeds the next bytes read from the transport.
    ///
    /// Returns `Ok(None)` while the response is incomplete and the [`Connected`] connection
    /// once a valid 101 has arrived. A refusal (any other status) is
    /// [`Error::Handshake`] holding [`HandshakeError::Rejected`] with the status, headers and
    /// body; a 101 that does not match the request is [`Error::Handshake`] or, for its
    /// extensions, `Error::Extension`.
    pub fn receive(&mut self, data: &[u8]) -> Result<Option<Connected>, Error> {
        let Some(response) = self.parser.receive(data).map_err(client_failed)? else {
            return Ok(None);
        };
        let rng = self
            .rng
            .take()
            .ok_or(HandshakeError::Finished)
            .map_err(client_failed)?;
        let connection = client(&self.options, &response, rng).map_err(client_failed)?;
        debug!(
            role = "client",
            status = response.status(),
            deflate = compresses(&connection),
            "handshake accepted"
        );
        Ok(Some(Connected {
            connection,
            leftover: response.leftover().clone(),
            response,
        }))
    }

    /// Reports that the transport ended, and returns why the handshake cannot complete: a
    /// refusal whose body ran to the end of the stream, or [`HandshakeError::UnexpectedEof`].
    pub fn receive_eof(&mut self) -> Error {
        client_failed(self.parser.receive_eof())
    }
}

/// The refusal of a `wss://` URL by `connect` functions built without TLS.
#[cfg(all(
    any(feature = "sync", feature = "tokio"),
    not(feature = "rustls-manual-roots")
))]
pub(crate) fn refuse_secure(request: &ClientRequest) -> Result<(), Error> {
    if request.is_secure() {
        return Err(Error::UnsupportedUrl(
            "wss:// needs the `rustls` feature, or a TLS stream passed to the client handshake"
                .into(),
        ));
    }
    Ok(())
}

/// Whether a failed read means the end of the stream: a reset after (or instead of) the peer's
/// close loses nothing the connection can use.
#[cfg(any(feature = "sync", feature = "tokio"))]
pub(crate) fn is_end_of_stream(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::ConnectionReset
}

/// Queues a message through `send` (`Connection::send`, `send_binary`, ...) unless the adapter
/// already reported the end of the connection.
#[cfg(any(feature = "sync", feature = "tokio"))]
#[inline]
pub(crate) fn queue(
    conn: &mut Connection,
    ended: bool,
    send: impl FnOnce(&mut Connection) -> Result<(), crate::proto::SendError>,
) -> Result<(), Error> {
    if ended {
        return Err(Error::AlreadyClosed);
    }
    send(conn)?;
    Ok(())
}

/// Starts the closing handshake with `frame` and emits its event: the adapters' `close`.
#[cfg(any(feature = "sync", feature = "tokio"))]
pub(crate) fn close(
    conn: &mut Connection,
    frame: Option<crate::proto::CloseFrame>,
) -> Result<(), crate::proto::SendError> {
    #[cfg(feature = "tracing")]
    let sent = frame.clone();
    conn.close(frame)?;
    #[cfg(feature = "tracing")]
    crate::trace::close_sent(conn.role(), sent.as_ref());
    Ok(())
}

/// Emits the event of a client handshake that failed: refused by the server with its status, or
/// a response that does not complete the handshake. Returns the error.
fn client_failed(error: impl Into<Error>) -> Error {
    let error = error.into();
    #[cfg(feature = "tracing")]
    match &error {
        Error::Handshake(HandshakeError::Rejected { status, .. }) => {
            debug!(role = "client", status, "handshake refused");
        }
        _ => debug!(role = "client", error = %error, "handshake failed"),
    }
    error
}

/// Whether `conn` compresses its messages (permessage-deflate was negotiated).
#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
fn compresses(conn: &Connection) -> bool {
    #[cfg(feature = "deflate")]
    return conn.deflate_params().is_some();
    #[cfg(not(feature = "deflate"))]
    {
        let _ = conn;
        false
    }
}

/// Negotiates extensions on top of the application's `accept` and returns the 101 response and
/// the server connection.
pub(crate) fn server(
    options: &Options,
    request: &Request,
    accept: Accept,
) -> Result<(Bytes, Connection), HandshakeError> {
    let conn = Connection::server(options.connection.clone());
    #[cfg(feature = "deflate")]
    if let Some(config) = &options.deflate
        && let Some((params, header)) = config.negotiate(request.extensions())
    {
        let accept = accept.header("Sec-WebSocket-Extensions", &header)?;
        return Ok((request.accept(&accept)?, conn.with_deflate(params)));
    }
    Ok((request.accept(&accept)?, conn))
}

/// The request to send: the application's, plus our extension offers.
pub(crate) fn client_request(
    options: &Options,
    request: &ClientRequest,
) -> Result<ClientRequest, Error> {
    #[cfg(feature = "deflate")]
    if let Some(config) = &options.deflate {
        return Ok(request.clone().extension(&config.offer())?);
    }
    let _ = options;
    Ok(request.clone())
}

/// Checks the extensions the server accepted and returns the client connection.
pub(crate) fn client(
    options: &Options,
    response: &Response,
    rng: Rng,
) -> Result<Connection, Error> {
    let conn = Connection::client(options.connection.clone(), rng);
    #[cfg(feature = "deflate")]
    if let Some(config) = &options.deflate
        && let Some(params) = config.accept_response(response.extensions())?
    {
        return Ok(conn.with_deflate(params));
    }
    let _ = response;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::handshake::ClientRequest;

    const REQUEST: &[u8] = b"GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\
        Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Sec-WebSocket-Version: 13\r\n\r\n";

    #[test]
    fn server_reads_a_request_one_byte_at_a_time_and_keeps_the_leftover() {
        let mut server = ServerHandshake::new(&Options::default());
        let (head, last) = REQUEST.split_at(REQUEST.len() - 1);
        for byte in head.chunks(1) {
            assert!(server.receive(byte).unwrap().is_none());
        }
        // The head's last byte arrives with the first frame behind it.
        let mut last = last.to_vec();
        last.extend_from_slice(&[0x89, 0x80, 1, 2, 3, 4]);
        let pending = server.receive(&last).unwrap();
        assert!(matches!(
            server.receive(b"more"),
            Err(Refusal::Invalid(HandshakeError::Finished))
        ));
        let accepted = pending.unwrap().decide(Ok(Accept::new())).unwrap();
        assert!(accepted.response.starts_with(b"HTTP/1.1 101 "));
        // RFC 6455 §1.3's key and accept value.
        assert!(
            accepted
                .response
                .windows(28)
                .any(|window| window == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        );
        assert_eq!(&accepted.leftover[..], &[0x89, 0x80, 1, 2, 3, 4]);
    }

    #[test]
    fn server_refuses_a_bad_request_with_its_status() {
        let mut server = ServerHandshake::new(&Options::default());
        let refusal = server.receive(b"POST / HTTP/1.1\r\n").unwrap_err();
        assert_eq!(refusal.status(), 405);
        assert!(refusal.response().starts_with(b"HTTP/1.1 405 "));
        assert!(matches!(
            Error::from(refusal),
            Error::Handshake(HandshakeError::MethodNotAllowed)
        ));
    }

    #[test]
    fn application_rejection_and_bad_accept_are_refusals() {
        let pending = || {
            ServerHandshake::new(&Options::default())
                .receive(REQUEST)
                .unwrap()
                .unwrap()
        };
        let refusal = pending().decide(Err(Reject::new(403))).unwrap_err();
        assert_eq!(refusal.status(), 403);
        assert!(refusal.response().starts_with(b"HTTP/1.1 403 "));
        assert!(matches!(Error::from(refusal), Error::Rejected(403)));

        let refusal = pending()
            .accept(Accept::new().subprotocol("not-offered"))
            .unwrap_err();
        assert_eq!(refusal.status(), 500);
        assert!(matches!(
            refusal,
            Refusal::Invalid(HandshakeError::SubprotocolNotOffered { .. })
        ));
    }

    #[test]
    fn client_and_server_complete_each_other() {
        let options = Options::default();
        let request = ClientRequest::new("ws://example.com/x").unwrap();
        let mut client = ClientHandshake::with_rng(&request, &options, Rng::from_seed([7; 32]))
            .expect("valid request");
        let bytes = client.poll_transmit().unwrap();
        assert!(
            client.poll_transmit().is_none(),
            "the request is written once"
        );
        let accepted = ServerHandshake::new(&options)
            .receive(&bytes)
            .unwrap()
            .unwrap()
            .accept(Accept::new())
            .unwrap();
        let mut wire = accepted.response.to_vec();
        wire.extend_from_slice(b"\x81\x02hi");
        let mut connected = None;
        for byte in wire.chunks(1) {
            if let Some(done) = client.receive(byte).unwrap() {
                connected = Some(done);
                break;
            }
        }
        let connected = connected.unwrap();
        // One byte at a time: the head ends with the last byte fed, nothing is left over.
        assert!(connected.leftover.is_empty());
        assert_eq!(connected.response.status(), 101);
        assert!(matches!(
            client.receive(b"more"),
            Err(Error::Handshake(HandshakeError::Finished))
        ));
    }

    #[test]
    fn client_reports_a_refusal_with_its_body() {
        let options = Options::default();
        let request = ClientRequest::new("ws://example.com/").unwrap();
        let mut client = ClientHandshake::new(&request, &options).unwrap();
        let _ = client.poll_transmit();
        assert!(
            client
                .receive(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\n")
                .unwrap()
                .is_none()
        );
        match client.receive(b"no") {
            Err(Error::Handshake(HandshakeError::Rejected { status, body, .. })) => {
                assert_eq!((status, &body[..]), (403, &b"no"[..]));
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn client_eof_before_the_head_is_unexpected() {
        let request = ClientRequest::new("ws://example.com/").unwrap();
        let mut client = ClientHandshake::new(&request, &Options::default()).unwrap();
        assert!(matches!(
            client.receive_eof(),
            Error::Handshake(HandshakeError::UnexpectedEof)
        ));
    }

    #[test]
    #[cfg(not(feature = "rustls-manual-roots"))]
    fn secure_urls_are_refused_in_one_place() {
        let secure = ClientRequest::new("wss://example.com/").unwrap();
        assert!(matches!(
            refuse_secure(&secure),
            Err(Error::UnsupportedUrl(_))
        ));
        let plain = ClientRequest::new("ws://example.com/").unwrap();
        assert!(refuse_secure(&plain).is_ok());
    }
}
