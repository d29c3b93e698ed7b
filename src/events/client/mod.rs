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
//! Events the server sends a namespace before it answers the namespace's `CONNECT`
//! (python-socketio sends what its connect handler emits so) are held and handed to their
//! handlers once the namespace is connected, just before its `on_connect` callback, as
//! socket.io-client does.
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
mod builder;
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

pub use self::builder::ClientBuilder;
pub use self::error::{ClientError, DisconnectReason};

use self::state::{Handlers, Namespace, Shared, Status};
use super::Args;

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
