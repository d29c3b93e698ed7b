//! One client's connection to one namespace: handlers, emits, acknowledgements, rooms, data.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::broadcast::Broadcast;
use super::conn::Conn;
use super::handshake::Handshake;
use super::namespace::{NamespaceInner, Refusal};
use super::queue::{Push, prepare, prepare_with};
use super::{AckError, DisconnectReason, EmitError, lock};
use crate::events::{Args, Packet, RESERVED_EVENTS};

/// Events a socket's dispatcher may hold before the connection's reader waits for it.
const DISPATCH_QUEUE: usize = 64;

pub(crate) type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send>>;
type EventHandler = Arc<dyn Fn(Socket, Args, Option<AckSender>) -> BoxFuture + Send + Sync>;
type DisconnectHandler = Arc<dyn Fn(Socket, DisconnectReason) -> BoxFuture + Send + Sync>;
type AnyHandler = Arc<dyn Fn(Socket, String, Args) -> BoxFuture + Send + Sync>;
type PacketMiddleware = Arc<
    dyn Fn(
            Socket,
            String,
            Args,
        ) -> Pin<Box<dyn Future<Output = Result<(String, Args), Refusal>> + Send>>
        + Send
        + Sync,
>;
type ErrorHandler = Arc<dyn Fn(Socket, Refusal) -> BoxFuture + Send + Sync>;

/// A client connected to a namespace: a cheap handle, clone it freely.
///
/// Handlers run one at a time per socket, in the order the events arrived, in a task of the
/// socket's own; a handler that awaits holds back the socket's next events (not other
/// sockets'). Acknowledgements are resolved by the connection's reader, so a handler may await
/// [`emit_with_ack`](Self::emit_with_ack).
#[derive(Clone)]
pub struct Socket {
    inner: Arc<SocketInner>,
    /// Whether this handle's emits may be compressed (see [`compress`](Self::compress)).
    compress: bool,
}

struct SocketInner {
    id: String,
    namespace: Arc<NamespaceInner>,
    conn: Arc<Conn>,
    handshake: Handshake,
    /// The server's [`Config::ack_timeout`](super::Config::ack_timeout).
    ack_timeout: Duration,
    handlers: std::sync::Mutex<HashMap<String, EventHandler>>,
    any_handlers: std::sync::Mutex<Vec<AnyHandler>>,
    packet_middleware: std::sync::Mutex<Vec<PacketMiddleware>>,
    error_handlers: std::sync::Mutex<Vec<ErrorHandler>>,
    disconnecting_handlers: std::sync::Mutex<Vec<DisconnectHandler>>,
    disconnect_handlers: std::sync::Mutex<Vec<DisconnectHandler>>,
    acks: std::sync::Mutex<HashMap<u64, oneshot::Sender<Args>>>,
    /// Set once the namespace accepted the socket, cleared when it disconnects.
    connected: AtomicBool,
    /// Set when the socket disconnects or is refused: it joins no more rooms.
    ended: AtomicBool,
    jobs: mpsc::Sender<Job>,
    /// The dispatcher's end of `jobs`, until the socket is accepted and its task started.
    pending_jobs: std::sync::Mutex<Option<mpsc::Receiver<Job>>>,
    extensions: Extensions,
}

/// Work for a socket's dispatcher task, in arrival order.
enum Job {
    /// Boxed: the channel allocates its slots in blocks up front, a block per idle socket.
    Event(Box<EventJob>),
    Disconnect(DisconnectReason),
}

/// An event from the client, for the dispatcher.
struct EventJob {
    event: String,
    args: Args,
    ack: Option<AckSender>,
}

