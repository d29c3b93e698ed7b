//! The server as a `tower::Service`, to mount Socket.IO on a hyper or axum app.
//!
//! It is another HTTP front beside the hand-written one of [`Server::serve`]: it parses
//! nothing itself (hyper has), routes with the same [`Server::admit`], hands long-polling to
//! the same handlers and WebSockets to the same sessions, upgrading through [`crate::hyper`].

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::conn::{self, BoxIo, Transport};
use super::handshake::{Remote, RequestInfo};
use super::http::{Head, HttpResponse};
use super::{Headers, Route, Routed, Server, polling};
use crate::hyper::{Body, Upgrade};
use crate::proto::handshake::Accept;

/// The Socket.IO server as a [`tower_service::Service`], for a hyper or axum app: it answers
/// every request under [`Config::path`](super::Config::path) (the Engine.IO handshake,
/// long-polling GETs and POSTs, CORS preflights and the WebSocket upgrades) exactly as
/// [`Server::serve`] does, on the app's port and behind its TLS and middleware. Made by
/// [`Server::service`]; a cheap handle, cloned per request.
///
/// Mount it in axum with `route_service` at the path (by default `/socket.io/`):
///
/// ```no_run
/// # async fn run() -> std::io::Result<()> {
/// use std::net::SocketAddr;
///
/// use axum::Router;
/// use axum::routing::get;
/// use wsio::events::Server;
///
/// let io = Server::default();
/// io.of("/").on_connection(|socket| {
///     socket.on("ping", |socket, _args, _ack| async move {
///         let _ = socket.emit("pong", ());
///     });
/// });
/// let app = Router::new()
///     .route("/", get(|| async { "hello" }))
///     .route_service("/socket.io/", io.service());
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
/// // With connect info, sockets' handshakes know the peer's address.
/// axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await
/// # }
/// ```
///
/// The peer's address comes from the request's extensions: a [`Remote`] the app inserted
/// (a hyper server knows the address when it accepts the connection), or else axum's
/// `ConnectInfo<SocketAddr>` (with the `axum` feature). Serve hyper connections
/// `with_upgrades()`, or WebSocket requests fail with 500.
#[derive(Debug, Clone)]
pub struct SocketIoService {
    server: Server,
    secure: bool,
}

impl Server {
    /// The server as a [`SocketIoService`], to mount on a hyper or axum app.
    pub fn service(&self) -> SocketIoService {
        SocketIoService {
            server: self.clone(),
            secure: false,
        }
    }
}

impl SocketIoService {
    /// Tells the sockets' [`Handshake`](super::Handshake) whether the app serves over TLS (a
    /// [`Remote`] in a request's extensions may also say so). Default `false`.
    pub fn secure(mut self, secure: bool) -> Self {
        self.secure = secure;
        self
    }

