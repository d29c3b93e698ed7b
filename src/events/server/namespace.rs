//! Namespaces: their connect hook and connection handler, their sockets and rooms, and
//! broadcasts to them.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};

use serde_json::Value;

use super::queue::{Push, prepare};
use super::rooms::Rooms;
use super::socket::{Socket, check_event_name};
use super::{EmitError, lock, read};
use crate::events::{Args, Packet};

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
        Self {
            inner: Arc::new(NamespaceInner {
                name,
                sockets: Mutex::default(),
                rooms: Mutex::default(),
                hook: RwLock::default(),
                middleware: RwLock::default(),
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
        *self.inner.hook.write().unwrap_or_else(|e| e.into_inner()) = Some(hook);
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
        *self
            .inner
            .on_connection
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(handler));
    }

    /// Sends `event` to every socket of the namespace; returns how many were queued.
    pub fn emit(&self, event: &str, args: impl Into<Args>) -> Result<usize, EmitError> {
        self.broadcast().emit(event, args)
    }

    /// A broadcast to the sockets in `room` (a socket id is a room too).
    pub fn to(&self, room: impl Into<String>) -> Broadcast {
        self.broadcast().to(room)
    }

    /// A broadcast to every socket but those in `room`.
    pub fn except(&self, room: impl Into<String>) -> Broadcast {
        self.broadcast().except(room)
    }

    /// A broadcast to every socket, dropped for those whose queue is full.
    pub fn volatile(&self) -> Broadcast {
        self.broadcast().volatile()
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
        let hook = read(&self.inner.hook).clone();
        if let Some(hook) = hook {
            hook(socket.auth().clone()).await?;
        }
        let chain = read(&self.inner.middleware).clone();
        for middleware in chain {
            middleware(socket.clone()).await?;
        }
        Ok(())
    }

    /// Registers a new socket, in the room of its own id, and runs the connection handler.
    pub(crate) fn register(&self, socket: &Socket) {
        lock(&self.inner.sockets).insert(socket.id().to_owned(), socket.clone());
        lock(&self.inner.rooms).join(socket.id(), socket.id());
        let handler = read(&self.inner.on_connection).clone();
        if let Some(handler) = handler {
            handler(socket.clone());
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

/// Selects the recipients of a broadcast: every socket of a namespace, or those in some rooms,
/// minus those in other rooms (and the sender, for a broadcast from a socket).
///
/// The packet is encoded once and its messages are shared by every recipient. Emitting never
/// waits: each recipient's queue takes the packet or applies its overflow policy.
#[derive(Clone)]
pub struct Broadcast {
    namespace: Arc<NamespaceInner>,
    rooms: Vec<String>,
    except: Vec<String>,
    skip: Option<String>,
    volatile: bool,
}

impl Broadcast {
    pub(crate) fn new(namespace: Arc<NamespaceInner>) -> Self {
        Self {
            namespace,
            rooms: Vec::new(),
            except: Vec::new(),
            skip: None,
            volatile: false,
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

    /// Leaves out the sockets in `room`.
    pub fn except(mut self, room: impl Into<String>) -> Self {
        self.except.push(room.into());
        self
    }

    /// Drops the packet for recipients whose queue is full instead of queueing it.
    pub fn volatile(mut self) -> Self {
        self.volatile = true;
        self
    }

    /// The sockets this broadcast reaches now.
    pub fn sockets(&self) -> Vec<Socket> {
        let ids =
            lock(&self.namespace.rooms).recipients(&self.rooms, &self.except, self.skip.as_deref());
        let sockets = lock(&self.namespace.sockets);
        ids.iter()
            .filter_map(|id| sockets.get(id).cloned())
            .collect()
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
        let outgoing = prepare(packet.to_messages());
        let queued = self
            .sockets()
            .iter()
            .filter(|socket| socket.push(&outgoing, self.volatile) == Push::Queued)
            .count();
        Ok(queued)
    }
}

impl fmt::Debug for Broadcast {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Broadcast")
            .field("namespace", &self.namespace.name)
            .field("rooms", &self.rooms)
            .field("except", &self.except)
            .field("volatile", &self.volatile)
            .finish_non_exhaustive()
    }
}
