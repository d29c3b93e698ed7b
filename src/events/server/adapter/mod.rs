//! The adapter seam: everything a namespace does that may cross server nodes.
//!
//! A namespace always does its own part in this process: it encodes a broadcast once and
//! pushes it to each local recipient, it applies `sockets_join` to its own sockets, and so on
//! ([`local`] holds that in-memory behaviour, which is the whole story on a single server).
//! Then it hands the adapter what the other nodes must hear. Emits stay synchronous: the
//! adapter queues the publish and returns. Requests that need answers from other nodes
//! (`fetch_sockets`, acknowledgements, `server_count`) are async and end at a timeout with the
//! answers that came.

// Parts of the seam only a cluster adapter uses.
#![cfg_attr(not(feature = "redis"), allow(dead_code))]

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;

use super::broadcast::BroadcastAckError;
use super::namespace::NamespaceInner;
use crate::events::Args;

pub(crate) mod local;
#[cfg(feature = "redis")]
mod redis;

pub(crate) use self::local::Target;
#[cfg(feature = "redis")]
pub use self::redis::{RedisAdapter, RedisAdapterConfig, RedisAdapterError, RedisStats};

pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Which adapter the namespaces of a [`Server`](super::Server) use (see
/// [`Config::adapter`](super::Config::adapter)): the in-memory one by default, or a cluster
/// adapter such as [`RedisAdapter`] (feature `redis`) through `From`.
// The text links `RedisAdapter`, which exists only with the `redis` feature.
#[cfg_attr(not(feature = "redis"), allow(rustdoc::broken_intra_doc_links))]
#[derive(Clone, Default)]
pub struct Adapter {
    cluster: Option<Arc<dyn ClusterAdapter>>,
}

impl Adapter {
    /// The in-memory adapter: one node, nothing leaves the process (the default).
    pub fn local() -> Self {
        Self::default()
    }

    /// Whether this is the in-memory adapter.
    pub fn is_local(&self) -> bool {
        self.cluster.is_none()
    }

    /// The adapter of namespace `namespace`, or `None` for the in-memory adapter.
    pub(crate) fn attach(&self, namespace: &Arc<NamespaceInner>) -> Option<Arc<dyn NodeAdapter>> {
        let cluster = self.cluster.as_ref()?;
        Some(cluster.attach(NamespaceHandle {
            inner: Arc::downgrade(namespace),
            name: namespace.name.clone(),
        }))
    }

    #[cfg(feature = "redis")]
    pub(crate) fn cluster(cluster: Arc<dyn ClusterAdapter>) -> Self {
        Self {
            cluster: Some(cluster),
        }
    }
}

impl fmt::Debug for Adapter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.cluster {
            None => f.write_str("Adapter::Local"),
            Some(cluster) => f.debug_tuple("Adapter").field(cluster).finish(),
        }
    }
}

/// A cluster adapter: makes the adapter of each namespace.
pub(crate) trait ClusterAdapter: fmt::Debug + Send + Sync + 'static {
    /// The adapter of one namespace, which delivers what arrives for it through `namespace`.
    fn attach(&self, namespace: NamespaceHandle) -> Arc<dyn NodeAdapter>;
}

/// What one namespace tells the other nodes. Every method is called after the namespace did
/// its local part, and never for a broadcast flagged `local`.
pub(crate) trait NodeAdapter: Send + Sync + 'static {
    /// Socket `id` joined `room` on this node.
    fn join(&self, _id: &str, _room: &str) {}
    /// Socket `id` left `room` on this node.
    fn leave(&self, _id: &str, _room: &str) {}
    /// Publishes an event to the other nodes' recipients of `target`.
    fn broadcast(&self, event: &str, args: &Args, target: &Target);
    /// Publishes an event asking every remote recipient for an acknowledgement.
    fn broadcast_with_ack(&self, event: &str, args: &Args, target: &Target) -> RemoteAcks;
    /// The other nodes' sockets reached by `target`.
    fn fetch_sockets(&self, target: &Target) -> BoxFuture<Vec<SocketInfo>>;
    /// Puts the other nodes' sockets reached by `target` in `rooms`.
    fn add_sockets(&self, target: &Target, rooms: &[String]);
    /// Takes the other nodes' sockets reached by `target` out of `rooms`.
    fn del_sockets(&self, target: &Target, rooms: &[String]);
    /// Disconnects the other nodes' sockets reached by `target`.
    fn disconnect_sockets(&self, target: &Target, close: bool);
    /// Sends an event to the other nodes' server-side handlers; whether it was queued.
    fn server_side_emit(&self, event: &str, args: &Args) -> bool;
    /// Sends an event to the other nodes and collects one acknowledgement from each.
    fn server_side_emit_with_ack(
        &self,
        event: &str,
        args: &Args,
        timeout: Duration,
    ) -> BoxFuture<Result<Vec<Args>, BroadcastAckError>>;
    /// How many nodes serve this namespace, this one included.
    fn server_count(&self) -> BoxFuture<usize>;
    /// How long requests to other nodes wait when the caller set no timeout.
    fn requests_timeout(&self) -> Duration;
}

/// The answers to come for a broadcast with acknowledgements, from the other nodes.
pub(crate) struct RemoteAcks {
    /// How many nodes serve the namespace, this one included.
    pub(crate) servers: BoxFuture<usize>,
    /// Each node's count of recipients, then each recipient's acknowledgement.
    pub(crate) events: mpsc::UnboundedReceiver<RemoteAck>,
}

/// One answer to a broadcast with acknowledgements.
#[derive(Debug)]
pub(crate) enum RemoteAck {
    /// A node sent the packet to this many of its sockets.
    ClientCount(usize),
    /// One socket's acknowledgement.
    Ack(Args),
}

/// A socket as a node describes it to the others (socket.io's `fetchSockets` answer).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SocketInfo {
    pub(crate) id: String,
    pub(crate) rooms: Vec<String>,
    pub(crate) handshake: Value,
    pub(crate) data: Value,
}

/// The local side of a namespace, for an adapter to deliver what other nodes sent.
#[derive(Clone)]
pub(crate) struct NamespaceHandle {
    inner: Weak<NamespaceInner>,
    name: String,
}

impl NamespaceHandle {
    /// The namespace's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The namespace, while the server holds it.
    pub(crate) fn get(&self) -> Option<Arc<NamespaceInner>> {
        self.inner.upgrade()
    }
}
