//! A Socket.IO v5 client over Engine.IO v4's WebSocket transport, on tokio.
//!
//! [`ClientBuilder::connect`] opens the connection and joins a namespace; the [`Client`] it
//! returns emits events, waits for acknowledgements and hands incoming events to the
//! handlers registered with `on`. A background task owns the WebSocket: it answers the
//! server's heartbeat, notices a silent server (no ping within `pingInterval +
//! pingTimeout`) and reconnects with exponential backoff after the connection drops.
//!
//! ```no_run
//! use std::time::Duration;
//! use serde_json::json;
//! use wsio::events::client::ClientBuilder;
//!
//! # async fn run() -> Result<(), wsio::events::client::ClientError> {
//! let client = ClientBuilder::new("http://127.0.0.1:3000/chat")
//!     .auth(json!({ "token": "secret" }))
//!     .on("message", |args, ack| {
//!         println!("message: {:?}", args.value(0));
//!         if let Some(ack) = ack {
//!             let _ = ack.send(json!("got it"));
//!         }
//!     })
//!     .on_disconnect(|reason| println!("disconnected: {reason}"))
//!     .on_reconnect(|attempt| println!("reconnected after {attempt} attempts"))
//!     .connect()
//!     .await?;
//!
//! client.emit("message", json!(["hello"]))?;
//! let reply = client.emit_with_ack("sum", json!([1, 2])).await?;
//! assert_eq!(reply.get::<i64>(0).ok(), Some(3));
//!
//! let admin = client.socket("/admin").auth(json!({ "role": "admin" })).connect().await?;
//! admin.emit_with_ack_timeout("stats", (), Duration::from_secs(1)).await?;
//! client.disconnect();
//! # Ok(()) }
//! ```
//!
//! # Callbacks
//!
//! Event handlers and the `on_*` callbacks run on the connection's task, one at a time, in
//! the order the packets arrived. They must not block; they may call back into the client
//! (`emit`, `Ack::send`) and may spawn tasks for longer work. Registering a handler for an
//! event replaces the previous one. A handler that keeps a [`Client`] keeps the connection
//! alive: call [`Client::disconnect`] to end it. Otherwise it ends when every handle is
//! dropped.
//!
//! # While disconnected
//!
//! Like socket.io-client, emits made while the connection is down are buffered (at most
//! [`ClientBuilder::max_buffered`] per namespace) and sent once the namespace is connected
//! again. An acknowledgement whose event had already been sent fails with
//! [`ClientError::Disconnected`]; answers to the server's events of a lost connection are
//! dropped ([`Ack::send`] returns that error). Once a namespace is disconnected for good (by
//! [`Client::disconnect`], by the server, after a `CONNECT_ERROR`, or when the reconnection
//! attempts ran out), emits fail with [`ClientError::Closed`].

mod backoff;
mod driver;
mod error;
mod polling;
mod queue;
mod state;
mod upgrade;
mod url;

use std::fmt;
use std::sync::{Arc, Weak};
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::oneshot;
use tokio::time::{Instant, timeout, timeout_at};

pub use self::error::{ClientError, DisconnectReason};

use self::backoff::Reconnection;
use self::state::{Handlers, ManagerHandlers, Namespace, Settings, Shared, State, Status};
use super::{Args, DecodeLimits};
use crate::Options;

/// Configures a client, then connects it with [`connect`](Self::connect).
///
/// The URL is `http://host[:port][/namespace][?query]` (or `ws://…`); its path names the
/// namespace unless [`namespace`](Self::namespace) does. `https://` and `wss://` connect over
/// TLS with the feature `rustls` (see [`tls_connector`](Self::tls_connector)) and are refused
/// without it. A builder can connect any number of times, each time a new client.
#[derive(Clone)]
pub struct ClientBuilder {
    url: String,
    namespace: Option<String>,
    auth: Option<Value>,
    path: String,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    reconnection: Reconnection,
    ack_timeout: Duration,
    retries: u32,
    connect_timeout: Duration,
    max_buffered: usize,
    decode_limits: DecodeLimits,
    polling_fallback: bool,
    polling_first: bool,
    upgrade: bool,
    handlers: Handlers,
    manager: ManagerHandlers,
    #[cfg(feature = "rustls-manual-roots")]
    tls_connector: Option<crate::tls::Connector>,
}

