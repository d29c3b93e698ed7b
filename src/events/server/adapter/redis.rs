//! [`RedisAdapter`]: the nodes of a cluster share rooms, broadcasts and requests over Redis
//! pub/sub, in the format of Node's `@socket.io/redis-adapter` (8.x), so wsio and Node nodes
//! can serve one cluster.
//!
//! Per namespace `nsp` (with the default key `socket.io`):
//!
//! - broadcasts are published on `socket.io#<nsp>#`, or `socket.io#<nsp>#<room>#` when they go
//!   to exactly one room, as msgpack `[uid, packet, {rooms, except, flags}]`, where `packet`
//!   is socket.io's `{type: 2, data: [event, ...args], nsp}` with binary data as msgpack bin;
//!   every node subscribes to the pattern `socket.io#<nsp>#*`;
//! - requests go to `socket.io-request#<nsp>#` as JSON (msgpack when they carry binary data)
//!   `{uid, requestId, type, ...}`, `type` being the adapter's numeric request kinds; answers
//!   come back on `socket.io-response#<nsp>#` (a node also listens on
//!   `socket.io-response#<nsp>#<uid>#`);
//! - the number of nodes is `PUBSUB NUMSUB socket.io-request#<nsp>#`.
//!
//! Faults: publishing goes through a bounded queue to one task; when Redis cannot be reached
//! the messages meant for other nodes are dropped and counted ([`RedisStats::dropped`]), never
//! buffered without bound, while local delivery goes on. The subscriber reconnects with
//! exponential backoff and subscribes again. Requests end at their timeout with the answers
//! that came. A message that does not parse is counted ([`RedisStats::malformed`]) and
//! skipped.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use futures_core::Stream;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use rmpv::Value as Pack;
use serde_json::{Map, Value, json};
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::Instant;

use super::{
    Adapter, BoxFuture, ClusterAdapter, NamespaceHandle, NodeAdapter, RemoteAck, RemoteAcks,
    SocketInfo, Target, local,
};
use crate::events::Args;
use crate::events::server::lock;
use crate::events::server::namespace::{BroadcastAckError, ServerAck};
use crate::proto::Rng;

// The request kinds of @socket.io/redis-adapter, by number.
const SOCKETS: u64 = 0;
const ALL_ROOMS: u64 = 1;
const REMOTE_JOIN: u64 = 2;
const REMOTE_LEAVE: u64 = 3;
const REMOTE_DISCONNECT: u64 = 4;
const REMOTE_FETCH: u64 = 5;
const SERVER_SIDE_EMIT: u64 = 6;
const BROADCAST: u64 = 7;
const BROADCAST_CLIENT_COUNT: u64 = 8;
const BROADCAST_ACK: u64 = 9;

/// socket.io's packet type of an event.
const EVENT: u64 = 2;
/// socket.io's packet type of an event with binary data.
const BINARY_EVENT: u64 = 5;
/// How deep a msgpack message may nest before it is refused.
const MAX_DEPTH: usize = 64;
/// The first delay between reconnection attempts; it doubles up to the configured maximum.
const MIN_DELAY: Duration = Duration::from_millis(50);

/// Settings of a [`RedisAdapter`]. Start from `RedisAdapterConfig::default()`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RedisAdapterConfig {
    /// The prefix of every channel (the Node adapter's `key`). Default `socket.io`.
    pub key: String,
    /// How long a request to other nodes waits for their answers (`requestsTimeout`).
    /// Default 5 s.
    pub requests_timeout: Duration,
    /// How many messages may wait to be published; past that they are dropped and counted.
    /// Default 4096.
    pub publish_queue: usize,
    /// The longest wait between two reconnection attempts. Default 5 s.
    pub max_reconnect_delay: Duration,
    /// How long connecting to Redis, and each command, may take. Default 2 s.
    pub command_timeout: Duration,
}

impl Default for RedisAdapterConfig {
    fn default() -> Self {
        Self {
            key: "socket.io".into(),
            requests_timeout: Duration::from_secs(5),
            publish_queue: 4096,
            max_reconnect_delay: Duration::from_secs(5),
            command_timeout: Duration::from_secs(2),
        }
    }
}

/// Why a [`RedisAdapter`] could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisAdapterError {
    /// The Redis URL is not one the client understands.
    #[error("invalid redis url: {0}")]
    Url(String),
}

/// Counters of a [`RedisAdapter`], since it was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisStats {
    /// Messages published to Redis.
    pub published: u64,
    /// Messages for other nodes dropped: Redis unreachable, or the publish queue full.
    pub dropped: u64,
    /// Messages received that did not parse, skipped.
    pub malformed: u64,
    /// Times the subscriber connection was lost and made again.
    pub reconnects: u64,
}

/// A cluster adapter over Redis pub/sub, wire-compatible with Node's
/// `@socket.io/redis-adapter` 8.x: a cheap handle, clone it freely. Put it in
/// [`Config::adapter`](crate::events::Config::adapter) with `.into()`.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use wsio::events::{Config, RedisAdapter, Server};
///
/// let mut config = Config::default();
/// config.adapter = RedisAdapter::connect("redis://127.0.0.1:6379/").await?.into();
/// let server = Server::new(config);
/// # let _ = server; Ok(()) }
/// ```
///
/// It connects in the background: a server starts while Redis is down, delivering locally.
/// [`ready`](Self::ready) waits until its subscriptions are in place.
#[derive(Clone)]
pub struct RedisAdapter {
    shared: Arc<Shared>,
}

