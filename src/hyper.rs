//! WebSocket upgrades inside a hyper 1.x server, onto the tokio adapter (RFC 6455 §4.2).
//!
//! [`Upgrade::new`] checks a request hyper has parsed with the rules, limits and typed errors
//! of the sans-IO handshake ([`check_request`](crate::http::check_request)); the application
//! reads the [`Request`], chooses a subprotocol and answers with [`Upgrade::accept`], which
//! negotiates permessage-deflate as the standalone adapters do and returns the `101` response
//! and a [`PendingUpgrade`]. Once hyper has sent the response, that future yields a
//! [`WebSocket`] over the upgraded connection, with the limits of [`Options::connection`].
//!
//! ```no_run
//! use std::convert::Infallible;
//!
//! use hyper::body::Incoming;
//! use wsio::hyper::{Body, Upgrade};
//! use wsio::proto::handshake::Accept;
//!
//! async fn handle(mut request: http::Request<Incoming>) -> Result<http::Response<Body>, Infallible> {
//!     let upgrade = match Upgrade::new(&mut request, &wsio::Options::default()) {
//!         Ok(upgrade) => upgrade,
//!         Err(error) => return Ok(error.response()),
//!     };
//!     let chat = upgrade.request().subprotocols().iter().any(|name| name == "chat");
//!     let accept = if chat { Accept::new().subprotocol("chat") } else { Accept::new() };
//!     let (response, pending) = match upgrade.accept(accept) {
//!         Ok(accepted) => accepted,
//!         Err(error) => return Ok(error.response()),
//!     };
//!     tokio::spawn(async move {
//!         let mut ws = pending.await?;
//!         while let Some(message) = ws.read().await? {
//!             ws.send(message).await?;
//!         }
//!         Ok::<(), wsio::Error>(())
//!     });
//!     Ok(response)
//! }
//! ```
//!
//! Serve the connection with `hyper::server::conn::http1::Builder::serve_connection(…)`
//! `.with_upgrades()`: without it the upgrade never completes. HTTP/1.1 only: an HTTP/2 request
//! (RFC 8441's extended CONNECT) is refused like any other version, with 400.
//! [`Options::handshake_timeout`] does not apply: hyper has read the request already, under its
//! own timeouts, and the `101` goes out with hyper's response.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use ::hyper::upgrade::{OnUpgrade, Upgraded};
use bytes::Bytes;
use hyper_util::rt::TokioIo;

use crate::Options;
use crate::error::Error;
use crate::proto::Connection;
use crate::proto::handshake::{Accept, HandshakeError, Reject, Request};
use crate::tokio::WebSocketStream;
use crate::upgrade;

/// The body of the responses this module builds: the 101 has none, a refusal a short text.
pub type Body = http_body_util::Full<Bytes>;

/// A WebSocket over a connection hyper has upgraded.
pub type WebSocket = WebSocketStream<TokioIo<Upgraded>>;

/// Why a request cannot be upgraded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UpgradeError {
    /// The request broke the handshake's rules, or the application's answer did (a subprotocol
    /// the client did not offer, a header the `http` crate refuses).
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    /// The request is a valid upgrade, but the connection it came on cannot be upgraded: the
    /// server was not built `with_upgrades()`, or the request did not come from hyper.
    #[error("the connection cannot be upgraded")]
    NotUpgradable,
}

impl UpgradeError {
    /// Returns the status the server answers with: the handshake error's (400, 405, 414, 426,
    /// 431, or 500 for the application's mistakes), or 500 for [`NotUpgradable`](Self::NotUpgradable).
    pub fn status(&self) -> u16 {
        match self {
            Self::Handshake(error) => error.status(),
            Self::NotUpgradable => 500,
        }
    }

    /// Returns the response to send: for a handshake error, the one
    /// [`HandshakeError::response`] gives (a 426 carries `Sec-WebSocket-Version: 13`, a 405
    /// `Allow: GET`), with the error as a plain-text body.
    pub fn response(&self) -> ::http::Response<Body> {
        match self {
            Self::Handshake(error) => reject_response(&error.response()),
            Self::NotUpgradable => reject_response(
                &Reject::new(500)
                    .body(format!("{self}\n"))
                    .header("Content-Type", "text/plain; charset=utf-8")
                    .unwrap_or_else(|_| Reject::new(500)),
            ),
        }
    }
}

