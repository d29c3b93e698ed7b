//! The state the client handles and the connection task share, behind one mutex.
//!
//! Every change happens here, under the lock, and returns the user callbacks it triggers as
//! [`Deferred`] closures: the caller runs them after releasing the lock, so a callback may call
//! back into the client.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Map, Value};
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;

use super::backoff::Reconnection;
use super::queue::RetryQueue;
use super::{Ack, ClientError, DisconnectReason, Transport};
use crate::events::{Args, DecodeLimits, OpenInfo, Packet, RESERVED_EVENTS};
use crate::{Message, Options};

/// Handles an event: its arguments, and the responder when the server asked for an ack.
pub(crate) type EventHandler = Arc<dyn Fn(Args, Option<Ack>) + Send + Sync>;
/// Runs when a namespace connects, or when reconnection gives up.
pub(crate) type ConnectHandler = Arc<dyn Fn() + Send + Sync>;
/// Runs when a namespace is disconnected.
pub(crate) type DisconnectHandler = Arc<dyn Fn(&DisconnectReason) + Send + Sync>;
/// Runs when connecting a namespace fails.
pub(crate) type ErrorHandler = Arc<dyn Fn(&ClientError) + Send + Sync>;
/// Runs when the connection is back, with the attempt that succeeded.
pub(crate) type ReconnectHandler = Arc<dyn Fn(u32) + Send + Sync>;
/// Makes the auth payload of each (re)connection of a namespace.
pub(crate) type AuthCallback = Arc<dyn Fn() -> Value + Send + Sync>;
/// A callback to run once the lock is released.
pub(crate) type Deferred = Box<dyn FnOnce() + Send>;
/// Where an acknowledgement is delivered.
pub(crate) type AckReply = oneshot::Sender<Result<Args, ClientError>>;

/// The callbacks of one namespace.
#[derive(Clone, Default)]
pub(crate) struct Handlers {
    pub events: HashMap<String, EventHandler>,
    pub connect: Option<ConnectHandler>,
    pub disconnect: Option<DisconnectHandler>,
    pub connect_error: Option<ErrorHandler>,
    /// Replaces the static auth payload when set.
    pub auth: Option<AuthCallback>,
}

/// The callbacks of the connection as a whole.
#[derive(Clone, Default)]
pub(crate) struct ManagerHandlers {
    pub reconnect: Option<ReconnectHandler>,
    pub reconnect_failed: Option<ConnectHandler>,
    /// Runs when the connection moved from long-polling to WebSocket.
    pub upgrade: Option<ConnectHandler>,
}

/// Settings fixed when the client is built.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub ws_url: String,
    pub headers: Vec<(String, String)>,
    pub ws_options: Options,
    pub reconnection: Reconnection,
    pub ack_timeout: Duration,
    /// How many times emits are sent again without an acknowledgement; 0: no retry queue.
    pub retries: u32,
    pub connect_timeout: Duration,
    pub max_buffered: usize,
    pub decode_limits: DecodeLimits,
    /// Fall back to long-polling when the WebSocket is refused.
    pub polling_fallback: bool,
    /// Open over long-polling, then upgrade.
    pub polling_first: bool,
    /// Try the upgrade of a long-polling session to WebSocket.
    pub upgrade: bool,
}

/// What the handles and the connection task share. Dropping the last handle wakes the task,
/// which then closes the connection.
pub(crate) struct Shared {
    state: Mutex<State>,
    pub wake: Arc<Notify>,
    pub settings: Arc<Settings>,
}

impl Shared {
    pub fn new(state: State, settings: Arc<Settings>) -> Self {
        Self {
            state: Mutex::new(state),
            wake: Arc::new(Notify::new()),
            settings,
        }
    }

    /// Locks the state. A panic in a callback never holds the lock, so poisoning is ignored.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        crate::lock::lock(&self.state)
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.wake.notify_one();
    }
}

/// Where one namespace stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Status {
    /// Waiting to send `CONNECT` on the current connection (`sent` is `None` or an older
    /// generation), or for the server's answer.
    Connecting { sent: Option<u64> },
    /// Connected, with the socket id the server gave.
    Connected { sid: String },
    /// Disconnected by the user; the `DISCONNECT` packet is still to be sent.
    Leaving,
}

/// Messages waiting for the namespace to be connected.
struct Outgoing {
    /// The order it was queued in, across namespaces.
    order: u64,
    messages: Vec<Message>,
    /// The id of the acknowledgement this event asks for.
    ack: Option<u64>,
    /// For an ack reply: the connection it belongs to; it is dropped if that one is gone.
    generation: Option<u64>,
}

