//! Namespaces: their connect hook and connection handler, their sockets and rooms, and the
//! operators that start a broadcast to them (see `broadcast.rs`).

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use serde_json::Value;

use super::EmitError;
use super::adapter::{Adapter, NodeAdapter};
use super::broadcast::{Broadcast, BroadcastAckError, FetchedSocket};
use super::rooms::Rooms;
use super::socket::{Socket, check_event_name};
use crate::events::Args;
use crate::lock::{lock, read, write};

type ConnectHook =
    Arc<dyn Fn(Value) -> Pin<Box<dyn Future<Output = Result<(), Refusal>> + Send>> + Send + Sync>;
type ConnectionHandler = Arc<dyn Fn(Socket) + Send + Sync>;
type Middleware =
    Arc<dyn Fn(Socket) -> Pin<Box<dyn Future<Output = Result<(), Refusal>> + Send>> + Send + Sync>;
type ServerHandler =
    Arc<dyn Fn(Args, Option<ServerAck>) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// A namespace of a [`Server`](super::Server): a cheap handle, clone it freely.
#[derive(Clone)]
pub struct Namespace {
    pub(crate) inner: Arc<NamespaceInner>,
}

pub(crate) struct NamespaceInner {
    pub(crate) name: String,
    pub(crate) sockets: Mutex<HashMap<String, Socket>>,
    pub(crate) rooms: Mutex<Rooms>,
    hook: RwLock<Option<ConnectHook>>,
    middleware: RwLock<Vec<Middleware>>,
    /// For a namespace created by a dynamic parent: the parent, whose hook, middleware and
    /// connection handler apply to it first.
    parent: Option<Arc<NamespaceInner>>,
    /// For a dynamic parent: the namespaces it created.
    children: Mutex<Vec<Namespace>>,
    /// Acknowledgement ids, shared by the namespace's sockets as in socket.io, so that one
    /// broadcast packet can ask every recipient for an acknowledgement under one id.
    next_ack: AtomicU64,
    on_connection: RwLock<Option<ConnectionHandler>>,
    /// What this namespace tells the other nodes of a cluster; unset on a single server.
    adapter: OnceLock<Arc<dyn NodeAdapter>>,
    /// Handlers of the events other nodes send with `server_side_emit`, by event name.
    server_handlers: RwLock<HashMap<String, ServerHandler>>,
}

/// Answers a [`Namespace::server_side_emit_with_ack`] from another node: one value, once.
pub struct ServerAck {
    reply: Box<dyn FnOnce(Value) + Send>,
}

impl ServerAck {
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn new(reply: impl FnOnce(Value) + Send + 'static) -> Self {
        Self {
            reply: Box::new(reply),
        }
    }

    /// Sends the acknowledgement to the node that asked.
    pub fn send(self, value: impl Into<Value>) {
        (self.reply)(value.into());
    }
}

impl fmt::Debug for ServerAck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerAck").finish_non_exhaustive()
    }
}

/// Why a connect hook refuses a client: sent as CONNECT_ERROR, which the client sees as a
/// `connect_error` event with this message (and `data`).
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// The error's message.
    pub message: String,
    /// Extra data for the client.
    pub data: Option<Value>,
}

impl Refusal {
    /// A refusal with `message`.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            data: None,
        }
    }

    /// Adds data for the client (`err.data` there).
    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }
}

impl From<&str> for Refusal {
    fn from(message: &str) -> Self {
        Self::new(message)
    }
}

impl From<String> for Refusal {
    fn from(message: String) -> Self {
        Self::new(message)
    }
}

impl Namespace {
    pub(crate) fn new(name: String) -> Self {
        Self::with_parent(name, None)
    }

    /// A namespace a dynamic parent creates for a client that asked for `name`.
    pub(crate) fn child(&self, name: String) -> Self {
        let child = Self::with_parent(name, Some(Arc::clone(&self.inner)));
        lock(&self.inner.children).push(child.clone());
        child
    }

