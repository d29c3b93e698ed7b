//! Namespaces: their connect hook and connection handler, their sockets and rooms, and
//! broadcasts to them.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::EmitError;
use super::queue::{Push, prepare_with};
use super::rooms::Rooms;
use super::socket::{Socket, check_event_name};
use crate::events::{Args, Packet};
use crate::lock::{lock, read, write};

type ConnectHook =
    Arc<dyn Fn(Value) -> Pin<Box<dyn Future<Output = Result<(), Refusal>> + Send>> + Send + Sync>;
type ConnectionHandler = Arc<dyn Fn(Socket) + Send + Sync>;
type Middleware =
    Arc<dyn Fn(Socket) -> Pin<Box<dyn Future<Output = Result<(), Refusal>> + Send>> + Send + Sync>;

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
    pub async fn fetch_sockets(&self) -> Vec<Socket> {
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
    /// never to clients nor to this node. A single server has no other nodes: this checks the
    /// event name and returns how many nodes it was sent to, `0`.
    pub fn server_side_emit(
        &self,
        event: &str,
        _args: impl Into<Args>,
    ) -> Result<usize, EmitError> {
        check_event_name(event)?;
        Ok(0)
    }

    /// Like [`server_side_emit`](Self::server_side_emit), then waits up to `timeout` for one
    /// acknowledgement per other node. A single server has none: the answer is empty at once.
    pub async fn server_side_emit_with_ack(
        &self,
        event: &str,
        args: impl Into<Args>,
        _timeout: Duration,
    ) -> Result<Vec<Args>, BroadcastAckError> {
        self.server_side_emit(event, args)
            .map_err(BroadcastAckError::Emit)?;
        Ok(Vec::new())
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
}

impl fmt::Debug for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Namespace")
            .field("name", &self.inner.name)
            .finish_non_exhaustive()
    }
}

/// Selects the recipients of a broadcast: every socket of a namespace, or those in some rooms,
/// minus those in other rooms (and the sender, for a broadcast from a socket), with flags.
///
/// The packet is encoded once and its messages are shared by every recipient. Emitting never
/// waits: each recipient's queue takes the packet or applies its overflow policy. The operators
/// that would have to hear from other nodes of a cluster are async
/// ([`fetch_sockets`](Self::fetch_sockets), [`emit_with_ack`](Self::emit_with_ack)); the others
/// act on this node at once.
#[derive(Clone)]
pub struct Broadcast {
    namespace: Arc<NamespaceInner>,
    rooms: Vec<String>,
    except: Vec<String>,
    skip: Option<String>,
    volatile: bool,
    local: bool,
    timeout: Option<Duration>,
    compress: bool,
}

/// Why [`Broadcast::emit_with_ack`] did not get one acknowledgement from every recipient.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum BroadcastAckError {
    /// The event could not be sent.
    #[error(transparent)]
    Emit(#[from] EmitError),
    /// Some recipients did not acknowledge: the timeout passed, or they disconnected first.
    #[error("{missing} of {expected} recipients did not acknowledge", expected = replies.len() + missing)]
    Missing {
        /// The acknowledgements that arrived, in no particular order.
        replies: Vec<Args>,
        /// How many recipients did not acknowledge.
        missing: usize,
    },
}

impl Broadcast {
    pub(crate) fn new(namespace: Arc<NamespaceInner>) -> Self {
        Self {
            namespace,
            rooms: Vec::new(),
            except: Vec::new(),
            skip: None,
            volatile: false,
            local: false,
            timeout: None,
            compress: true,
        }
    }

    pub(crate) fn skip(mut self, id: String) -> Self {
        self.skip = Some(id);
        self
    }

    /// Adds `room` to the rooms sent to (a socket in several is sent to once).
    pub fn to(mut self, room: impl Into<String>) -> Self {
        self.rooms.push(room.into());
        self
    }

    /// The same as [`to`](Self::to) (socket.io's `in`).
    pub fn in_(self, room: impl Into<String>) -> Self {
        self.to(room)
    }

    /// Leaves out the sockets in `room`.
    pub fn except(mut self, room: impl Into<String>) -> Self {
        self.except.push(room.into());
        self
    }

    /// Drops the packet for recipients whose connection is not writable now (packets queued or
    /// being written) instead of queueing it, as socket.io's `volatile` does.
    pub fn volatile(mut self) -> Self {
        self.volatile = true;
        self
    }

    /// Sends compressed or not (socket.io's `compress`): with `false`, permessage-deflate
    /// leaves the packet uncompressed for every recipient, even over its threshold. Default
    /// `true`.
    pub fn compress(mut self, compress: bool) -> Self {
        self.compress = compress;
        self
    }

    /// Keeps the broadcast on this node: with a cluster adapter, other nodes are not told.
    /// A single server has no other nodes, so this changes nothing there.
    pub fn local(mut self) -> Self {
        self.local = true;
        self
    }

    /// Waits at most `timeout` for the acknowledgements of
    /// [`emit_with_ack`](Self::emit_with_ack).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The sockets this broadcast reaches now, on this node.
    pub fn sockets(&self) -> Vec<Socket> {
        let ids =
            lock(&self.namespace.rooms).recipients(&self.rooms, &self.except, self.skip.as_deref());
        let sockets = lock(&self.namespace.sockets);
        ids.iter()
            .filter_map(|id| sockets.get(id).cloned())
            .collect()
    }

