//! The Socket.IO server: HTTP routing, Engine.IO sessions, namespaces, sockets and rooms.

pub(crate) mod adapter;
mod broadcast;
mod conn;
mod cors;
mod handshake;
mod http;
mod namespace;
mod polling;
mod queue;
mod rooms;
#[cfg(feature = "hyper")]
mod service;
mod socket;

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use base64::Engine as _;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

use crate::Options;
use crate::events::{Args, DEFAULT_NAMESPACE};
pub(crate) use crate::lock::{lock, read, write};
use crate::proto::Rng;
use crate::proto::handshake::{Accept, Request};

pub use self::adapter::Adapter;
#[cfg(feature = "redis")]
pub use self::adapter::{RedisAdapter, RedisAdapterConfig, RedisAdapterError, RedisStats};
pub use self::broadcast::{Broadcast, BroadcastAckError, FetchedSocket};
use self::conn::Polling;
use self::conn::{BoxIo, Transport};
pub use self::cors::Cors;
use self::handshake::RequestInfo;
pub use self::handshake::{Handshake, Remote};
pub use self::http::HttpResponse;
use self::http::{Head, HeadError, HttpConn};
pub use self::namespace::{Namespace, Refusal, ServerAck};
#[cfg(feature = "hyper")]
pub use self::service::SocketIoService;
pub use self::socket::{AckSender, Extensions, Socket};

/// Settings of a [`Server`]. Start from `Config::default()` and change fields.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// The path clients connect to (socket.io's `path` option). Default `/socket.io/`.
    pub path: String,
    /// Time between the server's pings. Default 25 s.
    pub ping_interval: Duration,
    /// How long the client has to answer a ping before it is disconnected with
    /// [`DisconnectReason::PingTimeout`]. Default 20 s.
    pub ping_timeout: Duration,
    /// The largest WebSocket message accepted, announced as `maxPayload`. Default 1 MB.
    pub max_payload: usize,
    /// The most binary attachments one packet may carry. Default 64.
    pub max_attachments: usize,
    /// Packets a connection may have queued before its overflow policy applies (volatile
    /// emits are dropped earlier, whenever the connection is not writable): a connection over
    /// this limit for longer than
    /// [`overflow_timeout`](Self::overflow_timeout), or with twice this many packets queued,
    /// is disconnected with [`DisconnectReason::SlowConsumer`]. Default 1024.
    pub queue_limit: usize,
    /// See [`queue_limit`](Self::queue_limit). Default 10 s.
    pub overflow_timeout: Duration,
    /// How long [`Socket::emit_with_ack`] waits for the client's acknowledgement. Default 10 s.
    pub ack_timeout: Duration,
    /// How long a client has to join a namespace after its Engine.IO session opened before it
    /// is closed (socket.io's `connectTimeout`). Default 45 s.
    pub connect_timeout: Duration,
    /// How long a WebSocket probing the upgrade of a long-polling session has to complete it
    /// (`2probe`, then `5`) before it is closed (Engine.IO's `upgradeTimeout`). Default 10 s.
    pub upgrade_timeout: Duration,
    /// Which browser origins may make long-polling requests (socket.io's `cors`). Default
    /// `None`: no CORS headers.
    pub cors: Option<Cors>,
    /// The name of a cookie set to the session id on the handshake response (socket.io's
    /// `cookie`, with `Path=/; HttpOnly; SameSite=Lax`), for sticky load balancing. Default
    /// `None`: no cookie.
    pub cookie: Option<String>,
    /// The WebSocket options. The server disables WebSocket keepalive pings (Engine.IO has its
    /// own heartbeat) and caps the message size at `max_payload`.
    ///
    /// With the `deflate` feature, permessage-deflate is accepted by default without context
    /// takeover in either direction and for messages of 1 KiB and more: every emit and
    /// broadcast is then compressed once for all its recipients, and an idle connection holds
    /// no compression state (context takeover costs about 420 KiB per connection). Set
    /// `websocket.deflate` to change that, or to `None` to turn compression off.
    pub websocket: Options,
    /// What the namespaces tell other server nodes: [`Adapter::local`] (the default) keeps
    /// everything in this process; a cluster adapter such as `RedisAdapter` (feature `redis`)
    /// shares rooms, broadcasts and requests with the other nodes.
    pub adapter: Adapter,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            path: "/socket.io/".into(),
            ping_interval: Duration::from_secs(25),
            ping_timeout: Duration::from_secs(20),
            max_payload: 1_000_000,
            max_attachments: 64,
            queue_limit: 1024,
            overflow_timeout: Duration::from_secs(10),
            ack_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(45),
            upgrade_timeout: Duration::from_secs(10),
            cors: None,
            cookie: None,
            websocket: default_websocket_options(),
            adapter: Adapter::default(),
        }
    }
}