/// A checked upgrade request, waiting for the application's decision.
///
/// It owns the checked [`Request`] (read it to decide), hyper's handle on the connection's
/// upgrade and the [`Options`] the connection will run with.
#[derive(Debug)]
pub struct Upgrade {
    request: Request,
    on_upgrade: OnUpgrade,
    options: Options,
}

impl Upgrade {
    /// Checks `request` with [`Options::handshake`] as its limits and takes hyper's upgrade
    /// handle out of it.
    ///
    /// Fails with the handshake's typed error (answer with [`UpgradeError::response`]): a plain
    /// GET gets 400, a wrong `Sec-WebSocket-Version` 426, another method 405.
    pub fn new<B>(
        request: &mut ::http::Request<B>,
        options: &Options,
    ) -> Result<Self, UpgradeError> {
        let checked = crate::http::check_request(request, &options.handshake)?;
        let on_upgrade = request
            .extensions_mut()
            .remove::<OnUpgrade>()
            .ok_or(UpgradeError::NotUpgradable)?;
        Ok(Self {
            request: checked,
            on_upgrade,
            options: options.clone(),
        })
    }

    /// Checks the head of a request split into parts, like [`new`](Self::new); for extractors.
    pub fn from_parts(
        parts: &mut ::http::request::Parts,
        options: &Options,
    ) -> Result<Self, UpgradeError> {
        let checked = crate::http::check_parts(parts, &options.handshake)?;
        let on_upgrade = parts
            .extensions
            .remove::<OnUpgrade>()
            .ok_or(UpgradeError::NotUpgradable)?;
        Ok(Self {
            request: checked,
            on_upgrade,
            options: options.clone(),
        })
    }

    /// Returns the checked request: its target, headers, offered subprotocols and extensions.
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// Returns the options the connection will run with.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Returns the options to change before accepting, such as the limits or the deflate
    /// settings; [`Options::handshake`] has already been applied.
    pub fn options_mut(&mut self) -> &mut Options {
        &mut self.options
    }

    /// Accepts the upgrade with the application's `accept` (subprotocol, extra headers) and
    /// permessage-deflate negotiated from [`Options::deflate`](crate::Options).
    ///
    /// Returns the `101 Switching Protocols` response for hyper to send and the future of the
    /// WebSocket. Fails if `accept` names a subprotocol the client did not offer
    /// ([`HandshakeError::SubprotocolNotOffered`], answered with 500).
    pub fn accept(
        self,
        accept: Accept,
    ) -> Result<(::http::Response<Body>, PendingUpgrade), UpgradeError> {
        let (head, conn) = upgrade::server(&self.options, &self.request, accept)?;
        let response = response_from_head(&head)?;
        Ok((
            response,
            PendingUpgrade {
                on_upgrade: self.on_upgrade,
                conn: Some(conn),
                options: self.options,
            },
        ))
    }
}

/// The WebSocket that an accepted [`Upgrade`] becomes once hyper has sent the `101`.
///
/// Await it in a task of its own: it completes only after the response has been returned to
/// hyper and written. It fails with [`Error::Io`] when the connection closes first.
#[derive(Debug)]
#[must_use = "the connection is dropped unless the pending upgrade is awaited"]
pub struct PendingUpgrade {
    on_upgrade: OnUpgrade,
    /// `None` once the future has completed.
    conn: Option<Connection>,
    options: Options,
}

impl PendingUpgrade {
    /// Waits like awaiting the future itself, and wraps the upgraded connection with `wrap`
    /// before the WebSocket takes it: to box it, for instance, so that WebSockets from hyper and
    /// from other streams have one type.
    pub async fn with_io<T, F>(mut self, wrap: F) -> Result<WebSocketStream<T>, Error>
    where
        F: FnOnce(TokioIo<Upgraded>) -> T,
        T: ::tokio::io::AsyncRead + ::tokio::io::AsyncWrite + Unpin,
    {
        let conn = self.conn.take().ok_or(Error::AlreadyClosed)?;
        let upgraded = (&mut self.on_upgrade)
            .await
            .map_err(|error| Error::from(io::Error::other(error)))?;
        Ok(WebSocketStream::from_connection(
            wrap(TokioIo::new(upgraded)),
            conn,
            &self.options,
        ))
    }
}