/// An event from the server, for its handler.
struct ReceivedEvent {
    event: String,
    args: Args,
    ack: Option<u64>,
}

impl ReceivedEvent {
    /// About the bytes it took on the wire: its name, its arguments as JSON and its
    /// attachments.
    fn size(&self) -> usize {
        let json = serde_json::to_vec(self.args.values()).map_or(0, |json| json.len());
        let attachments: usize = self.args.attachments().iter().map(Bytes::len).sum();
        self.event.len() + json + attachments
    }
}

/// An emit waiting for its acknowledgement.
struct PendingAck {
    reply: AckReply,
    /// Whether the event went out: only those fail when the connection drops, the others
    /// are sent after reconnecting.
    sent: bool,
}

/// One namespace the client uses.
pub(crate) struct Namespace {
    pub auth: Option<Map<String, Value>>,
    pub status: Status,
    pub handlers: Handlers,
    outbox: VecDeque<Outgoing>,
    pending: HashMap<u64, PendingAck>,
    /// Emits with retries, sent one at a time.
    retry: RetryQueue,
    next_ack: u64,
    waiter: Option<oneshot::Sender<Result<(), ClientError>>>,
    /// Events of the current connection that came before the answer to the namespace's
    /// `CONNECT`, as a python-socketio server sends what its connect handler emits: handed
    /// to the handlers once the namespace is connected, as socket.io-client does.
    early: Vec<ReceivedEvent>,
    /// The [`ReceivedEvent::size`] of `early`, summed.
    early_bytes: usize,
}

impl Namespace {
    /// A namespace about to connect; `waiter` learns how that went.
    pub fn new(
        auth: Option<Map<String, Value>>,
        handlers: Handlers,
        waiter: oneshot::Sender<Result<(), ClientError>>,
    ) -> Self {
        Self {
            auth,
            status: Status::Connecting { sent: None },
            handlers,
            outbox: VecDeque::new(),
            pending: HashMap::new(),
            retry: RetryQueue::default(),
            next_ack: 0,
            waiter: Some(waiter),
            early: Vec::new(),
            early_bytes: 0,
        }
    }

    /// Fails the pending acknowledgements: those already sent, or all of them.
    fn fail_pending(&mut self, only_sent: bool, error: &ClientError) {
        let ids: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, pending)| pending.sent || !only_sent)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            if let Some(pending) = self.pending.remove(&id) {
                let _ = pending.reply.send(Err(error.clone()));
            }
        }
    }

    /// Ends the namespace: its waiter, pending acks and buffered emits all fail with `error`.
    fn close(mut self, error: &ClientError) {
        if let Some(waiter) = self.waiter.take() {
            let _ = waiter.send(Err(error.clone()));
        }
        self.fail_pending(false, &ClientError::Closed);
        self.retry.fail_all(&ClientError::Closed);
    }

    fn connect_error_callback(&self, error: &ClientError) -> Option<Deferred> {
        let handler = self.handlers.connect_error.clone()?;
        let error = error.clone();
        Some(Box::new(move || handler(&error)))
    }

    /// Holds an event that came before the answer to the namespace's `CONNECT`: at most
    /// `max_buffered` of them, together no larger than one packet may be at its largest (its
    /// text and every attachment). Past either, the connection must be dropped.
    fn hold_early(
        &mut self,
        event: ReceivedEvent,
        settings: &Settings,
        namespace: &str,
    ) -> Result<(), DisconnectReason> {
        let limits = settings.decode_limits;
        let max_bytes = limits
            .max_packet_size
            .saturating_mul(limits.max_attachments.saturating_add(1));
        self.early_bytes = self.early_bytes.saturating_add(event.size());
        if self.early.len() >= settings.max_buffered || self.early_bytes > max_bytes {
            return Err(DisconnectReason::ParseError(format!(
                "more than {} events or {max_bytes} bytes for {namespace} before its CONNECT \
                 answer",
                settings.max_buffered
            )));
        }
        self.early.push(event);
        Ok(())
    }

    /// Takes the events held by [`hold_early`](Self::hold_early).
    fn take_early(&mut self) -> Vec<ReceivedEvent> {
        self.early_bytes = 0;
        std::mem::take(&mut self.early)
    }

    /// The call of the handler of `event`, if there is one.
    fn event_handler(
        &self,
        event: ReceivedEvent,
        shared: &Weak<Shared>,
        namespace: &str,
        generation: u64,
    ) -> Option<Deferred> {
        let handler = self.handlers.events.get(&event.event).cloned()?;
        let ack = event.ack.map(|id| Ack {
            shared: shared.clone(),
            namespace: namespace.to_owned(),
            id,
            generation,
        });
        let args = event.args;
        Some(Box::new(move || handler(args, ack)))
    }

    fn disconnect_callback(&self, reason: &DisconnectReason) -> Option<Deferred> {
        let handler = self.handlers.disconnect.clone()?;
        let reason = reason.clone();
        Some(Box::new(move || handler(&reason)))
    }
}

