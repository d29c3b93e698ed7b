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

mod namespace;
mod wire;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use base64::Engine as _;
use futures_core::Stream;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde_json::Value;
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::Instant;

use super::{Adapter, ClusterAdapter, NamespaceHandle, NodeAdapter};
use crate::events::server::lock;
use crate::proto::Rng;

use namespace::{RedisNamespace, RedisNode};
use wire::{Reply, parse};

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

impl Drop for Shared {
    /// Wakes the subscriber so that it finds the adapter gone and closes its connection:
    /// otherwise Redis would count this node (`PUBSUB NUMSUB`) until a message came.
    fn drop(&mut self) {
        self.resync.notify_one();
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
