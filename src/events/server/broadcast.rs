//! Broadcasts: the operators that pick recipients (rooms, exceptions, flags), emitting with
//! and without acknowledgements, and the bulk operations on the sockets they select.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::EmitError;
use super::adapter::{NodeAdapter, RemoteAck, RemoteAcks, SocketInfo, Target, local};
use super::namespace::NamespaceInner;
use super::socket::{Socket, check_event_name};
use crate::events::Args;

/// Selects the recipients of a broadcast: every socket of a namespace, or those in some rooms,
/// minus those in other rooms (and the sender, for a broadcast from a socket), with flags.
///
/// The packet is encoded once and its messages are shared by every local recipient. Emitting
/// never waits: each recipient's queue takes the packet or applies its overflow policy, and
/// with a cluster adapter (see [`Config::adapter`](super::Config::adapter)) the message for the
/// other nodes is queued for publishing. The operators that have to hear from other nodes are
/// async ([`fetch_sockets`](Self::fetch_sockets), [`emit_with_ack`](Self::emit_with_ack)); the
/// others act on this node at once and tell the other nodes to do the same.
#[derive(Clone)]
pub struct Broadcast {
    namespace: Arc<NamespaceInner>,
    target: Target,
}

/// Why [`Broadcast::emit_with_ack`] did not get one acknowledgement from every recipient.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum BroadcastAckError {
    /// The event could not be sent.
    #[error(transparent)]
    Emit(#[from] EmitError),
    /// Some recipients did not acknowledge: the timeout passed, or they disconnected first.
    /// A node of a cluster that did not answer at all counts as one recipient.
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
            target: Target::default(),
        }
    }

    pub(crate) fn skip(mut self, id: String) -> Self {
        self.target.skip = Some(id);
        self
    }

    /// Adds `room` to the rooms sent to (a socket in several is sent to once).
    pub fn to(mut self, room: impl Into<String>) -> Self {
        self.target.rooms.push(room.into());
        self
    }

    /// The same as [`to`](Self::to) (socket.io's `in`).
    pub fn in_(self, room: impl Into<String>) -> Self {
        self.to(room)
    }

    /// Leaves out the sockets in `room`.
    pub fn except(mut self, room: impl Into<String>) -> Self {
        self.target.except.push(room.into());
        self
    }

    /// Drops the packet for recipients whose connection is not writable now (packets queued or
    /// being written) instead of queueing it, as socket.io's `volatile` does.
    pub fn volatile(mut self) -> Self {
        self.target.volatile = true;
        self
    }

    /// Sends compressed or not (socket.io's `compress`): with `false`, permessage-deflate
    /// leaves the packet uncompressed for every recipient, even over its threshold. Default
    /// `true`.
    pub fn compress(mut self, compress: bool) -> Self {
        self.target.uncompressed = !compress;
        self
    }

    /// Keeps the broadcast on this node: with a cluster adapter, other nodes are not told.
    /// A single server has no other nodes, so this changes nothing there.
    pub fn local(mut self) -> Self {
        self.target.local = true;
        self
    }

    /// Waits at most `timeout` for the acknowledgements of
    /// [`emit_with_ack`](Self::emit_with_ack).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.target.timeout = Some(timeout);
        self
    }

    /// The adapter to tell, unless the broadcast is local or there is no cluster.
    fn remote(&self) -> Option<&Arc<dyn NodeAdapter>> {
        match self.target.local {
            true => None,
            false => self.namespace.adapter(),
        }
    }

    /// The sockets this broadcast reaches now, on this node.
    pub fn sockets(&self) -> Vec<Socket> {
        local::sockets(&self.namespace, &self.target)
    }

    /// The sockets this broadcast reaches on every node (socket.io's `fetchSockets`): this
    /// node's, then those the other nodes describe. Other nodes are waited for up to the
    /// adapter's request timeout; a node that does not answer in time is left out. A single
    /// server answers at once.
    pub async fn fetch_sockets(&self) -> Vec<FetchedSocket> {
        let mut fetched: Vec<FetchedSocket> = self
            .sockets()
            .into_iter()
            .map(|socket| FetchedSocket::local(Arc::clone(&self.namespace), socket))
            .collect();
        if let Some(adapter) = self.remote() {
            let remote = adapter.fetch_sockets(&self.target).await;
            fetched.extend(
                remote
                    .into_iter()
                    .map(|info| FetchedSocket::remote(Arc::clone(&self.namespace), info)),
            );
        }
        fetched
    }

    /// Puts the recipients in `room` (socket.io's `socketsJoin`), on every node.
    pub fn sockets_join(&self, room: impl AsRef<str>) {
        let rooms = [room.as_ref().to_owned()];
        local::add_sockets(&self.namespace, &self.target, &rooms);
        if let Some(adapter) = self.remote() {
            adapter.add_sockets(&self.target, &rooms);
        }
    }

    /// Takes the recipients out of `room` (socket.io's `socketsLeave`), on every node.
    pub fn sockets_leave(&self, room: impl AsRef<str>) {
        let rooms = [room.as_ref().to_owned()];
        local::del_sockets(&self.namespace, &self.target, &rooms);
        if let Some(adapter) = self.remote() {
            adapter.del_sockets(&self.target, &rooms);
        }
    }

    /// Disconnects the recipients from the namespace (socket.io's `disconnectSockets`), or,
    /// with `close`, closes their whole connections (see [`Socket::disconnect`] and
    /// [`Socket::close`]), on every node.
    pub fn disconnect_sockets(&self, close: bool) {
        local::disconnect_sockets(&self.namespace, &self.target, close);
        if let Some(adapter) = self.remote() {
            adapter.disconnect_sockets(&self.target, close);
        }
    }

    /// Sends `event` to the recipients; returns how many on this node queued it. With a
    /// cluster adapter the message for the other nodes is queued for publishing too.
    pub fn emit(&self, event: &str, args: impl Into<Args>) -> Result<usize, EmitError> {
        check_event_name(event)?;
        let args = args.into();
        match self.remote() {
            Some(adapter) => {
                adapter.broadcast(event, &args, &self.target);
                Ok(local::broadcast(&self.namespace, event, args, &self.target))
            }
            None => Ok(local::broadcast(&self.namespace, event, args, &self.target)),
        }
    }

    /// Sends `event` to the recipients, asking each for an acknowledgement, and collects them:
    /// `Ok` with one reply per recipient, or [`BroadcastAckError::Missing`] with the replies
    /// that arrived when the [`timeout`](Self::timeout) passed or a recipient disconnected
    /// before answering. Without a timeout it waits for every local recipient to answer or
    /// leave (and, with a cluster adapter, for the other nodes up to its request timeout).
    ///
    /// The packet is queued when this is called, encoded once under one acknowledgement id
    /// for every local recipient (as socket.io does); the returned future only waits. A
    /// recipient on another node answers with its first acknowledgement argument only, as
    /// socket.io's cluster adapters relay it.
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
        let remote_timeout = self.remote().map(|adapter| adapter.requests_timeout());
        let deadline = self
            .target
            .timeout
            .or(remote_timeout.filter(|_| matches!(sent, Ok((_, Some(_))))))
            .map(|timeout| Instant::now() + timeout);
        async move {
            let (waiting, remote) = sent?;
            let wait = async |receiver: oneshot::Receiver<Args>| match deadline {
                Some(deadline) => tokio::time::timeout_at(deadline, receiver)
                    .await
                    .ok()
                    .and_then(Result::ok),
                None => receiver.await.ok(),
            };
            let mut replies = Vec::with_capacity(waiting.len());
            let mut missing = 0;
            for receiver in waiting {
                match wait(receiver).await {
                    Some(args) => replies.push(args),
                    None => missing += 1,
                }
            }
            if let Some(remote) = remote {
                missing += collect_remote(remote, deadline, &mut replies).await;
            }
            match missing {
                0 => Ok(replies),
                missing => Err(BroadcastAckError::Missing { replies, missing }),
            }
        }
    }

    /// Queues the event under one acknowledgement id; returns the local recipients' answers
    /// to come and the other nodes'.
    fn send_with_ack(
        &self,
        event: &str,
        args: Args,
    ) -> Result<(Vec<oneshot::Receiver<Args>>, Option<RemoteAcks>), EmitError> {
        check_event_name(event)?;
        let remote = self
            .remote()
            .map(|adapter| adapter.broadcast_with_ack(event, &args, &self.target));
        let waiting = local::broadcast_with_ack(&self.namespace, event, args, &self.target);
        Ok((waiting, remote))
    }
}