    /// Answers one request.
    async fn respond<B>(self, request: ::http::Request<B>) -> ::http::Response<Body>
    where
        B: ::hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (mut parts, body) = request.into_parts();
        let remote = self.remote(&parts.extensions);
        let uri = original_uri(&parts).unwrap_or_else(|| parts.uri.clone());
        let headers: Headers = parts
            .headers
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).trim().to_owned();
                (name.as_str().to_owned(), value)
            })
            .collect();
        let head = Head {
            method: parts.method.as_str().to_owned(),
            path: uri.path().to_owned(),
            query: uri.query().unwrap_or_default().to_owned(),
            headers,
            keep_alive: true,
            len: 0,
        };
        let url = uri.path_and_query().map_or_else(
            || uri.path().to_owned(),
            |target| target.as_str().to_owned(),
        );
        let request = || RequestInfo::new(url, head.headers.clone(), remote);
        let Routed {
            route,
            extra,
            handshake,
        } = match self.server.admit(&head, request).await {
            Ok(routed) => routed,
            Err((response, extra)) => return http_response(&response, &extra),
        };
        let inner = &self.server.inner;
        let options = self.server.websocket_options();
        let response = match (route, handshake) {
            (Route::Fallback(response) | Route::Respond(response), _) => response,
            (Route::Preflight, _) => HttpResponse::new(204, "text/plain", ""),
            (Route::WebSocket, Some((request, sid))) => {
                let mut accept = Accept::new();
                for (name, value) in &extra {
                    if name == "Set-Cookie" {
                        accept = match accept.header(name, value) {
                            Ok(accept) => accept,
                            Err(error) => {
                                return crate::hyper::UpgradeError::from(error).response();
                            }
                        };
                    }
                }
                let accepted = Upgrade::from_parts(&mut parts, &options)
                    .and_then(|upgrade| upgrade.accept(accept));
                let (response, pending) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => return error.response(),
                };
                let inner = Arc::clone(inner);
                tokio::spawn(async move {
                    if let Ok(ws) = pending.await {
                        let transport = Transport::WebSocket(Box::new(ws), sid);
                        conn::run(&inner, transport, request).await;
                    }
                });
                return response;
            }
            (Route::Upgrade(session), _) => {
                let accepted = Upgrade::from_parts(&mut parts, &options)
                    .and_then(|upgrade| upgrade.accept(Accept::new()));
                let (response, pending) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        session.upgrading.store(false, Ordering::Release);
                        return error.response();
                    }
                };
                let inner = Arc::clone(inner);
                tokio::spawn(async move {
                    match pending.with_io(|io| Box::new(io) as BoxIo).await {
                        Ok(ws) => polling::probe(&inner, session, ws).await,
                        Err(_) => session.upgrading.store(false, Ordering::Release),
                    }
                });
                return response;
            }
            (Route::Open, Some((request, sid))) => polling::open(inner, request, sid).await,
            (Route::WebSocket | Route::Open, None) => {
                HttpResponse::socketio_error(3, "Bad request")
            }
            (Route::Get(session), _) => polling::get(&session).await,
            (Route::Post(session), _) => {
                let limit = inner.config.max_payload;
                match read_body(body, limit, &options, &head).await {
                    Ok(body) => polling::post(&session, &body).await,
                    Err(response) => polling::refuse_body(&session, response),
                }
            }
        };
        http_response(&response, &extra)
    }

    /// Where the request comes from: a [`Remote`] in its extensions, or axum's connect info.
    fn remote(&self, extensions: &::http::Extensions) -> Remote {
        let found = extensions.get::<Remote>().copied();
        #[cfg(feature = "axum")]
        let found = found.or_else(|| {
            extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|info| Remote::new(info.0))
        });
        let mut remote = found.unwrap_or_default();
        remote.secure |= self.secure;
        remote
    }
}

impl<B> tower_service::Service<::http::Request<B>> for SocketIoService
where
    B: ::hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = ::http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: ::http::Request<B>) -> Self::Future {
        let service = self.clone();
        Box::pin(async move { Ok(service.respond(request).await) })
    }
}

/// The URI as the client sent it, before a router stripped a prefix (axum's `nest_service`).
fn original_uri(parts: &::http::request::Parts) -> Option<::http::Uri> {
    #[cfg(feature = "axum")]
    if let Some(original) = parts.extensions.get::<axum::extract::OriginalUri>() {
        return Some(original.0.clone());
    }
    let _ = parts;
    None
}

/// Reads a POST body of at most `limit` bytes, within the handshake timeout; `Err` is the
/// refusal: 413 for a body too large, 400 for one that failed or came too slowly.
async fn read_body<B>(
    body: B,
    limit: usize,
    options: &crate::Options,
    head: &Head,
) -> Result<Bytes, HttpResponse>
where
    B: ::hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let too_large = || HttpResponse::new(413, "text/plain", "payload too large");
    let declared = head.header("content-length").map(str::parse::<usize>);
    if let Some(Ok(length)) = declared
        && length > limit
    {
        return Err(too_large());
    }
    let read = Limited::new(body, limit).collect();
    let collected = match options.handshake_timeout {
        Some(wait) => tokio::time::timeout(wait, read)
            .await
            .map_err(|_| HttpResponse::new(400, "text/plain", "request body too slow"))?,
        None => read.await,
    };
    match collected {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<LengthLimitError>() => Err(too_large()),
        Err(_) => Err(HttpResponse::new(400, "text/plain", "bad request body")),
    }
}

/// A response of the hand-written front's kind as an `http::Response`, with `extra` headers.
fn http_response(response: &HttpResponse, extra: &Headers) -> ::http::Response<Body> {
    let mut out = ::http::Response::new(Body::new(response.body.clone()));
    *out.status_mut() = ::http::StatusCode::from_u16(response.status)
        .unwrap_or(::http::StatusCode::INTERNAL_SERVER_ERROR);
    let headers = out.headers_mut();
    let fixed = [
        ("content-type", response.content_type.as_str()),
        ("cache-control", "no-store"),
    ];
    let extra = extra
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()));
    for (name, value) in fixed.into_iter().chain(extra) {
        if let (Ok(name), Ok(value)) = (
            ::http::HeaderName::from_bytes(name.as_bytes()),
            ::http::HeaderValue::from_str(value),
        ) {
            headers.append(name, value);
        }
    }
    out
}