impl ClientBuilder {
    /// Starts a builder for `url`, with socket.io-client's defaults: path `/socket.io/`,
    /// reconnection on (1 s doubling to 5 s, ±50 % jitter, here at most 20 attempts in a row),
    /// a 20 s connect timeout, and here a 10 s default ack timeout and 1024 buffered emits.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            namespace: None,
            auth: None,
            path: "/socket.io/".into(),
            query: Vec::new(),
            headers: Vec::new(),
            reconnection: Reconnection::default(),
            ack_timeout: Duration::from_secs(10),
            retries: 0,
            connect_timeout: Duration::from_secs(20),
            max_buffered: 1024,
            decode_limits: DecodeLimits::default(),
            polling_fallback: false,
            polling_first: false,
            upgrade: true,
            handlers: Handlers::default(),
            manager: ManagerHandlers::default(),
            #[cfg(feature = "rustls-manual-roots")]
            tls_connector: None,
        }
    }

    /// Falls back to HTTP long-polling when the WebSocket cannot be opened (a server or a
    /// proxy that refuses it), at the first connection and at each reconnection. Default off:
    /// the client speaks WebSocket only.
    pub fn polling_fallback(mut self, fallback: bool) -> Self {
        self.polling_fallback = fallback;
        self
    }

    /// Opens each connection over HTTP long-polling, then upgrades it to WebSocket when the
    /// server offers the upgrade, as socket.io-client does with its default transports.
    /// Default off: the client opens a WebSocket directly.
    pub fn polling_first(mut self, polling_first: bool) -> Self {
        self.polling_first = polling_first;
        self
    }

    /// Whether a long-polling connection (with [`polling_first`](Self::polling_first), or
    /// after the fallback) tries to upgrade to WebSocket when the server offers it
    /// (`upgrades: ["websocket"]`). The upgrade is tried once per Engine.IO session: if the
    /// server or a proxy refuses the WebSocket, the session stays on long-polling. Default on.
    ///
    /// The upgrade follows Engine.IO: a WebSocket for the session, the probe (`2probe`,
    /// answered `3probe`), polling paused once its last GET is answered, then `5`. No packet
    /// is lost or reordered across it.
    pub fn upgrade(mut self, upgrade: bool) -> Self {
        self.upgrade = upgrade;
        self
    }

    /// Joins `namespace` (starting with `/`) instead of the one in the URL's path.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// Sends `auth`, a JSON object, with the namespace's `CONNECT` (the server reads it as
    /// `socket.handshake.auth`).
    pub fn auth(mut self, auth: Value) -> Self {
        self.auth = Some(auth);
        self
    }

    /// Makes the auth payload with `auth` each time the namespace connects, reconnections
    /// included, so a token can be refreshed (socket.io-client's `auth` callback). It replaces
    /// [`auth`](Self::auth); a value that is not a JSON object sends no payload. It runs while
    /// the client's state is locked: it must not call the client.
    pub fn auth_with(mut self, auth: impl Fn() -> Value + Send + Sync + 'static) -> Self {
        self.handlers.auth = Some(Arc::new(auth));
        self
    }

    /// The server's Engine.IO path. Default `/socket.io/`.
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// Adds a query parameter to the connection URL (percent-encoded here).
    pub fn query(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.query.push((key.into(), value.into()));
        self
    }

    /// Adds a header to the WebSocket upgrade request.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Whether to reconnect after the connection drops. Default on.
    pub fn reconnection(mut self, enabled: bool) -> Self {
        self.reconnection.enabled = enabled;
        self
    }

    /// The most reconnection attempts in a row before giving up. Default 20.
    pub fn reconnection_attempts(mut self, attempts: u32) -> Self {
        self.reconnection.attempts = attempts;
        self
    }

    /// The delay before the first reconnection attempt; it doubles with each attempt.
    /// Default 1 s.
    pub fn reconnection_delay(mut self, delay: Duration) -> Self {
        self.reconnection.delay = delay;
        self
    }

    /// The longest delay between reconnection attempts. Default 5 s.
    pub fn reconnection_delay_max(mut self, delay: Duration) -> Self {
        self.reconnection.delay_max = delay;
        self
    }

    /// How far each delay may move at random either way, as a fraction in `0.0..=1.0`.
    /// Default 0.5.
    pub fn randomization_factor(mut self, factor: f64) -> Self {
        self.reconnection.randomization = factor;
        self
    }

    /// How long [`Client::emit_with_ack`] waits. Default 10 s.
    pub fn ack_timeout(mut self, timeout: Duration) -> Self {
        self.ack_timeout = timeout;
        self
    }

    /// How many times an emit is sent again when its acknowledgement does not come within the
    /// ack timeout (socket.io-client's `retries`). Default 0: no retries.
    ///
    /// With retries, as in socket.io-client, every [`emit`](Client::emit) and
    /// [`emit_with_ack`](Client::emit_with_ack) of a namespace goes through one queue: one
    /// event at a time is on the wire, asking for an acknowledgement (plain emits too, so the
    /// server must answer them), and the next waits until it is answered or has failed; each
    /// attempt takes a new ack id and an answer to an earlier attempt is ignored. An
    /// acknowledgement that never comes fails with [`ClientError::RetriesExhausted`] after
    /// `retries + 1` attempts; a connection lost while an attempt is on the wire counts as a
    /// failed attempt, and the queue resumes once the namespace is connected again. Volatile
    /// emits bypass the queue.
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// How long connecting may take: the WebSocket and Engine.IO handshakes, then the
    /// namespace's answer; each reconnection attempt has as long. Default 20 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The most emits one namespace keeps waiting to be sent, and the most acknowledgements
    /// it waits for; past it, emits fail with [`ClientError::BufferFull`]. Default 1024.
    pub fn max_buffered(mut self, limit: usize) -> Self {
        self.max_buffered = limit;
        self
    }

    /// The limits on packets from the server. Default: 1 MB, 64 attachments.
    pub fn decode_limits(mut self, limits: DecodeLimits) -> Self {
        self.decode_limits = limits;
        self
    }

    /// How `https://` and `wss://` URLs are connected to: trust a private CA or present a
    /// client certificate. Default: the roots of
    /// [`Connector::default_roots`](crate::tls::Connector::default_roots).
    #[cfg(feature = "rustls-manual-roots")]
    pub fn tls_connector(mut self, connector: crate::tls::Connector) -> Self {
        self.tls_connector = Some(connector);
        self
    }

    /// Handles `event`; see [`Client::on`].
    pub fn on<F>(mut self, event: impl Into<String>, handler: F) -> Self
    where
        F: Fn(Args, Option<Ack>) + Send + Sync + 'static,
    {
        self.handlers.events.insert(event.into(), Arc::new(handler));
        self
    }

    /// Runs `callback` each time the namespace connects, reconnections included.
    pub fn on_connect(mut self, callback: impl Fn() + Send + Sync + 'static) -> Self {
        self.handlers.connect = Some(Arc::new(callback));
        self
    }

    /// Runs `callback` each time the namespace is disconnected, with the reason.
    pub fn on_disconnect(
        mut self,
        callback: impl Fn(&DisconnectReason) + Send + Sync + 'static,
    ) -> Self {
        self.handlers.disconnect = Some(Arc::new(callback));
        self
    }

    /// Runs `callback` when the server refuses the namespace
    /// ([`ClientError::ConnectRefused`]), answers it without a session id
    /// ([`ClientError::InvalidConnect`]) and when a reconnection attempt fails.
    pub fn on_connect_error(
        mut self,
        callback: impl Fn(&ClientError) + Send + Sync + 'static,
    ) -> Self {
        self.handlers.connect_error = Some(Arc::new(callback));
        self
    }

    /// Runs `callback` when the connection is back after a drop, with the number of the
    /// attempt that succeeded (from 1). The namespaces then connect again.
    pub fn on_reconnect(mut self, callback: impl Fn(u32) + Send + Sync + 'static) -> Self {
        self.manager.reconnect = Some(Arc::new(callback));
        self
    }

    /// Runs `callback` when the reconnection attempts ran out; the client is then closed.
    pub fn on_reconnect_failed(mut self, callback: impl Fn() + Send + Sync + 'static) -> Self {
        self.manager.reconnect_failed = Some(Arc::new(callback));
        self
    }

    /// Runs `callback` when the connection moved from long-polling to WebSocket (see
    /// [`upgrade`](Self::upgrade)).
    pub fn on_upgrade(mut self, callback: impl Fn() + Send + Sync + 'static) -> Self {
        self.manager.upgrade = Some(Arc::new(callback));
        self
    }

    /// Connects and joins the namespace; returns once the server accepted it.
    ///
    /// Fails with the transport's error if the first connection cannot be opened (reconnection
    /// only starts once connected), with [`ClientError::ConnectRefused`] if the server refuses
    /// the namespace, [`ClientError::InvalidConnect`] if its reply carries no session id, and with [`ClientError::ConnectTimeout`] past the connect timeout.
    pub async fn connect(&self) -> Result<Client, ClientError> {
        let endpoint = url::endpoint(&self.url, &self.path, &self.query)?;
        let namespace = self.namespace.clone().unwrap_or(endpoint.namespace);
        check_namespace(&namespace)?;
        let auth = auth_object(self.auth.clone())?;
        let mut ws_options = Options::default();
        // Engine.IO runs its own heartbeat; WebSocket pings would only add traffic.
        ws_options.connection.keepalive_interval = None;
        // One message carries one packet (plus Engine.IO's type digit) or one attachment.
        let max_message = self.decode_limits.max_packet_size.saturating_add(1);
        ws_options.connection.max_message_size = max_message;
        ws_options.connection.max_frame_size = max_message;
        ws_options.handshake_timeout = Some(self.connect_timeout);
        #[cfg(feature = "rustls-manual-roots")]
        ws_options.tls_connector.clone_from(&self.tls_connector);
        let settings = Arc::new(Settings {
            ws_url: endpoint.ws_url,
            headers: self.headers.clone(),
            ws_options,
            reconnection: self.reconnection,
            ack_timeout: self.ack_timeout,
            retries: self.retries,
            connect_timeout: self.connect_timeout,
            max_buffered: self.max_buffered,
            decode_limits: self.decode_limits,
            polling_fallback: self.polling_fallback,
            polling_first: self.polling_first,
            upgrade: self.upgrade,
        });
        let deadline = Instant::now() + self.connect_timeout;
        let (ws, info) = driver::open_engine(&settings).await?;
        let (waiter, answer) = oneshot::channel();
        let mut state = State::new(self.manager.clone());
        state.namespaces.insert(
            namespace.clone(),
            Namespace::new(auth, self.handlers.clone(), waiter),
        );
        let shared = Arc::new(Shared::new(state, settings));
        let wake = Arc::clone(&shared.wake);
        tokio::spawn(driver::run(Arc::downgrade(&shared), wake, ws, info));
        let client = Client { shared, namespace };
        client.await_connected(answer, deadline).await?;
        Ok(client)
    }
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("url", &self.url)
            .field("namespace", &self.namespace)
            .field("path", &self.path)
            .field("reconnection", &self.reconnection)
            .finish_non_exhaustive()
    }
}