/// Collects the other nodes' acknowledgements until every node reported its recipients and
/// each of them answered, or `deadline`; returns how many are missing (a node that never
/// reported counts as one).
async fn collect_remote(
    mut remote: RemoteAcks,
    deadline: Option<Instant>,
    replies: &mut Vec<Args>,
) -> usize {
    let deadline = deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(5));
    let servers = tokio::time::timeout_at(deadline, remote.servers)
        .await
        .unwrap_or(1);
    let others = servers.saturating_sub(1);
    let (mut reported, mut expected, mut received) = (0usize, 0usize, 0usize);
    while reported < others || received < expected {
        match tokio::time::timeout_at(deadline, remote.events.recv()).await {
            Ok(Some(RemoteAck::ClientCount(count))) => {
                reported += 1;
                expected += count;
            }
            Ok(Some(RemoteAck::Ack(args))) => {
                received += 1;
                replies.push(args);
            }
            Ok(None) | Err(_) => break,
        }
    }
    expected.saturating_sub(received) + others.saturating_sub(reported)
}

/// A socket found by [`Broadcast::fetch_sockets`]: one of this node's, with its [`Socket`], or
/// one another node described. Its operators reach it wherever it is.
#[derive(Clone)]
pub struct FetchedSocket {
    namespace: Arc<NamespaceInner>,
    info: SocketInfo,
    socket: Option<Socket>,
}