/// The state of one client connection and its namespaces.
pub(crate) struct State {
    pub namespaces: HashMap<String, Namespace>,
    /// How many Engine.IO connections were opened so far; ack replies carry it.
    pub generation: u64,
    /// Whether an Engine.IO connection is up.
    pub open: bool,
    /// The transport of the current (or last) connection.
    pub transport: Option<Transport>,
    /// The server's `maxPayload`.
    pub max_payload: usize,
    /// Testing aid: do not answer the server's pings.
    pub heartbeat_paused: bool,
    /// No namespace is left: the connection is closed or closing, for good.
    pub ended: bool,
    pub manager: ManagerHandlers,
    /// The order the next queued packet gets: the wire keeps it across namespaces.
    next_order: u64,
}

/// What the connection task must write next.
pub(crate) struct Flush {
    pub messages: Vec<Message>,
    /// No namespace is left: close the connection.
    pub close: bool,
    /// When the earliest emit on the wire with retries times out.
    pub retry_deadline: Option<Instant>,
}

impl State {
    pub fn new(manager: ManagerHandlers) -> Self {
        Self {
            namespaces: HashMap::new(),
            generation: 0,
            open: false,
            transport: None,
            max_payload: usize::MAX,
            heartbeat_paused: false,
            ended: false,
            manager,
            next_order: 0,
        }
    }