/// A handle to one namespace of a client connection. Clones share it.
///
/// The connection lives while a handle does, until every namespace is disconnected.
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
    namespace: String,
}

impl Client {
    /// Connects to `url` with the default settings; see [`ClientBuilder`].
    pub async fn connect(url: impl Into<String>) -> Result<Self, ClientError> {
        ClientBuilder::new(url).connect().await
    }

    /// Starts a builder for `url`.
    pub fn builder(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder::new(url)
    }

    /// The namespace this handle belongs to.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The socket id the server gave the namespace, while connected.
    pub fn id(&self) -> Option<String> {
        match &self.shared.lock().namespaces.get(&self.namespace)?.status {
            Status::Connected { sid } => Some(sid.clone()),
            _ => None,
        }
    }

    /// The transport of the connection: the current one, or the last one while reconnecting.
    pub fn transport(&self) -> Option<Transport> {
        self.shared.lock().transport
    }

    /// Whether the namespace is connected now.
    pub fn is_connected(&self) -> bool {
        self.id().is_some()
    }

    /// Handles `event`: `handler` gets the arguments and, when the server asked for an
    /// acknowledgement, the [`Ack`] to answer with. Replaces any previous handler for it.
    pub fn on<F>(&self, event: impl Into<String>, handler: F)
    where
        F: Fn(Args, Option<Ack>) + Send + Sync + 'static,
    {
        if let Some(ns) = self.shared.lock().namespaces.get_mut(&self.namespace) {
            ns.handlers.events.insert(event.into(), Arc::new(handler));
        }
    }