struct Shared {
    /// This node's id in messages (`uid`), to skip its own.
    uid: String,
    config: RedisAdapterConfig,
    client: redis::Client,
    publish: mpsc::Sender<(String, Vec<u8>)>,
    /// The connection for publishing and `PUBSUB NUMSUB`, once made (it reconnects itself).
    manager: tokio::sync::Mutex<Connector>,
    namespaces: Mutex<Vec<Weak<RedisNamespace>>>,
    /// Requests waiting for answers, by request id.
    pending: Mutex<HashMap<String, mpsc::UnboundedSender<Reply>>>,
    /// Wakes the subscriber when a namespace is added.
    resync: Arc<Notify>,
    /// Bumped by each namespace added; the subscriber compares.
    wanted: AtomicU64,
    state: watch::Sender<SubscriberState>,
    rng: Mutex<Rng>,
    published: AtomicU64,
    dropped: AtomicU64,
    malformed: AtomicU64,
    reconnects: AtomicU64,
}

#[derive(Default)]
struct Connector {
    manager: Option<ConnectionManager>,
    next_attempt: Option<Instant>,
    delay: Duration,
}

#[derive(Debug, Clone, Copy, Default)]
struct SubscriberState {
    /// Bumped each time the subscriptions are complete after a (re)connection or a change.
    generation: u64,
    subscribed: bool,
}

/// An answer to a request: its JSON and the binary data its placeholders point at.
type Reply = (Value, Vec<Bytes>);

impl RedisAdapter {
    /// An adapter on the Redis at `url` (`redis://host:port/`), with default settings.
    pub async fn connect(url: &str) -> Result<Self, RedisAdapterError> {
        Self::connect_with(url, RedisAdapterConfig::default()).await
    }

    /// An adapter on the Redis at `url` with `config`. Only a bad URL fails: the connections
    /// are made (and made again) in the background.
    pub async fn connect_with(
        url: &str,
        config: RedisAdapterConfig,
    ) -> Result<Self, RedisAdapterError> {
        let client =
            redis::Client::open(url).map_err(|error| RedisAdapterError::Url(error.to_string()))?;
        let (publish, queue) = mpsc::channel(config.publish_queue.max(1));
        let mut rng = Rng::from_os();
        let uid = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&rng.nonce()[..6]);
        let shared = Arc::new(Shared {
            uid,
            config,
            client,
            publish,
            manager: tokio::sync::Mutex::default(),
            namespaces: Mutex::default(),
            pending: Mutex::default(),
            resync: Arc::new(Notify::new()),
            wanted: AtomicU64::new(0),
            state: watch::Sender::new(SubscriberState::default()),
            rng: Mutex::new(rng),
            published: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            malformed: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
        });
        tokio::spawn(publisher(Arc::downgrade(&shared), queue));
        let connecting = Arc::downgrade(&shared);
        tokio::spawn(async move {
            if let Some(shared) = connecting.upgrade() {
                shared.manager().await;
            }
        });
        tokio::spawn(subscriber(
            Arc::downgrade(&shared),
            Arc::clone(&shared.resync),
        ));
        Ok(Self { shared })
    }

    /// This node's id in the messages it publishes.
    pub fn uid(&self) -> &str {
        &self.shared.uid
    }

    /// The counters: published, dropped, malformed, reconnects.
    pub fn stats(&self) -> RedisStats {
        let shared = &self.shared;
        RedisStats {
            published: shared.published.load(Ordering::Relaxed),
            dropped: shared.dropped.load(Ordering::Relaxed),
            malformed: shared.malformed.load(Ordering::Relaxed),
            reconnects: shared.reconnects.load(Ordering::Relaxed),
        }
    }

    /// How many times the subscriptions were completed so far: it grows after each
    /// reconnection (and each namespace added).
    pub fn generation(&self) -> u64 {
        self.shared.state.borrow().generation
    }

    /// Waits until every namespace's channels are subscribed on a live connection; returns
    /// the [`generation`](Self::generation).
    pub async fn ready(&self) -> u64 {
        self.ready_after(0).await
    }

    /// Waits until the subscriptions are in place at a generation above `generation` (after a
    /// reconnection, for instance); returns it.
    pub async fn ready_after(&self, generation: u64) -> u64 {
        let mut state = self.shared.state.subscribe();
        let reached = state
            .wait_for(|state| state.subscribed && state.generation > generation)
            .await
            .map(|state| state.generation);
        reached.unwrap_or(generation)
    }
}

impl fmt::Debug for RedisAdapter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisAdapter")
            .field("uid", &self.shared.uid)
            .field("key", &self.shared.config.key)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl From<RedisAdapter> for Adapter {
    fn from(adapter: RedisAdapter) -> Self {
        Adapter::cluster(Arc::new(adapter))
    }
}