    /// The namespace an event is emitted on: refused for a reserved event name, and closed
    /// once the namespace is left.
    fn emitting_namespace<'a>(
        namespaces: &'a mut HashMap<String, Namespace>,
        namespace: &str,
        event: &str,
    ) -> Result<&'a mut Namespace, ClientError> {
        if RESERVED_EVENTS.contains(&event) {
            return Err(ClientError::ReservedEvent(event.to_owned()));
        }
        namespaces
            .get_mut(namespace)
            .filter(|ns| ns.status != Status::Leaving)
            .ok_or(ClientError::Closed)
    }
    /// Queues an event for `namespace`, registering `reply` for its acknowledgement.
    pub fn queue_event(
        &mut self,
        limit: usize,
        namespace: &str,
        event: &str,
        args: Args,
        reply: Option<AckReply>,
    ) -> Result<Option<u64>, ClientError> {
        let max_payload = self.max_payload;
        let ns = Self::emitting_namespace(&mut self.namespaces, namespace, event)?;
        if ns.outbox.len() >= limit || (reply.is_some() && ns.pending.len() >= limit) {
            return Err(ClientError::BufferFull { limit });
        }
        let id = reply.as_ref().map(|_| ns.next_ack);
        let packet = Packet::Event {
            namespace: namespace.to_owned(),
            event: event.to_owned(),
            args,
            ack: id,
        };
        let messages = packet.to_messages();
        check_size(&messages, max_payload)?;
        ns.outbox.push_back(Outgoing {
            order: self.next_order,
            messages,
            ack: id,
            generation: None,
        });
        self.next_order += 1;
        if let (Some(id), Some(reply)) = (id, reply) {
            ns.next_ack = ns.next_ack.wrapping_add(1);
            ns.pending.insert(id, PendingAck { reply, sent: false });
        }
        Ok(id)
    }

    /// Queues an event in the namespace's retry queue: it is sent when the emits before it are
    /// done, and again (up to `retries` times) when no acknowledgement comes within `timeout`.
    #[allow(clippy::too_many_arguments)]
    pub fn queue_retried(
        &mut self,
        limit: usize,
        namespace: &str,
        event: &str,
        args: Args,
        reply: Option<AckReply>,
        timeout: Duration,
        retries: u32,
    ) -> Result<(), ClientError> {
        let max_payload = self.max_payload;
        let ns = Self::emitting_namespace(&mut self.namespaces, namespace, event)?;
        if ns.retry.len() >= limit {
            return Err(ClientError::BufferFull { limit });
        }
        let packet = Packet::Event {
            namespace: namespace.to_owned(),
            event: event.to_owned(),
            args,
            ack: Some(ns.next_ack),
        };
        check_size(&packet.to_messages(), max_payload)?;
        let Packet::Event { args, .. } = packet else {
            return Ok(());
        };
        ns.retry
            .push(event.to_owned(), args, reply, timeout, retries);
        Ok(())
    }

    /// Fails the attempts of retried emits whose time is up at `now`; they go again at the
    /// next flush if they have retries left.
    pub fn expire_retries(&mut self, now: Instant) {
        for ns in self.namespaces.values_mut() {
            ns.retry.expire(now);
        }
    }

    /// Queues a volatile event: only when the namespace is connected and nothing is waiting
    /// to be written, as socket.io-client drops volatile packets the transport cannot take
    /// now; returns whether it was queued.
    pub fn queue_volatile(
        &mut self,
        namespace: &str,
        event: &str,
        args: Args,
    ) -> Result<bool, ClientError> {
        if RESERVED_EVENTS.contains(&event) {
            return Err(ClientError::ReservedEvent(event.to_owned()));
        }
        let (open, generation, max_payload) = (self.open, self.generation, self.max_payload);
        let ns = self
            .namespaces
            .get_mut(namespace)
            .filter(|ns| ns.status != Status::Leaving)
            .ok_or(ClientError::Closed)?;
        if !open || !matches!(ns.status, Status::Connected { .. }) || !ns.outbox.is_empty() {
            return Ok(false);
        }
        let packet = Packet::Event {
            namespace: namespace.to_owned(),
            event: event.to_owned(),
            args,
            ack: None,
        };
        let messages = packet.to_messages();
        check_size(&messages, max_payload)?;
        ns.outbox.push_back(Outgoing {
            order: self.next_order,
            messages,
            ack: None,
            generation: Some(generation),
        });
        self.next_order += 1;
        Ok(true)
    }

    /// Forgets the acknowledgement `id` of `namespace` (its wait timed out).
    pub fn forget_ack(&mut self, namespace: &str, id: u64) {
        if let Some(ns) = self.namespaces.get_mut(namespace) {
            ns.pending.remove(&id);
        }
    }

    /// Queues the answer to the server's event `id`, if the connection it came on is the
    /// current one and the namespace is still connected.
    pub fn queue_ack(
        &mut self,
        namespace: &str,
        id: u64,
        generation: u64,
        args: Args,
    ) -> Result<(), ClientError> {
        let max_payload = self.max_payload;
        let current = self.generation == generation && self.open;
        let ns = self
            .namespaces
            .get_mut(namespace)
            .filter(|ns| current && matches!(ns.status, Status::Connected { .. }))
            .ok_or(ClientError::Disconnected)?;
        let packet = Packet::Ack {
            namespace: namespace.to_owned(),
            id,
            args,
        };
        let messages = packet.to_messages();
        check_size(&messages, max_payload)?;
        ns.outbox.push_back(Outgoing {
            order: self.next_order,
            messages,
            ack: None,
            generation: Some(generation),
        });
        self.next_order += 1;
        Ok(())
    }

    /// The user disconnects `namespace`.
    pub fn disconnect(&mut self, namespace: &str) -> Vec<Deferred> {
        let mut deferred = Vec::new();
        let Some(ns) = self.namespaces.get_mut(namespace) else {
            return deferred;
        };
        let server_knows = match &ns.status {
            Status::Connected { .. } => {
                deferred.extend(ns.disconnect_callback(&DisconnectReason::IoClientDisconnect));
                true
            }
            Status::Connecting { sent } => *sent == Some(self.generation),
            Status::Leaving => return deferred,
        };
        if let Some(waiter) = ns.waiter.take() {
            let _ = waiter.send(Err(ClientError::Closed));
        }
        match server_knows && self.open {
            true => ns.status = Status::Leaving,
            false => self.remove(namespace, &ClientError::Closed),
        }
        deferred
    }

    /// An Engine.IO connection is open: namespaces will (re)connect over it.
    pub fn on_open(&mut self, info: &OpenInfo, transport: Transport) {
        self.generation += 1;
        self.open = true;
        self.transport = Some(transport);
        self.max_payload = usize::try_from(info.max_payload).unwrap_or(usize::MAX);
    }

    /// The connection moved from long-polling to WebSocket (the session is the same one).
    pub fn on_upgrade(&mut self) -> Vec<Deferred> {
        self.transport = Some(Transport::WebSocket);
        let handler = self.manager.upgrade.clone();
        handler
            .map(|handler| Box::new(move || handler()) as Deferred)
            .into_iter()
            .collect()
    }

    /// Collects what to write: `CONNECT`s, buffered emits of connected namespaces in the order
    /// they were made, and the `DISCONNECT`s of namespaces the user left.
    pub fn flush(&mut self) -> Flush {
        let generation = self.generation;
        let mut next_order = self.next_order;
        let mut messages = Vec::new();
        let mut queued = Vec::new();
        let mut leaving = Vec::new();
        for (name, ns) in &mut self.namespaces {
            match &mut ns.status {
                Status::Connecting { sent } => {
                    if *sent != Some(generation) {
                        *sent = Some(generation);
                        let data = match &ns.handlers.auth {
                            Some(auth) => match auth() {
                                Value::Object(map) => Some(map),
                                _ => None,
                            },
                            None => ns.auth.clone(),
                        };
                        let connect = Packet::Connect {
                            namespace: name.clone(),
                            data,
                        };
                        messages.extend(connect.to_messages());
                    }
                }
                Status::Connected { .. } => {
                    let now = Instant::now();
                    if let Some(attempt) = ns.retry.poll_attempt(&mut ns.next_ack, now) {
                        let packet = Packet::Event {
                            namespace: name.clone(),
                            event: attempt.event,
                            args: attempt.args,
                            ack: Some(attempt.id),
                        };
                        ns.outbox.push_back(Outgoing {
                            order: next_order,
                            messages: packet.to_messages(),
                            ack: None,
                            generation: Some(generation),
                        });
                        next_order += 1;
                    }
                    drain(ns, generation, &mut queued);
                }
                Status::Leaving => {
                    drain(ns, generation, &mut queued);
                    let disconnect = Packet::Disconnect {
                        namespace: name.clone(),
                    };
                    queued.push((u64::MAX, disconnect.to_messages()));
                    leaving.push(name.clone());
                }
            }
        }
        self.next_order = next_order;
        for name in leaving {
            self.remove(&name, &ClientError::Closed);
        }
        let retry_deadline = self
            .namespaces
            .values()
            .filter_map(|ns| ns.retry.deadline())
            .min();
        queued.sort_by_key(|(order, _)| *order);
        messages.extend(queued.into_iter().flat_map(|(_, messages)| messages));
        Flush {
            messages,
            close: self.ended,
            retry_deadline,
        }
    }

    /// Applies a packet from the server. Fails when the server sent a namespace more before
    /// answering its `CONNECT` than `settings` let it hold: the connection is then dropped.
    pub fn receive(
        &mut self,
        packet: Packet,
        shared: &Weak<Shared>,
        settings: &Settings,
    ) -> Result<Vec<Deferred>, DisconnectReason> {
        let mut deferred: Vec<Deferred> = Vec::new();
        let name = packet.namespace().to_owned();
        let generation = self.generation;
        let Some(ns) = self.namespaces.get_mut(&name) else {
            return Ok(deferred);
        };
        match packet {
            Packet::Connect { data, .. } => {
                if !matches!(ns.status, Status::Connecting { .. }) {
                    return Ok(deferred);
                }
                let sid = data
                    .as_ref()
                    .and_then(|data| data.get("sid"))
                    .and_then(Value::as_str)
                    .filter(|sid| !sid.is_empty());
                // socket.io-client takes a reply without a session id as a connect error: the
                // server speaks another protocol version (Socket.IO v2 sends a bare `0`).
                let Some(sid) = sid else {
                    let error = ClientError::InvalidConnect {
                        namespace: name.clone(),
                    };
                    deferred.extend(ns.connect_error_callback(&error));
                    self.remove(&name, &error);
                    return Ok(deferred);
                };
                ns.status = Status::Connected {
                    sid: sid.to_owned(),
                };
                if let Some(waiter) = ns.waiter.take() {
                    let _ = waiter.send(Ok(()));
                }
                // socket.io-client hands out the events that came early, then says connected.
                for early in ns.take_early() {
                    deferred.extend(ns.event_handler(early, shared, &name, generation));
                }
                if let Some(handler) = ns.handlers.connect.clone() {
                    deferred.push(Box::new(move || handler()));
                }
            }
            Packet::ConnectError { message, data, .. } => {
                if !matches!(ns.status, Status::Connecting { .. }) {
                    return Ok(deferred);
                }
                let error = ClientError::ConnectRefused {
                    namespace: name.clone(),
                    message,
                    data,
                };
                deferred.extend(ns.connect_error_callback(&error));
                self.remove(&name, &error);
            }
            Packet::Disconnect { .. } => {
                if ns.status == Status::Leaving {
                    return Ok(deferred);
                }
                deferred.extend(ns.disconnect_callback(&DisconnectReason::IoServerDisconnect));
                self.remove(&name, &ClientError::Closed);
            }
            Packet::Event {
                event, args, ack, ..
            } => {
                let event = ReceivedEvent { event, args, ack };
                match ns.status {
                    Status::Connected { .. } => {
                        deferred.extend(ns.event_handler(event, shared, &name, generation));
                    }
                    Status::Connecting { .. } => ns.hold_early(event, settings, &name)?,
                    Status::Leaving => {}
                }
            }
            Packet::Ack { id, args, .. } => {
                let Some(args) = ns.retry.acknowledge(id, args) else {
                    return Ok(deferred);
                };
                if let Some(pending) = ns.pending.remove(&id) {
                    let _ = pending.reply.send(Ok(args));
                }
            }
        }
        Ok(deferred)
    }

    /// The connection is gone. With `reconnect`, namespaces wait to connect again (their
    /// sent emits' acks fail, the buffered ones stay); without, they all end.
    pub fn on_lost(&mut self, reason: &DisconnectReason, reconnect: bool) -> Vec<Deferred> {
        self.open = false;
        let mut deferred = Vec::new();
        let names: Vec<String> = self.namespaces.keys().cloned().collect();
        for name in names {
            let Some(ns) = self.namespaces.get_mut(&name) else {
                continue;
            };
            if matches!(ns.status, Status::Connected { .. }) {
                deferred.extend(ns.disconnect_callback(reason));
            }
            match (&ns.status, reconnect) {
                (Status::Connected { .. } | Status::Connecting { .. }, true) => {
                    ns.status = Status::Connecting { sent: None };
                    ns.take_early();
                    ns.fail_pending(true, &ClientError::Disconnected);
                    ns.retry.on_lost();
                }
                _ => self.remove(&name, &ClientError::Closed),
            }
        }
        deferred
    }

    /// A reconnection attempt failed: namespaces waiting to connect hear about it.
    pub fn on_attempt_failed(&self, error: &ClientError) -> Vec<Deferred> {
        self.namespaces
            .values()
            .filter_map(|ns| ns.connect_error_callback(error))
            .collect()
    }

    /// The reconnection attempts ran out: every namespace ends.
    pub fn give_up(&mut self) -> Vec<Deferred> {
        let names: Vec<String> = self.namespaces.keys().cloned().collect();
        for name in names {
            self.remove(&name, &ClientError::Closed);
        }
        let handler = self.manager.reconnect_failed.clone();
        handler
            .map(|handler| Box::new(move || handler()) as Deferred)
            .into_iter()
            .collect()
    }

    /// The callback for a successful reconnection.
    pub fn reconnected(&self, attempt: u32) -> Option<Deferred> {
        let handler = self.manager.reconnect.clone()?;
        Some(Box::new(move || handler(attempt)))
    }

    /// Removes a namespace, failing what waits on it; the client ends with the last one.
    fn remove(&mut self, name: &str, error: &ClientError) {
        if let Some(ns) = self.namespaces.remove(name) {
            ns.close(error);
        }
        self.ended = self.namespaces.is_empty();
    }
}

/// Moves the namespace's buffered messages to `out` with their order, dropping ack replies of
/// an older connection and marking the acks asked for as sent.
fn drain(ns: &mut Namespace, generation: u64, out: &mut Vec<(u64, Vec<Message>)>) {
    for outgoing in ns.outbox.drain(..) {
        if outgoing.generation.is_some_and(|made| made != generation) {
            continue;
        }
        if let Some(pending) = outgoing.ack.and_then(|id| ns.pending.get_mut(&id)) {
            pending.sent = true;
        }
        out.push((outgoing.order, outgoing.messages));
    }
}

/// Fails when one of the messages exceeds the server's `maxPayload`.
fn check_size(messages: &[Message], limit: usize) -> Result<(), ClientError> {
    match messages.iter().map(Message::len).max() {
        Some(size) if size > limit => Err(ClientError::TooLarge { size, limit }),
        _ => Ok(()),
    }
}