impl Socket {
    /// Creates the socket of a CONNECT, not connected yet: the namespace's middleware sees it
    /// before [`activate`](Self::activate) or [`discard`](Self::discard).
    pub(crate) fn new(
        id: String,
        namespace: Arc<NamespaceInner>,
        conn: Arc<Conn>,
        handshake: Handshake,
        ack_timeout: Duration,
    ) -> Self {
        let (jobs, receiver) = mpsc::channel(DISPATCH_QUEUE);
        Self {
            inner: Arc::new(SocketInner {
                id,
                namespace,
                conn,
                handshake,
                ack_timeout,
                handlers: Default::default(),
                any_handlers: Default::default(),
                packet_middleware: Default::default(),
                error_handlers: Default::default(),
                disconnecting_handlers: Default::default(),
                disconnect_handlers: Default::default(),
                acks: Default::default(),
                connected: AtomicBool::new(false),
                ended: AtomicBool::new(false),
                jobs,
                pending_jobs: std::sync::Mutex::new(Some(receiver)),
                extensions: Extensions::default(),
            }),
            compress: true,
        }
    }

    /// Marks the socket connected and starts its dispatcher task.
    pub(crate) fn activate(&self) {
        self.inner.connected.store(true, Ordering::Release);
        if let Some(receiver) = lock(&self.inner.pending_jobs).take() {
            tokio::spawn(dispatch(self.clone(), receiver));
        }
    }

    /// Forgets a socket the namespace refused: out of the rooms its middleware put it in.
    pub(crate) fn discard(&self) {
        self.inner.ended.store(true, Ordering::Release);
        lock(&self.inner.namespace.rooms).leave_all(&self.inner.id);
    }

    /// The socket id, sent to the client in the CONNECT answer (`socket.id` there). The socket
    /// is always in the room of this name.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The namespace's name.
    pub fn namespace(&self) -> &str {
        &self.inner.namespace.name
    }

    /// The auth payload the client connected with (`auth` option of the client), `{}` when it
    /// sent none. The same as `handshake().auth()`.
    pub fn auth(&self) -> &Value {
        self.inner.handshake.auth()
    }

    /// What the client's connection request said: headers, query, address, URL, time, auth.
    pub fn handshake(&self) -> &Handshake {
        &self.inner.handshake
    }

    /// Whether the socket is still connected to its namespace.
    pub fn connected(&self) -> bool {
        self.inner.connected.load(Ordering::Acquire)
    }

    /// Sets the handler of `event`, replacing any previous one. The handler gets the socket,
    /// the arguments and, when the client asked for an acknowledgement, the [`AckSender`].
    ///
    /// ```no_run
    /// # fn demo(socket: wsio::events::Socket) {
    /// socket.on("ping", |_socket, args, ack| async move {
    ///     if let Some(ack) = ack {
    ///         let _ = ack.send(args);
    ///     }
    /// });
    /// # }
    /// ```
    pub fn on<F, Fut>(&self, event: impl Into<String>, handler: F)
    where
        F: Fn(Socket, Args, Option<AckSender>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handler: EventHandler =
            Arc::new(move |socket, args, ack| Box::pin(handler(socket, args, ack)));
        lock(&self.inner.handlers).insert(event.into(), handler);
    }