impl Future for PendingUpgrade {
    type Output = Result<WebSocket, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // hyper's handle must not be polled again once it has answered.
        if self.conn.is_none() {
            return Poll::Ready(Err(Error::AlreadyClosed));
        }
        let upgraded = ready!(Pin::new(&mut self.on_upgrade).poll(cx));
        let conn = self.conn.take();
        Poll::Ready(match (upgraded, conn) {
            // Bytes hyper read past the request head are replayed by `Upgraded` itself.
            (Ok(upgraded), Some(conn)) => Ok(WebSocketStream::from_connection(
                TokioIo::new(upgraded),
                conn,
                &self.options,
            )),
            (Ok(_), None) => Err(Error::AlreadyClosed),
            (Err(error), _) => Err(io::Error::other(error).into()),
        })
    }
}

/// Returns a refusal (the application's, or [`HandshakeError::response`]) as an
/// `http::Response`.
///
/// `Content-Length` is left to hyper and `Connection: close` left out: hyper keeps the
/// connection for further requests.
pub fn reject_response(reject: &Reject) -> ::http::Response<Body> {
    let encoded = reject.encode();
    let (head, body) = split_head(&encoded);
    let mut response = ::http::Response::new(Body::new(Bytes::copy_from_slice(body)));
    *response.status_mut() =
        ::http::StatusCode::from_u16(reject.status()).unwrap_or(::http::StatusCode::BAD_REQUEST);
    for (name, value) in fields(head) {
        if name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"connection")
        {
            continue;
        }
        if let (Ok(name), Ok(value)) = (
            ::http::HeaderName::from_bytes(name),
            ::http::HeaderValue::from_bytes(value),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    response
}

/// Returns whether a request asks for a WebSocket upgrade (`Upgrade` lists `websocket`), to route
/// it before checking it with [`Upgrade::new`].
pub fn is_upgrade_request<B>(request: &::http::Request<B>) -> bool {
    request
        .headers()
        .get_all(::http::header::UPGRADE)
        .iter()
        .flat_map(|value| value.as_bytes().split(|&byte| byte == b','))
        .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"websocket"))
}

/// Reads the 101 head that [`upgrade::server`] wrote into an `http::Response`.
fn response_from_head(encoded: &[u8]) -> Result<::http::Response<Body>, HandshakeError> {
    let (head, _) = split_head(encoded);
    let mut response = ::http::Response::new(Body::default());
    *response.status_mut() = ::http::StatusCode::SWITCHING_PROTOCOLS;
    for (name, value) in fields(head) {
        let invalid = || HandshakeError::InvalidOutgoingHeader {
            name: String::from_utf8_lossy(name).into_owned(),
        };
        let name = ::http::HeaderName::from_bytes(name).map_err(|_| invalid())?;
        let value = ::http::HeaderValue::from_bytes(value).map_err(|_| invalid())?;
        response.headers_mut().append(name, value);
    }
    Ok(response)
}

/// Splits bytes the handshake wrote into the head (status line and fields) and the body.
fn split_head(encoded: &[u8]) -> (&[u8], &[u8]) {
    match encoded.windows(4).position(|window| window == b"\r\n\r\n") {
        Some(end) => (&encoded[..end], &encoded[end + 4..]),
        None => (encoded, &[]),
    }
}

/// The `(name, value)` fields of a head the handshake wrote: one `Name: value` per line after
/// the status line. Its writers refuse CR and LF in values, so lines split cleanly.
fn fields(head: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    head.split(|&byte| byte == b'\n')
        .skip(1)
        .filter_map(|line| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let colon = line.iter().position(|&byte| byte == b':')?;
            let value = &line[colon + 1..];
            let value = value.strip_prefix(b" ").unwrap_or(value);
            Some((&line[..colon], value))
        })
}