    /// Stops handling `event`.
    pub fn off(&self, event: &str) {
        if let Some(ns) = self.shared.lock().namespaces.get_mut(&self.namespace) {
            ns.handlers.events.remove(event);
        }
    }

    /// Sends an event. It is queued, not yet written, when this returns; while disconnected
    /// it waits in the buffer (see the [module docs](self)).
    ///
    /// Fails with [`ClientError::ReservedEvent`], [`ClientError::BufferFull`],
    /// [`ClientError::TooLarge`] or, once the namespace is disconnected for good,
    /// [`ClientError::Closed`].
    ///
    /// With [`ClientBuilder::retries`], the event goes through the retry queue and asks the
    /// server for an acknowledgement, which is then waited for in the background.
    pub fn emit(&self, event: &str, args: impl Into<Args>) -> Result<(), ClientError> {
        let settings = &self.shared.settings;
        match settings.retries {
            0 => self.queue(event, args.into(), None).map(|_| ()),
            retries => self.queue_retried(event, args.into(), None, settings.ack_timeout, retries),
        }
    }

    /// Sends a volatile event (socket.io-client's `socket.volatile.emit`): only if the
    /// namespace is connected and nothing is waiting to be written now; otherwise it is
    /// dropped, never buffered for a reconnection. Returns whether it was sent.
    pub fn emit_volatile(&self, event: &str, args: impl Into<Args>) -> Result<bool, ClientError> {
        let queued = self
            .shared
            .lock()
            .queue_volatile(&self.namespace, event, args.into())?;
        if queued {
            self.shared.wake.notify_one();
        }
        Ok(queued)
    }