    /// Adds a handler run once when the socket disconnects, after the handlers of the events
    /// received before.
    pub fn on_disconnect<F, Fut>(&self, handler: F)
    where
        F: Fn(Socket, DisconnectReason) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handler: DisconnectHandler =
            Arc::new(move |socket, reason| Box::pin(handler(socket, reason)));
        lock(&self.inner.disconnect_handlers).push(handler);
    }

    /// Adds a handler run for every event the client sends, with its name and arguments,
    /// before the event's own handler (socket.io's `onAny`). Handlers run in the order added.
    pub fn on_any<F, Fut>(&self, handler: F)
    where
        F: Fn(Socket, String, Args) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handler: AnyHandler =
            Arc::new(move |socket, event, args| Box::pin(handler(socket, event, args)));
        lock(&self.inner.any_handlers).push(handler);
    }

    /// Adds a middleware run on every event the client sends, before any handler (socket.io's
    /// `socket.use`). Middleware run in the order added, each getting the event name and
    /// arguments the previous one returned; returning `Err` drops the event (no handler runs,
    /// no acknowledgement is sent) and passes the refusal to the [`on_error`](Self::on_error)
    /// handlers.
    ///
    /// ```no_run
    /// # fn demo(socket: wsio::events::Socket) {
    /// use wsio::events::Refusal;
    ///
    /// socket.use_packet_middleware(|socket, event, args| async move {
    ///     match socket.extensions().get::<String>() {
    ///         Some(_) => Ok((event, args)),
    ///         None => Err(Refusal::new("log in first")),
    ///     }
    /// });
    /// # }
    /// ```
    pub fn use_packet_middleware<F, Fut>(&self, middleware: F)
    where
        F: Fn(Socket, String, Args) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(String, Args), Refusal>> + Send + 'static,
    {
        let middleware: PacketMiddleware =
            Arc::new(move |socket, event, args| Box::pin(middleware(socket, event, args)));
        lock(&self.inner.packet_middleware).push(middleware);
    }

    /// Adds a handler for the refusals of [`use_packet_middleware`](Self::use_packet_middleware)
    /// (socket.io's `error` event on the server side; nothing is sent to the client).
    pub fn on_error<F, Fut>(&self, handler: F)
    where
        F: Fn(Socket, Refusal) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handler: ErrorHandler = Arc::new(move |socket, error| Box::pin(handler(socket, error)));
        lock(&self.inner.error_handlers).push(handler);
    }

    /// Adds a handler run once when the socket disconnects, before it leaves its rooms:
    /// [`rooms`](Self::rooms) still lists them (socket.io's `disconnecting`). The
    /// [`on_disconnect`](Self::on_disconnect) handlers run after.
    pub fn on_disconnecting<F, Fut>(&self, handler: F)
    where
        F: Fn(Socket, DisconnectReason) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handler: DisconnectHandler =
            Arc::new(move |socket, reason| Box::pin(handler(socket, reason)));
        lock(&self.inner.disconnecting_handlers).push(handler);
    }

    /// A handle to the same socket whose emits go out compressed or not (socket.io's
    /// `socket.compress(false).emit(…)`): with `false`, permessage-deflate leaves them
    /// uncompressed even when they are over its threshold. Default `true`.
    pub fn compress(&self, compress: bool) -> Socket {
        Socket {
            inner: Arc::clone(&self.inner),
            compress,
        }
    }

    /// Sends `event` to this client. Fails on a reserved event name or a closed socket; a
    /// connection whose queue overflows is disconnected (see [`Config::queue_limit`]).
    ///
    /// [`Config::queue_limit`]: super::Config::queue_limit
    pub fn emit(&self, event: &str, args: impl Into<Args>) -> Result<(), EmitError> {
        match self.send_event(event, args.into(), None, false)? {
            Push::Queued => Ok(()),
            _ => Err(EmitError::Disconnected),
        }
    }

    /// Sends `event` only if the connection is writable now (nothing queued, nothing being
    /// written), as socket.io's `volatile` does; returns whether it was queued.
    pub fn emit_volatile(&self, event: &str, args: impl Into<Args>) -> Result<bool, EmitError> {
        match self.send_event(event, args.into(), None, true)? {
            Push::Queued => Ok(true),
            Push::Dropped => Ok(false),
            Push::Closed | Push::Overflow => Err(EmitError::Disconnected),
        }
    }

    /// Sends `event` and waits up to the server's [`Config::ack_timeout`] for the client's
    /// acknowledgement: the same arguments as the client's
    /// [`Client::emit_with_ack`](crate::events::client::Client::emit_with_ack).
    ///
    /// [`Config::ack_timeout`]: super::Config::ack_timeout
    pub async fn emit_with_ack(
        &self,
        event: &str,
        args: impl Into<Args>,
    ) -> Result<Args, AckError> {
        self.emit_with_ack_timeout(event, args, self.inner.ack_timeout)
            .await
    }

    /// Sends `event` and waits up to `timeout` for the client's acknowledgement.
    pub async fn emit_with_ack_timeout(
        &self,
        event: &str,
        args: impl Into<Args>,
        timeout: Duration,
    ) -> Result<Args, AckError> {
        let id = self.inner.namespace.next_ack_id();
        let (sender, receiver) = oneshot::channel();
        lock(&self.inner.acks).insert(id, sender);
        let sent = self.send_event(event, args.into(), Some(id), false);
        if !matches!(sent, Ok(Push::Queued)) {
            lock(&self.inner.acks).remove(&id);
            sent?;
            return Err(AckError::Disconnected);
        }
        match tokio::time::timeout(timeout, receiver).await {
            Ok(Ok(args)) => Ok(args),
            Ok(Err(_)) => Err(AckError::Disconnected),
            Err(_) => {
                lock(&self.inner.acks).remove(&id);
                Err(AckError::Timeout)
            }
        }
    }

    /// Puts the socket in `room`. Works from the namespace's middleware too, before the socket
    /// is connected; does nothing once it disconnected.
    pub fn join(&self, room: impl AsRef<str>) {
        if !self.inner.ended.load(Ordering::Acquire) {
            lock(&self.inner.namespace.rooms).join(&self.inner.id, room.as_ref());
            if let Some(adapter) = self.inner.namespace.adapter() {
                adapter.join(&self.inner.id, room.as_ref());
            }
        }
    }

    /// Takes the socket out of `room`.
    pub fn leave(&self, room: impl AsRef<str>) {
        lock(&self.inner.namespace.rooms).leave(&self.inner.id, room.as_ref());
        if let Some(adapter) = self.inner.namespace.adapter() {
            adapter.leave(&self.inner.id, room.as_ref());
        }
    }

    /// The rooms the socket is in, its own id included, sorted.
    pub fn rooms(&self) -> Vec<String> {
        lock(&self.inner.namespace.rooms).rooms_of(&self.inner.id)
    }

    /// A broadcast to the sockets in `room`, this one excepted.
    pub fn to(&self, room: impl Into<String>) -> Broadcast {
        self.broadcast().to(room)
    }

    /// The same as [`to`](Self::to) (socket.io's `in`).
    pub fn in_(&self, room: impl Into<String>) -> Broadcast {
        self.to(room)
    }

    /// A broadcast to every socket of the namespace but those in `room` and this one.
    pub fn except(&self, room: impl Into<String>) -> Broadcast {
        self.broadcast().except(room)
    }

    /// A broadcast to every socket of the namespace but this one, compressed as this handle's
    /// emits are (see [`compress`](Self::compress)).
    pub fn broadcast(&self) -> Broadcast {
        Broadcast::new(Arc::clone(&self.inner.namespace))
            .skip(self.inner.id.clone())
            .compress(self.compress)
    }

    /// Disconnects the socket from its namespace: the client gets a DISCONNECT packet (its
    /// reason is `io server disconnect`) and the disconnect handlers run with
    /// [`DisconnectReason::ServerNamespaceDisconnect`]. The connection stays open for other
    /// namespaces.
    pub fn disconnect(&self) {
        if !self.connected() {
            return;
        }
        let packet = Packet::Disconnect {
            namespace: self.namespace().to_owned(),
        };
        self.inner.conn.push(prepare(packet.to_messages()), false);
        self.inner.conn.remove_socket(self.namespace());
        self.closed(DisconnectReason::ServerNamespaceDisconnect);
    }

    /// Closes the whole connection (every namespace) with [`DisconnectReason::ServerClose`].
    pub fn close(&self) {
        self.inner.conn.close(DisconnectReason::ServerClose);
    }

    /// Data attached to this socket by the application.
    pub fn extensions(&self) -> &Extensions {
        &self.inner.extensions
    }

    /// Queues an event packet.
    fn send_event(
        &self,
        event: &str,
        args: Args,
        ack: Option<u64>,
        volatile: bool,
    ) -> Result<Push, EmitError> {
        check_event_name(event)?;
        if !self.connected() {
            return Err(EmitError::Disconnected);
        }
        let packet = Packet::Event {
            namespace: self.namespace().to_owned(),
            event: event.to_owned(),
            args,
            ack,
        };
        let outgoing = prepare_with(packet.to_messages(), self.compress);
        Ok(self.inner.conn.push(outgoing, volatile))
    }

    /// Queues an acknowledgement packet.
    fn send_ack(&self, id: u64, args: Args) -> Result<(), EmitError> {
        if !self.connected() {
            return Err(EmitError::Disconnected);
        }
        let packet = Packet::Ack {
            namespace: self.namespace().to_owned(),
            id,
            args,
        };
        match self.inner.conn.push(prepare(packet.to_messages()), false) {
            Push::Queued => Ok(()),
            _ => Err(EmitError::Disconnected),
        }
    }

    /// Hands an event from the client to the dispatcher; waits while its queue is full.
    pub(crate) async fn receive_event(&self, event: String, args: Args, ack: Option<u64>) {
        let ack = ack.map(|id| AckSender {
            socket: self.clone(),
            id,
        });
        let job = Job::Event(Box::new(EventJob { event, args, ack }));
        let _ = self.inner.jobs.send(job).await;
    }

    /// Resolves the acknowledgement `id` from the client; unknown or late ids are ignored.
    pub(crate) fn receive_ack(&self, id: u64, args: Args) {
        if let Some(sender) = lock(&self.inner.acks).remove(&id) {
            let _ = sender.send(args);
        }
    }

    /// Marks the socket disconnected: out of its namespace and rooms, pending acknowledgements
    /// failed, disconnect handlers queued behind the events already received. Runs once.
    pub(crate) fn closed(&self, reason: DisconnectReason) {
        if !self.inner.connected.swap(false, Ordering::AcqRel) {
            return;
        }
        self.inner.ended.store(true, Ordering::Release);
        // Out of the namespace now, so broadcasts skip it; out of its rooms after the
        // disconnecting handlers, which still see them.
        lock(&self.inner.namespace.sockets).remove(&self.inner.id);
        lock(&self.inner.acks).clear();
        let job = Job::Disconnect(reason);
        match self.inner.jobs.try_send(job) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(job)) => {
                let jobs = self.inner.jobs.clone();
                tokio::spawn(async move { jobs.send(job).await });
            }
            Err(mpsc::error::TrySendError::Closed(_)) => self.leave_all(),
        }
    }
}

