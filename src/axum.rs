//! A WebSocket extractor for axum 0.8, shaped like axum's own `WebSocketUpgrade`, with
//! permessage-deflate (RFC 7692) and the handshake checks of RFC 6455 §4.2.
//!
//! Moving from axum's built-in is a change of import: the extractor has the same
//! [`protocols`](WebSocketUpgrade::protocols), [`on_upgrade`](WebSocketUpgrade::on_upgrade) and
//! [`on_failed_upgrade`](WebSocketUpgrade::on_failed_upgrade), and [`WebSocket`] the same
//! `recv` and `send`. What changes: compression is negotiated when the client offers it (turn
//! it off with [`deflate(None)`](WebSocketUpgrade::deflate)); the limits are wsio's
//! [`Options`]; [`Message`] has only text and binary, since pings are answered and closes echoed
//! by the connection itself (see [`WebSocket::close`] and [`WebSocket::close_frame`]).
//!
//! ```no_run
//! use axum::Router;
//! use axum::response::Response;
//! use axum::routing::any;
//! use wsio::axum::{WebSocket, WebSocketUpgrade};
//!
//! async fn handler(ws: WebSocketUpgrade) -> Response {
//!     ws.protocols(["chat"])
//!         .max_message_size(1 << 20)
//!         .on_upgrade(handle_socket)
//! }
//!
//! async fn handle_socket(mut socket: WebSocket) {
//!     while let Some(Ok(message)) = socket.recv().await {
//!         if socket.send(message).await.is_err() {
//!             return;
//!         }
//!     }
//! }
//!
//! # async fn run() -> std::io::Result<()> {
//! let app = Router::new().route("/ws", any(handler));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app).await
//! # }
//! ```
//!
//! A request that is not a valid upgrade is refused by the extractor with the sans-IO
//! handshake's status and headers ([`UpgradeError`], which implements `IntoResponse`): 400 for a
//! plain GET or a missing key, 405 for another method, 426 with `Sec-WebSocket-Version: 13` for
//! another version. The server goes on serving.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use ::axum::extract::FromRequestParts;
use ::axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_core::Stream;
use futures_sink::Sink;

use crate::error::Error;
use crate::hyper::Upgrade;
pub use crate::hyper::UpgradeError;
use crate::proto::handshake::{Accept, Request};
use crate::{CloseFrame, Message, Options};

/// The extractor of a WebSocket upgrade: checks the request, then builds the `101` response in
/// [`on_upgrade`](Self::on_upgrade).
///
/// It owns the checked request, the options the connection will run with, the chosen
/// subprotocol and the callback for a failed upgrade (`F`).
#[derive(Debug)]
#[must_use = "to set up the WebSocket connection, return the response of `on_upgrade`"]
pub struct WebSocketUpgrade<F = DefaultOnFailedUpgrade> {
    upgrade: Upgrade,
    protocol: Option<String>,
    on_failed_upgrade: F,
}

impl<S: Send + Sync> FromRequestParts<S> for WebSocketUpgrade<DefaultOnFailedUpgrade> {
    type Rejection = UpgradeError;

    async fn from_request_parts(
        parts: &mut ::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self {
            upgrade: Upgrade::from_parts(parts, &Options::default())?,
            protocol: None,
            on_failed_upgrade: DefaultOnFailedUpgrade,
        })
    }
}