/// The adapter's defaults, with compression tuned for a broadcasting server (see
/// [`Config::websocket`]).
fn default_websocket_options() -> Options {
    #[allow(unused_mut)] // mutated only with `deflate`
    let mut options = Options::default();
    #[cfg(feature = "deflate")]
    if let Some(deflate) = &mut options.deflate {
        deflate.server_no_context_takeover = true;
        deflate.client_no_context_takeover = true;
        deflate.threshold = 1024;
    }
    options
}

/// Why a socket left its namespace. [`as_str`](Self::as_str) gives socket.io's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// The client closed the connection.
    TransportClose,
    /// The connection failed (I/O or WebSocket protocol error).
    TransportError,
    /// The client did not answer a ping within the ping timeout.
    PingTimeout,
    /// The client sent a malformed packet.
    ParseError,
    /// The client left the namespace (`socket.disconnect()` on the client).
    ClientNamespaceDisconnect,
    /// The server called [`Socket::disconnect`].
    ServerNamespaceDisconnect,
    /// The server called [`Socket::close`].
    ServerClose,
    /// The connection's outgoing queue overflowed (see [`Config::queue_limit`]).
    SlowConsumer,
}

impl DisconnectReason {
    /// The reason as socket.io names it (`"ping timeout"`, `"transport close"`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TransportClose => "transport close",
            Self::TransportError => "transport error",
            Self::PingTimeout => "ping timeout",
            Self::ParseError => "parse error",
            Self::ClientNamespaceDisconnect => "client namespace disconnect",
            Self::ServerNamespaceDisconnect => "server namespace disconnect",
            Self::ServerClose => "forced server close",
            Self::SlowConsumer => "slow consumer",
        }
    }
}

impl std::fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an emit failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EmitError {
    /// The event name is one socket.io reserves.
    #[error("reserved event name {0:?}")]
    ReservedEvent(String),
    /// The socket is disconnected or its connection is closing.
    #[error("socket disconnected")]
    Disconnected,
}

/// Why [`Socket::emit_with_ack`] got no acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AckError {
    /// The event could not be sent.
    #[error(transparent)]
    Emit(#[from] EmitError),
    /// The client did not acknowledge in time.
    #[error("acknowledgement timed out")]
    Timeout,
    /// The socket disconnected before the acknowledgement arrived.
    #[error("socket disconnected before acknowledging")]
    Disconnected,
}

/// Why [`Server::handle`] ended without a session.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// Reading the request failed.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    /// The request was answered with this HTTP error (bad path, polling, wrong `EIO`…).
    #[error("request refused with status {0}")]
    Refused(u16),
    /// The WebSocket handshake failed.
    #[error("websocket handshake failed: {0}")]
    WebSocket(#[from] crate::Error),
}

type Fallback = Arc<dyn Fn(&str) -> Option<HttpResponse> + Send + Sync>;
type NamespaceMatcher = Arc<dyn Fn(&str, &serde_json::Value) -> bool + Send + Sync>;
type AllowRequest = Arc<
    dyn Fn(Handshake) -> std::pin::Pin<Box<dyn Future<Output = Result<(), Refusal>> + Send>>
        + Send
        + Sync,
>;

/// Where [`Server::route`] sends a request.
enum Route {
    /// Outside the Socket.IO path: answer with this response and close.
    Fallback(HttpResponse),
    /// A CORS preflight.
    Preflight,
    /// Answer it with this response and close.
    Respond(HttpResponse),
    /// A WebSocket session.
    WebSocket,
    /// A WebSocket taking over this polling session.
    Upgrade(Arc<Polling>),
    /// A new polling session.
    Open,
    /// A poll for the session's packets.
    Get(Arc<Polling>),
    /// Packets for the session.
    Post(Arc<Polling>),
}