impl fmt::Debug for Socket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Socket")
            .field("id", &self.inner.id)
            .field("namespace", &self.inner.namespace.name)
            .field("connected", &self.connected())
            .finish_non_exhaustive()
    }
}

/// Answers one event the client sent with an acknowledgement callback. Dropping it without
/// sending leaves the client's callback uncalled (its own timeout, if any, fires).
#[derive(Debug)]
pub struct AckSender {
    socket: Socket,
    id: u64,
}

impl AckSender {
    /// Sends the acknowledgement with `args`.
    pub fn send(self, args: impl Into<Args>) -> Result<(), EmitError> {
        self.socket.send_ack(self.id, args.into())
    }
}

/// Values of any type attached to a socket, one per type.
#[derive(Default)]
pub struct Extensions {
    map: std::sync::Mutex<HashMap<TypeId, Box<dyn Any + Send + Sync>>>,
}

impl Extensions {
    /// Stores `value`, returning the previous value of its type.
    pub fn insert<T: Clone + Send + Sync + 'static>(&self, value: T) -> Option<T> {
        lock(&self.map)
            .insert(TypeId::of::<T>(), Box::new(value))
            .and_then(|old| old.downcast().ok().map(|old| *old))
    }

    /// A clone of the stored value of type `T`.
    pub fn get<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        lock(&self.map)
            .get(&TypeId::of::<T>())
            .and_then(|value| value.downcast_ref::<T>())
            .cloned()
    }

    /// Removes and returns the stored value of type `T`.
    pub fn remove<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        lock(&self.map)
            .remove(&TypeId::of::<T>())
            .and_then(|old| old.downcast().ok().map(|old| *old))
    }
}

