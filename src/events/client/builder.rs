//! [`ClientBuilder`]: a client's settings and handlers, and connecting with them.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::backoff::Reconnection;
use super::state::{Handlers, ManagerHandlers, Namespace, Settings, Shared, State};
use super::{
    Ack, Client, ClientError, DisconnectReason, auth_object, check_namespace, driver, url,
};
use crate::Options;
use crate::events::{Args, DecodeLimits};

/// Configures a client, then connects it with [`connect`](Self::connect).
///
/// The URL is `http://host[:port][/namespace][?query]` (or `ws://…`); its path names the
/// namespace unless [`namespace`](Self::namespace) does. `https://` and `wss://` connect over
/// TLS with the feature `rustls` (see [`tls_connector`](Self::tls_connector)) and are refused
/// without it. A builder can connect any number of times, each time a new client.
// The text links `tls_connector`, which exists only with a `rustls` feature.
#[cfg_attr(
    not(feature = "rustls-manual-roots"),
    allow(rustdoc::broken_intra_doc_links)
)]
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
    ///
    /// Also the most events the server may send a namespace before it answers the
    /// namespace's `CONNECT`: they are held until then, together no larger than one packet
    /// may be under [`decode_limits`](Self::decode_limits) (its text and every attachment at
    /// their largest). Past either, the connection is dropped with
    /// [`DisconnectReason::ParseError`](super::DisconnectReason::ParseError).
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