/// Extra response headers (CORS, the session cookie).
type Headers = Vec<(String, String)>;

/// What [`Server::admit`] decided for a request.
struct Routed {
    route: Route,
    /// Headers every answer to the request carries.
    extra: Headers,
    /// For a handshake (a new session): the request captured and the session id.
    handshake: Option<(Arc<RequestInfo>, String)>,
}

/// A Socket.IO server: namespaces and their sockets. A cheap handle, clone it freely.
///
/// Feed it accepted TCP streams with [`serve`](Self::serve) or, per stream,
/// [`handle`](Self::handle).
#[derive(Clone)]
pub struct Server {
    inner: Arc<ServerInner>,
}

pub(crate) struct ServerInner {
    pub(crate) config: Config,
    namespaces: RwLock<HashMap<String, Namespace>>,
    rng: Mutex<Rng>,
    fallback: RwLock<Option<Fallback>>,
    /// The long-polling sessions, by Engine.IO session id, until they end or upgrade.
    sessions: Mutex<HashMap<String, Arc<Polling>>>,
    allow_request: RwLock<Option<AllowRequest>>,
    /// Dynamic parent namespaces, in the order made, with what decides their children.
    dynamic: RwLock<Vec<(NamespaceMatcher, Namespace)>>,
}

impl Server {
    /// A server with `config` and no namespaces yet.
    pub fn new(config: Config) -> Self {
        Self {
            inner: Arc::new(ServerInner {
                config,
                namespaces: RwLock::default(),
                rng: Mutex::new(Rng::from_os()),
                fallback: RwLock::default(),
                sessions: Mutex::default(),
                allow_request: RwLock::default(),
                dynamic: RwLock::default(),
            }),
        }
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The namespace `name` (`"/"` is the default one; a missing leading `/` is added),
    /// created on first use. Clients may only connect to namespaces created this way.
    ///
    /// # Panics
    ///
    /// Panics if `name` contains a `,`, which the packet format cannot carry.
    pub fn of(&self, name: &str) -> Namespace {
        assert!(!name.contains(','), "namespace names cannot contain ','");
        let name = match name.starts_with('/') {
            true => name.to_owned(),
            false => format!("/{name}"),
        };
        let mut namespaces = write(&self.inner.namespaces);
        namespaces
            .entry(name.clone())
            .or_insert_with(|| {
                let namespace = Namespace::new(name);
                namespace.attach(&self.inner.config.adapter);
                namespace
            })
            .clone()
    }

    /// Sends `event` to every socket of the default namespace `/` (socket.io's `io.emit`);
    /// the other operators of `io` are those of [`of("/")`](Self::of), shortcut below.
    pub fn emit(&self, event: &str, args: impl Into<Args>) -> Result<usize, EmitError> {
        self.of(DEFAULT_NAMESPACE).emit(event, args)
    }

    /// A broadcast to the sockets of `/` in `room` (socket.io's `io.to`).
    pub fn to(&self, room: impl Into<String>) -> Broadcast {
        self.of(DEFAULT_NAMESPACE).to(room)
    }

    /// The same as [`to`](Self::to) (socket.io's `io.in`).
    pub fn in_(&self, room: impl Into<String>) -> Broadcast {
        self.to(room)
    }

    /// A broadcast to the sockets of `/` but those in `room` (socket.io's `io.except`).
    pub fn except(&self, room: impl Into<String>) -> Broadcast {
        self.of(DEFAULT_NAMESPACE).except(room)
    }

    /// A broadcast to the sockets of `/`, compressed or not (socket.io's `io.compress`; see
    /// [`Broadcast::compress`]).
    pub fn compress(&self, compress: bool) -> Broadcast {
        self.of(DEFAULT_NAMESPACE).compress(compress)
    }

    /// A volatile broadcast to the sockets of `/` (socket.io's `io.volatile`; see
    /// [`Broadcast::volatile`]).
    pub fn volatile(&self) -> Broadcast {
        self.of(DEFAULT_NAMESPACE).volatile()
    }

    /// A broadcast to the sockets of `/` whose acknowledgements are awaited for at most
    /// `timeout` (socket.io's `io.timeout`; see [`Broadcast::emit_with_ack`]).
    pub fn timeout(&self, timeout: Duration) -> Broadcast {
        self.of(DEFAULT_NAMESPACE).timeout(timeout)
    }

    /// The sockets of `/` on every node (socket.io's `io.fetchSockets`).
    pub async fn fetch_sockets(&self) -> Vec<FetchedSocket> {
        self.of(DEFAULT_NAMESPACE).fetch_sockets().await
    }

    /// Disconnects every socket of `/`, or closes their connections with `close` (socket.io's
    /// `io.disconnectSockets`).
    pub fn disconnect_sockets(&self, close: bool) {
        self.of(DEFAULT_NAMESPACE).disconnect_sockets(close);
    }

    /// A dynamic parent namespace (socket.io's `io.of(regex or function)`): a client asking
    /// for a namespace that does not exist gets one made for it when `matches(name, auth)`
    /// says so, the first matching parent winning. The parent's
    /// [`authorize`](Namespace::authorize) hook, [`use_middleware`](Namespace::use_middleware)
    /// chain and [`on_connection`](Namespace::on_connection) handler apply to every namespace
    /// it made, before the child's own; its [`emit`](Namespace::emit) reaches all of them.
    ///
    /// ```no_run
    /// # fn demo(server: wsio::events::Server) {
    /// let workspaces = server.dynamic(|name, _auth| name.starts_with("/workspace-"));
    /// workspaces.on_connection(|socket| {
    ///     // socket.namespace() is the child, e.g. "/workspace-42".
    ///     let _ = socket.emit("hello", serde_json::json!([socket.namespace()]));
    /// });
    /// # }
    /// ```
    pub fn dynamic(
        &self,
        matches: impl Fn(&str, &serde_json::Value) -> bool + Send + Sync + 'static,
    ) -> Namespace {
        let mut dynamic = write(&self.inner.dynamic);
        let parent = Namespace::new(format!("/_dynamic{}", dynamic.len()));
        dynamic.push((Arc::new(matches), parent.clone()));
        parent
    }

    /// Answers plain HTTP requests outside [`Config::path`] with `fallback(path)`, or 404 when
    /// it returns `None` (the default).
    pub fn http_fallback(
        &self,
        fallback: impl Fn(&str) -> Option<HttpResponse> + Send + Sync + 'static,
    ) {
        *write(&self.inner.fallback) = Some(Arc::new(fallback));
    }

    /// Sets the hook that decides whether a client may open an Engine.IO session (socket.io's
    /// `allowRequest`), replacing any previous one. It runs on each handshake request (a
    /// polling GET without `sid`, or a WebSocket without one) with what the request said (its
    /// [`Handshake`] has no auth yet: `{}`); a refusal is answered `403` with socket.io's
    /// `{"code":4,"message":"Forbidden"}`.
    ///
    /// ```no_run
    /// # fn demo(server: wsio::events::Server) {
    /// use wsio::events::Refusal;
    ///
    /// server.allow_request(|request| async move {
    ///     match request.header("origin") {
    ///         Some("https://app.example") => Ok(()),
    ///         _ => Err(Refusal::new("origin not allowed")),
    ///     }
    /// });
    /// # }
    /// ```
    pub fn allow_request<F, Fut>(&self, hook: F)
    where
        F: Fn(Handshake) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Refusal>> + Send + 'static,
    {
        let hook: AllowRequest = Arc::new(move |request| Box::pin(hook(request)));
        *write(&self.inner.allow_request) = Some(hook);
    }

    /// Accepts connections from `listener` forever, each in a task of its own.
    pub async fn serve(&self, listener: TcpListener) -> io::Result<()> {
        loop {
            let (stream, address) = listener.accept().await?;
            stream.set_nodelay(true)?;
            let server = self.clone();
            tokio::spawn(async move { server.handle_with(stream, Remote::new(address)).await });
        }
    }

    /// Serves one connection: routes its HTTP requests to the Engine.IO sessions.
    /// Accepts TLS connections (`https://`, `wss://` clients) from `listener` forever, each in a
    /// task of its own: the TLS handshake, within [`Config::websocket`]'s handshake timeout,
    /// then [`handle`](Self::handle). A failed or stalled TLS handshake drops only that
    /// connection.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let acceptor = wsio::tls::Acceptor::from_pem_files("cert.pem", "key.pem")?;
    /// let server = wsio::events::Server::default();
    /// let listener = tokio::net::TcpListener::bind("0.0.0.0:443").await?;
    /// server.serve_tls(listener, acceptor).await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "rustls-manual-roots")]
    pub async fn serve_tls(
        &self,
        listener: TcpListener,
        acceptor: crate::tls::Acceptor,
    ) -> io::Result<()> {
        loop {
            let (stream, _) = listener.accept().await?;
            let (server, acceptor) = (self.clone(), acceptor.clone());
            tokio::spawn(async move {
                // Only this connection is lost if the socket already failed.
                let _ = stream.set_nodelay(true);
                let options = server.websocket_options();
                if let Ok(stream) = acceptor.handshake_async(stream, &options).await {
                    let _ = server.handle(stream).await;
                }
            });
        }
    }

    /// Serves one connection: routes its HTTP request, then runs the Engine.IO session until
    /// the connection ends.
    ///
    /// `GET {path}?EIO=4&transport=websocket` upgrades and runs a session over the WebSocket
    /// until it ends. `transport=polling` requests are HTTP long-polling: a GET without `sid`
    /// opens a session, GETs with its `sid` take the packets queued for the client, POSTs
    /// bring the client's; the connection serves request after request while the client keeps
    /// it alive. A WebSocket request with the `sid` of a polling session upgrades it.
    /// Errors are answered with `400` and socket.io's JSON body (`{"code":…,"message":…}`):
    /// code 0 for an unknown transport, 1 for an unknown session, 2 for a handshake that is not
    /// a GET, 3 for a bad request, 5 for an `EIO` other than 4.
    pub async fn handle<S>(&self, stream: S) -> Result<(), ServeError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        self.handle_with(stream, Remote::default()).await
    }