impl fmt::Debug for Extensions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Extensions")
            .field("len", &lock(&self.map).len())
            .finish()
    }
}

/// Fails for the event names socket.io reserves.
pub(crate) fn check_event_name(event: &str) -> Result<(), EmitError> {
    match RESERVED_EVENTS.contains(&event) {
        true => Err(EmitError::ReservedEvent(event.to_owned())),
        false => Ok(()),
    }
}

/// Runs a socket's handlers in arrival order until its disconnect handlers have run.
async fn dispatch(socket: Socket, mut jobs: mpsc::Receiver<Job>) {
    while let Some(job) = jobs.recv().await {
        match job {
            Job::Event(job) => {
                let EventJob { event, args, ack } = *job;
                // Boxed: the dispatcher waits idle far longer than it runs handlers.
                Box::pin(socket.run_event(event, args, ack)).await;
            }
            Job::Disconnect(reason) => {
                let handlers = std::mem::take(&mut *lock(&socket.inner.disconnecting_handlers));
                for handler in handlers {
                    handler(socket.clone(), reason).await;
                }
                socket.leave_all();
                let handlers = std::mem::take(&mut *lock(&socket.inner.disconnect_handlers));
                for handler in handlers {
                    handler(socket.clone(), reason).await;
                }
                lock(&socket.inner.handlers).clear();
                lock(&socket.inner.any_handlers).clear();
                lock(&socket.inner.packet_middleware).clear();
                lock(&socket.inner.error_handlers).clear();
                return;
            }
        }
    }
}