impl ClusterAdapter for RedisAdapter {
    fn attach(&self, namespace: NamespaceHandle) -> Arc<dyn NodeAdapter> {
        let key = &self.shared.config.key;
        let name = namespace.name().to_owned();
        let response_channel = format!("{key}-response#{name}#");
        let node = Arc::new(RedisNamespace {
            shared: Arc::clone(&self.shared),
            channel: format!("{key}#{name}#"),
            request_channel: format!("{key}-request#{name}#"),
            specific_channel: format!("{response_channel}{}#", self.shared.uid),
            response_channel,
            handle: namespace,
            name,
        });
        lock(&self.shared.namespaces).push(Arc::downgrade(&node));
        self.shared.wanted.fetch_add(1, Ordering::AcqRel);
        self.shared
            .state
            .send_modify(|state| state.subscribed = false);
        self.shared.resync.notify_one();
        Arc::new(RedisNode(node))
    }
}

impl Shared {
    /// Queues `payload` for `channel`; counts it dropped when the queue is full.
    fn publish(&self, channel: String, payload: Vec<u8>) -> bool {
        match self.publish.try_send((channel, payload)) {
            Ok(()) => true,
            Err(_) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    fn request_id(&self) -> String {
        let nonce = lock(&self.rng).nonce();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&nonce[..9])
    }

    fn namespaces(&self) -> Vec<Arc<RedisNamespace>> {
        let mut namespaces = lock(&self.namespaces);
        namespaces.retain(|namespace| namespace.strong_count() > 0);
        namespaces.iter().filter_map(Weak::upgrade).collect()
    }

    /// The publishing connection, made now if it is time to try again (callers meanwhile
    /// wait for the attempt, at most the command timeout).
    async fn manager(&self) -> Option<ConnectionManager> {
        let mut connector = self.manager.lock().await;
        if let Some(manager) = &connector.manager {
            return Some(manager.clone());
        }
        let now = Instant::now();
        if connector.next_attempt.is_some_and(|next| now < next) {
            return None;
        }
        connector.delay =
            (connector.delay * 2).clamp(MIN_DELAY, self.config.max_reconnect_delay.max(MIN_DELAY));
        connector.next_attempt = Some(now + connector.delay);
        let timeout = self.config.command_timeout;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(self.config.max_reconnect_delay);
        let made = tokio::time::timeout(
            timeout,
            ConnectionManager::new_with_config(self.client.clone(), config),
        )
        .await;
        let manager = made.ok()?.ok()?;
        connector.delay = Duration::ZERO;
        connector.next_attempt = None;
        Some(connector.manager.get_or_insert(manager).clone())
    }

    /// Routes a message from the subscriber connection.
    fn dispatch(&self, channel: &str, payload: &[u8]) {
        let namespaces = self.namespaces();
        let handled = if let Some(namespace) = namespaces
            .iter()
            .find(|namespace| channel == namespace.request_channel)
        {
            namespace.on_request(payload)
        } else if namespaces.iter().any(|namespace| {
            channel == namespace.response_channel || channel == namespace.specific_channel
        }) {
            parse(payload).map(|reply| self.on_response(reply))
        } else {
            // A broadcast: the namespace whose channel is the longest prefix ("/a#b" over "/a").
            namespaces
                .iter()
                .filter(|namespace| channel.starts_with(&namespace.channel))
                .max_by_key(|namespace| namespace.channel.len())
                .map_or(Some(()), |namespace| {
                    namespace.on_broadcast(channel, payload)
                })
        };
        if handled.is_none() {
            self.malformed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Hands an answer to the request waiting for it, if any.
    fn on_response(&self, reply: Reply) {
        let Some(id) = reply.0.get("requestId").and_then(Value::as_str) else {
            return;
        };
        if let Some(waiting) = lock(&self.pending).get(id) {
            let _ = waiting.send(reply);
        }
    }

    /// Registers request `id`; its answers arrive on the receiver until the guard drops.
    fn wait_for(self: &Arc<Self>, id: &str) -> (mpsc::UnboundedReceiver<Reply>, Pending) {
        let (sender, receiver) = mpsc::unbounded_channel();
        lock(&self.pending).insert(id.to_owned(), sender);
        let pending = Pending {
            shared: Arc::clone(self),
            id: id.to_owned(),
        };
        (receiver, pending)
    }

    /// `PUBSUB NUMSUB channel`: the nodes subscribed to it; `1` (this node) when Redis
    /// cannot be asked.
    async fn numsub(&self, channel: &str) -> usize {
        let Some(mut manager) = self.manager().await else {
            return 1;
        };
        let mut command = redis::cmd("PUBSUB");
        command.arg("NUMSUB").arg(channel);
        let asked = tokio::time::timeout(
            self.config.command_timeout,
            command.query_async::<(String, usize)>(&mut manager),
        )
        .await;
        match asked {
            Ok(Ok((_, count))) => count,
            _ => 1,
        }
    }
}

/// Forgets a request when its waiter is done.
struct Pending {
    shared: Arc<Shared>,
    id: String,
}

impl Drop for Pending {
    fn drop(&mut self) {
        lock(&self.shared.pending).remove(&self.id);
    }
}

/// Publishes queued messages one after the other; a message that cannot be published is
/// dropped and counted.
async fn publisher(shared: Weak<Shared>, mut queue: mpsc::Receiver<(String, Vec<u8>)>) {
    while let Some((channel, payload)) = queue.recv().await {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let published = match shared.manager().await {
            Some(mut manager) => {
                let mut command = redis::cmd("PUBLISH");
                command.arg(&channel).arg(payload);
                let sent = tokio::time::timeout(
                    shared.config.command_timeout,
                    command.query_async::<i64>(&mut manager),
                )
                .await;
                matches!(sent, Ok(Ok(_)))
            }
            None => false,
        };
        let counter = match published {
            true => &shared.published,
            false => &shared.dropped,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Keeps a subscriber connection with every namespace's channels, reconnecting with
/// exponential backoff, and routes what arrives.
async fn subscriber(weak: Weak<Shared>, resync: Arc<Notify>) {
    let mut delay = MIN_DELAY;
    loop {
        let Some(shared) = weak.upgrade() else {
            return;
        };
        let client = shared.client.clone();
        let (timeout, max_delay) = (
            shared.config.command_timeout,
            shared.config.max_reconnect_delay.max(MIN_DELAY),
        );
        drop(shared);
        let connected = tokio::time::timeout(timeout, client.get_async_pubsub()).await;
        let Ok(Ok(pubsub)) = connected else {
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(max_delay);
            continue;
        };
        let (mut sink, mut stream) = pubsub.split();
        let mut subscribed: HashSet<String> = HashSet::new();
        'connection: loop {
            let Some(shared) = weak.upgrade() else {
                return;
            };
            let wanted = shared.wanted.load(Ordering::Acquire);
            for namespace in shared.namespaces() {
                if subscribed.contains(&namespace.name) {
                    continue;
                }
                let pattern = format!("{}*", namespace.channel);
                let channels = [
                    namespace.request_channel.clone(),
                    namespace.response_channel.clone(),
                    namespace.specific_channel.clone(),
                ];
                let done = async {
                    sink.psubscribe(&pattern).await?;
                    sink.subscribe(&channels).await
                };
                match tokio::time::timeout(timeout, done).await {
                    Ok(Ok(())) => {
                        subscribed.insert(namespace.name.clone());
                    }
                    _ => break 'connection,
                }
            }
            if shared.wanted.load(Ordering::Acquire) != wanted {
                continue;
            }
            delay = MIN_DELAY;
            shared.state.send_modify(|state| {
                if !state.subscribed {
                    state.subscribed = true;
                    state.generation += 1;
                }
            });
            drop(shared);
            let notified = resync.notified();
            tokio::select! {
                () = notified => continue 'connection,
                message = next(&mut stream) => {
                    let Some(message) = message else {
                        break 'connection;
                    };
                    let Some(shared) = weak.upgrade() else {
                        return;
                    };
                    shared.dispatch(message.get_channel_name(), message.get_payload_bytes());
                }
            }
        }
        let Some(shared) = weak.upgrade() else {
            return;
        };
        shared.state.send_modify(|state| state.subscribed = false);
        shared.reconnects.fetch_add(1, Ordering::Relaxed);
        drop(shared);
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(max_delay);
    }
}

async fn next<S: Stream + Unpin>(stream: &mut S) -> Option<S::Item> {
    std::future::poll_fn(|cx| Pin::new(&mut *stream).poll_next(cx)).await
}

/// One namespace's channels.
struct RedisNamespace {
    shared: Arc<Shared>,
    handle: NamespaceHandle,
    name: String,
    channel: String,
    request_channel: String,
    response_channel: String,
    specific_channel: String,
}

/// The namespace's adapter: a handle the namespace keeps.
struct RedisNode(Arc<RedisNamespace>);

impl RedisNamespace {
    fn uid(&self) -> &str {
        &self.shared.uid
    }

    /// The socket.io packet of an event, as the Node adapter publishes it.
    fn packet(&self, event: &str, args: &Args) -> Pack {
        let mut data = vec![Pack::from(event)];
        data.extend(
            args.values()
                .iter()
                .map(|value| to_pack(value, args.attachments())),
        );
        Pack::Map(vec![
            (Pack::from("type"), Pack::from(EVENT)),
            (Pack::from("data"), Pack::Array(data)),
            (Pack::from("nsp"), Pack::from(self.name.as_str())),
        ])
    }

    /// A request to the other nodes, as JSON.
    fn request(&self, kind: u64, fields: Value) -> Vec<u8> {
        let mut request = json!({ "uid": self.uid(), "type": kind });
        if let (Some(request), Value::Object(fields)) = (request.as_object_mut(), fields) {
            request.extend(fields);
        }
        request.to_string().into_bytes()
    }

    fn respond(&self, response: Vec<u8>) {
        self.shared.publish(self.response_channel.clone(), response);
    }

    /// A broadcast from another node: delivered to this node's recipients.
    fn on_broadcast(&self, channel: &str, payload: &[u8]) -> Option<()> {
        let room = channel
            .strip_prefix(&self.channel)
            .and_then(|room| room.strip_suffix('#'))
            .unwrap_or_default();
        let namespace = self.handle.get()?;
        if !room.is_empty() && !local::has_room(&namespace, room) {
            return Some(());
        }
        let Pack::Array(items) = decode(payload)? else {
            return None;
        };
        let [uid, packet, options] = <[Pack; 3]>::try_from(items).ok()?;
        if uid.as_str() == Some(self.uid()) {
            return Some(());
        }
        let (event, args, nsp) = event_of(packet)?;
        if nsp != self.name {
            return Some(());
        }
        let options = pack_to_json(options, &mut Vec::new())?;
        let target = target_of(&options);
        local::broadcast(&namespace, &event, args, &target);
        Some(())
    }

    /// A request from another node (or from this one, which is skipped).
    fn on_request(&self, payload: &[u8]) -> Option<()> {
        let (request, attachments) = parse(payload)?;
        if request.get("uid").and_then(Value::as_str) == Some(self.uid()) {
            return Some(());
        }
        let namespace = self.handle.get()?;
        let kind = request.get("type").and_then(Value::as_u64)?;
        let request_id = request.get("requestId").cloned();
        match kind {
            SOCKETS => {
                let target = Target {
                    rooms: strings(request.get("rooms")),
                    ..Target::default()
                };
                let ids: Vec<String> = local::sockets(&namespace, &target)
                    .iter()
                    .map(|socket| socket.id().to_owned())
                    .collect();
                let response = json!({ "requestId": request_id, "sockets": ids });
                self.respond(response.to_string().into_bytes());
            }
            ALL_ROOMS => {
                let rooms = lock(&namespace.rooms).all();
                let response = json!({ "requestId": request_id, "rooms": rooms });
                self.respond(response.to_string().into_bytes());
            }
            REMOTE_JOIN | REMOTE_LEAVE | REMOTE_DISCONNECT => {
                let target = match request.get("opts") {
                    Some(options) => target_of(options),
                    // The older form names one socket.
                    None => Target {
                        rooms: vec![request.get("sid")?.as_str()?.to_owned()],
                        ..Target::default()
                    },
                };
                let mut rooms = strings(request.get("rooms"));
                if let Some(room) = request.get("room").and_then(Value::as_str) {
                    rooms.push(room.to_owned());
                }
                match kind {
                    REMOTE_JOIN => local::add_sockets(&namespace, &target, &rooms),
                    REMOTE_LEAVE => local::del_sockets(&namespace, &target, &rooms),
                    _ => {
                        let close = request.get("close").and_then(Value::as_bool);
                        local::disconnect_sockets(&namespace, &target, close.unwrap_or(false));
                    }
                }
                if request.get("opts").is_none() {
                    let response = json!({ "requestId": request_id });
                    self.respond(response.to_string().into_bytes());
                }
            }
            REMOTE_FETCH => {
                let target = target_of(request.get("opts")?);
                let sockets: Vec<Value> = local::fetch_sockets(&namespace, &target)
                    .into_iter()
                    .map(|info| {
                        json!({
                            "id": info.id,
                            "handshake": info.handshake,
                            "rooms": info.rooms,
                            "data": info.data,
                        })
                    })
                    .collect();
                let response = json!({ "requestId": request_id, "sockets": sockets });
                self.respond(response.to_string().into_bytes());
            }
            SERVER_SIDE_EMIT => {
                let Value::Array(mut data) = request.get("data")?.clone() else {
                    return None;
                };
                if data.is_empty() {
                    return None;
                }
                let Value::String(event) = data.remove(0) else {
                    return None;
                };
                let args = Args::from_parts(data, attachments).ok()?;
                let ack = request_id.map(|request_id| {
                    let shared = Arc::clone(&self.shared);
                    let channel = self.response_channel.clone();
                    ServerAck::new(move |value| {
                        let response = json!({
                            "type": SERVER_SIDE_EMIT,
                            "requestId": request_id,
                            "data": value,
                        });
                        shared.publish(channel, response.to_string().into_bytes());
                    })
                });
                namespace.server_event(&event, args, ack);
            }
            BROADCAST => {
                let request_id = request_id?;
                let (event, args) = event_of_json(request.get("packet")?, attachments)?;
                let options = request.get("opts")?;
                let target = target_of(options);
                let waiting = local::broadcast_with_ack(&namespace, &event, args, &target);
                let response = json!({
                    "type": BROADCAST_CLIENT_COUNT,
                    "requestId": request_id,
                    "clientCount": waiting.len(),
                });
                self.respond(response.to_string().into_bytes());
                let timeout = target
                    .timeout
                    .unwrap_or(self.shared.config.requests_timeout);
                let deadline = Instant::now() + timeout;
                // Each acknowledgement is relayed as it comes, as the Node adapter does.
                for receiver in waiting {
                    let shared = Arc::clone(&self.shared);
                    let channel = self.response_channel.clone();
                    let request_id = json_to_pack(&request_id);
                    tokio::spawn(async move {
                        let Ok(Ok(reply)) = tokio::time::timeout_at(deadline, receiver).await
                        else {
                            return;
                        };
                        let first = reply
                            .values()
                            .first()
                            .map(|value| to_pack(value, reply.attachments()))
                            .unwrap_or(Pack::Nil);
                        let response = Pack::Map(vec![
                            (Pack::from("type"), Pack::from(BROADCAST_ACK)),
                            (Pack::from("requestId"), request_id),
                            (Pack::from("packet"), first),
                        ]);
                        shared.publish(channel, encode(&response));
                    });
                }
            }
            _ => return None,
        }
        Some(())
    }
}

impl NodeAdapter for RedisNode {
    fn broadcast(&self, event: &str, args: &Args, target: &Target) {
        let node = &self.0;
        let message = Pack::Array(vec![
            Pack::from(node.uid()),
            node.packet(event, args),
            options_pack(target),
        ]);
        let channel = match target.rooms.as_slice() {
            [room] => format!("{}{room}#", node.channel),
            _ => node.channel.clone(),
        };
        node.shared.publish(channel, encode(&message));
    }

    fn broadcast_with_ack(&self, event: &str, args: &Args, target: &Target) -> RemoteAcks {
        let node = Arc::clone(&self.0);
        let request_id = node.shared.request_id();
        let request = Pack::Map(vec![
            (Pack::from("uid"), Pack::from(node.uid())),
            (Pack::from("requestId"), Pack::from(request_id.as_str())),
            (Pack::from("type"), Pack::from(BROADCAST)),
            (Pack::from("packet"), node.packet(event, args)),
            (Pack::from("opts"), options_pack(target)),
        ]);
        let (mut replies, pending) = node.shared.wait_for(&request_id);
        node.shared
            .publish(node.request_channel.clone(), encode(&request));
        let (sender, events) = mpsc::unbounded_channel();
        let timeout = target
            .timeout
            .unwrap_or(node.shared.config.requests_timeout);
        let deadline = Instant::now() + timeout;
        tokio::spawn(async move {
            let _pending = pending;
            while let Ok(Some((reply, attachments))) =
                tokio::time::timeout_at(deadline, replies.recv()).await
            {
                let event = match reply.get("type").and_then(Value::as_u64) {
                    Some(BROADCAST_CLIENT_COUNT) => {
                        let count = reply.get("clientCount").and_then(Value::as_u64);
                        RemoteAck::ClientCount(count.unwrap_or(0) as usize)
                    }
                    Some(BROADCAST_ACK) => {
                        let value = reply.get("packet").cloned().unwrap_or(Value::Null);
                        match Args::from_parts(vec![value], attachments) {
                            Ok(args) => RemoteAck::Ack(args),
                            Err(_) => continue,
                        }
                    }
                    _ => continue,
                };
                if sender.send(event).is_err() {
                    return;
                }
            }
        });
        let counting = Arc::clone(&self.0);
        RemoteAcks {
            servers: Box::pin(
                async move { counting.shared.numsub(&counting.request_channel).await },
            ),
            events,
        }
    }

    fn fetch_sockets(&self, target: &Target) -> BoxFuture<Vec<SocketInfo>> {
        let node = Arc::clone(&self.0);
        let options = json!({ "rooms": target.rooms, "except": target.except_all() });
        Box::pin(async move {
            let others = node
                .shared
                .numsub(&node.request_channel)
                .await
                .saturating_sub(1);
            if others == 0 {
                return Vec::new();
            }
            let request_id = node.shared.request_id();
            let (mut replies, _pending) = node.shared.wait_for(&request_id);
            let request = node.request(
                REMOTE_FETCH,
                json!({ "requestId": request_id, "opts": options }),
            );
            node.shared.publish(node.request_channel.clone(), request);
            let deadline = Instant::now() + node.shared.config.requests_timeout;
            let mut sockets = Vec::new();
            for _ in 0..others {
                let Ok(Some((reply, _))) = tokio::time::timeout_at(deadline, replies.recv()).await
                else {
                    break;
                };
                let Some(Value::Array(found)) = reply.get("sockets") else {
                    continue;
                };
                sockets.extend(found.iter().filter_map(|socket| {
                    Some(SocketInfo {
                        id: socket.get("id")?.as_str()?.to_owned(),
                        rooms: strings(socket.get("rooms")),
                        handshake: socket.get("handshake").cloned().unwrap_or(Value::Null),
                        data: socket.get("data").cloned().unwrap_or(Value::Null),
                    })
                }));
            }
            sockets
        })
    }

    fn add_sockets(&self, target: &Target, rooms: &[String]) {
        self.remote_operation(REMOTE_JOIN, target, json!({ "rooms": rooms }));
    }

    fn del_sockets(&self, target: &Target, rooms: &[String]) {
        self.remote_operation(REMOTE_LEAVE, target, json!({ "rooms": rooms }));
    }

    fn disconnect_sockets(&self, target: &Target, close: bool) {
        self.remote_operation(REMOTE_DISCONNECT, target, json!({ "close": close }));
    }

    fn server_side_emit(&self, event: &str, args: &Args) -> bool {
        let node = &self.0;
        let request = server_side_request(node, event, args, None);
        node.shared.publish(node.request_channel.clone(), request)
    }

    fn server_side_emit_with_ack(
        &self,
        event: &str,
        args: &Args,
        timeout: Duration,
    ) -> BoxFuture<Result<Vec<Args>, BroadcastAckError>> {
        let node = Arc::clone(&self.0);
        let request_id = node.shared.request_id();
        let request = server_side_request(&node, event, args, Some(&request_id));
        Box::pin(async move {
            let deadline = Instant::now() + timeout;
            let counted =
                tokio::time::timeout_at(deadline, node.shared.numsub(&node.request_channel));
            let others = counted.await.unwrap_or(1).saturating_sub(1);
            if others == 0 {
                return Ok(Vec::new());
            }
            let (mut replies, _pending) = node.shared.wait_for(&request_id);
            node.shared.publish(node.request_channel.clone(), request);
            let mut answers = Vec::new();
            while answers.len() < others {
                let Ok(Some((reply, attachments))) =
                    tokio::time::timeout_at(deadline, replies.recv()).await
                else {
                    break;
                };
                let value = reply.get("data").cloned().unwrap_or(Value::Null);
                if let Ok(args) = Args::from_parts(vec![value], attachments) {
                    answers.push(args);
                }
            }
            match others.saturating_sub(answers.len()) {
                0 => Ok(answers),
                missing => Err(BroadcastAckError::Missing {
                    replies: answers,
                    missing,
                }),
            }
        })
    }

    fn server_count(&self) -> BoxFuture<usize> {
        let node = Arc::clone(&self.0);
        Box::pin(async move { node.shared.numsub(&node.request_channel).await })
    }

    fn requests_timeout(&self) -> Duration {
        self.0.shared.config.requests_timeout
    }
}

impl RedisNode {
    /// Publishes a join, leave or disconnect for the other nodes' recipients of `target`.
    fn remote_operation(&self, kind: u64, target: &Target, mut fields: Value) {
        let node = &self.0;
        if let Some(fields) = fields.as_object_mut() {
            fields.insert(
                "opts".into(),
                json!({ "rooms": target.rooms, "except": target.except_all() }),
            );
        }
        let request = node.request(kind, fields);
        node.shared.publish(node.request_channel.clone(), request);
    }
}

/// A `serverSideEmit` request: JSON, or msgpack when the arguments carry binary data.
fn server_side_request(
    node: &RedisNamespace,
    event: &str,
    args: &Args,
    request_id: Option<&str>,
) -> Vec<u8> {
    if args.attachments().is_empty() {
        let mut data = vec![Value::from(event)];
        data.extend(args.values().iter().cloned());
        let mut fields = json!({ "data": data });
        if let (Some(fields), Some(id)) = (fields.as_object_mut(), request_id) {
            fields.insert("requestId".into(), Value::from(id));
        }
        return node.request(SERVER_SIDE_EMIT, fields);
    }
    let mut data = vec![Pack::from(event)];
    data.extend(
        args.values()
            .iter()
            .map(|value| to_pack(value, args.attachments())),
    );
    let mut request = vec![
        (Pack::from("uid"), Pack::from(node.uid())),
        (Pack::from("type"), Pack::from(SERVER_SIDE_EMIT)),
        (Pack::from("data"), Pack::Array(data)),
    ];
    if let Some(id) = request_id {
        request.push((Pack::from("requestId"), Pack::from(id)));
    }
    encode(&Pack::Map(request))
}

/// `{rooms, except, flags}` as the Node adapter publishes them.
fn options_pack(target: &Target) -> Pack {
    let strings = |items: &[String]| {
        Pack::Array(items.iter().map(|item| Pack::from(item.as_str())).collect())
    };
    let mut flags = Vec::new();
    if target.volatile {
        flags.push((Pack::from("volatile"), Pack::from(true)));
    }
    if target.uncompressed {
        flags.push((Pack::from("compress"), Pack::from(false)));
    }
    if let Some(timeout) = target.timeout {
        let millis = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        flags.push((Pack::from("timeout"), Pack::from(millis)));
    }
    Pack::Map(vec![
        (Pack::from("rooms"), strings(&target.rooms)),
        (Pack::from("except"), strings(&target.except_all())),
        (Pack::from("flags"), Pack::Map(flags)),
    ])
}

/// The recipients named by `{rooms, except, flags}`.
fn target_of(options: &Value) -> Target {
    let flags = options.get("flags");
    let flag = |name| flags.and_then(|flags| flags.get(name));
    Target {
        rooms: strings(options.get("rooms")),
        except: strings(options.get("except")),
        skip: None,
        volatile: flag("volatile").and_then(Value::as_bool).unwrap_or(false),
        local: false,
        timeout: flag("timeout")
            .and_then(Value::as_u64)
            .map(Duration::from_millis),
        uncompressed: flag("compress").and_then(Value::as_bool) == Some(false),
    }
}

/// The strings (and numbers, which socket.io allows as room names) of a JSON array.
fn strings(value: Option<&Value>) -> Vec<String> {
    let Some(Value::Array(items)) = value else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| match item {
            Value::String(text) => Some(text.clone()),
            Value::Number(number) => Some(number.to_string()),
            _ => None,
        })
        .collect()
}

/// An event packet `{type, data: [event, ...args], nsp}` from msgpack: its name, arguments
/// and namespace.
fn event_of(packet: Pack) -> Option<(String, Args, String)> {
    let mut attachments = Vec::new();
    let packet = pack_to_json(packet, &mut attachments)?;
    let nsp = packet
        .get("nsp")
        .and_then(Value::as_str)
        .unwrap_or("/")
        .to_owned();
    let (event, args) = event_of_json(&packet, attachments)?;
    Some((event, args, nsp))
}

/// An event packet already turned into JSON with placeholders.
fn event_of_json(packet: &Value, attachments: Vec<Bytes>) -> Option<(String, Args)> {
    let kind = packet.get("type").and_then(Value::as_u64)?;
    if kind != EVENT && kind != BINARY_EVENT {
        return None;
    }
    let Some(Value::Array(data)) = packet.get("data") else {
        return None;
    };
    let (event, args) = data.split_first()?;
    let event = event.as_str()?.to_owned();
    let args = Args::from_parts(args.to_vec(), attachments).ok()?;
    Some((event, args))
}

/// A message on a request or response channel: JSON when it starts with `{`, msgpack
/// otherwise.
fn parse(payload: &[u8]) -> Option<Reply> {
    if payload.first() == Some(&b'{') {
        let value = serde_json::from_slice(payload).ok()?;
        return Some((value, Vec::new()));
    }
    let mut attachments = Vec::new();
    let value = pack_to_json(decode(payload)?, &mut attachments)?;
    Some((value, attachments))
}

fn decode(payload: &[u8]) -> Option<Pack> {
    let mut reader = payload;
    let value = rmpv::decode::read_value_with_max_depth(&mut reader, MAX_DEPTH).ok()?;
    reader.is_empty().then_some(value)
}

fn encode(value: &Pack) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = rmpv::encode::write_value(&mut out, value);
    out
}

/// msgpack to JSON; binary data becomes placeholders pointing into `attachments`. `None`
/// for what JSON cannot hold (a map key that is not a string or number).
fn pack_to_json(value: Pack, attachments: &mut Vec<Bytes>) -> Option<Value> {
    Some(match value {
        Pack::Nil => Value::Null,
        Pack::Boolean(value) => Value::Bool(value),
        Pack::Integer(value) => match (value.as_u64(), value.as_i64()) {
            (Some(value), _) => Value::from(value),
            (None, Some(value)) => Value::from(value),
            (None, None) => Value::Null,
        },
        Pack::F32(value) => serde_json::Number::from_f64(f64::from(value))
            .map(Value::Number)
            .unwrap_or(Value::Null),
        Pack::F64(value) => serde_json::Number::from_f64(value)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        Pack::String(text) => Value::String(text.into_str()?),
        Pack::Binary(data) => {
            attachments.push(Bytes::from(data));
            json!({ "_placeholder": true, "num": attachments.len() - 1 })
        }
        Pack::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|item| pack_to_json(item, attachments))
                .collect::<Option<_>>()?,
        ),
        Pack::Map(entries) => {
            let mut map = Map::new();
            for (key, value) in entries {
                let key = match key {
                    Pack::String(key) => key.into_str()?,
                    Pack::Integer(key) => key.to_string(),
                    _ => return None,
                };
                map.insert(key, pack_to_json(value, attachments)?);
            }
            Value::Object(map)
        }
        // notepack writes dates and the like as extensions; JSON has nothing for them.
        Pack::Ext(..) => Value::Null,
    })
}

/// JSON with placeholders to msgpack: each placeholder becomes its binary data.
fn to_pack(value: &Value, attachments: &[Bytes]) -> Pack {
    if let Value::Object(map) = value
        && map.get("_placeholder") == Some(&Value::Bool(true))
        && let Some(data) = map
            .get("num")
            .and_then(Value::as_u64)
            .and_then(|num| attachments.get(usize::try_from(num).ok()?))
    {
        return Pack::Binary(data.to_vec());
    }
    match value {
        Value::Array(items) => Pack::Array(
            items
                .iter()
                .map(|item| to_pack(item, attachments))
                .collect(),
        ),
        Value::Object(map) => Pack::Map(
            map.iter()
                .map(|(key, value)| (Pack::from(key.as_str()), to_pack(value, attachments)))
                .collect(),
        ),
        other => json_to_pack(other),
    }
}

/// Plain JSON to msgpack.
fn json_to_pack(value: &Value) -> Pack {
    match value {
        Value::Null => Pack::Nil,
        Value::Bool(value) => Pack::from(*value),
        Value::Number(number) => match (number.as_u64(), number.as_i64(), number.as_f64()) {
            (Some(value), _, _) => Pack::from(value),
            (None, Some(value), _) => Pack::from(value),
            (None, None, Some(value)) => Pack::from(value),
            _ => Pack::Nil,
        },
        Value::String(text) => Pack::from(text.as_str()),
        Value::Array(items) => Pack::Array(items.iter().map(json_to_pack).collect()),
        Value::Object(map) => Pack::Map(
            map.iter()
                .map(|(key, value)| (Pack::from(key.as_str()), json_to_pack(value)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_round_trips_between_msgpack_and_placeholders() {
        let args = Args::new().with("a").with_binary(vec![1, 2, 3]);
        let packed: Vec<Pack> = args
            .values()
            .iter()
            .map(|value| to_pack(value, args.attachments()))
            .collect();
        assert_eq!(packed[1], Pack::Binary(vec![1, 2, 3]));
        let mut attachments = Vec::new();
        let back = pack_to_json(Pack::Array(packed), &mut attachments).unwrap();
        let Value::Array(values) = back else {
            panic!("not an array")
        };
        assert_eq!(Args::from_parts(values, attachments).unwrap(), args);
    }

    #[test]
    fn malformed_messages_do_not_parse() {
        assert!(parse(b"{not json").is_none());
        assert!(parse(&[0xa5, b'a']).is_none());
        // A map whose key is an array, and trailing bytes.
        assert!(parse(&[0x81, 0x90, 0x01]).is_none());
        assert!(decode(&[0x01, 0x02]).is_none());
        // Nesting deeper than the limit.
        assert!(decode(&[0x91; 1000]).is_none());
    }
}