    /// Sends an event asking for an acknowledgement and waits for it, at most the default
    /// ack timeout ([`ClientBuilder::ack_timeout`]).
    pub async fn emit_with_ack(
        &self,
        event: &str,
        args: impl Into<Args>,
    ) -> Result<Args, ClientError> {
        let timeout = self.shared.settings.ack_timeout;
        self.emit_with_ack_timeout(event, args, timeout).await
    }

    /// Sends an event asking for an acknowledgement and waits at most `timeout` for it.
    ///
    /// Fails like [`emit`](Self::emit), with [`ClientError::AckTimeout`], and with
    /// [`ClientError::Disconnected`] if the connection dropped after the event was sent.
    /// With [`ClientBuilder::retries`], `timeout` is the wait of each attempt, as in
    /// [`emit_with_ack_retries`](Self::emit_with_ack_retries).
    pub async fn emit_with_ack_timeout(
        &self,
        event: &str,
        args: impl Into<Args>,
        wait: Duration,
    ) -> Result<Args, ClientError> {
        let retries = self.shared.settings.retries;
        if retries > 0 {
            return self.emit_with_ack_retries(event, args, wait, retries).await;
        }
        let (reply, answer) = oneshot::channel();
        let id = self.queue(event, args.into(), Some(reply))?;
        match timeout(wait, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(ClientError::Closed),
            Err(_) => {
                if let Some(id) = id {
                    self.shared.lock().forget_ack(&self.namespace, id);
                }
                Err(ClientError::AckTimeout(wait))
            }
        }
    }