impl Socket {
    /// Runs one event through the packet middleware, the `on_any` handlers and its handler.
    async fn run_event(&self, mut event: String, mut args: Args, ack: Option<AckSender>) {
        let middleware = lock(&self.inner.packet_middleware).clone();
        for middleware in middleware {
            match middleware(self.clone(), event, args).await {
                Ok((next_event, next_args)) => (event, args) = (next_event, next_args),
                Err(refusal) => {
                    let handlers = lock(&self.inner.error_handlers).clone();
                    for handler in handlers {
                        handler(self.clone(), refusal.clone()).await;
                    }
                    return;
                }
            }
        }
        let any = lock(&self.inner.any_handlers).clone();
        for handler in any {
            handler(self.clone(), event.clone(), args.clone()).await;
        }
        let handler = lock(&self.inner.handlers).get(&event).cloned();
        if let Some(handler) = handler {
            handler(self.clone(), args, ack).await;
        }
    }

    fn leave_all(&self) {
        lock(&self.inner.namespace.rooms).leave_all(&self.inner.id);
    }
}

impl Socket {
    /// Waits for the acknowledgement `id` of a broadcast; `None` when disconnected.
    pub(crate) fn expect_ack(&self, id: u64) -> Option<oneshot::Receiver<Args>> {
        if !self.connected() {
            return None;
        }
        let (sender, receiver) = oneshot::channel();
        lock(&self.inner.acks).insert(id, sender);
        Some(receiver)
    }

    /// Stops waiting for the acknowledgement `id`.
    pub(crate) fn forget_ack(&self, id: u64) {
        lock(&self.inner.acks).remove(&id);
    }

    /// Queues a packet already encoded for a broadcast.
    pub(crate) fn push(&self, outgoing: &super::queue::Outgoing, volatile: bool) -> Push {
        if !self.connected() {
            return Push::Closed;
        }
        self.inner.conn.push(Arc::clone(outgoing), volatile)
    }
}