    fn with_parent(name: String, parent: Option<Arc<NamespaceInner>>) -> Self {
        Self {
            inner: Arc::new(NamespaceInner {
                name,
                sockets: Mutex::default(),
                rooms: Mutex::default(),
                hook: RwLock::default(),
                middleware: RwLock::default(),
                parent,
                children: Mutex::default(),
                next_ack: AtomicU64::new(0),
                on_connection: RwLock::default(),
                adapter: OnceLock::new(),
                server_handlers: RwLock::default(),
            }),
        }
    }

    /// The name, starting with `/`.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Sets the hook that decides, from the client's auth payload (`{}` when it sent none),
    /// whether it may join, replacing any previous one. It runs on the connection's reader
    /// (the client's later packets wait for it), before the
    /// [`use_middleware`](Self::use_middleware) chain, which sees the whole
    /// [`Handshake`](super::Handshake).
    ///
    /// ```no_run
    /// # fn demo(server: wsio::events::Server) {
    /// use wsio::events::Refusal;
    ///
    /// server.of("/admin").authorize(|auth| async move {
    ///     match auth["token"].as_str() {
    ///         Some("secret") => Ok(()),
    ///         _ => Err(Refusal::new("not authorized")),
    ///     }
    /// });
    /// # }
    /// ```
    pub fn authorize<F, Fut>(&self, hook: F)
    where
        F: Fn(Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Refusal>> + Send + 'static,
    {
        let hook: ConnectHook = Arc::new(move |auth| Box::pin(hook(auth)));
        *write(&self.inner.hook) = Some(hook);
    }

    /// Adds a middleware to the chain each CONNECT to this namespace goes through (socket.io's
    /// `namespace.use`). Middleware run in the order added, after the
    /// [`authorize`](Self::authorize) hook, each awaited before the next; the first to return
    /// `Err` refuses the client with a CONNECT_ERROR carrying the refusal's message and data,
    /// and the later ones do not run.
    ///
    /// Each gets the socket before it is connected: its [`handshake`](Socket::handshake) (the
    /// request's headers, query, address and the auth payload), its
    /// [`extensions`](Socket::extensions) to fill for the handlers, and
    /// [`join`](Socket::join). Emits fail until the client has been accepted. Like the hook,
    /// the chain runs on the connection's reader.
    ///
    /// ```no_run
    /// # fn demo(server: wsio::events::Server) {
    /// use wsio::events::Refusal;
    ///
    /// server.of("/").use_middleware(|socket| async move {
    ///     let Some(user) = socket.handshake().header("x-user").map(str::to_owned) else {
    ///         return Err(Refusal::new("who are you?"));
    ///     };
    ///     socket.join(format!("user:{user}"));
    ///     socket.extensions().insert(user);
    ///     Ok(())
    /// });
    /// # }
    /// ```
    pub fn use_middleware<F, Fut>(&self, middleware: F)
    where
        F: Fn(Socket) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Refusal>> + Send + 'static,
    {
        let middleware: Middleware = Arc::new(move |socket| Box::pin(middleware(socket)));
        self.inner
            .middleware
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(middleware);
    }

    /// Sets the handler called with each new socket, after the client has been told it is
    /// connected. It is synchronous so the socket's [`on`](Socket::on) handlers are in place
    /// before its first event; spawn a task for anything that awaits.
    pub fn on_connection(&self, handler: impl Fn(Socket) + Send + Sync + 'static) {
        *write(&self.inner.on_connection) = Some(Arc::new(handler));
    }

    /// Sends `event` to every socket of the namespace (for a dynamic parent, of every
    /// namespace it created); returns how many were queued.
    pub fn emit(&self, event: &str, args: impl Into<Args>) -> Result<usize, EmitError> {
        let children = lock(&self.inner.children).clone();
        if children.is_empty() {
            return self.broadcast().emit(event, args);
        }
        let args = args.into();
        let mut queued = self.broadcast().emit(event, args.clone())?;
        for child in children {
            queued += child.broadcast().emit(event, args.clone())?;
        }
        Ok(queued)
    }

    /// The namespaces this dynamic parent created so far (see [`Server::dynamic`]).
    ///
    /// [`Server::dynamic`]: super::Server::dynamic
    pub fn children(&self) -> Vec<Namespace> {
        lock(&self.inner.children).clone()
    }

    /// A broadcast to the sockets in `room` (a socket id is a room too).
    pub fn to(&self, room: impl Into<String>) -> Broadcast {
        self.broadcast().to(room)
    }

    /// The same as [`to`](Self::to) (socket.io's `in`).
    pub fn in_(&self, room: impl Into<String>) -> Broadcast {
        self.to(room)
    }

    /// A broadcast to every socket but those in `room`.
    pub fn except(&self, room: impl Into<String>) -> Broadcast {
        self.broadcast().except(room)
    }

    /// A broadcast to every socket, dropped for those whose connection is not writable (see
    /// [`Broadcast::volatile`]).
    pub fn volatile(&self) -> Broadcast {
        self.broadcast().volatile()
    }

    /// A broadcast to every socket, compressed or not (see [`Broadcast::compress`]).
    pub fn compress(&self, compress: bool) -> Broadcast {
        self.broadcast().compress(compress)
    }

    /// A broadcast to the sockets of this node only (see [`Broadcast::local`]).
    pub fn local(&self) -> Broadcast {
        self.broadcast().local()
    }

    /// A broadcast whose acknowledgements are awaited for at most `timeout` (see
    /// [`Broadcast::emit_with_ack`]).
    pub fn timeout(&self, timeout: Duration) -> Broadcast {
        self.broadcast().timeout(timeout)
    }

    /// Sends `event` to every socket and collects one acknowledgement from each (see
    /// [`Broadcast::emit_with_ack`]).
    pub fn emit_with_ack<A: Into<Args>>(
        &self,
        event: &str,
        args: A,
    ) -> impl Future<Output = Result<Vec<Args>, BroadcastAckError>> + Send + use<A> {
        self.broadcast().emit_with_ack(event, args)
    }

    /// The sockets of the namespace, on every node (see [`Broadcast::fetch_sockets`]).
    pub async fn fetch_sockets(&self) -> Vec<FetchedSocket> {
        self.broadcast().fetch_sockets().await
    }

    /// Puts every socket of the namespace in `room` (see [`Broadcast::sockets_join`]).
    pub fn sockets_join(&self, room: impl AsRef<str>) {
        self.broadcast().sockets_join(room);
    }

    /// Takes every socket of the namespace out of `room` (see [`Broadcast::sockets_leave`]).
    pub fn sockets_leave(&self, room: impl AsRef<str>) {
        self.broadcast().sockets_leave(room);
    }

    /// Disconnects every socket of the namespace (see [`Broadcast::disconnect_sockets`]).
    pub fn disconnect_sockets(&self, close: bool) {
        self.broadcast().disconnect_sockets(close);
    }

    /// Sends `event` to the other server nodes of a cluster (socket.io's `serverSideEmit`),
    /// never to clients nor to this node: their [`on_server_event`](Self::on_server_event)
    /// handlers get it. Returns `1` when the message was queued for the other nodes, `0` on a
    /// single server (or when the cluster adapter dropped it, see its counters).
    pub fn server_side_emit(&self, event: &str, args: impl Into<Args>) -> Result<usize, EmitError> {
        check_event_name(event)?;
        let args = args.into();
        Ok(match self.inner.adapter() {
            Some(adapter) => usize::from(adapter.server_side_emit(event, &args)),
            None => 0,
        })
    }

    /// Like [`server_side_emit`](Self::server_side_emit), then waits up to `timeout` for one
    /// acknowledgement per other node: `Ok` with one value per node, or
    /// [`BroadcastAckError::Missing`] with those that came. A single server has no other
    /// nodes: the answer is empty at once.
    pub async fn server_side_emit_with_ack(
        &self,
        event: &str,
        args: impl Into<Args>,
        timeout: Duration,
    ) -> Result<Vec<Args>, BroadcastAckError> {
        check_event_name(event)?;
        let args = args.into();
        match self.inner.adapter() {
            Some(adapter) => {
                adapter
                    .server_side_emit_with_ack(event, &args, timeout)
                    .await
            }
            None => Ok(Vec::new()),
        }
    }

    /// Sets the handler of `event` sent by other nodes with
    /// [`server_side_emit`](Self::server_side_emit) (socket.io's `io.on(event)` on the server
    /// side), replacing any previous one. It gets the arguments and, when the sender waits for
    /// acknowledgements, a [`ServerAck`] to answer with.
    pub fn on_server_event<F, Fut>(&self, event: impl Into<String>, handler: F)
    where
        F: Fn(Args, Option<ServerAck>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handler: ServerHandler = Arc::new(move |args, ack| Box::pin(handler(args, ack)));
        write(&self.inner.server_handlers).insert(event.into(), handler);
    }

    /// How many server nodes serve this namespace, this one included (socket.io's
    /// `serverCount`): `1` on a single server; with a cluster adapter, as its broker counts
    /// them (`1` when the broker cannot be asked).
    pub async fn server_count(&self) -> usize {
        match self.inner.adapter() {
            Some(adapter) => adapter.server_count().await.max(1),
            None => 1,
        }
    }

    /// A broadcast to every socket of the namespace.
    pub fn broadcast(&self) -> Broadcast {
        Broadcast::new(Arc::clone(&self.inner))
    }

    /// The sockets connected now.
    pub fn sockets(&self) -> Vec<Socket> {
        lock(&self.inner.sockets).values().cloned().collect()
    }

    /// Runs the connect hook, then the middleware chain, for a socket not yet connected.
    pub(crate) async fn admit(&self, socket: &Socket) -> Result<(), Refusal> {
        for inner in self.inner.parent.iter().chain([&self.inner]) {
            let hook = read(&inner.hook).clone();
            if let Some(hook) = hook {
                hook(socket.auth().clone()).await?;
            }
            let chain = read(&inner.middleware).clone();
            for middleware in chain {
                middleware(socket.clone()).await?;
            }
        }
        Ok(())
    }

    /// Connects the namespace to the other nodes through `adapter` (once, at creation).
    pub(crate) fn attach(&self, adapter: &Adapter) {
        if let Some(node) = adapter.attach(&self.inner) {
            let _ = self.inner.adapter.set(node);
        }
    }

    /// Registers a new socket, in the room of its own id, and runs the connection handler.
    pub(crate) fn register(&self, socket: &Socket) {
        lock(&self.inner.sockets).insert(socket.id().to_owned(), socket.clone());
        lock(&self.inner.rooms).join(socket.id(), socket.id());
        for inner in self.inner.parent.iter().chain([&self.inner]) {
            let handler = read(&inner.on_connection).clone();
            if let Some(handler) = handler {
                handler(socket.clone());
            }
        }
    }
}

impl NamespaceInner {
    pub(crate) fn next_ack_id(&self) -> u64 {
        self.next_ack.fetch_add(1, Ordering::Relaxed)
    }

    /// The cluster adapter, if any.
    pub(crate) fn adapter(&self) -> Option<&Arc<dyn NodeAdapter>> {
        self.adapter.get()
    }

    /// Runs the handler of a server-side event from another node; without one, the
    /// acknowledgement (if asked for) is never sent, as in socket.io.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn server_event(&self, event: &str, args: Args, ack: Option<ServerAck>) {
        let handler = read(&self.server_handlers).get(event).cloned();
        if let Some(handler) = handler {
            tokio::spawn(handler(args, ack));
        }
    }
}

impl fmt::Debug for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Namespace")
            .field("name", &self.inner.name)
            .finish_non_exhaustive()
    }
}