impl FetchedSocket {
    fn local(namespace: Arc<NamespaceInner>, socket: Socket) -> Self {
        Self {
            info: local::describe(&socket),
            namespace,
            socket: Some(socket),
        }
    }

    fn remote(namespace: Arc<NamespaceInner>, info: SocketInfo) -> Self {
        Self {
            namespace,
            info,
            socket: None,
        }
    }

    /// The socket id.
    pub fn id(&self) -> &str {
        &self.info.id
    }

    /// The rooms the socket was in when fetched, its own id included.
    pub fn rooms(&self) -> &[String] {
        &self.info.rooms
    }

    /// Its handshake as socket.io describes it: `headers`, `time`, `address`, `xdomain`,
    /// `secure`, `issued`, `url`, `query`, `auth`.
    pub fn handshake(&self) -> &Value {
        &self.info.handshake
    }

    /// Its application data (socket.io's `socket.data`; `{}` for a wsio socket).
    pub fn data(&self) -> &Value {
        &self.info.data
    }

    /// The socket itself when it is connected to this node.
    pub fn socket(&self) -> Option<&Socket> {
        self.socket.as_ref()
    }

    /// Whether the socket is on another node.
    pub fn is_remote(&self) -> bool {
        self.socket.is_none()
    }

    fn only(&self) -> Broadcast {
        Broadcast::new(Arc::clone(&self.namespace)).to(self.info.id.clone())
    }

    /// Sends `event` to this socket, wherever it is.
    pub fn emit(&self, event: &str, args: impl Into<Args>) -> Result<(), EmitError> {
        self.only().emit(event, args).map(drop)
    }

    /// Puts the socket in `room`, wherever it is.
    pub fn join(&self, room: impl AsRef<str>) {
        self.only().sockets_join(room);
    }

    /// Takes the socket out of `room`, wherever it is.
    pub fn leave(&self, room: impl AsRef<str>) {
        self.only().sockets_leave(room);
    }

    /// Disconnects the socket, or closes its connection with `close`, wherever it is.
    pub fn disconnect(&self, close: bool) {
        self.only().disconnect_sockets(close);
    }
}

impl fmt::Debug for FetchedSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FetchedSocket")
            .field("id", &self.info.id)
            .field("rooms", &self.info.rooms)
            .field("remote", &self.is_remote())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Broadcast {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Broadcast")
            .field("namespace", &self.namespace.name)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}
