//! The Socket.IO server: HTTP routing, Engine.IO sessions, namespaces, sockets and rooms.

mod conn;
mod http;
mod namespace;
mod queue;
mod rooms;
mod socket;

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard};
use std::time::Duration;

use base64::Engine as _;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

use crate::Options;
use crate::proto::Rng;
use crate::proto::handshake::{Accept, Request};

pub use self::http::HttpResponse;
use self::http::{Head, HeadError, Replay, read_head, respond};
pub use self::namespace::{Broadcast, Namespace, Refusal};
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
    /// Packets a connection may have queued before its overflow policy applies: volatile
    /// emits are dropped, others queued; a connection over this limit for longer than
    /// [`overflow_timeout`](Self::overflow_timeout), or with twice this many packets queued,
    /// is disconnected with [`DisconnectReason::SlowConsumer`]. Default 1024.
    pub queue_limit: usize,
    /// See [`queue_limit`](Self::queue_limit). Default 10 s.
    pub overflow_timeout: Duration,
    /// The WebSocket options. The server disables WebSocket keepalive pings (Engine.IO has its
    /// own heartbeat) and caps the message size at `max_payload`.
    ///
    /// With the `deflate` feature, permessage-deflate is accepted by default without context
    /// takeover in either direction and for messages of 1 KiB and more: every emit and
    /// broadcast is then compressed once for all its recipients, and an idle connection holds
    /// no compression state (context takeover costs about 420 KiB per connection). Set
    /// `websocket.deflate` to change that, or to `None` to turn compression off.
    pub websocket: Options,
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
            websocket: default_websocket_options(),
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
        let mut namespaces = self
            .inner
            .namespaces
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        namespaces
            .entry(name.clone())
            .or_insert_with(|| Namespace::new(name))
            .clone()
    }

    /// Answers plain HTTP requests outside [`Config::path`] with `fallback(path)`, or 404 when
    /// it returns `None` (the default).
    pub fn http_fallback(
        &self,
        fallback: impl Fn(&str) -> Option<HttpResponse> + Send + Sync + 'static,
    ) {
        *self
            .inner
            .fallback
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(fallback));
    }

    /// Accepts connections from `listener` forever, each in a task of its own.
    pub async fn serve(&self, listener: TcpListener) -> io::Result<()> {
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            let server = self.clone();
            tokio::spawn(async move { server.handle(stream).await });
        }
    }

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
    /// Only `GET {path}?EIO=4&transport=websocket` upgrades. HTTP long-polling is not
    /// implemented: `transport=polling` gets `400` with Socket.IO's JSON error body
    /// (`{"code":0,"message":"Transport unknown"…}`), so clients must connect with
    /// `transports: ['websocket']`. Another `EIO` gets code 5, a `sid` (resuming a polling
    /// session) code 1.
    pub async fn handle<S>(&self, mut stream: S) -> Result<(), ServeError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let options = self.websocket_options();
        let read = read_head(&mut stream);
        let head = match options.handshake_timeout {
            Some(limit) => tokio::time::timeout(limit, read)
                .await
                .map_err(|_| ServeError::WebSocket(crate::Error::HandshakeTimeout))?,
            None => read.await,
        };
        let head = match head {
            Ok(head) => head,
            Err(HeadError::Io(error)) => return Err(error.into()),
            Err(HeadError::Bad(response)) => {
                respond(&mut stream, &response).await?;
                return Err(ServeError::Refused(response.status));
            }
        };
        if let Err(response) = self.route(&head) {
            respond(&mut stream, &response).await?;
            return match response.status {
                200..=299 => Ok(()),
                status => Err(ServeError::Refused(status)),
            };
        }
        let stream = Replay::new(head.bytes, stream);
        let ws = crate::tokio::accept_with(stream, &options, async |_: &Request| Ok(Accept::new()))
            .await?;
        conn::run(&self.inner, ws).await;
        Ok(())
    }

    /// `Ok` for a Socket.IO WebSocket request, else the response to send.
    fn route(&self, head: &Head) -> Result<(), HttpResponse> {
        let path = self.inner.config.path.trim_end_matches('/');
        if head.path.trim_end_matches('/') != path {
            let fallback = self
                .inner
                .fallback
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            let response = fallback.and_then(|fallback| fallback(&head.path));
            return Err(
                response.unwrap_or_else(|| HttpResponse::new(404, "text/plain", "not found"))
            );
        }
        if head.param("EIO") != Some("4") {
            return Err(HttpResponse::socketio_error(
                5,
                "Unsupported protocol version: this server speaks Engine.IO 4 (EIO=4)",
            ));
        }
        match head.param("transport") {
            Some("websocket") => {}
            Some("polling") => {
                return Err(HttpResponse::socketio_error(
                    0,
                    "Transport unknown: HTTP long-polling is not supported, connect with transports: ['websocket']",
                ));
            }
            _ => return Err(HttpResponse::socketio_error(0, "Transport unknown")),
        }
        if head.param("sid").is_some() {
            return Err(HttpResponse::socketio_error(1, "Session ID unknown"));
        }
        Ok(())
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
    pub(crate) fn namespace(&self, name: &str) -> Option<Namespace> {
        read(&self.namespaces).get(name).cloned()
    }

    /// A fresh random id for a session or a socket: 16 bytes, base64url.
    pub(crate) fn new_id(&self) -> String {
        let bytes = lock(&self.rng).nonce();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }
}

/// Locks a mutex, ignoring poisoning: the data under these locks stays consistent at every
/// step, and a panicking handler must not take the server down with it.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}