    /// Sends an event through the namespace's retry queue (see [`ClientBuilder::retries`]) and
    /// waits for its acknowledgement: each attempt waits `timeout`, and the event is sent again
    /// up to `retries` times, each time under a new ack id; emits in the queue go one at a
    /// time, in order. Whatever the builder's setting, this call uses the queue.
    ///
    /// Fails like [`emit`](Self::emit), with [`ClientError::RetriesExhausted`] when the last
    /// attempt timed out, with [`ClientError::Disconnected`] when the connection dropped
    /// during the last attempt, and with [`ClientError::Closed`] once the namespace is
    /// disconnected for good. While the connection is down the queue waits for it.
    pub async fn emit_with_ack_retries(
        &self,
        event: &str,
        args: impl Into<Args>,
        timeout: Duration,
        retries: u32,
    ) -> Result<Args, ClientError> {
        let (reply, answer) = oneshot::channel();
        self.queue_retried(event, args.into(), Some(reply), timeout, retries)?;
        answer.await.unwrap_or(Err(ClientError::Closed))
    }

    /// Starts joining another namespace over the same connection.
    pub fn socket(&self, namespace: impl Into<String>) -> SocketBuilder {
        SocketBuilder {
            client: self.clone(),
            namespace: namespace.into(),
            auth: None,
            handlers: Handlers::default(),
        }
    }

    /// Leaves the namespace: buffered emits are sent, then `DISCONNECT`; the disconnect
    /// callback runs now with [`DisconnectReason::IoClientDisconnect`]. With no namespace left,
    /// the connection closes.
    pub fn disconnect(&self) {
        let deferred = self.shared.lock().disconnect(&self.namespace);
        self.shared.wake.notify_one();
        for callback in deferred {
            callback();
        }
    }

    /// For testing only: stops (`true`) or resumes answering the server's heartbeat pings, so
    /// a test can make the server time the client out.
    pub fn pause_heartbeat(&self, paused: bool) {
        self.shared.lock().heartbeat_paused = paused;
    }

    fn queue(
        &self,
        event: &str,
        args: Args,
        reply: Option<state::AckReply>,
    ) -> Result<Option<u64>, ClientError> {
        let limit = self.shared.settings.max_buffered;
        let id = self
            .shared
            .lock()
            .queue_event(limit, &self.namespace, event, args, reply)?;
        self.shared.wake.notify_one();
        Ok(id)
    }

    fn queue_retried(
        &self,
        event: &str,
        args: Args,
        reply: Option<state::AckReply>,
        timeout: Duration,
        retries: u32,
    ) -> Result<(), ClientError> {
        let limit = self.shared.settings.max_buffered;
        self.shared.lock().queue_retried(
            limit,
            &self.namespace,
            event,
            args,
            reply,
            timeout,
            retries,
        )?;
        self.shared.wake.notify_one();
        Ok(())
    }

    /// Waits for the namespace's answer; past `deadline` the namespace is given up.
    async fn await_connected(
        &self,
        answer: oneshot::Receiver<Result<(), ClientError>>,
        deadline: Instant,
    ) -> Result<(), ClientError> {
        match timeout_at(deadline, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(ClientError::Closed),
            Err(_) => {
                self.disconnect();
                Err(ClientError::ConnectTimeout(
                    self.shared.settings.connect_timeout,
                ))
            }
        }
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("namespace", &self.namespace)
            .field("id", &self.id())
            .finish_non_exhaustive()
    }
}

/// Joins another namespace over an existing client's connection; from [`Client::socket`].
pub struct SocketBuilder {
    client: Client,
    namespace: String,
    auth: Option<Value>,
    handlers: Handlers,
}

impl SocketBuilder {
    /// Sends `auth`, a JSON object, with the namespace's `CONNECT`.
    pub fn auth(mut self, auth: Value) -> Self {
        self.auth = Some(auth);
        self
    }

    /// As [`ClientBuilder::auth_with`].
    pub fn auth_with(mut self, auth: impl Fn() -> Value + Send + Sync + 'static) -> Self {
        self.handlers.auth = Some(Arc::new(auth));
        self
    }