    /// Serves one connection like [`handle`](Self::handle), telling the sockets'
    /// [`Handshake`] where it comes from (the peer address, TLS).
    pub async fn handle_with<S>(&self, stream: S, remote: Remote) -> Result<(), ServeError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let options = self.websocket_options();
        let mut http = HttpConn::new(stream);
        loop {
            let read = http.read_head();
            let head = match options.handshake_timeout {
                Some(limit) => match tokio::time::timeout(limit, read).await {
                    Ok(head) => head,
                    Err(_) => return Err(ServeError::WebSocket(crate::Error::HandshakeTimeout)),
                },
                None => read.await,
            };
            let head = match head {
                Ok(Some(head)) => head,
                Ok(None) => return Ok(()),
                Err(HeadError::Io(error)) => return Err(error.into()),
                Err(HeadError::Bad(response)) => {
                    http.respond(&response, false, &[]).await?;
                    return Err(ServeError::Refused(response.status));
                }
            };
            let request = || RequestInfo::parse(http.head_bytes(&head), remote);
            let Routed {
                route,
                extra,
                handshake,
            } = match self.admit(&head, request).await {
                Ok(routed) => routed,
                Err((response, extra)) => {
                    http.respond(&response, false, &extra).await?;
                    return Err(ServeError::Refused(response.status));
                }
            };
            let answer = match (route, handshake) {
                // A refusal of a request without a body keeps the connection, as Node does:
                // HTTP clients pool their connections, and one closed here makes the client's
                // next request wait for a new connection while a later one overtakes it on a
                // pooled connection (a poll overtaken by the POST that closes its session).
                (Route::Respond(response), _) if head.keep_alive && !has_body(&head) => {
                    http.consume(&head);
                    http.respond(&response, true, &extra).await?;
                    continue;
                }
                (Route::Fallback(response) | Route::Respond(response), _) => {
                    http.respond(&response, false, &extra).await?;
                    return match response.status {
                        200..=299 => Ok(()),
                        status => Err(ServeError::Refused(status)),
                    };
                }
                (Route::Preflight, _) => Some(HttpResponse::new(204, "text/plain", "")),
                (Route::WebSocket, Some((request, sid))) => {
                    // The parsed head is not needed past routing (the session keeps its
                    // RequestInfo): freed now rather than when the connection ends.
                    drop(head);
                    let stream = http.into_replay();
                    let mut accept = Accept::new();
                    for (name, value) in &extra {
                        if name == "Set-Cookie" {
                            accept = accept.header(name, value).map_err(crate::Error::from)?;
                        }
                    }
                    let accept = async move |_: &Request| Ok(accept);
                    // Boxed, here and below: this future lives as long as the connection,
                    // and inline it would be as large as its largest state (the handshake's,
                    // a polling request's) for the whole session.
                    let ws = Box::pin(crate::tokio::accept_with(stream, &options, accept)).await?;
                    let transport = Transport::WebSocket(Box::new(ws), sid);
                    Box::pin(conn::run(&self.inner, transport, request)).await;
                    return Ok(());
                }
                (Route::Upgrade(polling), _) => {
                    drop(head);
                    let stream: BoxIo = Box::new(http.into_replay());
                    Box::pin(polling::upgrade(&self.inner, polling, stream, &options)).await?;
                    return Ok(());
                }
                (Route::Open, Some((request, sid))) => {
                    http.consume(&head);
                    Some(Box::pin(polling::open(&self.inner, request, sid)).await)
                }
                (Route::WebSocket | Route::Open, None) => return Ok(()),
                (Route::Get(polling), _) => {
                    http.consume(&head);
                    // A client that closes the connection while its GET waits ends the
                    // session: the answer is dropped unsent.
                    tokio::select! {
                        response = Box::pin(polling::get(&polling)) => Some(response),
                        () = http.closed() => None,
                    }
                }
                (Route::Post(polling), _) => {
                    // The body is bounded in size and, like a head, in time.
                    let limit = self.inner.config.max_payload;
                    let read = http.read_body(&head, limit);
                    let body = match options.handshake_timeout {
                        Some(wait) => tokio::time::timeout(wait, read).await.map_err(|_| {
                            ServeError::Io(io::Error::new(
                                io::ErrorKind::TimedOut,
                                "request body too slow",
                            ))
                        })?,
                        None => read.await,
                    };
                    match body? {
                        Ok(body) => Some(Box::pin(polling::post(&polling, &body)).await),
                        Err(response) => Some(polling::refuse_body(&polling, response)),
                    }
                }
            };
            let Some(response) = answer else {
                return Ok(());
            };
            // A refusal keeps the connection too when no unread body is left behind.
            let keep_alive = head.keep_alive && (response.status < 400 || !has_body(&head));
            http.respond(&response, keep_alive, &extra).await?;
            if !keep_alive {
                return match response.status {
                    200..=299 => Ok(()),
                    status => Err(ServeError::Refused(status)),
                };
            }
        }
    }

    /// Routes a request and, for a handshake, captures it (`request`), runs the
    /// [`allow_request`](Self::allow_request) hook and draws the session id: what every HTTP
    /// front decides the same way. `Err` is a refusal to answer, with its headers.
    async fn admit(
        &self,
        head: &Head,
        request: impl FnOnce() -> RequestInfo,
    ) -> Result<Routed, (HttpResponse, Headers)> {
        let route = self.route(head);
        let mut extra = match (&self.inner.config.cors, &route) {
            (Some(cors), route) if !matches!(route, Route::Fallback(_)) => {
                let preflight = matches!(route, Route::Preflight)
                    .then(|| head.header("access-control-request-headers"));
                cors.headers(head.header("origin"), preflight)
            }
            _ => Vec::new(),
        };
        let handshake = match route {
            Route::WebSocket | Route::Open => {
                let request = Arc::new(request());
                if let Err(response) = self.allow(&request).await {
                    return Err((response, extra));
                }
                let sid = self.inner.new_id();
                if let Some(name) = &self.inner.config.cookie {
                    let cookie = format!("{name}={sid}; Path=/; HttpOnly; SameSite=Lax");
                    extra.push(("Set-Cookie".to_owned(), cookie));
                }
                Some((request, sid))
            }
            _ => None,
        };
        Ok(Routed {
            route,
            extra,
            handshake,
        })
    }

    /// Where a request goes.
    fn route(&self, head: &Head) -> Route {
        let path = self.inner.config.path.trim_end_matches('/');
        if head.path.trim_end_matches('/') != path {
            let fallback = read(&self.inner.fallback).clone();
            let response = fallback.and_then(|fallback| fallback(&head.path));
            return Route::Fallback(
                response.unwrap_or_else(|| HttpResponse::new(404, "text/plain", "not found")),
            );
        }
        if head.method == "OPTIONS" && self.inner.config.cors.is_some() {
            return Route::Preflight;
        }
        let error = |code, message| Route::Respond(HttpResponse::socketio_error(code, message));
        // Node's order and messages: the transport first, then the protocol version.
        let transport = head.param("transport");
        if !matches!(transport, Some("polling" | "websocket")) {
            return error(0, "Transport unknown");
        }
        if head.param("EIO") != Some("4") {
            return error(5, "Unsupported protocol version");
        }
        let session = head.param("sid").map(|sid| self.inner.session(sid));
        match (transport, head.method.as_str(), session) {
            (Some("websocket"), "GET", None) => Route::WebSocket,
            (Some("websocket"), "GET", Some(Some(polling))) => {
                match polling.upgrading.swap(true, Ordering::AcqRel) {
                    true => error(3, "Bad request"),
                    false => Route::Upgrade(polling),
                }
            }
            (Some("polling"), "GET", None) => Route::Open,
            (Some("polling"), _, None) => error(2, "Bad handshake method"),
            (Some("polling"), "GET", Some(Some(polling))) => Route::Get(polling),
            (Some("polling"), "POST", Some(Some(polling))) => Route::Post(polling),
            (Some("polling" | "websocket"), _, Some(None)) => error(1, "Session ID unknown"),
            (Some("polling" | "websocket"), _, _) => error(3, "Bad request"),
            _ => error(0, "Transport unknown"),
        }
    }

    /// Runs the [`allow_request`](Self::allow_request) hook on a handshake request.
    async fn allow(&self, request: &Arc<RequestInfo>) -> Result<(), HttpResponse> {
        let hook = read(&self.inner.allow_request).clone();
        let Some(hook) = hook else {
            return Ok(());
        };
        let handshake = Handshake::new(Arc::clone(request), serde_json::json!({}));
        match hook(handshake).await {
            Ok(()) => Ok(()),
            Err(_) => {
                let mut response = HttpResponse::socketio_error(4, "Forbidden");
                response.status = 403;
                Err(response)
            }
        }
    }

    fn websocket_options(&self) -> Options {
        let mut options = self.inner.config.websocket.clone();
        options.connection.keepalive_interval = None;
        options.connection.max_message_size = self.inner.config.max_payload;
        options
    }
}