impl<F> WebSocketUpgrade<F> {
    /// Chooses the first of `protocols` that the client offered as the subprotocol; none when
    /// the client offered none of them.
    pub fn protocols<I>(mut self, protocols: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<Cow<'static, str>>,
    {
        let offered = self.upgrade.request().subprotocols();
        self.protocol = protocols
            .into_iter()
            .map(Into::into)
            .find(|protocol| offered.iter().any(|name| name == protocol))
            .map(Cow::into_owned);
        self
    }

    /// Returns the subprotocol [`protocols`](Self::protocols) chose.
    pub fn selected_protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// Returns the subprotocols the client offered, in its order of preference.
    pub fn requested_protocols(&self) -> impl Iterator<Item = &str> {
        self.upgrade
            .request()
            .subprotocols()
            .iter()
            .map(String::as_str)
    }

    /// Returns the checked handshake request: target, headers, offers.
    pub fn request(&self) -> &Request {
        self.upgrade.request()
    }

    /// Sets every option of the connection: limits, timers, deflate. The handshake has already
    /// been checked with the default [`HandshakeLimits`](crate::proto::handshake::HandshakeLimits).
    pub fn options(mut self, options: Options) -> Self {
        let handshake = self.upgrade.options().handshake.clone();
        *self.upgrade.options_mut() = Options {
            handshake,
            ..options
        };
        self
    }

    /// Sets the largest message the peer may send; a larger one closes the connection with
    /// 1009. Default: [`Config::default`](crate::proto::Config).
    pub fn max_message_size(mut self, max: usize) -> Self {
        self.upgrade.options_mut().connection.max_message_size = max;
        self
    }

    /// Sets the largest frame the peer may send; a larger one closes the connection with 1009.
    pub fn max_frame_size(mut self, max: usize) -> Self {
        self.upgrade.options_mut().connection.max_frame_size = max;
        self
    }

    /// Sets the permessage-deflate settings; `None` declines every offer. Default: on, with
    /// [`DeflateConfig::default`](crate::proto::deflate::DeflateConfig).
    #[cfg(feature = "deflate")]
    pub fn deflate(mut self, config: Option<crate::proto::deflate::DeflateConfig>) -> Self {
        self.upgrade.options_mut().deflate = config;
        self
    }

    /// Sets the callback for an upgrade that fails after the `101` was returned, such as a
    /// connection closed before hyper could hand it over.
    pub fn on_failed_upgrade<C: OnFailedUpgrade>(self, callback: C) -> WebSocketUpgrade<C> {
        WebSocketUpgrade {
            upgrade: self.upgrade,
            protocol: self.protocol,
            on_failed_upgrade: callback,
        }
    }

    /// Returns the `101` response and runs `callback` with the WebSocket, in a task of its own,
    /// once the connection is upgraded.
    ///
    /// permessage-deflate is negotiated here from the options. If the response cannot be built
    /// (a header the application added is refused), the error's response is returned instead.
    pub fn on_upgrade<C, Fut>(self, callback: C) -> Response
    where
        C: FnOnce(WebSocket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
        F: OnFailedUpgrade,
    {
        let accept = match &self.protocol {
            Some(protocol) => Accept::new().subprotocol(protocol.clone()),
            None => Accept::new(),
        };
        let (response, pending) = match self.upgrade.accept(accept) {
            Ok(accepted) => accepted,
            Err(error) => return error.into_response(),
        };
        let on_failed_upgrade = self.on_failed_upgrade;
        let protocol = self.protocol;
        ::tokio::spawn(async move {
            match pending.await {
                Ok(inner) => callback(WebSocket { inner, protocol }).await,
                Err(error) => on_failed_upgrade.call(error),
            }
        });
        response.into_response()
    }
}

impl IntoResponse for UpgradeError {
    fn into_response(self) -> Response {
        self.response().into_response()
    }
}

/// What to do when an accepted upgrade fails; see [`WebSocketUpgrade::on_failed_upgrade`].
pub trait OnFailedUpgrade: Send + 'static {
    /// Called with the error, once.
    fn call(self, error: Error);
}

impl<F: FnOnce(Error) + Send + 'static> OnFailedUpgrade for F {
    fn call(self, error: Error) {
        self(error)
    }
}

/// The default [`OnFailedUpgrade`]: ignores the error.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct DefaultOnFailedUpgrade;

impl OnFailedUpgrade for DefaultOnFailedUpgrade {
    fn call(self, _error: Error) {}
}

/// A WebSocket that an axum handler upgraded to: a [`Stream`] of messages and a [`Sink`] for
/// them, plus axum's `recv` and `send`.
///
/// It owns the [`hyper::WebSocket`](crate::hyper::WebSocket) (the tokio adapter over the
/// upgraded connection) and the chosen subprotocol.
#[derive(Debug)]
pub struct WebSocket {
    inner: crate::hyper::WebSocket,
    protocol: Option<String>,
}

impl WebSocket {
    /// Returns the next message, `None` once the connection has closed, or the error that
    /// ended it.
    pub async fn recv(&mut self) -> Option<Result<Message, Error>> {
        self.inner.read().await.transpose()
    }

    /// Sends a message and flushes it.
    pub async fn send(&mut self, message: Message) -> Result<(), Error> {
        self.inner.send(message).await
    }

    /// Sends a ping; the pong arrives as an event of [`inner_mut`](Self::inner_mut)'s
    /// `read_event`, and is otherwise consumed by `recv`.
    pub async fn ping(&mut self, data: impl Into<Bytes>) -> Result<(), Error> {
        self.inner.ping(data).await
    }

    /// Starts the closing handshake; keep calling [`recv`](Self::recv) until it returns `None`
    /// to see it complete.
    pub async fn close(&mut self, frame: Option<CloseFrame>) -> Result<(), Error> {
        self.inner.close(frame).await
    }

    /// Returns the close frame the peer sent, once the connection has closed.
    pub fn close_frame(&self) -> Option<&CloseFrame> {
        self.inner.close_frame()
    }

    /// Returns the subprotocol chosen during the handshake.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// Returns the tokio adapter's stream, for its full API (`read_event`, `split`, …).
    pub fn inner_mut(&mut self) -> &mut crate::hyper::WebSocket {
        &mut self.inner
    }

    /// Returns the tokio adapter's stream, for [`connection`](crate::tokio::WebSocketStream::connection)
    /// and the negotiated deflate parameters.
    pub fn inner(&self) -> &crate::hyper::WebSocket {
        &self.inner
    }

    /// Returns the tokio adapter's stream.
    pub fn into_inner(self) -> crate::hyper::WebSocket {
        self.inner
    }
}

impl Stream for WebSocket {
    type Item = Result<Message, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.inner).poll_next(cx)
    }
}

impl Sink<Message> for WebSocket {
    type Error = Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Pin::new(&mut self.inner).poll_ready(cx)
    }

    fn start_send(mut self: Pin<&mut Self>, message: Message) -> Result<(), Error> {
        Pin::new(&mut self.inner).start_send(message)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}