    /// Handles `event`; see [`Client::on`].
    pub fn on<F>(mut self, event: impl Into<String>, handler: F) -> Self
    where
        F: Fn(Args, Option<Ack>) + Send + Sync + 'static,
    {
        self.handlers.events.insert(event.into(), Arc::new(handler));
        self
    }

    /// As [`ClientBuilder::on_connect`].
    pub fn on_connect(mut self, callback: impl Fn() + Send + Sync + 'static) -> Self {
        self.handlers.connect = Some(Arc::new(callback));
        self
    }

    /// As [`ClientBuilder::on_disconnect`].
    pub fn on_disconnect(
        mut self,
        callback: impl Fn(&DisconnectReason) + Send + Sync + 'static,
    ) -> Self {
        self.handlers.disconnect = Some(Arc::new(callback));
        self
    }

    /// As [`ClientBuilder::on_connect_error`].
    pub fn on_connect_error(
        mut self,
        callback: impl Fn(&ClientError) + Send + Sync + 'static,
    ) -> Self {
        self.handlers.connect_error = Some(Arc::new(callback));
        self
    }

    /// Joins the namespace and returns its handle once the server accepted it. If the
    /// namespace is already joined, returns a handle to it at once (this builder's auth and
    /// handlers are then not used).
    pub async fn connect(self) -> Result<Client, ClientError> {
        check_namespace(&self.namespace)?;
        let auth = auth_object(self.auth)?;
        let shared = self.client.shared;
        let deadline = Instant::now() + shared.settings.connect_timeout;
        let (waiter, answer) = oneshot::channel();
        {
            let mut state = shared.lock();
            if state.ended {
                return Err(ClientError::Closed);
            }
            if state.namespaces.contains_key(&self.namespace) {
                drop(state);
                return Ok(Client {
                    shared,
                    namespace: self.namespace,
                });
            }
            let namespace = Namespace::new(auth, self.handlers, waiter);
            state.namespaces.insert(self.namespace.clone(), namespace);
        }
        shared.wake.notify_one();
        let client = Client {
            shared,
            namespace: self.namespace,
        };
        client.await_connected(answer, deadline).await?;
        Ok(client)
    }
}

impl fmt::Debug for SocketBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SocketBuilder")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

/// The Engine.IO transport a client connection runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Transport {
    /// HTTP long-polling.
    Polling,
    /// WebSocket.
    WebSocket,
}

/// Answers one event the server sent asking for an acknowledgement.
///
/// Answer at most once ([`send`](Self::send) takes it); dropping it leaves the server without
/// an answer. It may be moved to another task and answered later.
pub struct Ack {
    shared: Weak<Shared>,
    namespace: String,
    id: u64,
    generation: u64,
}

impl Ack {
    /// The acknowledgement id the server chose.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Sends the acknowledgement with `args`. Fails with [`ClientError::Disconnected`] when
    /// the connection the event came on is gone (the server no longer waits for it), with
    /// [`ClientError::TooLarge`] past the server's limit, and with [`ClientError::Closed`]
    /// once the client is dropped.
    pub fn send(self, args: impl Into<Args>) -> Result<(), ClientError> {
        let shared = self.shared.upgrade().ok_or(ClientError::Closed)?;
        shared
            .lock()
            .queue_ack(&self.namespace, self.id, self.generation, args.into())?;
        shared.wake.notify_one();
        Ok(())
    }
}

impl fmt::Debug for Ack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ack")
            .field("namespace", &self.namespace)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

fn check_namespace(namespace: &str) -> Result<(), ClientError> {
    match namespace.starts_with('/') && !namespace.contains(',') {
        true => Ok(()),
        false => Err(ClientError::InvalidNamespace(namespace.to_owned())),
    }
}

fn auth_object(auth: Option<Value>) -> Result<Option<Map<String, Value>>, ClientError> {
    match auth {
        None => Ok(None),
        Some(Value::Object(map)) => Ok(Some(map)),
        Some(_) => Err(ClientError::InvalidAuth),
    }
}