impl Default for Server {
    fn default() -> Self {
        Self::new(Config::default())
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl ServerInner {
    /// The namespace a CONNECT for `name` joins: one made with [`Server::of`], or one a
    /// dynamic parent makes now.
    pub(crate) fn namespace(&self, name: &str, auth: &serde_json::Value) -> Option<Namespace> {
        if let Some(namespace) = read(&self.namespaces).get(name) {
            return Some(namespace.clone());
        }
        let parent = read(&self.dynamic)
            .iter()
            .find(|(matches, _)| !name.contains(',') && matches(name, auth))
            .map(|(_, parent)| parent.clone())?;
        let mut namespaces = write(&self.namespaces);
        let namespace = namespaces.entry(name.to_owned()).or_insert_with(|| {
            let child = parent.child(name.to_owned());
            child.attach(&self.config.adapter);
            child
        });
        Some(namespace.clone())
    }

    /// The long-polling session `sid`, while it polls.
    pub(crate) fn session(&self, sid: &str) -> Option<Arc<Polling>> {
        lock(&self.sessions).get(sid).cloned()
    }

    pub(crate) fn forget_session(&self, sid: &str) {
        lock(&self.sessions).remove(sid);
    }

    /// A fresh random id for a session or a socket: 15 bytes, base64url, so 20 characters
    /// like socket.io's (cluster adapters that route by socket id expect that length).
    pub(crate) fn new_id(&self) -> String {
        let bytes = lock(&self.rng).nonce();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes[..15])
    }
}

/// Whether a request carries a body (to be read or skipped before the next request).
fn has_body(head: &Head) -> bool {
    head.header("transfer-encoding").is_some()
        || head
            .header("content-length")
            .is_some_and(|length| length.trim() != "0")
}