    /// The sockets this broadcast reaches (socket.io's `fetchSockets`). Async because a
    /// cluster asks its other nodes; a single server answers at once with
    /// [`sockets`](Self::sockets).
    pub async fn fetch_sockets(&self) -> Vec<Socket> {
        self.sockets()
    }

    /// Puts the recipients in `room` (socket.io's `socketsJoin`).
    pub fn sockets_join(&self, room: impl AsRef<str>) {
        for socket in self.sockets() {
            socket.join(room.as_ref());
        }
    }

    /// Takes the recipients out of `room` (socket.io's `socketsLeave`).
    pub fn sockets_leave(&self, room: impl AsRef<str>) {
        for socket in self.sockets() {
            socket.leave(room.as_ref());
        }
    }

    /// Disconnects the recipients from the namespace (socket.io's `disconnectSockets`), or,
    /// with `close`, closes their whole connections (see [`Socket::disconnect`] and
    /// [`Socket::close`]).
    pub fn disconnect_sockets(&self, close: bool) {
        for socket in self.sockets() {
            match close {
                true => socket.close(),
                false => socket.disconnect(),
            }
        }
    }

    /// Sends `event` to the recipients; returns how many queued it.
    pub fn emit(&self, event: &str, args: impl Into<Args>) -> Result<usize, EmitError> {
        check_event_name(event)?;
        let packet = Packet::Event {
            namespace: self.namespace.name.clone(),
            event: event.to_owned(),
            args: args.into(),
            ack: None,
        };
        let outgoing = prepare_with(packet.to_messages(), self.compress);
        let queued = self
            .sockets()
            .iter()
            .filter(|socket| socket.push(&outgoing, self.volatile) == Push::Queued)
            .count();
        Ok(queued)
    }

    /// Sends `event` to the recipients, asking each for an acknowledgement, and collects them:
    /// `Ok` with one reply per recipient, or [`BroadcastAckError::Missing`] with the replies
    /// that arrived when the [`timeout`](Self::timeout) passed or a recipient disconnected
    /// before answering. Without a timeout it waits for every recipient to answer or leave.
    ///
    /// The packet is queued when this is called, encoded once under one acknowledgement id
    /// for every recipient (as socket.io does); the returned future only waits.
    ///
    /// ```no_run
    /// # async fn demo(server: wsio::events::Server) {
    /// use std::time::Duration;
    ///
    /// let answers = server
    ///     .of("/")
    ///     .timeout(Duration::from_secs(2))
    ///     .emit_with_ack("poll", serde_json::json!(["ready?"]))
    ///     .await;
    /// match answers {
    ///     Ok(replies) => println!("{} answered", replies.len()),
    ///     Err(error) => println!("{error}"),
    /// }
    /// # }
    /// ```
    pub fn emit_with_ack<A: Into<Args>>(
        &self,
        event: &str,
        args: A,
    ) -> impl Future<Output = Result<Vec<Args>, BroadcastAckError>> + Send + use<A> {
        let sent = self.send_with_ack(event, args.into());
        let deadline = self.timeout.map(|timeout| Instant::now() + timeout);
        async move {
            let waiting = sent?;
            let mut replies = Vec::with_capacity(waiting.len());
            let mut missing = 0;
            for receiver in waiting {
                let reply = match deadline {
                    Some(deadline) => tokio::time::timeout_at(deadline, receiver)
                        .await
                        .ok()
                        .and_then(Result::ok),
                    None => receiver.await.ok(),
                };
                match reply {
                    Some(args) => replies.push(args),
                    None => missing += 1,
                }
            }
            match missing {
                0 => Ok(replies),
                missing => Err(BroadcastAckError::Missing { replies, missing }),
            }
        }
    }

    /// Queues the event under one acknowledgement id; returns the recipients' answers to come.
    fn send_with_ack(
        &self,
        event: &str,
        args: Args,
    ) -> Result<Vec<oneshot::Receiver<Args>>, EmitError> {
        check_event_name(event)?;
        let id = self.namespace.next_ack_id();
        let packet = Packet::Event {
            namespace: self.namespace.name.clone(),
            event: event.to_owned(),
            args,
            ack: Some(id),
        };
        let outgoing = prepare_with(packet.to_messages(), self.compress);
        let mut waiting = Vec::new();
        for socket in self.sockets() {
            let Some(receiver) = socket.expect_ack(id) else {
                continue;
            };
            match socket.push(&outgoing, self.volatile) {
                Push::Queued => waiting.push(receiver),
                _ => socket.forget_ack(id),
            }
        }
        Ok(waiting)
    }
}

impl fmt::Debug for Broadcast {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Broadcast")
            .field("namespace", &self.namespace.name)
            .field("rooms", &self.rooms)
            .field("except", &self.except)
            .field("volatile", &self.volatile)
            .field("local", &self.local)
            .field("timeout", &self.timeout)
            .field("compress", &self.compress)
            .finish_non_exhaustive()
    }
}
